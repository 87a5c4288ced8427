//! pelagos-pxe's tests that need installed programs or root (the `peers`
//! target; `scripts/install-test-deps.sh` installs the programs):
//!
//! - `tools`: the records and the provisioning-host samples against the
//!   real tools that read them: grub-script-check and dnsmasq.
//! - `vm`: QEMU boots a BIOS node through pxelinux and a UEFI node (OVMF)
//!   through GRUB's network boot, from records and an installed image.
//! - `full_fs`: resetting a node on a full or read-only TFTP root, a real
//!   small tmpfs (mounting needs root).
//! - `common`: the lab and helpers shared with the `it` target (`main.rs`).

#[allow(dead_code)]
mod common;
mod full_fs;
mod tools;
mod vm;

pub use common::{install_plain, lab, tftp_with_base, tree};
// pelagos-testkit's synthetic kiwi build, as `crate::kiwi`.
use pelagos_testkit::kiwi;
