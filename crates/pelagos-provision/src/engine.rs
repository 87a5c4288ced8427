//! The task engine: runs provisions as tokio tasks, one per node at a time,
//! keeps their state (in memory for reads, in a [`TaskStore`] for restarts)
//! and their logs.

use crate::boot_records::RecordChange;
use crate::drivers::{Drivers, LabNode};
use crate::machine::{DISMISSED, ProvisionError, Run};
use crate::store::{StoreError, TaskEnd, TaskResult, TaskRow, TaskStore};
use crate::tasklog::TaskLogs;
use futures::FutureExt;
use pelagos_config::{LabConfig, Node, Problem, SlsError, Timing};
use pelagos_pxe::{PxeInfo, ResolvedOs};
use serde_json::json;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

/// Result message of a task that was running when the server stopped.
pub const INTERRUPTED: &str = "interrupted by server restart";

/// Why a request to the engine was refused. Each maps to an HTTP status
/// ([`EngineError::http_status`]); messages keep the original's phrases.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No node of the lab served now has this name (404).
    #[error("No node [{0}] found")]
    NodeNotFound(String),
    /// The request's OS is empty (404); the field holds it as given (empty),
    /// so the message reads as the original's.
    #[error("No OS string [{0}] found")]
    EmptyOs(String),
    /// The OS is neither `local`, `maintenance_image` nor an image dir (or a
    /// symlink to one) in the TFTP root (404).
    #[error("No os image [{os}] found in dir [{dir}]")]
    OsNotFound {
        /// The OS name as requested.
        os: String,
        /// The TFTP root that was searched ([`crate::BootRecordWriter::root`]).
        dir: String,
    },
    /// The OS names an image dir that lacks its kernel, initrd or disk image
    /// (production); the message names the dir and what is missing.
    #[error("{0}")]
    OsNotInstallable(String),
    /// No task has this id: never one, or expired from the store (404).
    #[error("Task \"{0}\" is not found")]
    TaskNotFound(String),
    /// A dismissal named a node (the field) that has no provision running
    /// (404).
    #[error("Caught NoTaskException Cannot find task for \"{0}\" node")]
    NothingRunning(String),
    /// Writing or removing the node's boot record failed (500).
    #[error("boot record of node [{node}]: {message}")]
    BootRecord {
        /// The node's name.
        node: String,
        /// The boot record driver's message ([`crate::DriverError::message`]).
        message: String,
    },
    /// A request's extra salt states break the state-name rule
    /// ([`pelagos_config::check_sls_name`]); `field` is the form field
    /// the client used (`extra_sls` or `add_sls`).
    #[error("{}", .error.in_place(&format!("form field `{}`", .field)))]
    InvalidSls {
        /// `extra_sls` or `add_sls` ([`ProvisionRequest::extra_sls_field`]).
        field: String,
        /// Which state name broke which rule.
        error: SlsError,
    },
    /// The lab config disabled the node: its own problems (node, field,
    /// value) are named; the rest of the lab is served.
    #[error("node [{node}] is disabled by the lab config: {}", render_problems(.problems))]
    Disabled {
        /// The node's name.
        node: String,
        /// The node's own problems in the lab config (also
        /// [`EngineError::problems`]).
        problems: Vec<Problem>,
    },
    /// The node has no `mac` in the lab config, so no boot record can name it.
    #[error("node [{0}] has no `mac`: it cannot have a boot record")]
    NoMac(String),
    /// The node's boot record belongs to a running provision.
    #[error(
        "node [{node}] is being provisioned by task {task}: its boot record cannot change until the task ends or is dismissed"
    )]
    Busy {
        /// The node's name.
        node: String,
        /// The id of the running provision task.
        task: String,
    },
    /// The task store failed: loading and recovering the tasks at
    /// [`Engine::start`], recording a new task, or reading a finished task's
    /// log (500).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The detached engine task behind a request (a provision start, a
    /// dismissal, a boot-record change) panicked or was cancelled; the text
    /// names which and why (500).
    #[error("internal error: {0}")]
    Internal(String),
    /// [`Engine::shutdown`] has begun: no provision starts any more (503).
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl EngineError {
    /// The lab config's problems behind the refusal (a disabled node's);
    /// empty for every other refusal.
    pub fn problems(&self) -> &[Problem] {
        match self {
            EngineError::Disabled { problems, .. } => problems,
            _ => &[],
        }
    }

    /// The HTTP status the REST API answers the refusal with: 404 for an
    /// unknown node, OS or task and for a dismissal with nothing running,
    /// 400 for invalid extra salt states, 409 for a node that is disabled,
    /// has no `mac` or is busy, 500 for boot record, store and internal
    /// failures, 503 while shutting down.
    pub fn http_status(&self) -> u16 {
        match self {
            EngineError::NodeNotFound(_)
            | EngineError::EmptyOs(_)
            | EngineError::OsNotFound { .. }
            | EngineError::OsNotInstallable(_)
            | EngineError::TaskNotFound(_)
            | EngineError::NothingRunning(_) => 404,
            EngineError::InvalidSls { .. } => 400,
            EngineError::NoMac(_) | EngineError::Busy { .. } | EngineError::Disabled { .. } => 409,
            EngineError::BootRecord { .. } | EngineError::Store(_) | EngineError::Internal(_) => {
                500
            }
            EngineError::ShuttingDown => 503,
        }
    }
}

fn render_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| {
            let mut s = format!("field `{}`", p.field);
            if !p.value.is_empty() {
                s.push_str(&format!(" = {:?}", p.value));
            }
            s.push_str(&format!(": {}", p.message));
            s
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A provision request as the REST API receives it.
#[derive(Debug, Clone, Default)]
pub struct ProvisionRequest {
    /// The node's name as the lab config spells it (its `node` field).
    pub node: String,
    /// The OS to install: `local`, `maintenance_image`, or an image dir (or
    /// symlink to one) in the TFTP root, resolved by [`Engine::resolve_os`];
    /// empty is refused ([`EngineError::EmptyOs`]).
    pub os: String,
    /// Space-separated salt states added to the lab's `sls_list`; each must
    /// pass [`pelagos_config::check_sls_name`], at most
    /// [`pelagos_config::SLS_STATES_MAX`] of them.
    pub extra_sls: String,
    /// The form field `extra_sls` came from (`extra_sls` or its alias
    /// `add_sls`), named in a refusal; empty reads as `extra_sls`.
    pub extra_sls_field: String,
}

/// A task as `/tasks/status/<id>` and `/tasks/statuses` show it.
pub type TaskInfo = TaskRow;

struct Running {
    id: String,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Running>>>;

/// What the engine serves from one lab config: replaced whole by
/// [`Engine::reload`]. A provision takes its node ([`LabNode`]: this lab's
/// `Arc` and an index), drivers and timing from the state current when it
/// starts and keeps them to its end.
struct LabState {
    lab: Arc<LabConfig>,
    node_index: HashMap<String, usize>,
    drivers: Drivers,
    timing: Timing,
}

impl LabState {
    fn new(lab: Arc<LabConfig>, drivers: Drivers, timing: Timing) -> Arc<Self> {
        let node_index = lab
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.node.is_empty())
            .map(|(i, n)| (n.node.clone(), i))
            .collect();
        Arc::new(Self {
            lab,
            node_index,
            drivers,
            timing,
        })
    }

    fn lab_node(&self, name: &str) -> Option<LabNode> {
        let &i = self.node_index.get(name)?;
        LabNode::new(self.lab.clone(), i)
    }
}

/// What [`Engine::reload`] changed, by node name in lab order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// In the new lab only.
    pub added: Vec<String>,
    /// In the old lab only.
    pub removed: Vec<String>,
    /// In both, with another record or other problems.
    pub changed: Vec<String>,
    /// Nodes of the new lab disabled by their own problems.
    pub disabled: Vec<String>,
    /// Provisions running on: `(task id, node)`; their node is as it was
    /// when they started.
    pub running: Vec<(String, String)>,
}

/// See the module docs. Create with [`Engine::start`].
pub struct Engine {
    state: RwLock<Arc<LabState>>,
    store: Arc<dyn TaskStore>,
    logs: Arc<TaskLogs>,
    tasks: Mutex<HashMap<String, TaskRow>>,
    /// Per node: the running task, behind an async lock held across
    /// dismiss + start so two provisions of one node never overlap.
    slots: Mutex<HashMap<String, Slot>>,
    /// Bumped after every change of a task (see [`Engine::tasks_version`]).
    tasks_version: AtomicU64,
    /// Bumped after every change of a boot record (see
    /// [`Engine::records_version`]).
    records_version: AtomicU64,
    /// Set by [`Engine::shutdown`]: no new provisions.
    closing: std::sync::atomic::AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Engine {
    /// Load the task state from `store`, turn tasks that were running when
    /// the server stopped into failures (and reset their nodes' boot records
    /// to `local`), drop expired ones, and start the expiry loop.
    ///
    /// `timing` is usually `lab.timing` (the simulated lab scales it down).
    /// `logs` must be the [`TaskLogs`] whose layer is installed in the
    /// process's tracing subscriber.
    pub async fn start(
        lab: Arc<LabConfig>,
        timing: Timing,
        drivers: Drivers,
        store: Arc<dyn TaskStore>,
        logs: Arc<TaskLogs>,
    ) -> Result<Arc<Self>, EngineError> {
        let engine = Arc::new(Self {
            state: RwLock::new(LabState::new(lab, drivers, timing)),
            store,
            logs,
            tasks: Mutex::new(HashMap::new()),
            slots: Mutex::new(HashMap::new()),
            tasks_version: AtomicU64::new(0),
            records_version: AtomicU64::new(0),
            closing: std::sync::atomic::AtomicBool::new(false),
        });
        engine.recover().await?;
        engine.expire_once().await;
        let weak = Arc::downgrade(&engine);
        let every = (engine.timing().data_life_time / 10)
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        tokio::spawn(expiry_loop(weak, every));
        Ok(engine)
    }

    async fn recover(&self) -> Result<(), EngineError> {
        let rows = self.store.load().await?;
        let mut interrupted = Vec::new();
        let mut tasks = HashMap::with_capacity(rows.len());
        for mut row in rows {
            if interrupt(&mut row) {
                interrupted.push(row.clone());
            }
            tasks.insert(row.id.clone(), row);
        }
        *lock(&self.tasks) = tasks;
        for row in interrupted {
            warn!(task_id = %row.id, node = %row.node, "task {INTERRUPTED}");
            let log = self.store.log(&row.id).await?.unwrap_or_default();
            self.store_interrupted(&row, log).await?;
        }
        self.changed();
        Ok(())
    }

    /// The rest of [`interrupt`]: store the interrupted task with its log
    /// so far and [`INTERRUPTED`] at its end, then reset its node's boot
    /// record to `local`. For [`Engine::recover`] and [`Engine::shutdown`].
    async fn store_interrupted(&self, row: &TaskRow, mut log: String) -> Result<(), StoreError> {
        log.push_str(INTERRUPTED);
        log.push('\n');
        let stored = self.store.finish(row, &log).await;
        if let Some(node) = self.lab_node(&row.node) {
            let drivers = self.state().drivers.clone();
            reset_to_local(&drivers, &node).await;
        }
        stored
    }

    async fn expire_once(&self) {
        let cutoff = now_secs() - self.timing().data_life_time.as_secs() as i64;
        match self.store.expire(cutoff).await {
            Ok(ids) if !ids.is_empty() => {
                let mut tasks = lock(&self.tasks);
                for id in &ids {
                    tasks.remove(id);
                }
                drop(tasks);
                info!("expired {} finished task(s)", ids.len());
                self.changed();
            }
            Ok(_) => {}
            Err(e) => error!("cannot expire tasks: {e}"),
        }
    }

    fn state(&self) -> Arc<LabState> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The lab served now (a reload replaces it; a provision keeps the
    /// one it started with).
    pub fn lab(&self) -> Arc<LabConfig> {
        self.state().lab.clone()
    }

    /// The timing new provisions run with.
    pub fn timing(&self) -> Timing {
        self.state().timing.clone()
    }

    /// The drivers new provisions and the boot-record routes use.
    pub fn drivers(&self) -> Drivers {
        self.state().drivers.clone()
    }

    /// The lab's node called `name` (a disabled one too).
    pub fn node(&self, name: &str) -> Option<LabNode> {
        self.lab_node(name)
    }

    /// The lab's node called `name`, as work on the blocking pool carries it.
    fn lab_node(&self, name: &str) -> Option<LabNode> {
        self.state().lab_node(name)
    }

    /// The lab's node called `name`, or [`EngineError::NodeNotFound`].
    pub fn known_node(&self, name: &str) -> Result<LabNode, EngineError> {
        self.node(name)
            .ok_or_else(|| EngineError::NodeNotFound(name.to_owned()))
    }

    /// Serve `lab` from now on, with the drivers and timing built for it:
    /// new requests see the new lab at once. Provisions already running go
    /// on with the node, drivers and timing they started with and finish
    /// normally; one whose node the new lab no longer has, or has changed,
    /// is told so in its task's log (and the server's). The views of the
    /// nodes (`records_version`) move. `lab` should have its bad nodes
    /// disabled ([`LabConfig::disable_bad_nodes`]).
    pub fn reload(&self, lab: Arc<LabConfig>, drivers: Drivers, timing: Timing) -> ReloadSummary {
        let new = LabState::new(lab, drivers, timing);
        let old = {
            let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *state, new.clone())
        };
        self.records_changed();
        let mut summary = ReloadSummary::default();
        for n in &new.lab.nodes {
            match old.node_index.get(&n.node).map(|&i| &old.lab.nodes[i]) {
                _ if n.node.is_empty() => {}
                None => summary.added.push(n.node.clone()),
                Some(was) if was.raw != n.raw || was.problems != n.problems => {
                    summary.changed.push(n.node.clone())
                }
                Some(_) => {}
            }
            if n.is_disabled() {
                summary.disabled.push(n.node.clone());
            }
        }
        summary.removed = old
            .lab
            .nodes
            .iter()
            .filter(|n| !n.node.is_empty() && !new.node_index.contains_key(&n.node))
            .map(|n| n.node.clone())
            .collect();
        let running: Vec<(String, String)> = lock(&self.tasks)
            .values()
            .filter(|t| t.end.is_none())
            .map(|t| (t.id.clone(), t.node.clone()))
            .collect();
        for (id, node) in &running {
            let span = info_span!("provision", task_id = %id, node = %node);
            let _in_task = span.enter();
            if summary.removed.contains(node) {
                warn!(
                    "Node [{node}] was removed from the lab config by a reload; this provision \
                     goes on with the node as it was when it started"
                );
            } else if summary.changed.contains(node) {
                info!(
                    "Node [{node}] was changed in the lab config by a reload; this provision \
                     goes on with the node as it was when it started"
                );
            }
        }
        summary.running = running;
        summary
    }

    /// `local`, `maintenance_image`, or the image version an OS name points
    /// at: the one resolution a request's OS goes through.
    pub fn resolve_os(&self, os: &str) -> Result<ResolvedOs, EngineError> {
        if os.is_empty() {
            return Err(EngineError::EmptyOs(os.to_owned()));
        }
        let records = self.state().drivers.boot_records.clone();
        records.resolve_os(os).map_err(|e| {
            info!("Failed to find os {os}: {}", e.message);
            if e.cannot_install {
                return EngineError::OsNotInstallable(e.message);
            }
            EngineError::OsNotFound {
                os: os.to_owned(),
                dir: records.root().display().to_string(),
            }
        })
    }

    /// What the node's boot record boots and where it is, as the TFTP root
    /// shows it now.
    pub fn pxe_of(&self, node: &Node) -> PxeInfo {
        self.pxe_with(&self.state().drivers, node)
    }

    /// [`Engine::pxe_of`] of every node of the lab served now, in lab
    /// order, with that lab (one state: a reload in between cannot mix
    /// two labs).
    pub fn pxe_of_all(&self) -> (Arc<LabConfig>, Vec<PxeInfo>) {
        let state = self.state();
        let pxe = state
            .lab
            .nodes
            .iter()
            .map(|n| self.pxe_with(&state.drivers, n))
            .collect();
        (state.lab.clone(), pxe)
    }

    fn pxe_with(&self, drivers: &Drivers, node: &Node) -> PxeInfo {
        let records = &drivers.boot_records;
        PxeInfo {
            os: records.configured_os(node),
            pxe_file: records.record_path(node).display().to_string(),
        }
    }

    /// Grows after every change of a boot record made through the engine
    /// (the boot-record routes, provisions, resets to `local`). A view of
    /// the records built after reading version `v` is current while the
    /// version is still `v`: read it before the records, never after.
    pub fn records_version(&self) -> u64 {
        self.records_version.load(Ordering::SeqCst)
    }

    fn records_changed(&self) {
        self.records_version.fetch_add(1, Ordering::SeqCst);
    }

    /// A node that can have a boot record (it is not disabled and has a
    /// `mac`).
    fn recordable_node(&self, name: &str) -> Result<LabNode, EngineError> {
        recordable_in(&self.state(), name)
    }

    /// `GET /node/bootrecord/<name>/<os>`: the node and the resolved OS.
    /// Refused (409) while a provision of the node runs.
    pub async fn set_boot_record(
        self: &Arc<Self>,
        name: &str,
        os: &str,
    ) -> Result<(LabNode, ResolvedOs), EngineError> {
        let node = self.recordable_node(name)?;
        let resolved = self.resolve_os(os)?;
        self.edit_idle_record(&node, RecordChange::Write(resolved.clone()))
            .await?;
        info!("Set boot record for node [{name}] with OS [{resolved}]");
        Ok((node, resolved))
    }

    /// `GET /node/rmbootrecord/<name>`: the node. Refused (409) while a
    /// provision of the node runs.
    pub async fn remove_boot_record(self: &Arc<Self>, name: &str) -> Result<LabNode, EngineError> {
        let node = self.recordable_node(name)?;
        self.edit_idle_record(&node, RecordChange::Remove).await?;
        info!("Removed boot record of node [{name}]");
        Ok(node)
    }

    /// Apply `change` to the node's boot record unless a provision of the
    /// node is running (then [`EngineError::Busy`]). The node's slot lock is
    /// held across the check and the write, so a provision cannot start in
    /// between; the whole is detached, so a client hanging up cannot release
    /// the lock while the write goes on.
    async fn edit_idle_record(
        self: &Arc<Self>,
        node: &LabNode,
        change: RecordChange,
    ) -> Result<(), EngineError> {
        let me = self.clone();
        let node = node.clone();
        tokio::spawn(async move {
            let name = &node.node;
            let slot = me.slot(name);
            let running = slot.lock().await;
            if let Some(r) = running.as_ref()
                && !r.handle.is_finished()
            {
                return Err(EngineError::Busy {
                    node: name.clone(),
                    task: r.id.clone(),
                });
            }
            let drivers = me.state().drivers.clone();
            let res = drivers.change_record(&node, change).await;
            me.records_changed();
            drop(running);
            res.map_err(|e| EngineError::BootRecord {
                node: name.clone(),
                message: e.message,
            })
        })
        .await
        .map_err(|e| EngineError::Internal(format!("boot record change failed: {e}")))?
    }

    fn slot(&self, node: &str) -> Slot {
        lock(&self.slots)
            .entry(node.to_owned())
            .or_default()
            .clone()
    }

    /// Validate, dismiss the node's running provision (waiting until it has
    /// stopped), then start a new one; its task id. Unknown node or OS, a
    /// node without `mac`, and extra salt states that are not state names
    /// are refused before any task exists.
    pub async fn provision(self: &Arc<Self>, req: ProvisionRequest) -> Result<String, EngineError> {
        self.recordable_node(&req.node)?;
        let resolved = self.resolve_os(&req.os)?;
        pelagos_config::check_sls_names(req.extra_sls.split_whitespace()).map_err(|error| {
            EngineError::InvalidSls {
                field: match req.extra_sls_field.as_str() {
                    "" => "extra_sls".to_owned(),
                    f => f.to_owned(),
                },
                error,
            }
        })?;
        // Detached, so a client hanging up cannot leave a half-started task.
        let me = self.clone();
        tokio::spawn(async move { me.start_task(req, resolved).await })
            .await
            .map_err(|e| EngineError::Internal(format!("task start failed: {e}")))?
    }

    async fn start_task(
        self: Arc<Self>,
        req: ProvisionRequest,
        resolved: ResolvedOs,
    ) -> Result<String, EngineError> {
        self.recordable_node(&req.node)?;
        let slot = self.slot(&req.node);
        let mut running = slot.lock().await;
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(EngineError::ShuttingDown);
        }
        if let Some(r) = running.take() {
            stop(r).await;
        }
        // The node, drivers and timing of the lab served now (a reload may
        // have landed while the node's last provision stopped), kept by the
        // task to its end.
        let state = self.state();
        let node = recordable_in(&state, &req.node)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let row = TaskRow::running(id.clone(), node.node.clone(), req.os.clone(), now_secs());
        self.store.insert(&row).await?;
        self.logs.open(&id);
        lock(&self.tasks).insert(id.clone(), row);
        self.changed();
        let cancel = CancellationToken::new();
        let states = crate::salt::states_to_apply(&node.lab().sls_list, &req.extra_sls);
        let span = info_span!("provision", task_id = %id, node = %node.node, os = %resolved);
        let handle = tokio::spawn(
            self.clone()
                .run_task(TaskStart {
                    id: id.clone(),
                    node,
                    drivers: state.drivers.clone(),
                    timing: state.timing.clone(),
                    os: resolved,
                    states,
                    cancel: cancel.clone(),
                })
                .instrument(span),
        );
        *running = Some(Running {
            id: id.clone(),
            cancel,
            handle,
        });
        Ok(id)
    }

    /// Stop the node's running provision and wait until it has stopped; its
    /// task id.
    pub async fn dismiss(self: &Arc<Self>, node: &str) -> Result<String, EngineError> {
        let me = self.clone();
        let node = node.to_owned();
        tokio::spawn(async move { me.dismiss_inner(&node).await })
            .await
            .map_err(|e| EngineError::Internal(format!("dismiss failed: {e}")))?
    }

    async fn dismiss_inner(&self, node: &str) -> Result<String, EngineError> {
        info!("Dismissing provision task for node [{node}]");
        let slot = match lock(&self.slots).get(node) {
            Some(s) => s.clone(),
            None => return Err(EngineError::NothingRunning(node.to_owned())),
        };
        let mut running = slot.lock().await;
        match running.take() {
            Some(r) if !r.handle.is_finished() => {
                let id = r.id.clone();
                stop(r).await;
                Ok(id)
            }
            _ => Err(EngineError::NothingRunning(node.to_owned())),
        }
    }

    async fn run_task(self: Arc<Self>, start: TaskStart) {
        let TaskStart {
            id,
            node,
            drivers,
            timing,
            os,
            states,
            cancel,
        } = start;
        let run = Run {
            drivers: &drivers,
            timing: &timing,
            node: &node,
            cancel: &cancel,
            states,
            records_changed: &|| self.records_changed(),
        };
        crate::metrics::provision_started();
        let outcome = AssertUnwindSafe(run.provision(&os)).catch_unwind().await;
        crate::metrics::provision_finished(&outcome, self.closing.load(Ordering::SeqCst));
        let succeeded = matches!(outcome, Ok(Ok(())));
        let (result, stopped) = match outcome {
            Ok(Ok(())) => (
                TaskResult::new(
                    200,
                    &json!({ "status": "done", "node": node.raw, "os": os.as_str() }),
                ),
                false,
            ),
            Ok(Err(ProvisionError::Dismissed)) => {
                if !self.closing.load(std::sync::atomic::Ordering::SeqCst) {
                    info!("{DISMISSED}");
                }
                (TaskResult::new(410, &json!({ "error": DISMISSED })), true)
            }
            Ok(Err(e)) => {
                info!("{e}");
                (
                    TaskResult::new(e.http_status(), &json!({ "error": e.to_string() })),
                    false,
                )
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_owned());
                error!("Oops! {what} occurred");
                (
                    TaskResult::new(500, &json!({ "error": format!("Oops! {what} occurred.") })),
                    false,
                )
            }
        };
        if !succeeded {
            // A failed or dismissed provision must not leave the node to
            // PXE-boot the install again on its next reboot.
            reset_to_local(&drivers, &node).await;
        }
        self.records_changed();
        self.finish(&id, result, stopped).await;
    }

    async fn finish(&self, id: &str, result: TaskResult, stopped: bool) {
        let row = {
            let mut tasks = lock(&self.tasks);
            let Some(row) = tasks.get_mut(id) else { return };
            if row.end.is_some() {
                return; // already recorded as interrupted by shutdown
            }
            row.end = Some(TaskEnd {
                time: now_secs(),
                stopped,
                result,
            });
            row.clone()
        };
        let log = self.logs.close(id).unwrap_or_default();
        if let Err(e) = self.store.finish(&row, &log).await {
            error!(task = %id, "cannot store task result: {e}");
        }
        self.changed();
    }

    fn changed(&self) {
        self.tasks_version.fetch_add(1, Ordering::SeqCst);
    }

    /// Stop for a server shutdown: refuse new provisions, record every
    /// running task as failed "interrupted by server restart" (500) with its
    /// log so far, stop it, and leave its node's boot record at `local`. The
    /// number of tasks interrupted.
    pub async fn shutdown(&self) -> usize {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let interrupted: Vec<TaskRow> = {
            let mut tasks = lock(&self.tasks);
            tasks
                .values_mut()
                .filter_map(|t| interrupt(t).then(|| t.clone()))
                .collect()
        };
        self.changed();
        let slots: Vec<Slot> = lock(&self.slots).values().cloned().collect();
        for slot in slots {
            if let Some(r) = slot.lock().await.take() {
                r.cancel.cancel();
                // A task stops at its next await; do not hang shutdown on one
                // stuck in a blocking write.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), r.handle).await;
            }
        }
        for row in &interrupted {
            let log = self.logs.close(&row.id).unwrap_or_default();
            if let Err(e) = self.store_interrupted(row, log).await {
                error!(task = %row.id, "cannot store task result: {e}");
            }
        }
        self.records_changed();
        if !interrupted.is_empty() {
            warn!("{} running task(s) {INTERRUPTED}", interrupted.len());
        }
        interrupted.len()
    }

    /// A task's state; `None` for an unknown (or expired) id.
    pub fn status(&self, id: &str) -> Option<TaskInfo> {
        lock(&self.tasks).get(id).cloned()
    }

    /// Grows after every change of a task (started, finished, recovered,
    /// interrupted, expired). A view of the tasks built after reading
    /// version `v` is current while the version is still `v`: read it
    /// before the tasks, never after.
    pub fn tasks_version(&self) -> u64 {
        self.tasks_version.load(Ordering::SeqCst)
    }

    /// `f` over every task known, oldest first (start time, then id), under
    /// the task lock: keep it short.
    pub fn with_tasks<R>(&self, f: impl FnOnce(&[&TaskRow]) -> R) -> R {
        let tasks = lock(&self.tasks);
        let mut rows: Vec<&TaskRow> = tasks.values().collect();
        rows.sort_by(|a, b| (a.start_time, &a.id).cmp(&(b.start_time, &b.id)));
        f(&rows)
    }

    /// Number of tasks known (running and finished).
    pub fn task_count(&self) -> usize {
        lock(&self.tasks).len()
    }

    /// A task's log: live while it runs, from the store once finished.
    pub async fn log(&self, id: &str) -> Result<String, EngineError> {
        let finished = match lock(&self.tasks).get(id) {
            None => return Err(EngineError::TaskNotFound(id.to_owned())),
            Some(t) => t.end.is_some(),
        };
        if !finished && let Some(text) = self.logs.get(id) {
            return Ok(text);
        }
        Ok(self.store.log(id).await?.unwrap_or_default())
    }
}

/// The node of `state` called `name` if it can have a boot record: it is
/// not disabled and has a `mac`.
fn recordable_in(state: &LabState, name: &str) -> Result<LabNode, EngineError> {
    let node = state
        .lab_node(name)
        .ok_or_else(|| EngineError::NodeNotFound(name.to_owned()))?;
    if node.is_disabled() {
        return Err(EngineError::Disabled {
            node: node.node.clone(),
            problems: node.problems.clone(),
        });
    }
    if node.mac.is_none() {
        return Err(EngineError::NoMac(node.node.clone()));
    }
    Ok(node)
}

/// What a provision task runs with, taken from one lab state when it starts.
struct TaskStart {
    id: String,
    node: LabNode,
    drivers: Drivers,
    timing: Timing,
    os: ResolvedOs,
    states: Vec<String>,
    cancel: CancellationToken,
}

/// Point the node's boot record back to `local` after a provision that
/// did not finish, logging the outcome in the task's log.
async fn reset_to_local(drivers: &Drivers, node: &LabNode) {
    match drivers.write_record(node, &ResolvedOs::LOCAL).await {
        Ok(()) => info!("Boot record of node [{}] set to [local]", node.node),
        Err(e) => error!(
            "cannot reset boot record of node [{}] to [local]: {e}",
            node.node
        ),
    }
}

/// Cancel a running provision and wait until its task has ended.
async fn stop(r: Running) {
    if r.handle.is_finished() {
        return;
    }
    info!(task = %r.id, "Dismiss running provision task");
    r.cancel.cancel();
    if let Err(e) = r.handle.await {
        error!(task = %r.id, "provision task ended abnormally: {e}");
    }
}

/// Mark a running task as failed, [`INTERRUPTED`] (500), now: it was
/// running when the server stopped. `false` (and no change) for a task
/// that had ended. The first half of interrupting a task; the second is
/// [`Engine::store_interrupted`].
fn interrupt(row: &mut TaskRow) -> bool {
    if row.end.is_some() {
        return false;
    }
    row.end = Some(TaskEnd {
        time: now_secs(),
        stopped: false,
        result: TaskResult::new(500, &json!({ "error": INTERRUPTED })),
    });
    true
}

async fn expiry_loop(engine: Weak<Engine>, every: std::time::Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(e) = engine.upgrade() else { return };
        e.expire_once().await;
    }
}
