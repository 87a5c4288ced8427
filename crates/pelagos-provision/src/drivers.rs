//! The hardware interfaces a provision drives, in the lab's words (after
//! OpenStack Ironic's split): a node's BMC, its serial console, its SSH
//! readiness, its configuration management, and its boot records in the TFTP
//! root. The state machine in [`crate::machine`] is written once against these
//! traits; production drivers (ipmitool, conman, ssh, salt-ssh: see
//! [`crate::production`]) and the simulated lab in [`crate::sim`] implement
//! them.

use async_trait::async_trait;
use pelagos_config::Node;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A driver call that failed. `message` is shown to API clients and in task
/// logs, so drivers must keep secrets out of it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{driver} on node [{node}]: {message}")]
pub struct DriverError {
    /// Which interface failed: `bmc`, `console`, `readiness`, `configurator`, `boot records`.
    pub driver: &'static str,
    pub node: String,
    pub message: String,
}

impl DriverError {
    pub fn new(driver: &'static str, node: &Node, message: impl Into<String>) -> Self {
        Self {
            driver,
            node: node.node.clone(),
            message: message.into(),
        }
    }
}

/// A chassis power command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    On,
    Off,
    /// Off then on; BMCs refuse it while the chassis is off.
    Cycle,
    /// Hard reset without a power transition.
    Reset,
}

impl fmt::Display for PowerAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PowerAction::On => "power on",
            PowerAction::Off => "power off",
            PowerAction::Cycle => "power cycle",
            PowerAction::Reset => "power reset",
        })
    }
}

/// Chassis power as the BMC reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    On,
    Off,
}

/// What the node boots from next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootDevice {
    Pxe,
    Disk,
}

/// The node's baseboard management controller (IPMI, Redfish, ...).
/// Implementations own their timeouts and retries.
#[async_trait]
pub trait Bmc: Send + Sync {
    async fn power_status(&self, node: &Node) -> Result<PowerState, DriverError>;
    async fn power(&self, node: &Node, action: PowerAction) -> Result<(), DriverError>;
    async fn set_boot_device(
        &self,
        node: &Node,
        device: BootDevice,
        persistent: bool,
    ) -> Result<(), DriverError>;
}

/// What a console watcher has seen so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSnapshot {
    /// The newest meaningful text (not empty, not `<ConMan> ...`, not a bare
    /// timestamp): the unfinished last line if it has some (a login prompt,
    /// a row of progress dots), else the last complete line; `None` until
    /// one was seen.
    pub last_line: Option<String>,
    /// How long the console has shown nothing new (since its last output,
    /// or since the watch started or was reset).
    pub unchanged_for: Duration,
    /// Grows with each new output; compare two snapshots to know whether the
    /// console showed anything in between (the new boot after a power
    /// action).
    pub activity: u64,
}

/// A node's serial console, as collected by conman.
#[async_trait]
pub trait Console: Send + Sync {
    /// Start following the node's console from now on.
    async fn watch(&self, node: &Node) -> Result<Box<dyn ConsoleWatch>, DriverError>;
}

/// One follower of one node's console; polled by the state machine.
#[async_trait]
pub trait ConsoleWatch: Send {
    /// Take in what the console printed since the last poll.
    async fn poll(&mut self) -> Result<ConsoleSnapshot, DriverError>;
    /// Restart the age clock (after a cold restart, and when the wait for
    /// readiness starts).
    fn reset(&mut self);
}

/// Whether the freshly booted node answers on SSH at its provisioning address.
#[async_trait]
pub trait Readiness: Send + Sync {
    /// One probe; `Ok(false)` when the node does not answer (yet).
    async fn is_ready(&self, node: &Node) -> Result<bool, DriverError>;
}

/// Configuration management applied after an OS install (salt-ssh states).
#[async_trait]
pub trait Configurator: Send + Sync {
    async fn apply_state(&self, node: &Node, state: &str) -> Result<(), DriverError>;
}

/// Why an OS name does not resolve to an image.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct OsNotFound {
    pub os: String,
    pub message: String,
}

/// The node's boot records in the TFTP root (pxelinux, GRUB, iPXE). Calls are
/// short file operations; the engine runs writes on the blocking pool.
pub trait BootRecordWriter: Send + Sync {
    /// The TFTP root, for messages.
    fn root(&self) -> PathBuf;
    /// `local`, `maintenance_image`, or an image directory (or symlink to one)
    /// in the root: the resolved version name.
    fn resolve_os(&self, os: &str) -> Result<String, OsNotFound>;
    /// Write (atomically) the node's records for a resolved OS.
    fn write(&self, node: &Node, os: &str) -> Result<(), DriverError>;
    /// Remove the node's records; no error when there are none.
    fn remove(&self, node: &Node) -> Result<(), DriverError>;
    /// The OS the node's record boots, or the original's phrases when there is
    /// no record (`Default config is used: pxelinux.cfg/default`).
    fn configured_os(&self, node: &Node) -> String;
    /// Path of the node's pxelinux record.
    fn record_path(&self, node: &Node) -> PathBuf;
}

/// One implementation of each interface: what a provision runs against.
#[derive(Clone)]
pub struct Drivers {
    pub bmc: Arc<dyn Bmc>,
    pub console: Arc<dyn Console>,
    pub readiness: Arc<dyn Readiness>,
    pub configurator: Arc<dyn Configurator>,
    pub boot_records: Arc<dyn BootRecordWriter>,
}
