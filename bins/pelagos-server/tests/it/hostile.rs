//! Hostile input over raw sockets (issue 12, "HTTP limits and hostile
//! input"): path traversal and encodings, hostile form fields, oversized
//! and malformed requests, bad framing, bad `Host` headers, bad methods and
//! slow clients.
//!
//! Every case must get a 4xx (never a 5xx, never a hang; a header overflow
//! may instead close the connection), write nothing (the TFTP tree, files
//! and symlinks, byte for byte as before, and `/tasks/statuses` without a
//! new task), serve no file from outside the image dirs, and leave the
//! server answering `GET /version` with 200 on a new connection. One test
//! runs every class and prints a table (class, requests, result) to stderr;
//! a failing case is listed with its input and what the server did, and
//! fails the test after the table. `HOSTILE_VERBOSE=1` also prints every
//! request of classes 1-7 with its answer.

// The table on stderr is this test's report.
#![allow(clippy::print_stderr)]

use crate::{Fixture, IMAGE, Server, read};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long one request may take before it counts as a hang. The server
/// under test runs with 2 s header and body timeouts, so a request the
/// server waits on ends well within it.
const BOUND: Duration = Duration::from_secs(6);

/// Markers of files no response may ever contain: outside the TFTP root,
/// the boot records, the lab config's passwords, the system's passwords.
const FORBIDDEN: &[&str] = &[
    "OUTSIDE-SECRET-7d1f",
    "RECORDS-SECRET-42ab",
    "very-secret",
    "root:x:0:0",
];

/// Pace of a slow client: one byte per tick.
const PACE: Duration = Duration::from_millis(200);

/// The node whose provision runs across the SIGTERM, and its record.
const SLOW_NODE: &str = "slow1.lab";
const SLOW_RECORD: &str = "tftp/pxelinux.cfg/01-aa-bb-cc-dd-ee-07";

// ---------------------------------------------------------------------------
// Raw HTTP

/// What the server did with one raw request.
#[derive(Debug, Clone)]
enum Outcome {
    Response {
        code: u16,
        head: String,
        body: Vec<u8>,
    },
    /// Closed (EOF) without a byte of response.
    Closed,
    /// Reset (or a broken pipe) without a byte of response.
    Reset,
    /// Nothing within [`BOUND`].
    Hung,
    /// Bytes that are not an HTTP/1 response.
    NotHttp(Vec<u8>),
    /// No connection at all: the server is gone.
    Refused,
}

impl Outcome {
    fn code(&self) -> Option<u16> {
        match self {
            Outcome::Response { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// For the table: the status code or what happened instead.
    fn label(&self) -> String {
        match self {
            Outcome::Response { code, .. } => code.to_string(),
            Outcome::Closed => "closed".into(),
            Outcome::Reset => "reset".into(),
            Outcome::Hung => "HANG".into(),
            Outcome::NotHttp(_) => "not-http".into(),
            Outcome::Refused => "REFUSED".into(),
        }
    }

    /// For a failure: the label and the start of the body.
    fn describe(&self) -> String {
        match self {
            Outcome::Response { code, body, .. } => {
                format!("{code} {}", shown(&body[..body.len().min(200)]))
            }
            Outcome::NotHttp(b) => format!("not HTTP: {}", shown(&b[..b.len().min(100)])),
            o => o.label(),
        }
    }

    fn body(&self) -> &[u8] {
        match self {
            Outcome::Response { body, .. } => body,
            Outcome::NotHttp(b) => b,
            _ => &[],
        }
    }

    fn header(&self, name: &str) -> Option<String> {
        let Outcome::Response { head, .. } = self else {
            return None;
        };
        head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Bytes as printable ASCII with escapes (`\r`, `\x00`, ...).
fn shown(b: &[u8]) -> String {
    b.iter()
        .flat_map(|c| std::ascii::escape_default(*c))
        .map(char::from)
        .collect()
}

fn addr_of(s: &Server) -> SocketAddr {
    s.url
        .trim_start_matches("http://")
        .parse()
        .expect("the server's URL is http://<ip>:<port>")
}

/// Send `req` on a new connection and read one response. A payload over
/// 64 KiB is written from a thread, so a server that answers (or closes)
/// before reading it all is seen doing so.
fn exchange(addr: SocketAddr, req: &[u8]) -> Outcome {
    exchange_with(addr, req, false).0
}

/// [`exchange`]; with `rest`, also everything the server sends after the
/// first response until it closes (a smuggled request's answer).
fn exchange_with(addr: SocketAddr, req: &[u8], rest: bool) -> (Outcome, Vec<u8>) {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, BOUND) else {
        return (Outcome::Refused, Vec::new());
    };
    let deadline = Instant::now() + BOUND;
    s.set_write_timeout(Some(BOUND)).unwrap();
    let writer = if req.len() > 64 * 1024 {
        let mut w = s.try_clone().unwrap();
        let data = req.to_vec();
        Some(std::thread::spawn(move || {
            let _ = w.write_all(&data);
        }))
    } else {
        // A server that closes early makes this fail; the read says how.
        let _ = s.write_all(req);
        None
    };
    let mut buf = Vec::new();
    let out = read_response(&mut s, &mut buf, deadline);
    let mut after = Vec::new();
    if rest && out.code().is_some() {
        // Whatever follows the first response, until the server closes.
        after = buf;
        let mut chunk = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s.set_read_timeout(Some(left)).unwrap();
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => after.extend_from_slice(&chunk[..n]),
            }
        }
    }
    let _ = s.shutdown(Shutdown::Both);
    if let Some(w) = writer {
        let _ = w.join();
    }
    (out, after)
}

/// Read one response (after any 1xx) from `s` into an [`Outcome`]; bytes
/// read past it stay in `buf`.
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> Outcome {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some((out, used)) = parse_response(buf, false) {
            buf.drain(..used);
            return out;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return ended(buf, Outcome::Hung);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut chunk) {
            Ok(0) => return ended(buf, Outcome::Closed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return ended(buf, Outcome::Hung);
            }
            Err(_) => return ended(buf, Outcome::Reset),
        }
    }
}

/// The outcome of a read that stopped (`how`) with `buf` in hand.
fn ended(buf: &mut Vec<u8>, how: Outcome) -> Outcome {
    if buf.is_empty() {
        return how;
    }
    match parse_response(buf, true) {
        Some((out, _)) => out,
        None => Outcome::NotHttp(std::mem::take(buf)),
    }
}

/// A whole response at the start of `buf` (1xx skipped) and the bytes it
/// took; with `eof`, a response without length ends where `buf` does.
fn parse_response(buf: &[u8], eof: bool) -> Option<(Outcome, usize)> {
    let mut start = 0;
    loop {
        let rest = &buf[start..];
        if !rest.is_empty() && !b"HTTP/1.".starts_with(&rest[..rest.len().min(7)]) {
            return Some((Outcome::NotHttp(rest.to_vec()), buf.len()));
        }
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        let code: u16 = head.get(9..12)?.parse().ok()?;
        if (100..200).contains(&code) {
            start += end;
            continue;
        }
        let probe = Outcome::Response {
            code,
            head: head.clone(),
            body: Vec::new(),
        };
        let body = &rest[end..];
        let len = if let Some(n) = probe.header("content-length") {
            n.parse::<usize>().ok()?
        } else if probe
            .header("transfer-encoding")
            .is_some_and(|t| t.contains("chunked"))
        {
            let pos = body.windows(5).position(|w| w == b"0\r\n\r\n");
            match pos {
                Some(p) => p + 5,
                None if eof => body.len(),
                None => return None,
            }
        } else if eof {
            body.len()
        } else {
            return None;
        };
        if body.len() < len {
            if eof {
                let body = body.to_vec();
                return Some((Outcome::Response { code, head, body }, buf.len()));
            }
            return None;
        }
        let out = Outcome::Response {
            code,
            head,
            body: body[..len].to_vec(),
        };
        return Some((out, start + end + len));
    }
}

// Request builders. Each closes its connection after the response.

/// `METHOD target HTTP/1.1` with `Host: localhost`, `extra` header lines
/// (each ending in CRLF) and `body` with its `Content-Length` (for POST and
/// PUT always).
fn http(method: &str, target: &[u8], extra: &[u8], body: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(body.len() + target.len() + 256);
    r.extend_from_slice(method.as_bytes());
    r.push(b' ');
    r.extend_from_slice(target);
    r.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    r.extend_from_slice(extra);
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        r.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(body);
    r
}

fn get(target: &str) -> Vec<u8> {
    http("GET", target.as_bytes(), b"", b"")
}

fn get_bytes(target: &[u8]) -> Vec<u8> {
    http("GET", target, b"", b"")
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn enc(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
            s.push(char::from(c));
        } else {
            let _ = write!(s, "%{c:02X}");
        }
    }
    s
}

/// An urlencoded body.
fn urlencoded(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k.as_bytes()), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

fn form_post(path: &str, body: &[u8]) -> Vec<u8> {
    http(
        "POST",
        path.as_bytes(),
        b"Content-Type: application/x-www-form-urlencoded\r\n",
        body,
    )
}

fn form(path: &str, pairs: &[(&str, &[u8])]) -> Vec<u8> {
    form_post(path, &urlencoded(pairs))
}

const BOUNDARY: &str = "hostile-boundary-1f2e";

/// A well-formed multipart body.
fn multipart_body(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, value) in parts {
        b.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                .as_bytes(),
        );
        b.extend_from_slice(value);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    b
}

/// POST `body` as `multipart/form-data` with `ctype_params` after the
/// media type (`; boundary=...`).
fn multipart_raw(path: &str, ctype_params: &str, body: &[u8]) -> Vec<u8> {
    let ct = format!("Content-Type: multipart/form-data{ctype_params}\r\n");
    http("POST", path.as_bytes(), ct.as_bytes(), body)
}

fn multipart(path: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
    multipart_raw(
        path,
        &format!("; boundary={BOUNDARY}"),
        &multipart_body(parts),
    )
}

/// Deterministic pseudo-random bytes.
fn garbage(len: usize, seed: u64) -> Vec<u8> {
    crate::images::image_bytes(len, seed)
}

// ---------------------------------------------------------------------------
// Nothing written, server healthy

#[derive(Debug, PartialEq)]
enum Entry {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
    Other,
}

/// Every entry under `root`: file contents, symlink targets, dirs.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let ft = md.file_type();
            if ft.is_symlink() {
                out.insert(rel, Entry::Link(std::fs::read_link(&p).unwrap_or_default()));
            } else if ft.is_dir() {
                out.insert(rel, Entry::Dir);
                walk(root, &p, out);
            } else if ft.is_file() {
                out.insert(rel, Entry::File(std::fs::read(&p).unwrap_or_default()));
            } else {
                out.insert(rel, Entry::Other);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// What differs between two snapshots, for a failure message.
fn tree_diff(before: &BTreeMap<PathBuf, Entry>, after: &BTreeMap<PathBuf, Entry>) -> String {
    let mut d = Vec::new();
    for (p, e) in after {
        match before.get(p) {
            None => d.push(format!("+{}", p.display())),
            Some(b) if b != e => d.push(format!("~{}", p.display())),
            _ => {}
        }
    }
    for p in before.keys().filter(|p| !after.contains_key(*p)) {
        d.push(format!("-{}", p.display()));
    }
    d.join(" ")
}

/// `GET /version` answers 200 on a new connection.
fn healthy(addr: SocketAddr) -> Result<(), String> {
    match exchange(addr, &get("/version")) {
        Outcome::Response { code: 200, .. } => Ok(()),
        o => Err(format!("then GET /version: {}", o.describe())),
    }
}

/// The ids of `/tasks/statuses`.
fn task_ids(addr: SocketAddr) -> Result<Vec<String>, String> {
    match exchange(addr, &get("/tasks/statuses")) {
        Outcome::Response {
            code: 200, body, ..
        } => {
            let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            let o = v.as_object().ok_or("/tasks/statuses is not an object")?;
            Ok(o.keys().cloned().collect())
        }
        o => Err(format!("GET /tasks/statuses: {}", o.describe())),
    }
}

/// Poll a task until it has ended (after a dismissal of its node), so a
/// task a hostile request started writes nothing into the next case.
fn settle(addr: SocketAddr, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut dismissed = false;
    while Instant::now() < deadline {
        let o = exchange(addr, &get(&format!("/tasks/status/{id}")));
        if o.code() != Some(202) {
            return;
        }
        if !dismissed {
            if let Some(node) = o.header("node") {
                exchange(addr, &form("/node/dismiss", &[("node", node.as_bytes())]));
            }
            dismissed = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The state a server must keep through hostile requests: its TFTP tree
/// and its task list; [`Watch::check`] compares and re-bases after a
/// failure so the next case is judged on its own.
struct Watch {
    addr: SocketAddr,
    tftp: PathBuf,
    tree: BTreeMap<PathBuf, Entry>,
    tasks: Vec<String>,
}

impl Watch {
    fn new(addr: SocketAddr, tftp: PathBuf) -> Self {
        let tree = snapshot(&tftp);
        let tasks = task_ids(addr).expect("task list");
        Watch {
            addr,
            tftp,
            tree,
            tasks,
        }
    }

    /// Problems since the last check: unhealthy, a new task, a write.
    fn check(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = healthy(self.addr) {
            problems.push(e);
        }
        match task_ids(self.addr) {
            Ok(ids) if ids != self.tasks => {
                let new: Vec<&String> = ids.iter().filter(|i| !self.tasks.contains(i)).collect();
                problems.push(format!("task(s) created: {new:?}"));
                for id in &new {
                    settle(self.addr, id);
                }
                self.tasks = ids;
            }
            Ok(_) => {}
            Err(e) => problems.push(e),
        }
        let now = snapshot(&self.tftp);
        if now != self.tree {
            problems.push(format!(
                "TFTP tree written: {}",
                tree_diff(&self.tree, &now)
            ));
            self.tree = now;
        }
        problems
    }
}

// ---------------------------------------------------------------------------
// Cases and the table

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// One of these codes.
    Codes(&'static [u16]),
    /// Any 4xx.
    Client,
    /// Any 4xx, or the connection closed or reset without a response
    /// (header overflow, an unread body).
    ClientOrClosed,
}

impl Expect {
    fn accepts(self, o: &Outcome) -> bool {
        match (self, o) {
            (Expect::Codes(c), Outcome::Response { code, .. }) => c.contains(code),
            (Expect::Client | Expect::ClientOrClosed, Outcome::Response { code, .. }) => {
                (400..500).contains(code)
            }
            (Expect::ClientOrClosed, Outcome::Closed | Outcome::Reset) => true,
            _ => false,
        }
    }
}

const NOT_FOUND_OR_BAD: Expect = Expect::Codes(&[400, 404]);

struct Case {
    what: String,
    req: Vec<u8>,
    expect: Expect,
    /// Each group needs one of its strings in the response body.
    body_has: Vec<Vec<String>>,
    /// Nothing may follow the first response: no smuggled request answered.
    sole: bool,
}

impl Case {
    fn new(req: Vec<u8>, expect: Expect) -> Self {
        Case {
            what: describe(&req),
            req,
            expect,
            body_has: Vec::new(),
            sole: false,
        }
    }

    fn named(mut self, what: impl Into<String>) -> Self {
        self.what = what.into();
        self
    }

    fn has(mut self, any_of: Vec<String>) -> Self {
        self.body_has.push(any_of);
        self
    }

    fn sole(mut self) -> Self {
        self.sole = true;
        self
    }
}

/// A request in one line: its request line and its body, escaped, cut.
fn describe(req: &[u8]) -> String {
    let cut = |b: &[u8], n: usize| {
        if b.len() > n {
            format!("{}...({} bytes)", shown(&b[..n]), b.len())
        } else {
            shown(b)
        }
    };
    let line_end = req
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(req.len());
    let mut s = cut(&req[..line_end], 100);
    if let Some(p) = req.windows(4).position(|w| w == b"\r\n\r\n") {
        let body = &req[p + 4..];
        if !body.is_empty() {
            s.push_str(" body=");
            s.push_str(&cut(body, 100));
        }
    }
    s
}

/// One row of the table.
#[derive(Default)]
struct Class {
    name: String,
    count: usize,
    outcomes: BTreeMap<String, usize>,
    failures: Vec<String>,
    /// Measurements shown after the outcomes.
    notes: Vec<String>,
}

impl Class {
    fn new(name: &str) -> Self {
        Class {
            name: name.into(),
            ..Class::default()
        }
    }

    fn tally(&mut self, label: impl Into<String>) {
        self.count += 1;
        *self.outcomes.entry(label.into()).or_default() += 1;
    }

    fn fail(&mut self, what: &str, problems: &[String]) {
        if !problems.is_empty() {
            self.failures
                .push(format!("{what} -> {}", problems.join("; ")));
        }
    }

    /// Run `cases` against the watched server.
    fn run(&mut self, w: &mut Watch, cases: Vec<Case>) {
        for case in cases {
            let (out, after) = exchange_with(w.addr, &case.req, case.sole);
            self.tally(out.label());
            if std::env::var_os("HOSTILE_VERBOSE").is_some() {
                eprintln!("[{}] {} -> {}", self.name, case.what, out.describe());
            }
            let mut problems = Vec::new();
            if !case.expect.accepts(&out) {
                problems.push(format!("got {} (want {:?})", out.describe(), case.expect));
            }
            let body = String::from_utf8_lossy(out.body());
            for f in FORBIDDEN {
                if body.contains(f) {
                    problems.push(format!("response leaks {f:?}"));
                }
            }
            // Judged on the decoded `error` message when there is one.
            let msg = serde_json::from_slice::<Value>(out.body())
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| body.clone().into_owned());
            for group in &case.body_has {
                if !group.iter().any(|s| msg.contains(s.as_str())) {
                    problems.push(format!("message lacks one of {group:?}: {msg:?}"));
                }
            }
            if case.sole && !after.is_empty() {
                problems.push(format!(
                    "bytes after the first response (a smuggled request answered?): {}",
                    shown(&after[..after.len().min(120)])
                ));
            }
            problems.extend(w.check());
            self.fail(&case.what, &problems);
        }
    }

    fn result(&self) -> String {
        let seen: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, n)| format!("{k}x{n}"))
            .collect();
        let verdict = if self.failures.is_empty() {
            "ok".to_owned()
        } else {
            format!("FAIL {}/{}", self.failures.len(), self.count)
        };
        let mut r = format!("{verdict} ({})", seen.join(" "));
        if !self.notes.is_empty() {
            r.push_str(&format!("; {}", self.notes.join("; ")));
        }
        r
    }
}

fn print_table(rows: &[Class]) {
    let total: usize = rows.iter().map(|r| r.count).sum();
    eprintln!("\nhostile input: each class tried, its count and result");
    eprintln!("{:<46} {:>6}  result", "class", "count");
    for r in rows {
        eprintln!("{:<46} {:>6}  {}", r.name, r.count, r.result());
    }
    eprintln!("{:<46} {:>6}", "total", total);
    for r in rows {
        for f in &r.failures {
            eprintln!("FAILED [{}] {f}", r.name);
        }
    }
}

// ---------------------------------------------------------------------------
// The fixture

/// The standard fixture plus things nothing may serve or touch: a file
/// outside the TFTP root, boot loader files with markers, a symlink out of
/// an image dir.
fn hostile_fixture() -> Fixture {
    let fx = Fixture::new();
    std::fs::write(fx.path("outside-secret.txt"), FORBIDDEN[0]).unwrap();
    let tftp = fx.path("tftp");
    std::fs::create_dir_all(tftp.join("pxelinux.cfg")).unwrap();
    std::fs::write(tftp.join("pxelinux.cfg/default"), FORBIDDEN[1]).unwrap();
    std::fs::create_dir_all(tftp.join("grub")).unwrap();
    std::fs::write(tftp.join("grub/grub.cfg"), FORBIDDEN[1]).unwrap();
    std::os::unix::fs::symlink("../../outside-secret.txt", tftp.join(IMAGE).join("escape"))
        .unwrap();
    fx
}

// ---------------------------------------------------------------------------
// Classes 1-7: one request each

/// Payloads for a path segment, as sent on the wire.
fn path_payloads() -> Vec<Vec<u8>> {
    let mut p: Vec<Vec<u8>> = [
        "..",
        "%2e%2e",
        ".%2E",
        "%252e%252e%252f",
        "..%2f..%2f..%2fetc%2fpasswd",
        "..%2F..%2Foutside-secret.txt",
        "..%5c..%5coutside-secret.txt",
        "%00",
        "ok1.lab%00",
        "sle%00.xz",
        "%c0%ae%c0%ae%c0%af",
        "%e0%80%ae%e0%80%ae",
        "%ff%fe",
        "%0d%0aX-Injected:%201",
        "%1b%5b31m",
        "sle-15.6-1.0%2f..%2f..%2foutside-secret.txt",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // Raw bytes a URL may not hold: backslashes, control characters.
    p.push(b"..\\..\\outside-secret.txt".to_vec());
    p.push(b"a\x01b".to_vec());
    p.push(b"a\x7fb".to_vec());
    p.push(vec![b'a'; 10 * 1024]);
    p
}

fn class_paths(w: &mut Watch) -> Class {
    let mut c = Class::new("1 path traversal/encodings in path params");
    let templates: &[(&str, &str)] = &[
        ("/node/", ""),
        ("/check_image/", ""),
        ("/node/bootrecord/", "/sle"),
        ("/node/bootrecord/ok1.lab/", ""),
        ("/node/rmbootrecord/", ""),
        ("/tasks/status/", ""),
        ("/tasks/log/", ""),
        ("/images/", ""),
        ("/images/sle/", ""),
        ("/images/", "/sle-15.6-1.0.xz"),
    ];
    let mut cases = Vec::new();
    for (pre, post) in templates {
        for p in path_payloads() {
            let mut target = pre.as_bytes().to_vec();
            target.extend_from_slice(&p);
            target.extend_from_slice(post.as_bytes());
            cases.push(Case::new(get_bytes(&target), NOT_FOUND_OR_BAD));
        }
    }
    // Symlinks out of the tree and into the records, by name.
    for t in [
        "/images/sle/escape",
        "/images/sle-15.6-1.0/escape",
        "/images/pxelinux.cfg/default",
        "/images/grub/grub.cfg",
        "/images/sle/..%2f..%2foutside-secret.txt",
    ] {
        cases.push(Case::new(get(t), NOT_FOUND_OR_BAD));
    }
    c.run(w, cases);
    c
}

/// Hostile values of `node`.
fn node_payloads() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        &b".."[..],
        b"../../etc/passwd",
        b"%2e%2e",
        b"..%2f..%2fetc",
        b"ok1.lab/../ok1.lab",
        b"..\\..\\lab.json",
        b"ok1.lab\0",
        b"\0",
        b"\xc0\xae\xc0\xae",
        b"ok1.lab\r\nX-Injected: 1",
        b" ok1.lab",
        b"OK1.LAB",
        b"\x1b[31mok1.lab",
        b"/etc/passwd",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    v.push(vec![b'a'; 10 * 1024]);
    v
}

/// Hostile values of `os` (with a real node).
fn os_payloads() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        &b".."[..],
        b"../sle",
        b"sle/../sle",
        b"%2e%2e",
        b"..%2f..",
        b"/etc",
        b"sle\0",
        b"sle-15.6-1.0/../../outside-secret.txt",
        b"\x1b[31m",
        b"sle\n",
        b" sle",
        b"\xc0\xae",
        b"pxelinux.cfg",
        b"grub",
        b".hidden",
        b"local\0",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    v.push(vec![b'a'; 10 * 1024]);
    v
}

/// Hostile `extra_sls`/`add_sls` values: salt-ssh options, shell, NUL.
fn sls_payloads() -> Vec<&'static str> {
    vec![
        "--out-file=/tmp/x",
        "-r",
        "-c /tmp/x",
        "--roster-file x",
        "pillar={\"a\":1}",
        "a;b",
        "$(id)",
        "`id`",
        "core\0",
        "core --out-file=/tmp/pwned",
        "../../etc/passwd",
        "core|id",
        "a&&b",
        "core\r\n-r",
    ]
}

fn class_forms(w: &mut Watch) -> Class {
    let mut c = Class::new("2 hostile form fields (urlencoded, multipart)");
    let mut cases = Vec::new();
    let both = |path: &str, pairs: &[(&str, &[u8])]| [form(path, pairs), multipart(path, pairs)];
    for n in node_payloads() {
        for req in both("/node/provision", &[("node", &n), ("os", b"sle")]) {
            cases.push(Case::new(req, NOT_FOUND_OR_BAD));
        }
        for path in ["/node/dismiss", "/tasks/node/dismiss"] {
            for req in both(path, &[("node", &n)]) {
                cases.push(Case::new(req, NOT_FOUND_OR_BAD));
            }
        }
    }
    for os in os_payloads() {
        for req in both("/node/provision", &[("node", b"ok1.lab"), ("os", &os)]) {
            cases.push(Case::new(req, NOT_FOUND_OR_BAD));
        }
    }
    // Salt states: 400 naming the field and the value.
    let mut sls: Vec<String> = sls_payloads().into_iter().map(str::to_owned).collect();
    sls.push(vec!["core"; 65].join(" "));
    for v in &sls {
        let shown_value: Vec<String> = if v.starts_with("core core") {
            vec!["65".into()]
        } else {
            v.split_whitespace()
                .flat_map(|t| [t.to_owned(), format!("{t:?}")])
                .collect()
        };
        for field in ["extra_sls", "add_sls"] {
            let pairs: &[(&str, &[u8])] =
                &[("node", b"ok1.lab"), ("os", b"sle"), (field, v.as_bytes())];
            for req in both("/node/provision", pairs) {
                cases.push(
                    Case::new(req, Expect::Codes(&[400]))
                        .has(vec![field.to_owned()])
                        .has(shown_value.clone()),
                );
            }
        }
    }
    // Missing, empty and duplicate fields.
    let raw: &[&[u8]] = &[
        b"",
        b"node=ok1.lab",
        b"os=sle",
        b"node=&os=sle",
        b"node=ok1.lab&os=",
        b"node&os",
        b"=ok1.lab&=sle",
        b"node=ok1.lab&node=ok2.lab&os=sle",
        b"node=nope.lab&node=ok1.lab&os=sle",
        b"node=ok1.lab&os=..&os=sle",
        b"node=ok1.lab&os=sle&extra_sls=-r&extra_sls=core",
        b"node=ok1.lab&os=sle&extra_sls=core&extra_sls=-r",
        b"node=%zz&os=sle",
    ];
    for body in raw {
        cases.push(Case::new(
            form_post("/node/provision", body),
            Expect::Client,
        ));
    }
    for body in [
        &b""[..],
        b"node=",
        b"node=ok1.lab&node=ok2.lab",
        b"nod=ok1.lab",
    ] {
        cases.push(Case::new(form_post("/node/dismiss", body), Expect::Client));
    }
    let mp: &[&[(&str, &[u8])]] = &[
        &[("os", b"sle")],
        &[("node", b"ok1.lab")],
        &[("node", b""), ("os", b"sle")],
        &[("node", b"nope.lab"), ("node", b"ok1.lab"), ("os", b"sle")],
        &[("node", b"ok1.lab"), ("os", b".."), ("os", b"sle")],
        &[
            ("node", b"ok1.lab"),
            ("os", b"sle"),
            ("add_sls", b"-r"),
            ("add_sls", b"core"),
        ],
    ];
    for parts in mp {
        let what = format!(
            "multipart /node/provision {:?}",
            parts
                .iter()
                .map(|(k, v)| format!("{k}={}", shown(v)))
                .collect::<Vec<_>>()
        );
        cases.push(Case::new(multipart("/node/provision", parts), Expect::Client).named(what));
    }
    // A right form in the wrong clothes.
    for ct in [
        &b"Content-Type: text/plain\r\n"[..],
        b"Content-Type: application/json\r\n",
        b"",
    ] {
        let body = br#"{"node":"ok1.lab","os":"sle"}"#;
        cases.push(Case::new(
            http("POST", b"/node/provision", ct, body),
            Expect::Client,
        ));
        let body = b"node=ok1.lab&os=sle";
        let req = http("POST", b"/node/provision", ct, body);
        let what = format!("{} with {}", describe(&req), shown(ct));
        cases.push(Case::new(req, Expect::Client).named(what));
    }
    c.run(w, cases);
    c
}

fn class_oversized(w: &mut Watch) -> Class {
    let mut c = Class::new("3 oversized headers/body/URL");
    let mut cases = Vec::new();
    let big_host = format!(
        "GET /version HTTP/1.1\r\nHost: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    cases
        .push(Case::new(big_host.into_bytes(), Expect::ClientOrClosed).named("100 KB Host header"));
    let mut mb = b"GET /version HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for i in 0..1024 {
        mb.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "p".repeat(1000)).as_bytes());
    }
    mb.extend_from_slice(b"\r\n");
    cases.push(Case::new(mb, Expect::ClientOrClosed).named("1 MB of headers (1024 x 1 KB)"));
    let mut many = b"GET /version HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for i in 0..10_000 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    cases.push(Case::new(many, Expect::ClientOrClosed).named("10,000 headers"));
    let mut some = b"GET /version HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for i in 0..200 {
        some.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    some.extend_from_slice(b"\r\n");
    cases.push(Case::new(some, Expect::ClientOrClosed).named("200 small headers"));
    let long_name = format!(
        "GET /version HTTP/1.1\r\nHost: localhost\r\n{}: v\r\n\r\n",
        "N".repeat(70 * 1024)
    );
    cases
        .push(Case::new(long_name.into_bytes(), Expect::ClientOrClosed).named("70 KB header name"));
    // Over the 64 KiB header buffer, on a request that is otherwise fine.
    let pad = format!(
        "GET /version HTTP/1.1\r\nHost: localhost\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(100 * 1024)
    );
    cases.push(
        Case::new(pad.into_bytes(), Expect::ClientOrClosed)
            .named("GET /version with one 100 KB header"),
    );
    let mut pads = b"GET /version HTTP/1.1\r\nHost: localhost\r\n".to_vec();
    for i in 0..80 {
        pads.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "p".repeat(1024)).as_bytes());
    }
    pads.extend_from_slice(b"\r\n");
    cases
        .push(Case::new(pads, Expect::ClientOrClosed).named("GET /version with 80 x 1 KB headers"));
    let url = format!("/node/{}", "u".repeat(100 * 1024));
    cases.push(Case::new(get(&url), Expect::ClientOrClosed).named("100 KB URL"));
    let query = format!("/version?{}", "q=1&".repeat(25 * 1024));
    cases.push(Case::new(get(&query), Expect::ClientOrClosed).named("100 KB query string"));
    // Bodies over the 64 KiB limit: 413, or closed while the client is
    // still sending what the server will not read.
    let too_big: Expect = Expect::ClientOrClosed;
    let mut body = b"node=ok1.lab&os=sle&pad=".to_vec();
    body.resize(1024 * 1024, b'a');
    cases.push(
        Case::new(form_post("/node/provision", &body), too_big).named("1 MB urlencoded body"),
    );
    let mut body = b"node=ok1.lab&os=sle&pad=".to_vec();
    body.resize(64 * 1024 + 1, b'a');
    cases.push(
        Case::new(form_post("/node/provision", &body), too_big).named("64 KiB + 1 urlencoded body"),
    );
    let mut mpb = multipart_body(&[("node", b"ok1.lab"), ("os", b"sle")]);
    let pad = multipart_body(&[("pad", &vec![b'm'; 1024 * 1024])]);
    mpb.truncate(mpb.len() - BOUNDARY.len() - 6);
    mpb.extend_from_slice(&pad);
    cases.push(
        Case::new(
            multipart_raw("/node/provision", &format!("; boundary={BOUNDARY}"), &mpb),
            too_big,
        )
        .named("1 MB multipart body"),
    );
    let mut chunked = b"POST /node/provision HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
        Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    chunked.extend_from_slice(b"13\r\nnode=ok1.lab&os=sle\r\n");
    for _ in 0..64 {
        chunked.extend_from_slice(b"4000\r\n");
        chunked.extend_from_slice(&[b'a'; 0x4000]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    cases.push(Case::new(chunked, too_big).named("1 MB chunked body, no Content-Length"));
    // Declared, never sent: refused at once, not waited for.
    let declared = "POST /node/provision HTTP/1.1\r\nHost: localhost\r\n\
        Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10485760\r\n\r\n";
    cases.push(
        Case::new(declared.as_bytes().to_vec(), Expect::Codes(&[413]))
            .named("10 MB Content-Length declared, not sent"),
    );
    let expect = "POST /node/provision HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n\
        Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10485760\r\n\r\n";
    cases.push(
        Case::new(expect.as_bytes().to_vec(), Expect::Codes(&[413]))
            .named("10 MB Content-Length with Expect: 100-continue"),
    );
    // Exactly at the limit is read (and refused for its content, not size).
    let mut body = b"os=sle&node=".to_vec();
    body.resize(64 * 1024, b'a');
    cases.push(
        Case::new(
            form_post("/node/provision", &body),
            Expect::Codes(&[400, 404]),
        )
        .named("64 KiB urlencoded body (at the limit): a 10 KB+ node name"),
    );
    c.run(w, cases);
    c
}

fn class_multipart(w: &mut Watch) -> Class {
    let mut c = Class::new("4 malformed multipart");
    let b = BOUNDARY;
    let valid = multipart_body(&[("node", b"ok1.lab"), ("os", b"sle")]);
    let mut thousand = Vec::new();
    for i in 0..1000 {
        thousand.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nx\r\n")
                .as_bytes(),
        );
    }
    thousand.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    let nested_inner = multipart_body(&[("node", b"ok1.lab"), ("os", b"sle")]);
    let mut nested = format!(
        "--outer\r\nContent-Disposition: form-data; name=\"node\"\r\n\
         Content-Type: multipart/mixed; boundary={b}\r\n\r\n"
    )
    .into_bytes();
    nested.extend_from_slice(&nested_inner);
    nested.extend_from_slice(b"\r\n--outer--\r\n");
    let bodies: Vec<(&str, String, Vec<u8>)> = vec![
        ("missing boundary", String::new(), valid.clone()),
        ("empty boundary", "; boundary=\"\"".into(), valid.clone()),
        ("wrong boundary", "; boundary=other-boundary".into(), valid.clone()),
        (
            "unterminated (no closing delimiter)",
            format!("; boundary={b}"),
            valid[..valid.len() - b.len() - 6].to_vec(),
        ),
        (
            "unterminated part",
            format!("; boundary={b}"),
            format!("--{b}\r\nContent-Disposition: form-data; name=\"node\"\r\n\r\nok1.lab")
                .into_bytes(),
        ),
        (
            "part without name",
            format!("; boundary={b}"),
            format!("--{b}\r\nContent-Disposition: form-data\r\n\r\nok1.lab\r\n--{b}--\r\n")
                .into_bytes(),
        ),
        (
            "part without Content-Disposition",
            format!("; boundary={b}"),
            format!("--{b}\r\nContent-Type: text/plain\r\n\r\nok1.lab\r\n--{b}--\r\n")
                .into_bytes(),
        ),
        ("1000 parts", format!("; boundary={b}"), thousand),
        ("nested multipart", "; boundary=outer".into(), nested),
        ("binary garbage", format!("; boundary={b}"), garbage(4096, 1)),
        (
            "garbage after the delimiter",
            format!("; boundary={b}"),
            [format!("--{b}\r\n").into_bytes(), garbage(1024, 2)].concat(),
        ),
        (
            "200-char boundary",
            format!("; boundary={}", "z".repeat(200)),
            format!(
                "--{z}\r\nContent-Disposition: form-data; name=\"node\"\r\n\r\nnope.lab\r\n--{z}--\r\n",
                z = "z".repeat(200)
            )
            .into_bytes(),
        ),
        (
            "non-UTF-8 field",
            format!("; boundary={b}"),
            multipart_body(&[("node", b"\xff\xfe\xc0\xae"), ("os", b"sle")]),
        ),
        (
            "10 KB part header",
            format!("; boundary={b}"),
            format!(
                "--{b}\r\nContent-Disposition: form-data; name=\"node\"\r\nX-Pad: {}\r\n\r\nnope.lab\r\n--{b}--\r\n",
                "h".repeat(10 * 1024)
            )
            .into_bytes(),
        ),
        (
            "traversal in filename",
            format!("; boundary={b}"),
            format!(
                "--{b}\r\nContent-Disposition: form-data; name=\"node\"; filename=\"../../outside-secret.txt\"\r\n\r\nnope.lab\r\n--{b}--\r\n"
            )
            .into_bytes(),
        ),
        (
            "bare LF line ends",
            format!("; boundary={b}"),
            format!("--{b}\nContent-Disposition: form-data; name=\"node\"\n\nnope.lab\n--{b}--\n")
                .into_bytes(),
        ),
    ];
    let mut cases = Vec::new();
    for (what, params, body) in bodies {
        for path in ["/node/provision", "/node/dismiss"] {
            cases.push(
                Case::new(multipart_raw(path, &params, &body), Expect::Client)
                    .named(format!("POST {path} multipart: {what}")),
            );
        }
    }
    c.run(w, cases);
    c
}

fn class_framing(w: &mut Watch) -> Class {
    let mut c = Class::new("5 bad framing/smuggling/garbage");
    let hidden = "GET /node/bootrecord/ok1.lab/sle HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let head = "POST /node/dismiss HTTP/1.1\r\nHost: localhost\r\n\
        Content-Type: application/x-www-form-urlencoded\r\n";
    let smuggle =
        |framing: &str, body: &str| format!("{head}{framing}\r\n{body}{hidden}").into_bytes();
    let mut cases = vec![
        Case::new(
            smuggle("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"),
            Expect::Client,
        )
        .named("smuggle: Content-Length then Transfer-Encoding: chunked, hidden GET bootrecord")
        .sole(),
        Case::new(
            smuggle("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"),
            Expect::Client,
        )
        .named("smuggle: Transfer-Encoding: chunked then Content-Length, hidden GET bootrecord")
        .sole(),
        Case::new(
            smuggle(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n",
                "0\r\n\r\n",
            ),
            Expect::Client,
        )
        .named("smuggle: two Transfer-Encoding headers (chunked, identity) + Content-Length")
        .sole(),
        Case::new(
            smuggle("Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"),
            Expect::Client,
        )
        .named("smuggle: Transfer-Encoding: xchunked + Content-Length")
        .sole(),
        Case::new(
            smuggle("Transfer-Encoding : chunked\r\n", "0\r\n\r\n"),
            Expect::Client,
        )
        .named("smuggle: 'Transfer-Encoding : chunked' (space before colon)")
        .sole(),
        Case::new(
            smuggle("Transfer-Encoding:\x0bchunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"),
            Expect::Client,
        )
        .named("smuggle: Transfer-Encoding with a vertical tab + Content-Length")
        .sole(),
        Case::new(
            smuggle("Content-Length: 0\r\nContent-Length: 64\r\n", ""),
            Expect::Client,
        )
        .named("smuggle: two different Content-Length headers")
        .sole(),
        Case::new(
            smuggle("Content-Length: 0, 64\r\n", ""),
            Expect::Client,
        )
        .named("smuggle: Content-Length: 0, 64")
        .sole(),
        Case::new(
            format!(
                "POST /node/dismiss HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}"
            )
            .into_bytes(),
            Expect::Client,
        )
        .named("smuggle: HTTP/1.0 with Transfer-Encoding: chunked")
        .sole(),
    ];
    for cl in [
        "-1",
        "abc",
        "1e3",
        "+5",
        "0x10",
        "5 5",
        "99999999999999999999999",
    ] {
        cases.push(
            Case::new(
                format!("{head}Content-Length: {cl}\r\n\r\nnode=").into_bytes(),
                Expect::Client,
            )
            .named(format!("Content-Length: {cl}")),
        );
    }
    let chunked = |chunks: &str| {
        format!("{head}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{chunks}")
            .into_bytes()
    };
    for (what, body) in [
        ("chunk size zz", "zz\r\nnode=\r\n0\r\n\r\n"),
        ("chunk size -1", "-1\r\nnode=\r\n0\r\n\r\n"),
        (
            "chunk size overflow",
            "ffffffffffffffffffffff\r\nnode=\r\n0\r\n\r\n",
        ),
        ("chunk shorter than its size", "ff\r\nnode=\r\n0\r\n\r\n"),
        (
            "chunk longer than its size",
            "2\r\nnode=nope.lab\r\n0\r\n\r\n",
        ),
        ("no last chunk", "5\r\nnode=\r\n"),
        ("chunk size with junk", "5;\x01\r\nnode=\r\n0\r\n\r\n"),
    ] {
        cases.push(Case::new(chunked(body), Expect::Client).named(format!("chunked: {what}")));
    }
    // A valid body under a transfer coding the server cannot decode.
    for te in ["gzip, chunked", "gzip", "chunked, gzip", "deflate, chunked"] {
        let body = "13\r\nnode=ok1.lab&os=sle\r\n0\r\n\r\n";
        let req = format!(
            "POST /node/provision HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: {te}\r\n\r\n{body}"
        );
        cases.push(Case::new(req.into_bytes(), Expect::Client).named(format!(
            "Transfer-Encoding: {te} (body node=ok1.lab&os=sle)"
        )));
    }
    let raw: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("HTTP/0.9 GET /", b"GET /\r\n".to_vec(), Expect::ClientOrClosed),
        ("garbage bytes", garbage(512, 3), Expect::ClientOrClosed),
        (
            "GET / HTTP/9.9",
            b"GET / HTTP/9.9\r\nHost: localhost\r\n\r\n".to_vec(),
            Expect::Client,
        ),
        (
            "GET / http/1.1 (lowercase)",
            b"GET / http/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            Expect::Client,
        ),
        (
            "two spaces in the request line",
            b"GET  /version HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            Expect::Client,
        ),
        (
            "junk after the version",
            b"GET /version HTTP/1.1 x\r\nHost: localhost\r\n\r\n".to_vec(),
            Expect::Client,
        ),
        (
            "h2 preface to HTTP/1",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            Expect::ClientOrClosed,
        ),
        (
            "bare LF line ends, traversal target",
            b"GET /node/bootrecord/..%2f..%2fetc/sle HTTP/1.1\nHost: localhost\nConnection: close\n\n"
                .to_vec(),
            NOT_FOUND_OR_BAD,
        ),
        (
            "bare CR line ends",
            b"GET /version HTTP/1.1\rHost: localhost\r\r".to_vec(),
            Expect::ClientOrClosed,
        ),
        (
            "header without colon",
            b"GET /version HTTP/1.1\r\nHost: localhost\r\nX-No-Colon\r\n\r\n".to_vec(),
            Expect::Client,
        ),
        (
            "request line as a header (no colon)",
            format!("GET /version HTTP/1.1\r\nHost: localhost\r\n{hidden}").into_bytes(),
            Expect::Client,
        ),
        (
            "space before colon",
            b"GET /version HTTP/1.1\r\nHost : localhost\r\n\r\n".to_vec(),
            Expect::Client,
        ),
        (
            "obsolete line folding",
            b"GET /version HTTP/1.1\r\nHost: localhost\r\nX-Fold: a\r\n b\r\n\r\n".to_vec(),
            Expect::Client,
        ),
        (
            "NUL in a header value",
            b"GET /version HTTP/1.1\r\nHost: localhost\r\nX-Nul: a\0b\r\n\r\n".to_vec(),
            Expect::Client,
        ),
        (
            "empty header name",
            b"GET /version HTTP/1.1\r\nHost: localhost\r\n: v\r\n\r\n".to_vec(),
            Expect::Client,
        ),
    ];
    for (what, req, expect) in raw {
        cases.push(Case::new(req, expect).named(what));
    }
    c.run(w, cases);
    c
}

/// Hosts the serve loop must refuse: 400.
fn bad_hosts() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = [
        "evil.example/x?y=",
        "user:pw@evil.example",
        "evil.example:99999",
        "evil.example:0",
        "evil.example:",
        ":80",
        "",
        "a b",
        "[::1",
        "evil.example:80:80",
        "evil.example#frag",
        "-evil.example",
        "a..b",
        "localhost, evil.example",
    ]
    .iter()
    .map(|h| (format!("Host: {h:?}"), h.as_bytes().to_vec()))
    .collect();
    v.push((
        "Host: UTF-8 \"\u{e9}vil.lab\"".into(),
        "\u{e9}vil.lab".as_bytes().to_vec(),
    ));
    v.push(("Host: Latin-1 byte 0xe9".into(), b"\xe9vil.lab".to_vec()));
    v.push(("Host: 300-char label".into(), vec![b'a'; 300]));
    v.push(("Host: 60 KB".into(), vec![b'h'; 60 * 1024]));
    v
}

fn host_request(method: &str, path: &str, hosts: &[&[u8]], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
    for h in hosts {
        r.extend_from_slice(b"Host: ");
        r.extend_from_slice(h);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"Connection: close\r\n");
    if method == "POST" {
        r.extend_from_slice(b"Content-Type: application/x-www-form-urlencoded\r\n");
        r.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(body);
    r
}

fn class_hosts(w: &mut Watch) -> Class {
    let mut c = Class::new("6 bad Host");
    let mut cases = Vec::new();
    let valid = b"node=ok1.lab&os=sle";
    for (what, h) in bad_hosts() {
        cases.push(
            Case::new(
                host_request("GET", "/version", &[&h], b""),
                Expect::Codes(&[400]),
            )
            .named(format!("GET /version, {what}")),
        );
        // A Host that slipped through would provision: a write.
        cases.push(
            Case::new(
                host_request("POST", "/node/provision", &[&h], valid),
                Expect::Codes(&[400]),
            )
            .named(format!("POST /node/provision (valid form), {what}")),
        );
    }
    let pairs: &[(&str, &[&[u8]])] = &[
        (
            "two Host headers (valid, valid)",
            &[b"localhost", b"evil.example"],
        ),
        (
            "two Host headers (valid, bad)",
            &[b"localhost", b"evil.example/x?y="],
        ),
        (
            "two Host headers (bad, valid)",
            &[b"evil.example/x?y=", b"localhost"],
        ),
        ("two equal Host headers", &[b"localhost", b"localhost"]),
    ];
    for (what, hosts) in pairs {
        cases.push(
            Case::new(
                host_request("GET", "/version", hosts, b""),
                Expect::Codes(&[400]),
            )
            .named(format!("GET /version, {what}")),
        );
        cases.push(
            Case::new(
                host_request("POST", "/node/provision", hosts, valid),
                Expect::Codes(&[400]),
            )
            .named(format!("POST /node/provision (valid form), {what}")),
        );
    }
    let huge = vec![b'h'; 100 * 1024];
    cases.push(
        Case::new(
            host_request("GET", "/version", &[&huge], b""),
            Expect::ClientOrClosed,
        )
        .named("GET /version, Host: 100 KB"),
    );
    c.run(w, cases);
    c
}

fn class_methods(w: &mut Watch) -> Class {
    let mut c = Class::new("7 bad methods");
    let m = Expect::Codes(&[400, 404, 405]);
    let valid: &[u8] = b"node=ok1.lab&os=sle";
    let ct: &[u8] = b"Content-Type: application/x-www-form-urlencoded\r\n";
    let mut cases = vec![
        Case::new(http("DELETE", b"/nodes", b"", b""), m),
        Case::new(http("PUT", b"/node/provision", ct, valid), m),
        Case::new(http("PATCH", b"/node/dismiss", ct, b"node=ok1.lab"), m),
        Case::new(http("DELETE", b"/node/ok1.lab", b"", b""), m),
        Case::new(http("TRACE", b"/", b"", b""), m),
        Case::new(http("TRACE", b"/version", b"Max-Forwards: 0\r\n", b""), m),
        Case::new(
            b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n".to_vec(),
            m,
        )
        .named("CONNECT evil.example:443"),
        Case::new(
            b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
            m,
        )
        .named("OPTIONS *"),
        Case::new(http("OPTIONS", b"/node/provision", b"", b""), m),
        Case::new(get("/node/provision"), m),
        Case::new(get("/node/dismiss"), m),
        Case::new(get("/tasks/node/dismiss"), m),
        Case::new(http("HEAD", b"/node/provision", b"", b""), m),
        Case::new(http("get", b"/version", b"", b""), m),
        Case::new(http("get", b"/node/bootrecord/ok1.lab/sle", b"", b""), m),
        Case::new(http("POST", b"/node/bootrecord/ok1.lab/sle", ct, valid), m),
        Case::new(http("PUT", b"/node/bootrecord/ok1.lab/sle", ct, valid), m),
        Case::new(http("POST", b"/node/rmbootrecord/ok1.lab", ct, b""), m),
        Case::new(http("DELETE", b"/node/rmbootrecord/ok1.lab", b"", b""), m),
        Case::new(
            http("POST", b"/images/sle/sle-15.6-1.0.xz", b"", b"overwrite"),
            m,
        ),
        Case::new(http("PUT", b"/images/sle/new.xz", b"", b"new image"), m),
        Case::new(http("DELETE", b"/images/sle/sle-15.6-1.0.xz", b"", b""), m),
        Case::new(http("POST", b"/version", ct, valid), m),
        Case::new(http("DELETE", b"/tasks/status/x", b"", b""), m),
        Case::new(http("G(T", b"/version", b"", b""), m),
    ];
    let long = "M".repeat(10 * 1024);
    cases.push(Case::new(http(&long, b"/version", b"", b""), m).named("10 KB method name"));
    c.run(w, cases);
    c
}

// ---------------------------------------------------------------------------
// Valid Host: the Location header

/// POST a provision of ok1.lab with these Host lines (none: HTTP/1.0);
/// its response.
fn provision_with_host(addr: SocketAddr, host: Option<&str>) -> Outcome {
    let body = b"node=ok1.lab&os=sle";
    let req = match host {
        Some(h) => host_request("POST", "/node/provision", &[h.as_bytes()], body),
        None => {
            let mut r = format!(
                "POST /node/provision HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(body);
            r
        }
    };
    exchange(addr, &req)
}

/// The `Location` of a 202 must be exactly `base/tasks/status/<TaskID>`.
fn location_is(o: &Outcome, base: &str) -> Result<(), String> {
    if o.code() != Some(202) {
        return Err(format!("got {}", o.describe()));
    }
    let id = o.header("taskid").ok_or("no TaskID header")?;
    let want = format!("{base}/tasks/status/{id}");
    let got = o.header("location").unwrap_or_default();
    let v: Value = serde_json::from_slice(o.body()).map_err(|e| e.to_string())?;
    if got != want || v["Location"] != want.as_str() {
        return Err(format!(
            "Location {got:?} (body {}), want {want:?}",
            v["Location"]
        ));
    }
    Ok(())
}

fn class_locations() -> Class {
    let mut c = Class::new("6b valid Host -> Location (writes, own server)");
    let fx = hostile_fixture();
    let s = Server::start(&fx, &[]);
    let addr = addr_of(&s);
    for host in [
        "prov.example:8080",
        "prov.example",
        "10.9.8.7",
        "10.9.8.7:5000",
        "[::1]:5000",
        "prov.lab.",
        "a_b.lab:1",
    ] {
        let o = provision_with_host(addr, Some(host));
        c.tally(o.label());
        let r = location_is(&o, &format!("http://{host}"));
        c.fail(
            &format!("Host: {host}"),
            &r.err().into_iter().collect::<Vec<_>>(),
        );
        // The running task's status carries the same Location.
        if let Some(id) = o.header("taskid") {
            let st = exchange(
                addr,
                &host_request(
                    "GET",
                    &format!("/tasks/status/{id}"),
                    &[host.as_bytes()],
                    b"",
                ),
            );
            c.tally(st.label());
            let want = format!("http://{host}/tasks/status/{id}");
            if st.code() == Some(202) && st.header("location").as_deref() != Some(&want) {
                c.fail(
                    &format!("GET /tasks/status/{id}, Host: {host}"),
                    &[format!(
                        "Location {:?}, want {want:?}",
                        st.header("location")
                    )],
                );
            }
        }
    }
    // No Host (HTTP/1.0): the address the request reached.
    let o = provision_with_host(addr, None);
    c.tally(o.label());
    let r = location_is(&o, &s.url);
    c.fail(
        "HTTP/1.0 without Host",
        &r.err().into_iter().collect::<Vec<_>>(),
    );

    // With --public-url: that base, whatever Host says; a bad Host is
    // still refused.
    let fx2 = hostile_fixture();
    let s2 = Server::start(&fx2, &["--public-url", "http://prov.lab:5000"]);
    let addr2 = addr_of(&s2);
    for host in [
        Some("evil.example"),
        Some("localhost:1"),
        Some("[::1]"),
        None,
    ] {
        let o = provision_with_host(addr2, host);
        c.tally(o.label());
        let r = location_is(&o, "http://prov.lab:5000");
        c.fail(
            &format!("--public-url, Host: {host:?}"),
            &r.err().into_iter().collect::<Vec<_>>(),
        );
    }
    for host in ["evil.example/x?y=", "user:pw@evil.example"] {
        let o = provision_with_host(addr2, Some(host));
        c.tally(o.label());
        if o.code() != Some(400) {
            c.fail(
                &format!("--public-url, bad Host: {host}"),
                &[format!("got {}", o.describe())],
            );
        }
    }
    c
}

// ---------------------------------------------------------------------------
// Class 8: slow clients

/// How the server ended a slow connection, and when (since the trickle
/// started).
#[derive(Debug, Clone)]
enum End {
    Open,
    Closed(Duration),
    Reset(Duration),
    Answered(u16, Duration),
}

impl End {
    fn label(&self) -> String {
        match self {
            End::Open => "OPEN".into(),
            End::Closed(_) => "closed".into(),
            End::Reset(_) => "reset".into(),
            End::Answered(code, _) => code.to_string(),
        }
    }

    /// Ended by the server within `bound` with nothing but a 408/4xx.
    fn ended_within(&self, bound: Duration) -> bool {
        match self {
            End::Open => false,
            End::Closed(t) | End::Reset(t) => *t <= bound,
            End::Answered(code, t) => (400..500).contains(code) && *t <= bound,
        }
    }
}

/// Trickle `bytes` into each of `conns`, one byte per connection per
/// [`PACE`], noting how and when the server ends each, until all have
/// ended or `bound` has passed. `during(round, open)` runs after each
/// round with the number of connections still open (a
/// normal client during the attack).
fn trickle(
    conns: &mut [TcpStream],
    bytes: &[u8],
    bound: Duration,
    mut during: impl FnMut(usize, usize),
) -> Vec<End> {
    for s in conns.iter() {
        s.set_nonblocking(true).unwrap();
    }
    let start = Instant::now();
    let mut ends = vec![End::Open; conns.len()];
    let mut sent = vec![0usize; conns.len()];
    let mut buf = [0u8; 1024];
    let mut round = 0;
    loop {
        for (i, s) in conns.iter_mut().enumerate() {
            if !matches!(ends[i], End::Open) {
                continue;
            }
            let t = start.elapsed();
            match s.read(&mut buf) {
                Ok(0) => ends[i] = End::Closed(t),
                Ok(n) => {
                    let code = std::str::from_utf8(&buf[..n.min(12)])
                        .ok()
                        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0);
                    ends[i] = End::Answered(code, t);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if sent[i] < bytes.len() {
                        match s.write(&bytes[sent[i]..=sent[i]]) {
                            Ok(n) => sent[i] += n,
                            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                            Err(_) => ends[i] = End::Reset(t),
                        }
                    }
                }
                Err(_) => ends[i] = End::Reset(t),
            }
        }
        during(
            round,
            ends.iter().filter(|e| matches!(e, End::Open)).count(),
        );
        if ends.iter().all(|e| !matches!(e, End::Open)) || start.elapsed() > bound {
            break;
        }
        std::thread::sleep(PACE);
        round += 1;
    }
    for s in conns.iter() {
        s.set_nonblocking(false).unwrap();
    }
    ends
}

/// Open `n` connections; with `first`, send it on each and read its
/// response (so the server has accepted them all). A connection the server
/// closes unanswered is opened again: with a per-client limit, the slot of
/// a connection that just ended is freed a moment after its client saw the
/// end.
fn open(addr: SocketAddr, n: usize, first: Option<&[u8]>) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let deadline = Instant::now() + BOUND;
            loop {
                let mut s = TcpStream::connect_timeout(&addr, BOUND).expect("connect");
                let Some(req) = first else {
                    return s;
                };
                let _ = s.write_all(req);
                let mut buf = Vec::new();
                let o = read_response(&mut s, &mut buf, deadline);
                if o.code() == Some(200) {
                    return s;
                }
                let refused = matches!(o, Outcome::Closed | Outcome::Reset);
                assert!(
                    refused && Instant::now() < deadline,
                    "first request: {}",
                    o.describe()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        })
        .collect()
}

/// Open `n` idle connections, 50 at a time (the listen backlog is 128: a
/// SYN beyond it is retried a second later), each batch followed by a
/// `GET /version` on a new connection: the accept loop is first come, first
/// served, so its answer means the server holds every earlier connection.
fn open_batched(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        for _ in 0..(n - v.len()).min(50) {
            v.push(TcpStream::connect_timeout(&addr, BOUND).expect("connect"));
        }
        let o = exchange(addr, &get("/version"));
        assert_eq!(
            o.code(),
            Some(200),
            "GET /version while opening: {}",
            o.describe()
        );
    }
    v
}

/// `GET /version` without `Connection: close`.
const KEEP_ALIVE: &[u8] = b"GET /version HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// A header that never ends.
fn endless_head() -> Vec<u8> {
    let mut h = b"GET /version HTTP/1.1\r\nHost: localhost\r\nX-Slow: ".to_vec();
    h.resize(h.len() + 200, b's');
    h
}

fn record_ends(c: &mut Class, what: &str, ends: &[End], bound: Duration) {
    let last = ends
        .iter()
        .filter_map(|e| match e {
            End::Closed(t) | End::Reset(t) | End::Answered(_, t) => Some(*t),
            End::Open => None,
        })
        .max()
        .unwrap_or_default();
    c.notes
        .push(format!("last ended after {} ms", last.as_millis()));
    let mut late = Vec::new();
    for (i, e) in ends.iter().enumerate() {
        c.tally(e.label());
        if !e.ended_within(bound) {
            late.push(format!("#{i}: {e:?}"));
        }
    }
    if !late.is_empty() {
        c.fail(
            what,
            &[format!(
                "{} of {} not ended by the server within {bound:?} with a close or 4xx: {}",
                late.len(),
                ends.len(),
                late.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            )],
        );
    }
}

/// (a) 250 slow headers, (b) slow bodies, (c) idle keep-alive, on a server
/// with 1 s header and body timeouts.
fn class_slow(rows: &mut Vec<Class>) {
    let fx = hostile_fixture();
    let s = Server::start(&fx, &["--header-timeout", "1", "--body-timeout", "1"]);
    let addr = addr_of(&s);
    let mut w = Watch::new(addr, fx.path("tftp"));
    // 1 s limit, a tick of pacing resolution, scheduling slack.
    let bound = Duration::from_secs(4);

    let mut a = Class::new("8a 250 slow headers (1 byte/200 ms)");
    let mut conns = open_batched(addr, 250);
    // A normal client while (nearly) all 250 are open.
    let mut during = Vec::new();
    let ends = trickle(
        &mut conns,
        &endless_head(),
        Duration::from_secs(10),
        |round, open| {
            if round == 1 || round == 3 {
                during.push((open, exchange(addr, &get("/version"))));
            }
        },
    );
    drop(conns);
    record_ends(&mut a, "slow header connections", &ends, bound);
    for (open, o) in &during {
        a.tally(format!("during:{}", o.label()));
        a.notes
            .push(format!("GET /version {} with {open} open", o.label()));
    }
    let attacked = during.first().is_some_and(|(open, _)| *open >= 200);
    if !attacked || during.len() < 2 || during.iter().any(|(_, o)| o.code() != Some(200)) {
        a.fail(
            "GET /version during the attack",
            &[format!(
                "{:?}",
                during
                    .iter()
                    .map(|(open, o)| format!("{open} open: {}", o.describe()))
                    .collect::<Vec<_>>()
            )],
        );
    }
    let problems = w.check();
    a.fail("after the slow headers", &problems);
    rows.push(a);

    let mut b = Class::new("8b slow bodies (1 byte/200 ms)");
    let head = b"POST /node/provision HTTP/1.1\r\nHost: localhost\r\n\
        Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\n";
    let mut conns: Vec<TcpStream> = (0..5)
        .map(|_| {
            let mut s = TcpStream::connect_timeout(&addr, BOUND).expect("connect");
            s.write_all(head).unwrap();
            s
        })
        .collect();
    let mut body = b"node=ok1.lab&os=sle&pad=".to_vec();
    body.resize(200, b'b');
    let ends = trickle(&mut conns, &body, Duration::from_secs(10), |_, _| {});
    drop(conns);
    record_ends(&mut b, "slow body connections", &ends, bound);
    b.fail("after the slow bodies", &w.check());
    rows.push(b);

    let mut c = Class::new("8c idle keep-alive after a request");
    let mut conns = open(addr, 5, Some(KEEP_ALIVE));
    let ends = trickle(&mut conns, b"", Duration::from_secs(10), |_, _| {});
    drop(conns);
    record_ends(&mut c, "idle keep-alive connections", &ends, bound);
    c.fail("after the idle connections", &w.check());
    rows.push(c);
}

/// (d) at most 8 connections from one client address.
fn class_per_client() -> Class {
    let mut c = Class::new("8d 9th+ connection from one client (limit 8)");
    let fx = hostile_fixture();
    let s = Server::start(&fx, &["--max-connections-per-client", "8"]);
    let addr = addr_of(&s);
    let mut w = Watch::new(addr, fx.path("tftp"));
    // Eight held (each served once, so the server has counted it).
    let mut held = open(addr, 8, Some(KEEP_ALIVE));
    for _ in 0..8 {
        c.tally("held:200");
    }
    // Twenty more at once: each closed without an answer, at once.
    let mut extra = open(addr, 20, None);
    let ends = trickle(&mut extra, b"", Duration::from_secs(5), |_, _| {});
    drop(extra);
    for (i, e) in ends.iter().enumerate() {
        c.tally(format!("extra:{}", e.label()));
        let at_once = matches!(e, End::Closed(t) | End::Reset(t) if *t < Duration::from_secs(2));
        if !at_once {
            c.fail(&format!("connection #{}", 9 + i), &[format!("{e:?}")]);
        }
    }
    // The eight still work.
    for (i, h) in held.iter_mut().enumerate() {
        h.write_all(KEEP_ALIVE).unwrap();
        let mut buf = Vec::new();
        let o = read_response(h, &mut buf, Instant::now() + BOUND);
        c.tally(format!("held:{}", o.label()));
        if o.code() != Some(200) {
            c.fail(&format!("held connection #{}", i + 1), &[o.describe()]);
        }
    }
    // Closed; the server notices each EOF and frees its slot, so a new
    // connection is served (after at most a few refused while it does).
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut tries = 0;
    let after = loop {
        tries += 1;
        let o = exchange(addr, &get("/version"));
        if o.code() == Some(200) || Instant::now() > deadline {
            break o;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    c.tally(format!("after:{}", after.label()));
    if after.code() != Some(200) {
        c.fail(
            "new connection after the eight closed",
            &[format!("{} after {tries} tries", after.describe())],
        );
    }
    c.fail("after the per-client limit", &w.check());
    c
}

/// (e) SIGTERM with 50 slow connections open and a provision running.
fn class_sigterm() -> Class {
    let mut c = Class::new("8e SIGTERM, 50 slow conns + running provision");
    let fx = hostile_fixture();
    let mut s = Server::start(&fx, &["--shutdown-grace", "1"]);
    let addr = addr_of(&s);
    let o = exchange(
        addr,
        &form(
            "/node/provision",
            &[("node", SLOW_NODE.as_bytes()), ("os", b"sle")],
        ),
    );
    let id = o.header("taskid").unwrap_or_default();
    assert_eq!(
        o.code(),
        Some(202),
        "provision {SLOW_NODE}: {}",
        o.describe()
    );
    let record = fx.path(SLOW_RECORD);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !read(&record).starts_with(&format!("# os={IMAGE}\n")) {
        assert!(
            Instant::now() < deadline,
            "no install record for {SLOW_NODE}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // 50 connections, each served once, then sending the next request's
    // headers one byte at a time, across the stop.
    let mut conns = open(addr, 50, Some(KEEP_ALIVE));
    let pid = s.child.0.id().to_string();
    let stop = std::thread::scope(|scope| {
        let t = scope.spawn(|| {
            trickle(
                &mut conns,
                &endless_head(),
                Duration::from_secs(15),
                |_, _| {},
            )
        });
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let sent = Instant::now();
        let deadline = sent + Duration::from_secs(10);
        let exit = loop {
            if let Some(st) = s.child.0.try_wait().unwrap() {
                break Some((st, sent.elapsed()));
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let ends = t.join().unwrap();
        (exit, ends)
    });
    let (exit, ends) = stop;
    // Grace 1 s, then the engine's stop of the provision.
    let bound = Duration::from_secs(4);
    match exit {
        Some((st, took)) => {
            c.tally(format!("exit:{}ms", took.as_millis()));
            if !st.success() || took > bound {
                c.fail(
                    "SIGTERM",
                    &[format!("exit {st} after {took:?} (bound {bound:?})")],
                );
            }
        }
        None => {
            c.tally("exit:HANG");
            c.fail(
                "SIGTERM",
                &["server still running 10 s after SIGTERM".into()],
            );
        }
    }
    record_ends(
        &mut c,
        "slow connections across SIGTERM",
        &ends,
        Duration::from_secs(10),
    );
    let rec = read(&record);
    if !rec.starts_with("# os=local\n") {
        c.fail(
            "boot record of the interrupted provision",
            &[format!(
                "{SLOW_RECORD} reads {:?}",
                &rec[..rec.len().min(40)]
            )],
        );
    }
    drop(s);
    let s = Server::start(&fx, &[]);
    let addr = addr_of(&s);
    let st = exchange(addr, &get(&format!("/tasks/status/{id}")));
    c.tally(format!("task:{}", st.label()));
    let body: Value = serde_json::from_slice(st.body()).unwrap_or_default();
    if st.code() != Some(500)
        || body != serde_json::json!({"error": "interrupted by server restart"})
    {
        c.fail(
            &format!("GET /tasks/status/{id} after restart"),
            &[st.describe()],
        );
    }
    c
}

// ---------------------------------------------------------------------------

#[test]
fn hostile_input() {
    let started = Instant::now();
    let fx = hostile_fixture();
    let s = Server::start(&fx, &["--header-timeout", "2", "--body-timeout", "2"]);
    let mut w = Watch::new(addr_of(&s), fx.path("tftp"));
    let mut rows = vec![
        class_paths(&mut w),
        class_forms(&mut w),
        class_oversized(&mut w),
        class_multipart(&mut w),
        class_framing(&mut w),
        class_hosts(&mut w),
        class_methods(&mut w),
    ];
    drop(s);
    rows.push(class_locations());
    class_slow(&mut rows);
    rows.push(class_per_client());
    rows.push(class_sigterm());
    print_table(&rows);
    eprintln!("hostile input: {:.1} s", started.elapsed().as_secs_f64());
    let failed: Vec<&String> = rows.iter().flat_map(|r| &r.failures).collect();
    assert!(
        failed.is_empty(),
        "{} hostile case(s) misbehaved (see the table above)",
        failed.len()
    );
}
