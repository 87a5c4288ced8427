//! The hardware interfaces a provision drives, in the lab's words (after
//! OpenStack Ironic's split): a node's BMC, its serial console, its SSH
//! readiness, the OS it runs, its configuration management, and its boot
//! records in the TFTP root. The state machine (`machine.rs`) is written once against these
//! traits; production drivers (ipmitool, conman, ssh, salt-ssh: see
//! [`crate::production`]) and the simulated lab in [`crate::sim`] implement
//! them.
//!
//! The data the traits carry are the driver crates' own types
//! (pelagos-ipmi's [`PowerAction`] and [`BootDevice`], pelagos-conman's
//! [`ConsoleLog`] and [`ConsoleWatch`]), and a trait is named `...Driver`
//! where a driver crate already uses the plain name.

use async_trait::async_trait;
use pelagos_config::{LabConfig, Node};
pub use pelagos_conman::{ConsoleLog, ConsoleWatch};
pub use pelagos_ipmi::{BootDevice, PowerAction};
pub use pelagos_pxe::{OsIdentity, ResolvedOs};
use std::path::PathBuf;
use std::sync::Arc;

/// A node of a lab, cheap to clone and `'static` (the lab behind an `Arc`
/// and the node's index): what work moved to the blocking pool carries
/// instead of a copy of the node. Derefs to the [`Node`].
#[derive(Debug, Clone)]
pub struct LabNode {
    lab: Arc<LabConfig>,
    index: usize,
}

impl LabNode {
    /// The node at `index` of `lab.nodes`; `None` past the end.
    pub fn new(lab: Arc<LabConfig>, index: usize) -> Option<Self> {
        (index < lab.nodes.len()).then_some(Self { lab, index })
    }

    /// The lab the node is in.
    pub fn lab(&self) -> &Arc<LabConfig> {
        &self.lab
    }
}

impl std::ops::Deref for LabNode {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.lab.nodes[self.index]
    }
}

/// A driver call that failed. `message` is shown to API clients and in task
/// logs, so drivers must keep secrets out of it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{driver} on node [{node}]: {message}")]
pub struct DriverError {
    /// Which interface failed: `bmc`, `console`, `readiness`, `os verifier`,
    /// `configurator`, `boot records`.
    pub driver: &'static str,
    /// The node's name (its `node` field in the lab config).
    pub node: String,
    /// What went wrong, in words: the task log and the task's result show
    /// it, so it must carry no password or key.
    pub message: String,
    /// What kind of failure, for metrics (`pelagos_bmc_errors_total`): one
    /// of a fixed set of words the driver chooses (a BMC driver: `authentication`,
    /// `unreachable`, `rejected`, `timeout`, ...); `error` when it does not
    /// tell.
    pub kind: &'static str,
}

impl DriverError {
    /// An error of interface `driver` (one of the names listed at
    /// [`DriverError::driver`]) on `node`, of kind `error`; a driver that
    /// knows better names the kind with [`DriverError::with_kind`].
    pub fn new(driver: &'static str, node: &Node, message: impl Into<String>) -> Self {
        Self {
            driver,
            node: node.node.clone(),
            message: message.into(),
            kind: "error",
        }
    }

    /// The same error, of kind `kind`.
    pub fn with_kind(mut self, kind: &'static str) -> Self {
        self.kind = kind;
        self
    }
}

/// The node's baseboard management controller, addressed by node (the
/// driver finds its BMC). Power actions and boot devices are
/// pelagos-ipmi's. Implementations own their timeouts and retries.
#[async_trait]
pub trait BmcDriver: Send + Sync {
    /// Change the chassis power. [`PowerAction::Cycle`] on a chassis that is
    /// off powers it on: the driver decides (as
    /// [`pelagos_ipmi::PowerControl`] backends do), callers never read the
    /// power state first.
    async fn power(&self, node: &Node, action: PowerAction) -> Result<(), DriverError>;
    /// Boot from `device` next time (every time when `persistent`).
    async fn set_boot_device(
        &self,
        node: &Node,
        device: BootDevice,
        persistent: bool,
    ) -> Result<(), DriverError>;
}

/// A node's serial console as conmand logs it. The driver only finds and
/// opens the node's log; the state machine follows it with a
/// [`ConsoleWatch`] (stall after the lab's `conman_line_max_age`, new boot
/// since a mark), the same in production and in the simulated lab.
#[async_trait]
pub trait ConsoleDriver: Send + Sync {
    /// The node's console log, to be followed from now on.
    async fn watch(&self, node: &Node) -> Result<ConsoleLog, DriverError>;
}

/// Whether the freshly booted node answers on SSH at its provisioning address.
#[async_trait]
pub trait Readiness: Send + Sync {
    /// One probe; `Ok(false)` when the node does not answer (yet).
    async fn is_ready(&self, node: &Node) -> Result<bool, DriverError>;
}

/// Which OS a node that answers on SSH runs, as the node itself tells:
/// what the state machine compares with the requested image's identity
/// (its manifest's [`OsIdentity`]) before it calls a provision done.
#[async_trait]
pub trait OsVerifier: Send + Sync {
    /// Log in and read the node's os-release `ID`/`VERSION_ID` and kiwi's
    /// `/etc/ImageID` (empty when the node has none). The driver owns its
    /// timeout; errors keep secrets out of their message.
    async fn running_os(&self, node: &Node) -> Result<OsIdentity, DriverError>;
}

/// Configuration management applied after an OS install (salt-ssh states).
#[async_trait]
pub trait Configurator: Send + Sync {
    /// Apply one salt state (a name that passed
    /// [`pelagos_config::check_sls_name`]) to the freshly installed node at
    /// its provisioning address; `Ok` once the state applied without
    /// failures. The driver owns its timeout (the lab's `salt_timeout`); the
    /// state machine stops waiting 5 s after it and fails the provision with
    /// the first state that fails, so later states do not run.
    async fn apply_state(&self, node: &Node, state: &str) -> Result<(), DriverError>;
}

/// Why an OS name does not resolve to an image.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct OsNotFound {
    /// The OS name as it was asked for.
    pub os: String,
    /// Why it does not resolve (the TFTP root and the missing dir or
    /// files), for the log; the refusal's own text only when
    /// `cannot_install` is set.
    pub message: String,
    /// The name resolves to an image dir, but one that lacks what a node
    /// needs to install it (`pelagos_pxe::PxeError::NotInstallable`);
    /// `message` names the dir and the missing files and is the answer's.
    pub cannot_install: bool,
}

/// The node's boot records in the TFTP root (pxelinux, GRUB, iPXE). Calls are
/// short file operations; writes and removals run on the blocking pool,
/// through `Drivers::change_record` only.
pub trait BootRecordWriter: Send + Sync {
    /// The TFTP root, for messages.
    fn root(&self) -> PathBuf;
    /// `local`, `maintenance_image`, or an image directory (or symlink to one)
    /// in the root: the resolved version name.
    fn resolve_os(&self, os: &str) -> Result<ResolvedOs, OsNotFound>;
    /// Write (atomically) the node's records for a resolved OS.
    fn write(&self, node: &Node, os: &ResolvedOs) -> Result<(), DriverError>;
    /// Remove the node's records; no error when there are none.
    fn remove(&self, node: &Node) -> Result<(), DriverError>;
    /// The OS the node's record boots, or the original's phrases when there is
    /// no record (`Default config is used: pxelinux.cfg/default`).
    fn configured_os(&self, node: &Node) -> String;
    /// Path of the node's pxelinux record.
    fn record_path(&self, node: &Node) -> PathBuf;
    /// The OS identity the image's manifest records: `Ok(None)` for
    /// `local`, `maintenance_image`, a hand-made dir or a manifest of an
    /// earlier add-image; `Err` (the reason) when the manifest cannot be read.
    fn os_identity(&self, os: &ResolvedOs) -> Result<Option<OsIdentity>, String>;
}

/// One implementation of each interface: what a provision runs against.
#[derive(Clone)]
pub struct Drivers {
    /// Power actions and the one-time PXE boot device.
    pub bmc: Arc<dyn BmcDriver>,
    /// The conman console log the state machine follows for the new boot
    /// and for stalls.
    pub console: Arc<dyn ConsoleDriver>,
    /// The SSH probe repeated until the node answers.
    pub readiness: Arc<dyn Readiness>,
    /// Reads which OS the node runs, checked against the image's manifest.
    pub os_verifier: Arc<dyn OsVerifier>,
    /// Applies the salt states after the install.
    pub configurator: Arc<dyn Configurator>,
    /// The node's PXE records in the TFTP root; change them only through
    /// `Drivers::change_record`, which runs them on the blocking pool.
    pub boot_records: Arc<dyn BootRecordWriter>,
}
