//! The one error type of the crate; every variant names what it is about.

use std::path::PathBuf;

/// Why a boot record or catalog operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PxeError {
    /// The OS is neither `local`, `maintenance_image` nor an image in the
    /// TFTP root. The message is the original's, which clients may match.
    #[error("No os image [{os}] found in dir [{}]", dir.display())]
    NotFound {
        /// The OS name asked for.
        os: String,
        /// The TFTP root searched.
        dir: PathBuf,
    },

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
        /// The OS name asked for.
        os: String,
        /// The image dir it resolved to.
        dir: PathBuf,
        /// What the dir lacks (kernel, initrd, disk image).
        missing: Vec<String>,
    },

    /// An OS (or image) name that is not a plain name inside the TFTP root.
    #[error("invalid os name [{name}]: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The node's MAC cannot name a record file.
    #[error("node [{node}]: mac [{mac}] is not six hex octets (aa:bb:cc:dd:ee:ff)")]
    BadMac {
        /// The node.
        node: String,
        /// Its MAC as written in the lab config.
        mac: String,
    },

    /// `remove` found no dedicated record.
    #[error("node [{node}] has no dedicated boot record at {}", path.display())]
    NoRecord {
        /// The node.
        node: String,
        /// Where its pxelinux record would be.
        path: PathBuf,
    },

    /// A file system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`write`, `rename`, `read`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// An `image.json` that cannot be read or written.
    #[error("image manifest {}: {message}", path.display())]
    Manifest {
        /// The `image.json`.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// The add-image source is not a usable kiwi OEM PXE output.
    #[error("kiwi output {}: {message}", path.display())]
    KiwiOutput {
        /// The kiwi output given to add-image.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },

    /// A file's content does not match its checksum.
    #[error("checksum mismatch for {}: expected {expected}, computed {actual}", file.display())]
    Checksum {
        /// The file checked.
        file: PathBuf,
        /// The md5 kiwi recorded.
        expected: String,
        /// The md5 of the (decompressed) file.
        actual: String,
    },

    /// add-image would overwrite an installed version.
    #[error("image [{id}] is already installed at {}", path.display())]
    AlreadyInstalled {
        /// The image id, `<name>-<version>`.
        id: String,
        /// Its installed dir.
        path: PathBuf,
    },

    /// add-image remove of the version the `<name>` symlink points at.
    #[error("image [{id}] is the current version of [{name}]; use --force to remove it")]
    IsCurrent {
        /// The image id, `<name>-<version>`.
        id: String,
        /// The catalog name whose `<name>` symlink points at it.
        name: String,
    },

    /// The progress callback asked to stop; nothing was installed.
    #[error("install of [{id}] interrupted; the catalog is unchanged")]
    Interrupted {
        /// The image id that was being installed.
        id: String,
    },

    /// An OS identity (os-release `ID`/`VERSION_ID`, kiwi's image id) that
    /// cannot be recorded; `value` is escaped and cut.
    #[error("OS identity: {field} [{value}] {reason}")]
    OsIdentity {
        /// The identity field (`ID`, `VERSION_ID`, `image id`).
        field: &'static str,
        /// Its value, escaped and cut.
        value: String,
        /// Why it cannot be recorded.
        reason: &'static str,
    },

    /// add-image remove/prune of something that is not an installed image.
    #[error("no installed image [{id}] in {}", dir.display())]
    NoSuchImage {
        /// The image id asked for.
        id: String,
        /// The TFTP root.
        dir: PathBuf,
    },
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
