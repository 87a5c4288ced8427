//! The dashboard at `/ui` (docs/REST.md "Dashboard"): one page of plain
//! HTML, JS and CSS compiled into the binary (`ui/`), and `/ui/events`, a
//! server-sent event stream of the lab's state.
//!
//! One [`Hub`] task per server, running only while a dashboard is open,
//! watches the engine a few times a second: its `records_version` and
//! `tasks_version` counters (views are rebuilt only when they moved), the
//! running tasks' last log lines (their stage), the simulated BMCs' power
//! state, and the console logs (`console.<short name>`, read incrementally
//! like pelagos-conman's `ConsoleLog`, cleaned by `meaningful_line`). It
//! keeps the last state it saw and broadcasts only what changed; a new
//! client first gets a `snapshot` of that state. Browsers never poll.
//!
//! Nothing here changes the lab: the page reads, the provisions it shows
//! are started through the compatible routes.

use axum::Router;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::Stream;
use pelagos_config::{LabConfig, Problem};
use pelagos_provision::Engine;
use pelagos_provision::sim::SimLab;
use serde::Serialize;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot};

const INDEX_HTML: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");

/// How often the hub looks at the engine's counters, power states and
/// running tasks' stages.
const TICK: Duration = Duration::from_millis(250);
/// Console logs are read every this many ticks.
const CONSOLE_EVERY: u64 = 2;
/// Node views (boot records, problems) are rebuilt at least this often even
/// when `records_version` did not move (a lab reload, a record changed by
/// hand in the TFTP root).
const NODES_REFRESH: Duration = Duration::from_secs(5);
/// More running tasks than this and their stages are read every
/// `STAGE_SLOW_EVERY` ticks only (each read copies the task's log).
const STAGE_FAST_MAX: usize = 100;
const STAGE_SLOW_EVERY: u64 = 20;
/// Console lines kept per node (and sent in a snapshot).
const TAIL_LINES: usize = 50;
/// A console line is cut to this many characters.
const LINE_MAX: usize = 400;
/// Bytes of an existing console log read at first sight, and the most read
/// in one look (beyond, the reader skips to the last `CONSOLE_WINDOW`).
const CONSOLE_WINDOW: u64 = 16 * 1024;
const CONSOLE_READ_MAX: u64 = 256 * 1024;
/// Events a slow client may fall behind before it gets a new snapshot.
const CHANNEL: usize = 1024;

/// The routes of the dashboard, all under `/ui` (the auth layer protects
/// them like every route that is not open). `sim`: the simulated lab,
/// whose BMCs know the power state and whose consoles are files in its
/// console dir; without it (production) the consoles are the lab's
/// `conman_log_dir` and the power state is unknown.
pub fn router(engine: Arc<Engine>, sim: Option<Arc<SimLab>>) -> Router {
    let hub = Arc::new(Hub {
        engine,
        sim,
        ctl: Mutex::new(Ctl {
            running: false,
            pending: Vec::new(),
            tx: broadcast::channel(CHANNEL).0,
        }),
    });
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/app.js", get(app_js))
        .route("/ui/app.css", get(app_css))
        .route("/ui/events", get(events))
        .with_state(hub)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    let mut r = asset("text/html; charset=utf-8", INDEX_HTML);
    let h = r.headers_mut();
    // Only our own script and style; data never becomes markup anyway.
    h.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    r
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// `GET /ui/events`: `snapshot`, then `node`, `task`, `task-removed` and
/// `console` events as things change (docs/REST.md).
async fn events(State(hub): State<Arc<Hub>>) -> Response {
    let Some(first) = hub.subscribe().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "dashboard unavailable").into_response();
    };
    Sse::new(stream(hub, first))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// One frame of the stream: an SSE event name and its JSON data.
#[derive(Debug, Clone)]
struct Frame {
    event: &'static str,
    data: String,
}

impl Frame {
    fn new(event: &'static str, data: &impl Serialize) -> Self {
        Self {
            event,
            data: serde_json::to_string(data).unwrap_or_else(|_| "null".into()),
        }
    }
}

type Subscription = (Frame, broadcast::Receiver<Arc<Frame>>);

fn stream(hub: Arc<Hub>, first: Subscription) -> impl Stream<Item = Result<Event, Infallible>> {
    let (snapshot, rx) = first;
    futures::stream::unfold(
        (hub, Some(snapshot), rx),
        |(hub, mut next, mut rx)| async move {
            loop {
                if let Some(f) = next.take() {
                    let ev = Event::default().event(f.event).data(f.data);
                    return Some((Ok(ev), (hub, None, rx)));
                }
                match rx.recv().await {
                    Ok(f) => {
                        let ev = Event::default().event(f.event).data(f.data.clone());
                        return Some((Ok(ev), (hub, None, rx)));
                    }
                    // Fell behind: start over from a fresh snapshot.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let (snapshot, fresh) = hub.subscribe().await?;
                        rx = fresh;
                        next = Some(snapshot);
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    )
}

/// The watcher shared by every open dashboard.
struct Hub {
    engine: Arc<Engine>,
    sim: Option<Arc<SimLab>>,
    ctl: Mutex<Ctl>,
}

struct Ctl {
    /// The watch loop is running.
    running: bool,
    /// Clients waiting for their first snapshot (served after the next tick).
    pending: Vec<oneshot::Sender<Subscription>>,
    tx: broadcast::Sender<Arc<Frame>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    /// A snapshot of the current state and the changes after it; starts
    /// the watch loop if no dashboard was open.
    async fn subscribe(self: &Arc<Self>) -> Option<Subscription> {
        let (tx, rx) = oneshot::channel();
        {
            let mut ctl = lock(&self.ctl);
            ctl.pending.push(tx);
            if !ctl.running {
                ctl.running = true;
                tokio::spawn(self.clone().watch());
            }
        }
        rx.await.ok()
    }

    /// Every `TICK` until no client is left: look, diff, broadcast the
    /// changes, then hand waiting clients the snapshot and a receiver
    /// subscribed after this tick's changes.
    async fn watch(self: Arc<Self>) {
        let mut world = World::default();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            let frames = world.update(&self, n).await;
            n += 1;
            let mut ctl = lock(&self.ctl);
            if ctl.tx.receiver_count() > 0 {
                for f in frames {
                    let _ = ctl.tx.send(Arc::new(f));
                }
            }
            let pending = std::mem::take(&mut ctl.pending);
            if !pending.is_empty() {
                let snapshot = world.snapshot();
                for p in pending {
                    let _ = p.send((snapshot.clone(), ctl.tx.subscribe()));
                }
            }
            if ctl.tx.receiver_count() == 0 && ctl.pending.is_empty() {
                ctl.running = false;
                return;
            }
        }
    }

    fn power(&self, node: &str) -> &'static str {
        match self.sim.as_ref().and_then(|s| s.is_on(node)) {
            Some(true) => "on",
            Some(false) => "off",
            None => "unknown",
        }
    }

    /// Where the consoles are: the simulated lab's files, else conmand's.
    fn console_dir(&self, lab: &LabConfig) -> PathBuf {
        match &self.sim {
            Some(s) => s.console_dir().to_path_buf(),
            None => lab.conman_log_dir.clone(),
        }
    }
}

/// A node as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct NodeView {
    name: String,
    /// The BMC's address (`bmc_ip`); empty when the lab gives none.
    bmc: String,
    /// `on`, `off` or `unknown` (only the simulated BMCs are known).
    power: &'static str,
    /// What the node's boot record boots (as `/nodes` shows it).
    os: String,
    /// The last meaningful console line, if any.
    console: Option<String>,
    /// The node's problems when `/nodes` lists any (a disabled node).
    problems: Vec<String>,
}

/// A task as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct TaskView {
    id: String,
    node: String,
    os: String,
    /// Unix seconds.
    start: i64,
    /// Unix seconds; `None` while running.
    end: Option<i64>,
    /// The HTTP status of the result; `None` while running.
    code: Option<u16>,
    stopped: bool,
    /// The result's `status` or `error`.
    result: Option<String>,
    /// While running: the message of the task log's last line.
    stage: Option<String>,
}

#[derive(Serialize)]
struct Snapshot<'a> {
    now: i64,
    nodes: &'a [NodeView],
    tasks: Vec<&'a TaskView>,
    consoles: HashMap<&'a str, &'a VecDeque<String>>,
}

#[derive(Serialize)]
struct ConsoleLines<'a> {
    node: &'a str,
    lines: &'a [String],
}

#[derive(Serialize)]
struct Removed<'a> {
    id: &'a str,
}

/// What the hub saw last.
#[derive(Default)]
struct World {
    records_version: Option<u64>,
    tasks_version: Option<u64>,
    nodes_built: Option<Instant>,
    console_dir: Option<PathBuf>,
    nodes: Vec<NodeView>,
    /// Task id -> view, and the ids oldest first.
    tasks: HashMap<String, TaskView>,
    order: Vec<String>,
    tails: Vec<Tail>,
}

impl World {
    fn snapshot(&self) -> Frame {
        let snap = Snapshot {
            now: pelagos_provision::now_secs(),
            nodes: &self.nodes,
            tasks: self
                .order
                .iter()
                .filter_map(|id| self.tasks.get(id))
                .collect(),
            consoles: self
                .nodes
                .iter()
                .zip(&self.tails)
                .map(|(n, t)| (n.name.as_str(), &t.lines))
                .collect(),
        };
        Frame::new("snapshot", &snap)
    }

    /// Look at everything due at tick `n`; the frames of what changed.
    async fn update(&mut self, hub: &Hub, n: u64) -> Vec<Frame> {
        let engine = &hub.engine;
        let mut frames = Vec::new();
        let mut nodes = self.nodes.clone();

        // Boot records and problems: when the records moved, or now and then.
        let rv = engine.records_version();
        let stale = self
            .nodes_built
            .is_none_or(|t| t.elapsed() >= NODES_REFRESH);
        if self.records_version != Some(rv) || stale {
            let (lab, fresh) = static_views(engine);
            let dir = hub.console_dir(&lab);
            let same_nodes = fresh.len() == nodes.len()
                && fresh.iter().zip(&nodes).all(|(a, b)| a.name == b.name);
            if !same_nodes || self.console_dir.as_ref() != Some(&dir) {
                // A new node list or console dir (first look, lab reload):
                // new consoles.
                self.tails = lab.nodes.iter().map(|n| Tail::of(&dir, n)).collect();
                self.console_dir = Some(dir);
            }
            if !same_nodes {
                nodes = fresh;
            } else {
                for (old, new) in nodes.iter_mut().zip(fresh) {
                    old.bmc = new.bmc;
                    old.os = new.os;
                    old.problems = new.problems;
                }
            }
            self.records_version = Some(rv);
            self.nodes_built = Some(Instant::now());
        }
        for v in &mut nodes {
            v.power = hub.power(&v.name);
        }

        // Consoles, on the blocking pool (file reads).
        let mut console_frames = Vec::new();
        if n.is_multiple_of(CONSOLE_EVERY) && !self.tails.is_empty() {
            let mut tails = std::mem::take(&mut self.tails);
            let (tails, new_lines) = tokio::task::spawn_blocking(move || {
                let new: Vec<Vec<String>> = tails.iter_mut().map(Tail::poll).collect();
                (tails, new)
            })
            .await
            .unwrap_or_default();
            self.tails = tails;
            for ((v, t), lines) in nodes.iter_mut().zip(&self.tails).zip(new_lines) {
                v.console = t.current();
                if !lines.is_empty() {
                    console_frames.push(Frame::new(
                        "console",
                        &ConsoleLines {
                            node: &v.name,
                            lines: &lines,
                        },
                    ));
                }
            }
        }

        let full = self.nodes.len() != nodes.len()
            || self.nodes.iter().zip(&nodes).any(|(a, b)| a.name != b.name);
        if full {
            self.nodes = nodes;
        } else {
            for (old, new) in self.nodes.iter_mut().zip(nodes) {
                if *old != new {
                    frames.push(Frame::new("node", &new));
                    *old = new;
                }
            }
        }

        // Tasks: rows when the counter moved, stages of the running ones.
        let tv = engine.tasks_version();
        let mut tasks = self.tasks.clone();
        if self.tasks_version != Some(tv) {
            let (rows, order) = engine.with_tasks(|rows| {
                let views: Vec<TaskView> = rows.iter().map(|r| task_view(r)).collect();
                let order = rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
                (views, order)
            });
            let mut next = HashMap::with_capacity(rows.len());
            for mut v in rows {
                if v.end.is_none()
                    && let Some(old) = tasks.get(&v.id)
                {
                    v.stage = old.stage.clone();
                }
                next.insert(v.id.clone(), v);
            }
            tasks = next;
            self.order = order;
            self.tasks_version = Some(tv);
        }
        let running: Vec<String> = tasks
            .values()
            .filter(|t| t.end.is_none())
            .map(|t| t.id.clone())
            .collect();
        if running.len() <= STAGE_FAST_MAX || n.is_multiple_of(STAGE_SLOW_EVERY) {
            for id in running {
                if let Ok(log) = engine.log(&id).await
                    && let Some(t) = tasks.get_mut(&id)
                {
                    t.stage = stage_of(&log);
                }
            }
        }
        if full {
            self.tasks = tasks;
            frames.clear();
            frames.push(self.snapshot());
            return frames;
        }
        for id in &self.order {
            if let Some(new) = tasks.get(id)
                && self.tasks.get(id) != Some(new)
            {
                frames.push(Frame::new("task", new));
            }
        }
        for id in self.tasks.keys() {
            if !tasks.contains_key(id) {
                frames.push(Frame::new("task-removed", &Removed { id }));
            }
        }
        self.tasks = tasks;
        frames.extend(console_frames);
        frames
    }
}

/// The lab served now and every node's name, BMC, boot record OS and
/// problems (as `/nodes` lists them); power and console are filled in by
/// the caller.
fn static_views(engine: &Engine) -> (Arc<LabConfig>, Vec<NodeView>) {
    let (lab, pxe) = engine.pxe_of_all();
    let views = lab
        .nodes
        .iter()
        .zip(pxe)
        .map(|(n, p)| NodeView {
            name: n.node.clone(),
            bmc: n.bmc_ip.clone(),
            power: "unknown",
            os: p.os,
            console: None,
            problems: n.problems.iter().map(problem_text).collect(),
        })
        .collect();
    (lab, views)
}

/// A problem of a disabled node as `/nodes` gives it (`field`, `value`,
/// `message`): `field = "value": message`.
fn problem_text(p: &Problem) -> String {
    if p.value.is_empty() {
        format!("{}: {}", p.field, p.message)
    } else {
        format!("{} = \"{}\": {}", p.field, p.value, p.message)
    }
}

fn task_view(r: &pelagos_provision::TaskRow) -> TaskView {
    let result = r.result().map(|res| {
        let body = res.json();
        ["status", "error"]
            .iter()
            .find_map(|k| body.get(*k).and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&res.body).into_owned())
    });
    TaskView {
        id: r.id.clone(),
        node: r.node.clone(),
        os: r.os.clone(),
        start: r.start_time,
        end: r.end.as_ref().map(|e| e.time),
        code: r.result().map(|res| res.code),
        stopped: r.stopped(),
        result,
        stage: None,
    }
}

/// The message of a task log's last line (`<time> | <LEVEL> | <message>`).
fn stage_of(log: &str) -> Option<String> {
    let line = log.lines().rev().find(|l| !l.trim().is_empty())?;
    let msg = line.splitn(3, " | ").nth(2).unwrap_or(line).trim();
    Some(cut(msg))
}

fn cut(s: &str) -> String {
    match s.char_indices().nth(LINE_MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// The tail of one console log, read incrementally without keeping the
/// file open (a lab has hundreds of consoles): each look reads the bytes
/// appended since the last one, starts over on truncation or rotation, and
/// keeps the last [`TAIL_LINES`] meaningful lines.
struct Tail {
    /// `None`: a node whose short name cannot name a file of its own (empty
    /// or with a `/`: a name the lab config disabled).
    path: Option<PathBuf>,
    /// (device, inode) of the file read so far.
    file: Option<(u64, u64)>,
    offset: u64,
    partial: Vec<u8>,
    /// Drop bytes up to the next newline (the read started mid-line).
    skip_line: bool,
    lines: VecDeque<String>,
    /// Meaningful text of the line without its newline yet (a prompt).
    pending: Option<String>,
}

impl Tail {
    /// The console of `node`, `<dir>/console.<short name>`.
    fn of(dir: &std::path::Path, node: &pelagos_config::Node) -> Self {
        let short = node.short_name();
        let path = (!short.is_empty() && !short.contains(['/', '\0']))
            .then(|| pelagos_conman::log_path(dir, short));
        Self::new(path)
    }

    fn new(path: Option<PathBuf>) -> Self {
        Self {
            path,
            file: None,
            offset: 0,
            partial: Vec::new(),
            skip_line: false,
            lines: VecDeque::new(),
            pending: None,
        }
    }

    /// The last meaningful text the console showed.
    fn current(&self) -> Option<String> {
        self.pending.clone().or_else(|| self.lines.back().cloned())
    }

    /// The meaningful lines that arrived since the last look.
    fn poll(&mut self) -> Vec<String> {
        let Some(path) = self.path.clone() else {
            return Vec::new();
        };
        let Ok(meta) = std::fs::metadata(&path) else {
            return Vec::new();
        };
        let id = (meta.dev(), meta.ino());
        let size = meta.len();
        if self.file != Some(id) || size < self.offset {
            // First sight, rotation or truncation. A file we knew starts
            // over from its beginning; one never seen is history: only its
            // last window is read.
            let known = self.file.is_some();
            self.file = Some(id);
            self.partial.clear();
            self.offset = if known {
                0
            } else {
                size.saturating_sub(CONSOLE_WINDOW)
            };
            self.skip_line = self.offset > 0;
        }
        if size - self.offset > CONSOLE_READ_MAX {
            self.offset = size - CONSOLE_WINDOW;
            self.partial.clear();
            self.skip_line = true;
        }
        if size == self.offset {
            return Vec::new();
        }
        let mut buf = Vec::with_capacity((size - self.offset) as usize);
        let read = std::fs::File::open(&path).and_then(|mut f| {
            f.seek(SeekFrom::Start(self.offset))?;
            f.take(size - self.offset).read_to_end(&mut buf)
        });
        if read.is_err() {
            return Vec::new();
        }
        self.offset += buf.len() as u64;
        self.take(&buf)
    }

    fn take(&mut self, mut buf: &[u8]) -> Vec<String> {
        if self.skip_line {
            match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    buf = &buf[i + 1..];
                    self.skip_line = false;
                }
                None => return Vec::new(),
            }
        }
        let mut new = Vec::new();
        for chunk in buf.split_inclusive(|&b| b == b'\n') {
            self.partial.extend_from_slice(chunk);
            if chunk.ends_with(b"\n") || self.partial.len() > 4096 {
                let raw = String::from_utf8_lossy(&self.partial).into_owned();
                self.partial.clear();
                if let Some(text) = pelagos_conman::meaningful_line(&raw) {
                    new.push(cut(&text));
                }
            }
        }
        self.pending = pelagos_conman::meaningful_line(&String::from_utf8_lossy(&self.partial))
            .map(|t| cut(&t));
        for l in &new {
            if self.lines.len() == TAIL_LINES {
                self.lines.pop_front();
            }
            self.lines.push_back(l.clone());
        }
        if new.len() > TAIL_LINES {
            new.drain(..new.len() - TAIL_LINES);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &std::path::Path, s: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(s.as_bytes()).unwrap();
    }

    #[test]
    fn tail_reads_new_meaningful_lines_and_survives_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.n1");
        let mut t = Tail::new(Some(path.clone()));
        assert!(t.poll().is_empty(), "no file yet");
        append(&path, "2026-11-24 16:40:07 old line\r\n");
        assert_eq!(t.poll(), ["old line"], "history of a new file");
        append(
            &path,
            "<ConMan> Console [n1] log opened.\r\n2026-11-24 16:40:08 \x1b[1mbold\x1b[0m\r\nlog",
        );
        assert_eq!(t.poll(), ["bold"]);
        assert_eq!(t.current().as_deref(), Some("log"), "pending prompt");
        append(&path, "in: \r\n");
        assert_eq!(t.poll(), ["login:"]);
        assert_eq!(t.current().as_deref(), Some("login:"));
        std::fs::write(&path, "after truncation\n").unwrap();
        assert_eq!(t.poll(), ["after truncation"]);
        assert!(t.poll().is_empty());
        assert_eq!(t.lines.len(), 4);
    }

    #[test]
    fn a_large_history_is_read_from_its_last_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.n1");
        let mut text = String::new();
        for i in 0..10_000 {
            text.push_str(&format!("line {i}\n"));
        }
        std::fs::write(&path, &text).unwrap();
        let mut t = Tail::new(Some(path));
        let lines = t.poll();
        assert_eq!(lines.len(), TAIL_LINES);
        assert_eq!(lines.last().unwrap(), "line 9999");
        assert_eq!(t.lines.len(), TAIL_LINES);
    }

    #[test]
    fn stage_is_the_message_of_the_last_line() {
        let log = "2026-11-30 10:00:00.001 | INFO | Provisioning node [a]\n\
                   2026-11-30 10:00:01.002 | DEBUG | waiting for SSH node=a\n";
        assert_eq!(stage_of(log).as_deref(), Some("waiting for SSH node=a"));
        assert_eq!(stage_of(""), None);
    }

    #[test]
    fn problems_read_as_nodes_lists_them() {
        let p = |value: &str| Problem {
            node: Some("n1".into()),
            field: "mac".into(),
            value: value.into(),
            message: "not a MAC address".into(),
            scope: pelagos_config::Scope::Node,
        };
        assert_eq!(
            problem_text(&p("aa.bb")),
            "mac = \"aa.bb\": not a MAC address"
        );
        assert_eq!(problem_text(&p("")), "mac: not a MAC address");
    }
}
