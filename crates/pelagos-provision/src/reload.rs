//! Reloading the lab config while the server runs (SIGHUP, `POST
//! /api/v1/reload`): [`Reloader`] reads and checks the whole file first and
//! swaps the engine's lab only when it loads ([`Engine::reload`]);
//! [`SwapRecords`] is the boot-record writer whose lab settings (PXE
//! server, kernel options, maintenance image) follow a reload while the
//! drivers that hold it stay.

use crate::drivers::{BootRecordWriter, DriverError, Drivers, OsIdentity, OsNotFound};
use crate::engine::{Engine, ReloadSummary};
use pelagos_config::{ConfigError, LabConfig, Node, Problem, Timing};
use pelagos_pxe::ResolvedOs;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use tracing::{error, info, warn};

/// Builds what a lab is served with: its drivers and timing.
pub type BuildDrivers = dyn Fn(&Arc<LabConfig>) -> (Drivers, Timing) + Send + Sync;

/// Why a reload was refused; the old lab is still served.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}")]
pub struct ReloadError {
    /// One line: the file and why it does not load.
    pub error: String,
    /// Every problem found, each naming node, field and value (lab-wide
    /// ones refuse the file; those of single nodes are listed too).
    pub problems: Vec<Problem>,
}

/// Reloads one lab config file into one engine. Reloads run one at a time.
pub struct Reloader {
    path: PathBuf,
    engine: Arc<Engine>,
    build: Box<BuildDrivers>,
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// `build` makes the drivers and timing of a newly loaded lab (the
    /// server's `--simulation` or production choice).
    pub fn new(path: PathBuf, engine: Arc<Engine>, build: Box<BuildDrivers>) -> Self {
        Self {
            path,
            engine,
            build,
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    /// Read and check the file ([`LabConfig::load_serving`]); when it loads,
    /// serve it (nodes with problems of their own disabled), else keep the
    /// lab served now. Either way the outcome is logged, each problem once.
    pub async fn reload(&self) -> Result<ReloadSummary, ReloadError> {
        let _one = self.one_at_a_time.lock().await;
        let path = self.path.clone();
        let loaded = tokio::task::spawn_blocking(move || LabConfig::load_serving(&path))
            .await
            .map_err(|e| ReloadError {
                error: format!("lab config reload failed: {e}"),
                problems: Vec::new(),
            })?;
        let lab = match loaded {
            Ok(lab) => Arc::new(lab),
            Err(e) => {
                let refused = refusal(&e);
                error!(
                    config = %self.path.display(),
                    "{}; still serving the lab loaded before", refused.error
                );
                for p in &refused.problems {
                    error!(config = %self.path.display(), "  {p}");
                }
                return Err(refused);
            }
        };
        let (drivers, timing) = (self.build)(&lab);
        let summary = self.engine.reload(lab.clone(), drivers, timing);
        for n in lab.disabled_nodes() {
            if summary.added.contains(&n.node) || summary.changed.contains(&n.node) {
                log_disabled(n);
            }
        }
        info!(
            config = %self.path.display(),
            nodes = lab.nodes.len(),
            added = ?summary.added,
            removed = ?summary.removed,
            changed = ?summary.changed,
            disabled = summary.disabled.len(),
            running = summary.running.len(),
            "lab config reloaded"
        );
        Ok(summary)
    }
}

/// Log each problem of a disabled node, once, as a warning.
pub fn log_disabled(node: &Node) {
    for p in &node.problems {
        warn!("node disabled by the lab config: {p}");
    }
}

fn refusal(e: &ConfigError) -> ReloadError {
    let error = match e {
        ConfigError::Invalid { origin, problems } => format!(
            "lab config {origin} not loaded: {} problem(s), {} of them lab-wide",
            problems.len(),
            problems
                .iter()
                .filter(|p| p.scope == pelagos_config::Scope::Lab)
                .count()
        ),
        other => format!("lab config not loaded: {other}"),
    };
    ReloadError {
        error,
        problems: e.problems(),
    }
}

/// A [`BootRecordWriter`] whose writer can be replaced: the drivers built
/// once around it (the simulated lab's records, which its nodes boot from)
/// write with the lab settings of the last reload.
pub struct SwapRecords(RwLock<Arc<dyn BootRecordWriter>>);

impl SwapRecords {
    /// Writing with `inner` until the next [`SwapRecords::swap`]; in an
    /// `Arc` so the drivers and the reloader can share it.
    pub fn new(inner: Arc<dyn BootRecordWriter>) -> Arc<Self> {
        Arc::new(Self(RwLock::new(inner)))
    }

    /// Write with `inner` from now on.
    pub fn swap(&self, inner: Arc<dyn BootRecordWriter>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = inner;
    }

    fn get(&self) -> Arc<dyn BootRecordWriter> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl BootRecordWriter for SwapRecords {
    fn root(&self) -> PathBuf {
        self.get().root()
    }
    fn resolve_os(&self, os: &str) -> Result<ResolvedOs, OsNotFound> {
        self.get().resolve_os(os)
    }
    fn write(&self, node: &Node, os: &ResolvedOs) -> Result<(), DriverError> {
        self.get().write(node, os)
    }
    fn remove(&self, node: &Node) -> Result<(), DriverError> {
        self.get().remove(node)
    }
    fn configured_os(&self, node: &Node) -> String {
        self.get().configured_os(node)
    }
    fn record_path(&self, node: &Node) -> PathBuf {
        self.get().record_path(node)
    }
    fn os_identity(&self, os: &ResolvedOs) -> Result<Option<OsIdentity>, String> {
        self.get().os_identity(os)
    }
}
