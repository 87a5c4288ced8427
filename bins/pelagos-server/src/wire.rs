//! The teuthology-compatible wire format: every body the compatible routes
//! answer (docs/REST.md), as `Serialize` types in one place.
//! Field names, their order (serde_json keeps it: `preserve_order`) and
//! spelling are what teuthology's `pelagos` client reads: never change them.
//! `tests/it/wire.rs` holds the byte-for-byte snapshot of every answer.
//!
//! Two bodies are not built here: a finished task's result (`/tasks/status/<id>`
//! and the `rv` of `/tasks/statuses`) is written by the engine when the task
//! ends and kept in the task store as bytes, which are served as stored, so
//! rows written by an earlier server read exactly as they did.
//!
//! `/nodes` and `/tasks/statuses` are served from [`Views`]: bytes built
//! once per change, tagged with the engine version they were built from.

use bytes::Bytes;
use pelagos_config::{Node, Problem};
use pelagos_provision::{Engine, ReloadSummary, TaskRow};
use pelagos_pxe::PxeInfo;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};
use std::sync::{Mutex, MutexGuard};

/// `GET /`, plain text.
pub const INDEX: &str = "Network controller service\n\
                         use http://<host>:<port>/pxe/api/tasks\n\
                         for access to REST functionality\n";

/// `GET /version`.
#[derive(Serialize)]
pub struct Version {
    pub app: &'static str,
    pub version: &'static str,
}

impl Version {
    pub const CURRENT: Version = Version {
        app: "pelagos",
        version: env!("CARGO_PKG_VERSION"),
    };
}

/// Every refusal (4xx, 5xx) but a finished task's.
#[derive(Serialize)]
pub struct Error<'a> {
    pub error: &'a str,
}

/// The `"pxe"` of a node: what its boot record boots and where it is.
#[derive(Serialize)]
pub struct Pxe<'a> {
    pub os: &'a str,
    pub pxe_file: &'a str,
}

impl<'a> From<&'a PxeInfo> for Pxe<'a> {
    fn from(p: &'a PxeInfo) -> Self {
        Pxe {
            os: &p.os,
            pxe_file: &p.pxe_file,
        }
    }
}

/// A node as the lab config wrote it (its record, key for key), and for a
/// node the lab config disabled one key more, last: `"problems": [{"field",
/// "value", "message"}, ...]`. A usable node's answer is its record alone,
/// byte for byte what the original answered.
pub struct NodeRecord<'a>(pub &'a Node);

/// One problem of a disabled node, in its `"problems"`.
#[derive(Serialize)]
pub struct NodeProblem<'a> {
    pub field: &'a str,
    pub value: &'a str,
    pub message: &'a str,
}

impl Serialize for NodeRecord<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let node = self.0;
        if !node.is_disabled() {
            return node.raw.serialize(s);
        }
        let mut map = s.serialize_map(None)?;
        for (k, v) in node.raw.iter().filter(|(k, _)| *k != "problems") {
            map.serialize_entry(k, v)?;
        }
        let problems: Vec<NodeProblem> = node
            .problems
            .iter()
            .map(|p| NodeProblem {
                field: &p.field,
                value: &p.value,
                message: &p.message,
            })
            .collect();
        map.serialize_entry("problems", &problems)?;
        map.end()
    }
}

/// `GET /node/<name>`: the node as the lab config wrote it.
#[derive(Serialize)]
pub struct NodeInfo<'a> {
    pub node: NodeRecord<'a>,
    pub pxe: Pxe<'a>,
}

/// `GET /nodes`: every node in lab order, and their records by name.
#[derive(Serialize)]
pub struct Nodes<'a> {
    pub nodes: Vec<NodeRecord<'a>>,
    pub pxe: PxeByNode<'a>,
}

/// `{"<node>": {"os": ..., "pxe_file": ...}, ...}` in lab order.
pub struct PxeByNode<'a>(pub Vec<(&'a str, Pxe<'a>)>);

impl Serialize for PxeByNode<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, pxe) in &self.0 {
            map.serialize_entry(name, pxe)?;
        }
        map.end()
    }
}

/// `GET /check_image/<os>`: the resolved OS.
#[derive(Serialize)]
pub struct CheckImage<'a> {
    pub os: &'a str,
}

/// `GET /node/bootrecord/<name>/<os>`.
#[derive(Serialize)]
pub struct BootRecordSet<'a> {
    pub status: &'static str,
    pub node: &'a Map<String, Value>,
    pub os: &'a str,
}

impl<'a> BootRecordSet<'a> {
    pub fn new(node: &'a Node, os: &'a str) -> Self {
        Self {
            status: "single boot record set",
            node: &node.raw,
            os,
        }
    }
}

/// `GET /node/rmbootrecord/<name>`.
#[derive(Serialize)]
pub struct BootRecordRemoved<'a> {
    pub status: &'static str,
    pub node: &'a Map<String, Value>,
}

impl<'a> BootRecordRemoved<'a> {
    pub fn new(node: &'a Node) -> Self {
        Self {
            status: "dedicated boot record removed",
            node: &node.raw,
        }
    }
}

/// `POST /node/provision`, 202 (with `Location` and `TaskID` headers).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Accepted<'a> {
    #[serde(rename = "TaskID")]
    pub task_id: &'a str,
    pub location: &'a str,
}

/// What `status` says of a task that runs (body and header).
pub const NOT_COMPLETED: &str = "not completed";

/// `GET /tasks/status/<id>` of a running task, 202 (with the same fields
/// as headers, see `api.rs`).
#[derive(Serialize)]
pub struct Running<'a> {
    pub status: &'static str,
    #[serde(rename = "TaskID")]
    pub task_id: &'a str,
    #[serde(rename = "Node")]
    pub node: &'a str,
    #[serde(rename = "OS")]
    pub os: &'a str,
    #[serde(rename = "StartTime")]
    pub start_time: i64,
    #[serde(rename = "EndTime")]
    pub end_time: i64,
    pub stopped: bool,
}

impl<'a> Running<'a> {
    pub fn new(id: &'a str, t: &'a TaskRow) -> Self {
        Self {
            status: NOT_COMPLETED,
            task_id: id,
            node: &t.node,
            os: &t.os,
            start_time: t.start_time,
            end_time: t.end_time(),
            stopped: t.stopped(),
        }
    }
}

/// `GET /tasks/log/<id>`.
#[derive(Serialize)]
pub struct TaskLog<'a> {
    #[serde(rename = "TaskID")]
    pub task_id: &'a str,
    #[serde(rename = "LogData")]
    pub log_data: &'a str,
}

/// `POST /node/dismiss`, `POST /tasks/node/dismiss`.
#[derive(Serialize)]
pub struct Dismissed<'a> {
    pub stopped_task: &'a str,
    pub node: &'a str,
}

/// One entry of `GET /tasks/statuses` (`"<id>": {...}`) without its `rv`.
#[derive(Serialize)]
pub struct StatusEntry<'a> {
    pub start_time: i64,
    pub end_time: i64,
    pub node: &'a str,
    pub os: &'a str,
    pub stopped: bool,
    /// `done` or `not completed`.
    pub status: &'static str,
}

/// `POST /api/v1/reload`, 200: what the reload changed.
#[derive(Serialize)]
pub struct Reloaded<'a> {
    pub status: &'static str,
    /// Nodes of the lab served now.
    pub nodes: usize,
    pub added: &'a [String],
    pub removed: &'a [String],
    pub changed: &'a [String],
    /// Nodes the new lab config disabled (listed with their problems).
    pub disabled: &'a [String],
    /// Provisions that run on with their node as it was when they started.
    pub running: Vec<RunningTask<'a>>,
}

/// A provision running across a reload.
#[derive(Serialize)]
pub struct RunningTask<'a> {
    pub task_id: &'a str,
    pub node: &'a str,
}

impl<'a> Reloaded<'a> {
    pub fn new(nodes: usize, s: &'a ReloadSummary) -> Self {
        Self {
            status: "reloaded",
            nodes,
            added: &s.added,
            removed: &s.removed,
            changed: &s.changed,
            disabled: &s.disabled,
            running: s
                .running
                .iter()
                .map(|(task_id, node)| RunningTask { task_id, node })
                .collect(),
        }
    }
}

/// A refusal that lists the problems behind it: `POST /api/v1/reload`'s
/// 422 (every problem of the file; `node` null for a top-level key,
/// `scope` `lab` for a problem that refuses the file, `node` for one that
/// would disable its node), a disabled node's 409.
#[derive(Serialize)]
pub struct ErrorWithProblems<'a> {
    pub error: &'a str,
    pub problems: &'a [Problem],
}

/// `GET /nodes`.
pub fn nodes(engine: &Engine) -> Bytes {
    // One lab and its records: a reload in between cannot mix two.
    let (lab, pxe) = engine.pxe_of_all();
    let body = Nodes {
        nodes: lab.nodes.iter().map(NodeRecord).collect(),
        pxe: PxeByNode(
            lab.nodes
                .iter()
                .zip(&pxe)
                // A node without a name (disabled) has no entry to key.
                .filter(|(n, _)| !n.node.is_empty())
                .map(|(n, p)| (n.node.as_str(), p.into()))
                .collect(),
        ),
    };
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

/// `GET /tasks/statuses`: `{"<id>": {start_time, end_time, node, os,
/// stopped, status, rv?}, ...}`, oldest first; `rv` is a finished task's
/// stored result body spliced in as stored.
pub fn statuses(engine: &Engine) -> Bytes {
    engine.with_tasks(|rows| {
        let mut out = Vec::with_capacity(rows.len() * 256 + 2);
        out.push(b'{');
        for (i, t) in rows.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_status_entry(&mut out, t);
        }
        out.push(b'}');
        Bytes::from(out)
    })
}

fn write_status_entry(out: &mut Vec<u8>, t: &TaskRow) {
    let entry = StatusEntry {
        start_time: t.start_time,
        end_time: t.end_time(),
        node: &t.node,
        os: &t.os,
        stopped: t.stopped(),
        status: if t.end.is_some() {
            "done"
        } else {
            NOT_COMPLETED
        },
    };
    // Writing to a Vec fails only for a map with non-string keys.
    let _ = serde_json::to_writer(&mut *out, &t.id);
    out.push(b':');
    let _ = serde_json::to_writer(&mut *out, &entry);
    if let Some(r) = t.result() {
        out.pop(); // the entry's `}`
        out.extend_from_slice(b",\"rv\":");
        out.extend_from_slice(&r.body);
        out.push(b'}');
    }
}

/// Serialized bytes of one view and the engine version they were built
/// from.
#[derive(Default)]
pub struct CachedView(Mutex<Option<(u64, Bytes)>>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl CachedView {
    /// The bytes built at the current `version()`, built by `build` if
    /// there are none. The bytes are tagged with the version read before
    /// `build` read the state, never after: a change that lands during a
    /// build moves the version past the tag, so the next call builds again
    /// instead of serving the view from before the change until the next
    /// one. (Bytes already known stale are not even kept.)
    pub fn get(&self, version: impl Fn() -> u64, build: impl FnOnce() -> Bytes) -> Bytes {
        let v = version();
        if let Some((built, bytes)) = &*lock(&self.0)
            && *built == v
        {
            return bytes.clone();
        }
        let bytes = build();
        let mut cached = lock(&self.0);
        if version() == v {
            *cached = Some((v, bytes.clone()));
        }
        bytes
    }
}

/// The cached views of one router.
#[derive(Default)]
pub struct Views {
    nodes: CachedView,
    statuses: CachedView,
}

impl Views {
    /// `GET /nodes`, built once per boot-record change or lab reload (both
    /// move `records_version`).
    pub fn nodes(&self, engine: &Engine) -> Bytes {
        self.nodes
            .get(|| engine.records_version(), || nodes(engine))
    }

    /// `GET /tasks/statuses`, built once per task change.
    pub fn statuses(&self, engine: &Engine) -> Bytes {
        self.statuses
            .get(|| engine.tasks_version(), || statuses(engine))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_change_during_a_build_is_not_cached() {
        let cache = CachedView::default();
        let version = Cell::new(0);
        let built = Cell::new(0);
        let build = |what: &'static str| {
            built.set(built.get() + 1);
            Bytes::from_static(what.as_bytes())
        };
        assert_eq!(cache.get(|| version.get(), || build("v0")), "v0");
        assert_eq!(cache.get(|| version.get(), || build("unused")), "v0");
        assert_eq!(built.get(), 1, "served from the cache");

        // The state changes (and the version with it) while a view is
        // being built from the state before the change.
        version.set(1);
        let stale = cache.get(
            || version.get(),
            || {
                let b = build("v1 before the change");
                version.set(2);
                b
            },
        );
        assert_eq!(stale, "v1 before the change");
        assert_eq!(
            cache.get(|| version.get(), || build("v2")),
            "v2",
            "the view built before the change was cached"
        );
        assert_eq!(cache.get(|| version.get(), || build("unused")), "v2");
        assert_eq!(built.get(), 3);
    }

    #[test]
    fn status_entries_splice_the_stored_body() {
        let mut row = TaskRow::running("a\"b".into(), "n1".into(), "sle".into(), 10);
        let mut out = Vec::new();
        write_status_entry(&mut out, &row);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""a\"b":{"start_time":10,"end_time":-1,"node":"n1","os":"sle","stopped":false,"status":"not completed"}"#
        );
        row.end = Some(pelagos_provision::TaskEnd {
            time: 20,
            stopped: true,
            result: pelagos_provision::TaskResult {
                code: 410,
                body: Bytes::from_static(br#"{ "error" : "x" }"#),
            },
        });
        let mut out = Vec::new();
        write_status_entry(&mut out, &row);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""a\"b":{"start_time":10,"end_time":20,"node":"n1","os":"sle","stopped":true,"status":"done","rv":{ "error" : "x" }}"#
        );
    }
}
