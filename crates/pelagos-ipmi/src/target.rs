//! What a BMC is (address and credentials) and what can be asked of it.

use crate::BmcError;
use pelagos_config::{LabConfig, Node, Secret};
use std::fmt;

/// The RMCP+ port of a BMC when the lab config names none.
pub const DEFAULT_BMC_PORT: u16 = 623;

/// One BMC: where it answers and who logs in.
///
/// `Debug` shows the password as `********` ([`Secret`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BmcTarget {
    /// Name used in logs and errors, usually the node's; empty: the host.
    pub name: String,
    /// Address or host name of the BMC.
    pub host: String,
    /// UDP port of its RMCP+ service (623 on real BMCs).
    pub port: u16,
    /// IPMI user name; empty logs in as the anonymous user.
    pub user: String,
    /// IPMI password; reaches ipmitool only as `IPMI_PASSWORD` in its environment.
    pub password: Secret,
    /// IPMI cipher suite (`ipmitool -C`); `None` lets ipmitool pick its
    /// default. Old BMCs may need 3.
    pub cipher_suite: Option<u8>,
}

impl BmcTarget {
    /// A BMC on `host`, port 623, no cipher suite override.
    pub fn new(host: impl Into<String>, user: impl Into<String>, password: Secret) -> Self {
        Self {
            name: String::new(),
            host: host.into(),
            port: DEFAULT_BMC_PORT,
            user: user.into(),
            password,
            cipher_suite: None,
        }
    }

    /// Names the BMC in logs and errors (usually the node's name).
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// A BMC listening on another UDP port than 623 (simulators, NAT).
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Forces an IPMI cipher suite (`ipmitool -C`); `None`: ipmitool's default.
    #[must_use]
    pub fn with_cipher_suite(mut self, suite: Option<u8>) -> Self {
        self.cipher_suite = suite;
        self
    }

    /// The BMC of a lab node: `bmc_ip`, `bmc_port`, `cipher_suite` from the
    /// node, `ipmi_user`/`ipmi_pass` from the lab, named after the node.
    pub fn for_node(lab: &LabConfig, node: &Node) -> Result<Self, BmcError> {
        if node.bmc_ip.trim().is_empty() {
            return Err(BmcError::NoAddress {
                node: node.node.clone(),
            });
        }
        Ok(Self::new(
            node.bmc_ip.trim(),
            lab.ipmi_user.clone(),
            lab.ipmi_pass.clone(),
        )
        .with_name(node.node.clone())
        .with_port(node.bmc_port)
        .with_cipher_suite(node.cipher_suite))
    }

    /// `name (host:port)`, or `host:port` when unnamed: how logs and errors
    /// refer to this BMC.
    pub fn label(&self) -> String {
        if self.name.is_empty() || self.name == self.host {
            format!("{}:{}", self.host, self.port)
        } else {
            format!("{} ({}:{})", self.name, self.host, self.port)
        }
    }
}

/// Whether the chassis is powered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerState {
    /// `Chassis Power is on`.
    On,
    /// `Chassis Power is off`.
    Off,
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::On => "on",
            Self::Off => "off",
        })
    }
}

/// A chassis power control request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerAction {
    /// Power up; nothing happens if already on.
    On,
    /// Hard power off (not a guest shutdown).
    Off,
    /// Off then on again. A chassis that is off is powered on instead: real
    /// BMCs reject a cycle in that state ("not supported in present state").
    Cycle,
    /// Hard reset without removing power.
    Reset,
    /// Ask the OS to shut down (ACPI soft-off); the chassis may stay on.
    SoftOff,
}

impl PowerAction {
    /// The word ipmitool uses after `power`.
    pub fn as_ipmitool(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Off => "off",
            Self::Cycle => "cycle",
            Self::Reset => "reset",
            Self::SoftOff => "soft",
        }
    }
}

impl fmt::Display for PowerAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_ipmitool())
    }
}

/// Device for the next boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BootDevice {
    /// Network boot (PXE, or UEFI network boot with [`BootOptions::uefi`]).
    Pxe,
    /// The default hard disk.
    Disk,
}

impl BootDevice {
    /// The word ipmitool uses after `chassis bootdev`.
    pub fn as_ipmitool(self) -> &'static str {
        match self {
            Self::Pxe => "pxe",
            Self::Disk => "disk",
        }
    }
}

impl fmt::Display for BootDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_ipmitool())
    }
}

/// How a boot device override applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct BootOptions {
    /// Boot in UEFI mode (IPMI's "EFI boot" flag, `options=efiboot`); for
    /// nodes with `uefi` in the lab config.
    pub uefi: bool,
    /// Keep the override for every later boot (`options=persistent`);
    /// otherwise it applies to the next boot only.
    pub persistent: bool,
}

impl BootOptions {
    /// Next boot only, in UEFI mode or not.
    pub fn once(uefi: bool) -> Self {
        Self {
            uefi,
            persistent: false,
        }
    }
}
