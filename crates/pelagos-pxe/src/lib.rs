//! Pelagos boot records (pxelinux, GRUB, iPXE) and the OS image catalog in
//! the TFTP root.
//!
//! ```
//! use pelagos_config::LabConfig;
//! use pelagos_pxe::BootRecords;
//!
//! let tftp = tempfile::tempdir().unwrap();
//! let lab = LabConfig::parse(r#"{ "default_pxe_server": "10.0.0.1",
//!     "nodes": [ { "node": "n1", "mac": "AA:BB:CC:DD:EE:01" } ] }"#).unwrap();
//! let records = BootRecords::new(tftp.path(), &lab);
//! let n1 = lab.node("n1").unwrap();
//!
//! let os = records.resolve_os("local").unwrap();
//! records.write(n1, &os).unwrap();
//! assert!(records.record_path(n1).ends_with("pxelinux.cfg/01-aa-bb-cc-dd-ee-01"));
//! assert_eq!(records.configured_os(n1), "local");
//! assert!(records.resolve_os("../etc").is_err());
//! ```
//!
//! Layout of the TFTP root (also the tree served over HTTP for kiwi):
//! - `pxelinux.cfg/01-<mac>`, `grub/grub.cfg-01-<mac>`, `ipxe/01-<mac>.ipxe`:
//!   the per-node records ([`BootRecords`]).
//! - `<name>-<version>/` with `image.json` ([`catalog::Manifest`]), kernel,
//!   install initrd, the `.xz` disk image and kiwi's `.md5`; a symlink
//!   `<name>` to the current version ([`catalog::Catalog`]).
//! - [`install`]: what `add-image` does (verify, stage, rename, flip).
//! - [`os_release`]: the OS identity a manifest records and a booted node
//!   must report (os-release `ID`/`VERSION_ID`, kiwi's image id).
//!
//! Architecture invariant: every file a TFTP/HTTP client may read is
//! replaced by rename, never rewritten in place.

#![deny(missing_docs)]

pub mod catalog;
mod error;
pub mod install;
pub mod os_release;
mod records;

pub use catalog::{Catalog, CatalogEntry, Manifest, ResolvedOs};
pub use error::PxeError;
pub use os_release::OsIdentity;
pub use records::{
    BootRecords, DEDICATED_UNDEFINED, DEFAULT_CONFIG_USED, IMAGE_ROUTE, LOCAL, MAINTENANCE, PxeInfo,
};
