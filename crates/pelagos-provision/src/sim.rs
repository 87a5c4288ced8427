//! A simulated lab for `--simulation fast|medium`: the real state machine
//! runs against simulated hardware. A BMC keeps each node's power state;
//! powering a node on starts a console that writes conman-format boot lines
//! into `console.<short name>` under a directory, read back by the same
//! [`ConmanConsole`] (pelagos-conman's watcher) production uses; SSH "answers" once the node has been
//! on for its boot time; salt states take a moment.
//!
//! A node's `sim` block ([`SimSpec`]) injects failures: `bmc_error` (every BMC
//! command fails: 502), `console_stall` (the console stops mid-boot every
//! time: cold restarts, then CannotBoot 502), `never_ready` (the console keeps
//! printing but SSH never answers: Timeout 504), `wrong_os` (the node
//! ignores its PXE record and boots the OS on its disk: the OS check fails,
//! 502), `salt_error` (500), and `boot_time` overrides the mode's boot time.
//!
//! A simulated node boots what its boot record says at power-on, as a real
//! one does: an image record installs that image (its manifest's OS
//! identity becomes the node's disk and running OS, which [`OsVerifier`]
//! reports); anything else boots the disk, at first [`SimLab::DISK_OS`].

use crate::drivers::{
    BmcDriver, BootDevice, BootRecordWriter, Configurator, DriverError, Drivers, OsIdentity,
    OsNotFound, OsVerifier, PowerAction, Readiness, ResolvedOs,
};
use crate::production::ConmanConsole;
use async_trait::async_trait;
use pelagos_config::{Node, SimSpec, Timing};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// How fast the simulated lab runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimMode {
    /// A provision takes about 1-2 s; failure injections end within seconds.
    Fast,
    /// A provision takes about 20 s.
    Medium,
}

impl FromStr for SimMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fast" => Ok(SimMode::Fast),
            "medium" => Ok(SimMode::Medium),
            other => Err(format!(
                "unknown simulation mode \"{other}\" (expected fast or medium)"
            )),
        }
    }
}

impl SimMode {
    /// Time a node takes from power-on until SSH answers.
    pub fn boot_time(self) -> Duration {
        match self {
            SimMode::Fast => Duration::from_secs(1),
            SimMode::Medium => Duration::from_secs(15),
        }
    }

    /// The lab's timing scaled to this mode (expiry kept as configured).
    pub fn timing(self, base: &Timing) -> Timing {
        // In the order of the fields below, in milliseconds.
        let [start, ready, age, cold, every, probe, ipmi, salt] = match self {
            SimMode::Fast => [200, 6_000, 400, 50, 100, 500, 2_000, 5_000],
            SimMode::Medium => [2_000, 60_000, 6_000, 2_000, 1_000, 2_000, 5_000, 30_000],
        }
        .map(Duration::from_millis);
        Timing {
            hardware_start_delay: start,
            wait_node_ready_timeout: ready,
            conman_line_max_age: age,
            cold_restart_delay: cold,
            ssh_probe_interval: every,
            ssh_probe_timeout: probe,
            ipmi_timeout: ipmi,
            salt_timeout: salt,
            ..base.clone()
        }
    }

    fn salt_time(self) -> Duration {
        match self {
            SimMode::Fast => Duration::from_millis(50),
            SimMode::Medium => Duration::from_millis(700),
        }
    }
}

const BOOT_LINES: &[&str] = &[
    "[    0.000000] Linux version 6.4.0-150600.21-default (geeko@buildhost) #1 SMP PREEMPT_DYNAMIC",
    "[    0.000000] Command line: rd.kiwi.install.pxe console=ttyS1,115200",
    "[    1.204113] Freeing unused kernel image (initmem) memory: 3428K",
    "[    2.118312] systemd[1]: Starting dracut pre-udev hook...",
    "[    3.804512] dracut-pre-mount[402]: kiwi: Loading image from network...",
    "[   40.031770] dracut-pre-mount[402]: kiwi: Verifying image checksum...",
    "[   52.004411] dracut-pre-mount[402]: kiwi: Dumping image to /dev/sda...",
    "[   95.120004] reboot: Restarting system",
    "Welcome to SUSE Linux Enterprise Server 15 SP6 (x86_64) - Kernel 6.4.0 (ttyS1).",
    "login:",
];

struct SimNode {
    on: bool,
    since: Instant,
    /// Bumped on every power transition; a console writer of an older
    /// generation stops.
    generation: u64,
    /// The OS installed on the node's disk (`None`: [`SimLab::DISK_OS`]).
    disk: Option<OsIdentity>,
}

/// The simulated hardware of a whole lab. Implements [`BmcDriver`] (a BMC
/// that keeps to [`pelagos_ipmi::PowerControl`]'s contract: a cycle of an off
/// chassis powers it on, as the ipmitool backend makes real BMCs do),
/// [`Readiness`] and [`Configurator`]; its consoles are files under
/// `console_dir`.
pub struct SimLab {
    mode: SimMode,
    timing: Timing,
    console_dir: PathBuf,
    nodes: Mutex<HashMap<String, SimNode>>,
    /// The boot records a node boots from at power-on (set by [`Self::drivers`]).
    records: Mutex<Option<Arc<SimRecords>>>,
    me: Weak<SimLab>,
}

impl SimLab {
    /// `timing` is the (scaled) timing the engine runs with.
    pub fn new(mode: SimMode, timing: Timing, console_dir: impl Into<PathBuf>) -> Arc<Self> {
        let console_dir = console_dir.into();
        let _ = std::fs::create_dir_all(&console_dir);
        Arc::new_cyclic(|me| Self {
            mode,
            timing,
            console_dir,
            nodes: Mutex::new(HashMap::new()),
            records: Mutex::new(None),
            me: me.clone(),
        })
    }

    /// What a simulated node's disk holds before any image is installed on
    /// it: the OS a node that does not PXE-boot runs.
    pub const DISK_OS: &'static str = "sim-disk";

    /// Drivers for the engine: this lab's BMC, readiness, OS verifier and
    /// configurator, the conman log console over its console files, and
    /// `boot_records` (which the simulated nodes boot from, too).
    pub fn drivers(self: &Arc<Self>, boot_records: Arc<dyn BootRecordWriter>) -> Drivers {
        let boot_records = Arc::new(SimRecords {
            inner: boot_records,
            written: Mutex::default(),
        });
        *self.records.lock().unwrap_or_else(|e| e.into_inner()) = Some(boot_records.clone());
        Drivers {
            bmc: Arc::new(crate::metrics::MeteredBmc::new(self.clone())),
            console: Arc::new(ConmanConsole::new(&self.console_dir)),
            readiness: self.clone(),
            os_verifier: self.clone(),
            configurator: self.clone(),
            boot_records,
        }
    }

    /// The directory of the simulated consoles: one conman-format log per
    /// node, `console.<short name>`, read through [`ConmanConsole`].
    pub fn console_dir(&self) -> &Path {
        &self.console_dir
    }

    /// Whether the simulated chassis is on (`None`: never touched).
    pub fn is_on(&self, node: &str) -> Option<bool> {
        self.lock().get(node).map(|n| n.on)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SimNode>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spec(node: &Node) -> SimSpec {
        node.sim.clone().unwrap_or_default()
    }

    /// The node's `sim.boot_time` (seconds; negative is none, too long
    /// never), else the mode's.
    fn boot_time(&self, node: &Node) -> Duration {
        match Self::spec(node).boot_time {
            Some(s) => Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX),
            None => self.mode.boot_time(),
        }
    }

    /// The image a node powering on installs: the OS identity of the image
    /// its boot record names; `None` when it boots its disk (a `local` or
    /// maintenance record, an image without identity, or `wrong_os`).
    fn pxe_boot(&self, node: &Node) -> Option<OsIdentity> {
        if Self::spec(node).wrong_os {
            return None;
        }
        let records = self
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let os = records.last_written(node)?;
        records.inner.os_identity(&os).ok().flatten()
    }

    fn set_power(&self, node: &Node, on: bool) {
        let installs = if on { self.pxe_boot(node) } else { None };
        let generation = {
            let mut nodes = self.lock();
            let n = nodes.entry(node.node.clone()).or_insert(SimNode {
                on: false,
                since: Instant::now(),
                generation: 0,
                disk: None,
            });
            n.on = on;
            n.since = Instant::now();
            n.generation += 1;
            if installs.is_some() {
                n.disk = installs;
            }
            n.generation
        };
        if on && let Some(me) = self.me.upgrade() {
            let boot = ConsoleBoot {
                node: node.node.clone(),
                path: self.console_path(node),
                spec: Self::spec(node),
                boot_time: self.boot_time(node),
                generation,
            };
            tokio::spawn(console_writer(me, boot));
        }
    }

    fn current(&self, node: &str, generation: u64) -> bool {
        self.lock()
            .get(node)
            .is_some_and(|n| n.generation == generation)
    }

    fn console_path(&self, node: &Node) -> PathBuf {
        self.console_dir
            .join(format!("console.{}", node.short_name()))
    }
}

/// The lab's boot records, remembering what each node's record was last
/// set to: what a simulated node boots at power-on (no file read per boot).
struct SimRecords {
    inner: Arc<dyn BootRecordWriter>,
    written: Mutex<HashMap<String, ResolvedOs>>,
}

impl SimRecords {
    fn last_written(&self, node: &Node) -> Option<ResolvedOs> {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&node.node)
            .cloned()
    }

    fn remember(&self, node: &Node, os: Option<&ResolvedOs>) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        match os {
            Some(os) => written.insert(node.node.clone(), os.clone()),
            None => written.remove(&node.node),
        };
    }
}

impl BootRecordWriter for SimRecords {
    fn root(&self) -> PathBuf {
        self.inner.root()
    }
    fn resolve_os(&self, os: &str) -> Result<ResolvedOs, OsNotFound> {
        self.inner.resolve_os(os)
    }
    fn write(&self, node: &Node, os: &ResolvedOs) -> Result<(), DriverError> {
        let res = self.inner.write(node, os);
        self.remember(node, res.is_ok().then_some(os));
        res
    }
    fn remove(&self, node: &Node) -> Result<(), DriverError> {
        self.remember(node, None);
        self.inner.remove(node)
    }
    fn configured_os(&self, node: &Node) -> String {
        self.inner.configured_os(node)
    }
    fn record_path(&self, node: &Node) -> PathBuf {
        self.inner.record_path(node)
    }
    fn os_identity(&self, os: &ResolvedOs) -> Result<Option<OsIdentity>, String> {
        self.inner.os_identity(os)
    }
}

/// Now as conmand stamps its log lines: `YYYY-MM-DD HH:MM:SS` (UTC).
fn timestamp() -> String {
    let ts = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        ts.year(),
        ts.month() as u8,
        ts.day(),
        ts.hour(),
        ts.minute(),
        ts.second()
    )
}

/// Append `text` to the console log at `path` (created if missing).
fn append(path: &Path, text: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(text.as_bytes());
    }
}

fn append_line(path: &Path, line: &str) {
    append(path, &format!("{} {line}\r\n", timestamp()));
}

/// One power-on of one node's console (kept small: 10,000 may run at once).
struct ConsoleBoot {
    node: String,
    path: PathBuf,
    spec: SimSpec,
    boot_time: Duration,
    generation: u64,
}

/// What a node's serial console prints after a power-on.
async fn console_writer(lab: Arc<SimLab>, boot: ConsoleBoot) {
    let ConsoleBoot {
        node: node_name,
        path,
        spec,
        boot_time,
        generation,
    } = boot;
    let short = node_name.split('.').next().unwrap_or(&node_name).to_owned();
    append(
        &path,
        &format!(
            "<ConMan> Console [{short}] log opened at {} UTC.\r\n",
            timestamp()
        ),
    );
    let step = boot_time / BOOT_LINES.len() as u32;
    let started = Instant::now();
    // A hung node prints until well after any provision would give up.
    let quit_after = lab.timing.wait_node_ready_timeout * 2 + Duration::from_secs(5);
    for (i, line) in BOOT_LINES.iter().enumerate() {
        tokio::time::sleep(step).await;
        if !lab.current(&node_name, generation) {
            return;
        }
        if spec.console_stall && i >= 3 {
            return; // stuck mid-boot, silent
        }
        if spec.never_ready && i >= 5 {
            break;
        }
        append_line(&path, line);
    }
    if spec.never_ready {
        let every = (lab.timing.conman_line_max_age / 3).max(Duration::from_millis(20));
        let mut n = 0u64;
        while started.elapsed() < quit_after {
            tokio::time::sleep(every).await;
            if !lab.current(&node_name, generation) {
                return;
            }
            n += 1;
            append_line(
                &path,
                &format!(
                    "dracut-initqueue[417]: Warning: dracut-initqueue timeout - starting timeout scripts ({n})"
                ),
            );
        }
    }
}

fn bmc_failure(node: &Node) -> DriverError {
    DriverError::new(
        "bmc",
        node,
        format!(
            "ipmitool call failed with status[1], stdout [], stderr[Error: Unable to establish IPMI v2 / RMCP+ session to {} (simulated)]",
            node.bmc_ip
        ),
    )
    .with_kind("unreachable")
}

#[async_trait]
impl BmcDriver for SimLab {
    async fn power(&self, node: &Node, action: PowerAction) -> Result<(), DriverError> {
        if Self::spec(node).bmc_error {
            return Err(bmc_failure(node));
        }
        let on = self.is_on(&node.node).unwrap_or(false);
        match action {
            PowerAction::On => self.set_power(node, true),
            PowerAction::Off | PowerAction::SoftOff => self.set_power(node, false),
            PowerAction::Cycle if !on => {
                tracing::info!("Chassis is off: power on instead of power cycle");
                self.set_power(node, true);
            }
            PowerAction::Reset if !on => {
                return Err(DriverError::new(
                    "bmc",
                    node,
                    "Set Chassis Power Control to Reset failed: Command not supported in present state",
                ));
            }
            PowerAction::Cycle | PowerAction::Reset => self.set_power(node, true),
        }
        Ok(())
    }

    async fn set_boot_device(
        &self,
        node: &Node,
        _: BootDevice,
        _: bool,
    ) -> Result<(), DriverError> {
        if Self::spec(node).bmc_error {
            return Err(bmc_failure(node));
        }
        Ok(())
    }
}

#[async_trait]
impl Readiness for SimLab {
    async fn is_ready(&self, node: &Node) -> Result<bool, DriverError> {
        let spec = Self::spec(node);
        if spec.never_ready || spec.console_stall {
            return Ok(false);
        }
        let boot = self.boot_time(node);
        Ok(self
            .lock()
            .get(&node.node)
            .is_some_and(|n| n.on && n.since.elapsed() >= boot))
    }
}

#[async_trait]
impl OsVerifier for SimLab {
    async fn running_os(&self, node: &Node) -> Result<OsIdentity, DriverError> {
        match self.lock().get(&node.node) {
            Some(n) if n.on => Ok(n.disk.clone().unwrap_or_else(|| OsIdentity {
                id: Self::DISK_OS.to_owned(),
                version_id: "1".to_owned(),
                image_id: String::new(),
            })),
            _ => Err(DriverError::new(
                "os verifier",
                node,
                "no SSH login: the node is off (simulated)",
            )),
        }
    }
}

#[async_trait]
impl Configurator for SimLab {
    async fn apply_state(&self, node: &Node, state: &str) -> Result<(), DriverError> {
        tokio::time::sleep(self.mode.salt_time()).await;
        if Self::spec(node).salt_error {
            return Err(DriverError::new(
                "configurator",
                node,
                format!(
                    "salt-ssh state.apply {state} returned 1: Rendering SLS '{state}' failed (simulated)"
                ),
            ));
        }
        Ok(())
    }
}
