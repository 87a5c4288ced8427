//! Pelagos BMC power and boot-device control through ipmitool.
