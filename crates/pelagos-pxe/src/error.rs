//! The one error type of the crate; every variant names what it is about.

use std::path::PathBuf;

/// Why a boot record or catalog operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PxeError {
    /// The OS is neither `local`, `maintenance_image` nor an image in the
    /// TFTP root. The message is the original's, which clients may match.
    #[error("No os image [{os}] found in dir [{}]", dir.display())]
    NotFound { os: String, dir: PathBuf },

    /// The OS resolves to an image dir that lacks what a node needs to
    /// install it (kernel, install initrd, disk image): refused when the
    /// records require installable images
    /// ([`crate::BootRecords::require_installable`]).
    #[error(
        "os image [{os}] in dir [{}] cannot be installed: missing {}",
        dir.display(),
        missing.join(", ")
    )]
    NotInstallable {
        os: String,
        dir: PathBuf,
        missing: Vec<String>,
    },

    /// An OS (or image) name that is not a plain name inside the TFTP root.
    #[error("invalid os name [{name}]: {reason}")]
    InvalidName { name: String, reason: &'static str },

    /// The node's MAC cannot name a record file.
    #[error("node [{node}]: mac [{mac}] is not six hex octets (aa:bb:cc:dd:ee:ff)")]
    BadMac { node: String, mac: String },

    /// `remove` found no dedicated record.
    #[error("node [{node}] has no dedicated boot record at {}", path.display())]
    NoRecord { node: String, path: PathBuf },

    /// A file system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An `image.json` that cannot be read or written.
    #[error("image manifest {}: {message}", path.display())]
    Manifest { path: PathBuf, message: String },

    /// The add-image source is not a usable kiwi OEM PXE output.
    #[error("kiwi output {}: {message}", path.display())]
    KiwiOutput { path: PathBuf, message: String },

    /// A file's content does not match its checksum.
    #[error("checksum mismatch for {}: expected {expected}, computed {actual}", file.display())]
    Checksum {
        file: PathBuf,
        expected: String,
        actual: String,
    },

    /// add-image would overwrite an installed version.
    #[error("image [{id}] is already installed at {}", path.display())]
    AlreadyInstalled { id: String, path: PathBuf },

    /// add-image remove of the version the `<name>` symlink points at.
    #[error("image [{id}] is the current version of [{name}]; use --force to remove it")]
    IsCurrent { id: String, name: String },

    /// The progress callback asked to stop; nothing was installed.
    #[error("install of [{id}] interrupted; the catalog is unchanged")]
    Interrupted { id: String },

    /// An OS identity (os-release `ID`/`VERSION_ID`, kiwi's image id) that
    /// cannot be recorded; `value` is escaped and cut.
    #[error("OS identity: {field} [{value}] {reason}")]
    OsIdentity {
        field: &'static str,
        value: String,
        reason: &'static str,
    },

    /// add-image remove/prune of something that is not an installed image.
    #[error("no installed image [{id}] in {}", dir.display())]
    NoSuchImage { id: String, dir: PathBuf },
}

impl PxeError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| PxeError::Io {
            action,
            path,
            source,
        }
    }
}
