//! The bodies `/api/v1` takes and answers, each with its OpenAPI schema
//! (utoipa's `ToSchema`): the one home of the v1 wire format.

use pelagos_config::{Node, Problem, Scope};
use pelagos_provision::TaskRow;
use pelagos_pxe::{CatalogEntry, OsIdentity};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// `POST /api/v1/nodes/{node}/provision`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvisionBody {
    /// The OS to install: `local`, `maintenance_image`, an image name,
    /// `<name>-<version>`, or teuthology's `<os_type>-<os_version>`. A
    /// name with `/`, `\`, `..`, a leading `.` or a control character
    /// names no image (404); the pattern is stricter than the server, which also
    /// takes other names of hand-made image dirs.
    #[schema(
        example = "sle",
        pattern = r"^[A-Za-z0-9_+-]+(\.[A-Za-z0-9_+-]+)*$",
        max_length = 255
    )]
    pub os: String,
    /// Salt states applied after the lab's `sls_list`: letters, digits,
    /// `_`, `.`, `-`, not starting with `-` or `.`, at most 128 bytes
    /// each and 64 states.
    #[serde(default)]
    #[schema(example = json!(["ceph.repo"]), value_type = Vec<SlsName>, max_items = 64)]
    pub extra_sls: Vec<String>,
}

/// A salt state name (`pelagos_config::check_sls_name`).
#[derive(ToSchema)]
#[schema(
    pattern = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$",
    min_length = 1,
    max_length = 128
)]
#[allow(dead_code)] // a schema only
pub struct SlsName(String);

/// What a task is doing, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Still provisioning.
    Running,
    /// Finished with success (the compatible status route's 200).
    Done,
    /// Finished with an error (BMC, boot, timeout, wrong OS, salt, server
    /// restart...).
    Failed,
    /// Stopped by a dismiss or a newer provision of its node.
    Dismissed,
}

impl TaskState {
    pub fn of(row: &TaskRow) -> Self {
        match &row.end {
            None => TaskState::Running,
            Some(e) if e.stopped => TaskState::Dismissed,
            Some(e) if e.result.code == 200 => TaskState::Done,
            Some(_) => TaskState::Failed,
        }
    }
}

/// A provision task.
#[derive(Debug, Serialize, ToSchema)]
pub struct Task {
    /// The task id (32 hex digits).
    pub id: String,
    pub node: String,
    /// The OS as requested.
    pub os: String,
    pub state: TaskState,
    /// Unix seconds.
    pub start_time: i64,
    /// Unix seconds; null while running.
    pub end_time: Option<i64>,
    /// The HTTP status of the result (as `GET /tasks/status/<id>` answers
    /// it); null while running.
    pub code: Option<u16>,
    /// The result's message (its `status` or `error`); null while running.
    pub result: Option<String>,
}

impl Task {
    pub fn of(row: &TaskRow) -> Self {
        let result = row.result().map(|r| {
            let body = r.json();
            ["status", "error"]
                .iter()
                .find_map(|k| body.get(*k).and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&r.body).into_owned())
        });
        Task {
            id: row.id.clone(),
            node: row.node.clone(),
            os: row.os.clone(),
            state: TaskState::of(row),
            start_time: row.start_time,
            end_time: row.end.as_ref().map(|e| e.time),
            code: row.result().map(|r| r.code),
            result,
        }
    }
}

/// `GET /api/v1/tasks`: the filters, both optional. Another parameter is
/// refused (400), so a misspelt filter cannot list every task.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TasksQuery {
    /// Only the tasks of this node.
    pub node: Option<String>,
    /// Only the tasks in this state.
    pub state: Option<TaskState>,
}

/// `GET /api/v1/tasks`, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskList {
    pub tasks: Vec<Task>,
}

/// `GET /api/v1/tasks/{id}/log`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskLog {
    pub id: String,
    /// The task's log, live while it runs (`<time> | <LEVEL> | <message>`
    /// lines).
    pub log: String,
}

/// One problem of the lab config.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemView {
    /// The node's name; null for a top-level key.
    pub node: Option<String>,
    pub field: String,
    pub value: String,
    pub message: String,
    /// `lab`: refuses the whole file; `node`: disables its node only.
    #[schema(pattern = "^(lab|node)$")]
    pub scope: String,
}

impl From<&Problem> for ProblemView {
    fn from(p: &Problem) -> Self {
        ProblemView {
            node: p.node.clone(),
            field: p.field.clone(),
            value: p.value.clone(),
            message: p.message.clone(),
            scope: match p.scope {
                Scope::Lab => "lab",
                Scope::Node => "node",
            }
            .to_owned(),
        }
    }
}

/// Every refusal: a message naming the parameter and its value; a
/// disabled node's 409 and a reload's 422 add the problems behind it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<ProblemView>>,
}

/// A node's BMC (never its password).
#[derive(Debug, Serialize, ToSchema)]
pub struct Bmc {
    pub ip: String,
    /// RMCP+ port.
    pub port: u16,
    pub mac: Option<String>,
}

/// A node of the lab served now.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    /// Its name, the key of every route.
    pub node: String,
    /// The management NIC's MAC; null when the lab gives none (the node
    /// cannot be provisioned).
    pub mac: Option<String>,
    pub ip: Option<String>,
    /// Where it is reached while provisioning, when not `ip`.
    pub boot_ip: Option<String>,
    /// The high-speed NICs.
    pub hsm_mac: Vec<String>,
    pub hsm_ip: Option<String>,
    /// Null for a node without `bmc_ip`.
    pub bmc: Option<Bmc>,
    pub uefi: bool,
    pub role: Option<String>,
    pub comment: Option<String>,
    /// What its boot record boots now (`local`, an image id, or the
    /// default config's text).
    pub os: String,
    /// The id of its running provision, if any.
    pub active_task: Option<String>,
    /// The lab config disabled it (409 to provisions).
    pub disabled: bool,
    /// Why it is disabled; empty for a usable node.
    pub problems: Vec<ProblemView>,
}

fn some(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

impl NodeView {
    pub fn new(n: &Node, os: String, active_task: Option<String>) -> Self {
        NodeView {
            node: n.node.clone(),
            mac: n.mac.as_ref().map(ToString::to_string),
            ip: some(&n.ip),
            boot_ip: some(&n.boot_ip),
            hsm_mac: n.hsm_mac.iter().map(ToString::to_string).collect(),
            hsm_ip: some(&n.hsm_ip),
            bmc: some(&n.bmc_ip).map(|ip| Bmc {
                ip,
                port: n.bmc_port,
                mac: n.bmc_mac.as_ref().map(ToString::to_string),
            }),
            uefi: n.uefi,
            role: some(&n.role),
            comment: some(&n.comment),
            os,
            active_task,
            disabled: n.is_disabled(),
            problems: n.problems.iter().map(ProblemView::from).collect(),
        }
    }
}

/// `GET /api/v1/nodes`, in lab order.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodeList {
    pub nodes: Vec<NodeView>,
}

/// Which OS an image is: what a node booted from it must report.
#[derive(Debug, Serialize, ToSchema)]
pub struct OsIdentityView {
    /// os-release `ID`.
    pub id: String,
    /// os-release `VERSION_ID`; empty when none.
    pub version_id: String,
    /// kiwi's image id; empty when unknown.
    pub image_id: String,
}

impl From<&OsIdentity> for OsIdentityView {
    fn from(o: &OsIdentity) -> Self {
        OsIdentityView {
            id: o.id.clone(),
            version_id: o.version_id.clone(),
            image_id: o.image_id.clone(),
        }
    }
}

/// A file of an image dir.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// An installed image (an image dir with a manifest, `image.json`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Image {
    /// `<name>-<version>`: the dir, and the OS a provision resolves to.
    pub id: String,
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Other names it answers to.
    pub aliases: Vec<String>,
    /// The `<name>` symlink points at it: `os: "<name>"` installs it.
    pub current: bool,
    /// When add-image installed it (RFC 3339 UTC).
    pub installed: String,
    /// Where add-image took it from.
    pub source: String,
    pub kernel: String,
    pub initrd: String,
    /// The xz-compressed disk image.
    pub image: String,
    /// Total size of its files in bytes.
    pub size: u64,
    pub files: Vec<ImageFile>,
    /// The OS identity a node booted from it must report; null when the
    /// manifest records none.
    pub os: Option<OsIdentityView>,
}

impl From<&CatalogEntry> for Image {
    fn from(e: &CatalogEntry) -> Self {
        let m = &e.manifest;
        Image {
            id: e.id.clone(),
            name: m.name.clone(),
            version: m.version.clone(),
            arch: m.arch.clone(),
            aliases: m.aliases.clone(),
            current: e.current,
            installed: m.installed.clone(),
            source: m.source.clone(),
            kernel: m.kernel.clone(),
            initrd: m.initrd.clone(),
            image: m.image.clone(),
            size: m.size(),
            files: m
                .files
                .iter()
                .map(|f| ImageFile {
                    name: f.name.clone(),
                    size: f.size,
                    sha256: f.sha256.clone(),
                })
                .collect(),
            os: m.os.as_ref().map(OsIdentityView::from),
        }
    }
}

/// `GET /api/v1/images`, by name then version.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageList {
    pub images: Vec<Image>,
}

/// A provision that runs on across a reload.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadRunning {
    pub task_id: String,
    pub node: String,
}

/// `POST /api/v1/reload`'s 200 (the handler answers `wire::Reloaded`,
/// whose shape this documents).
#[derive(Debug, Serialize, ToSchema)]
pub struct Reloaded {
    /// `reloaded`.
    pub status: String,
    /// Nodes of the lab served now.
    pub nodes: u64,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub disabled: Vec<String>,
    pub running: Vec<ReloadRunning>,
}
