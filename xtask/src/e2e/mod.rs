//! `cargo xtask e2e`: reimage QEMU VMs through every real part.

pub mod guest;
