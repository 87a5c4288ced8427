//! pelagos-server's dashboard (`/ui`) in a real browser: the `peers_browser`
//! target, since it needs installed programs (`scripts/install-test-deps.sh`:
//! Debian's `chromium`, Playwright in the test venv, Apache's `htpasswd`).
//!
//! - `dashboard_follows_a_provision_in_chromium`: the real binary on the
//!   demo lab; `dashboard.py` (Playwright, `/usr/bin/chromium`) loads `/ui`,
//!   sees the five demo nodes and a hostile console line shown as text, then
//!   follows a provision this test starts over REST through its stages to
//!   done, opens the node's console and the task's log, and saves a
//!   screenshot (`<target dir>/ui-screenshot.png`, path printed).
//! - `dashboard_shows_disabled_nodes_with_their_problems`: a lab with a
//!   node the lab config disables for a malformed MAC and one named with
//!   markup: every node listed, each disabled one with its problems, the
//!   name shown as text (`<target dir>/ui-problems.png`).
//! - `dashboard_asks_for_credentials_with_htpasswd`: with `--htpasswd`,
//!   `/ui`, its assets and `/ui/events` answer 401 with `WWW-Authenticate`
//!   (browsers prompt), and with credentials the page and the stream.

// The screenshot's path and the stages seen are printed for the reader.
#![allow(clippy::print_stdout)]

use pelagos_testkit::{KillOnDrop, venv_python, which};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const NODE: &str = "storage-01.lab.example.com";
const HOSTILE_NODE: &str = "storage-02.lab.example.com";
const HOSTILE_SHORT: &str = "storage-02";
const HOSTILE: &str =
    r#"<img src=x onerror="window.__xss=1"><script>window.__xss=2</script><b>&amp;</b> 'q' "q""#;

/// Lines of a child's stdout, read on a thread.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The line after `prefix` within `timeout`, the other lines passed over.
fn wait_for(rx: &mpsc::Receiver<String>, prefix: &str, timeout: Duration) -> Option<String> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        let line = rx.recv_timeout(left).ok()?;
        if let Some(rest) = line.strip_prefix(prefix) {
            return Some(rest.to_owned());
        }
    }
}

/// The server on the demo lab in `dir` (`--demo --state-dir <dir>`),
/// listening on a free port; its URL.
fn start_demo(dir: &Path, extra: &[&str]) -> (KillOnDrop, String, mpsc::Receiver<String>) {
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_pelagos-server"))
            .args(["--demo", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start pelagos-server"),
    );
    let rx = lines_of(&mut child.0);
    let url = wait_for(&rx, "pelagos-server listening on ", Duration::from_secs(60))
        .expect("pelagos-server did not report its address");
    (child, url, rx)
}

/// `<target dir>/ui-screenshot.png`, or `$PELAGOS_UI_SCREENSHOT`.
fn screenshot_path() -> PathBuf {
    if let Some(p) = std::env::var_os("PELAGOS_UI_SCREENSHOT") {
        return PathBuf::from(p);
    }
    target_file("ui-screenshot.png")
}

/// `<target dir>/<name>`.
fn target_file(name: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join(name)
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.py")
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_follows_a_provision_in_chromium() {
    let chromium = which("chromium", "chromium");
    assert_eq!(
        chromium,
        Path::new("/usr/bin/chromium"),
        "Debian's chromium"
    );
    let python = venv_python(&["playwright"]);
    let dir = tempfile::tempdir().unwrap();

    // A console line a hostile node (or its user) printed, before the
    // server starts: the page must show it as text.
    let consoles = dir.path().join("state/console");
    std::fs::create_dir_all(&consoles).unwrap();
    // As private as the server makes its state dir (else it warns).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.path().join("state"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    std::fs::write(
        consoles.join(format!("console.{HOSTILE_SHORT}")),
        format!("2026-11-30 10:00:00 {HOSTILE}\r\n"),
    )
    .unwrap();

    // Medium simulation (a provision takes about 20 s): every stage is on
    // screen long enough to be seen, however the ticks fall.
    let (_server, url, _out) = start_demo(dir.path(), &["--simulation", "medium"]);
    let shot = screenshot_path();
    let _ = std::fs::remove_file(&shot);
    let script = script();
    let mut browser = KillOnDrop(
        Command::new(&python)
            .arg(&script)
            .args([
                url.as_str(),
                shot.to_str().unwrap(),
                NODE,
                HOSTILE_NODE,
                HOSTILE,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dashboard.py"),
    );
    let out = lines_of(&mut browser.0);
    assert!(
        wait_for(&out, "READY", Duration::from_secs(90)).is_some(),
        "the page did not show the demo nodes (dashboard.py's stderr above)"
    );

    // Start a provision as teuthology or curl would.
    let resp = reqwest::Client::new()
        .post(format!("{url}/node/provision"))
        .form(&[("node", NODE), ("os", "opensuse-leap")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let task = resp.headers()["TaskID"].to_str().unwrap().to_owned();
    let mut stdin = browser.0.stdin.take().unwrap();
    writeln!(stdin, "{task}").unwrap();
    drop(stdin);

    let stages = wait_for(&out, "STAGES ", Duration::from_secs(180))
        .expect("the page did not follow the provision to done (dashboard.py's stderr above)");
    assert!(wait_for(&out, "OK", Duration::from_secs(30)).is_some());
    let status = browser.0.wait().unwrap();
    assert!(status.success(), "dashboard.py: {status}");
    println!("stages seen in the page: {stages}");
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
    println!("dashboard screenshot: {}", shot.display());

    // The compatible API agrees with what the page showed.
    let done = reqwest::get(format!("{url}/tasks/status/{task}"))
        .await
        .unwrap();
    assert_eq!(done.status().as_u16(), 200);
}

/// A lab whose second node has the original's malformed MAC and whose
/// third is named with markup: both disabled, the lab served.
const DISABLED_LAB: &str = r#"{
  "ipmi_user": "admin", "ipmi_pass": "bmc-pw", "target_node_password": "root-pw",
  "default_pxe_server": "10.0.0.254",
  "nodes": [
    {"node": "ok1.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.1", "bmc_ip": "10.1.0.1"},
    {"node": "badmac.lab", "mac": "aa.bb.cc.dd:68:73", "ip": "10.0.0.2", "bmc_ip": "10.1.0.2"},
    {"node": "<img src=x onerror=\"window.__xss=3\"><b>n</b>", "mac": "aa:bb:cc:dd:ee:03",
     "ip": "10.0.0.3", "bmc_ip": "10.1.0.3"}
  ]
}"#;

#[test]
fn dashboard_shows_disabled_nodes_with_their_problems() {
    which("chromium", "chromium");
    let python = venv_python(&["playwright"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lab.json"), DISABLED_LAB).unwrap();
    std::fs::create_dir(dir.path().join("tftp")).unwrap();
    let mut server = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_pelagos-server"))
            .arg("--config")
            .arg(dir.path().join("lab.json"))
            .arg("--tftpdir")
            .arg(dir.path().join("tftp"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(["--simulation", "fast", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start pelagos-server"),
    );
    let out = lines_of(&mut server.0);
    let url = wait_for(
        &out,
        "pelagos-server listening on ",
        Duration::from_secs(60),
    )
    .expect("pelagos-server did not start on a lab with disabled nodes");

    let expected = serde_json::json!({
        "ok1.lab": [],
        "badmac.lab": ["mac = \"aa.bb.cc.dd:68:73\": not a MAC address"],
        "<img src=x onerror=\"window.__xss=3\"><b>n</b>": ["node = "],
    });
    let shot = target_file("ui-problems.png");
    let run = Command::new(&python)
        .arg(script())
        .args(["problems", url.as_str(), shot.to_str().unwrap()])
        .arg(expected.to_string())
        .stderr(Stdio::inherit())
        .output()
        .expect("run dashboard.py");
    assert!(run.status.success(), "dashboard.py problems: {run:?}");
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "OK");
    println!("disabled nodes screenshot: {}", shot.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_asks_for_credentials_with_htpasswd() {
    let htpasswd = which("htpasswd", "apache2-utils");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    let made = Command::new(htpasswd)
        .args(["-cbB", "-C", "6"])
        .arg(&file)
        .args(["labadmin", "Corr3ct-Horse-Battery"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let (_server, url, _out) = start_demo(
        &dir.path().join("demo"),
        &["--htpasswd", file.to_str().unwrap()],
    );

    let http = reqwest::Client::new();
    for path in ["/ui", "/ui/", "/ui/app.js", "/ui/app.css", "/ui/events"] {
        let r = http.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
        assert_eq!(
            r.headers()["www-authenticate"],
            "Basic realm=\"pelagos\"",
            "{path}: browsers prompt only with WWW-Authenticate"
        );
        let r = http
            .get(format!("{url}{path}"))
            .basic_auth("labadmin", Some("Wr0ng-Guess"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path} with a wrong password");
    }

    let page = http
        .get(format!("{url}/ui"))
        .basic_auth("labadmin", Some("Corr3ct-Horse-Battery"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("/ui/app.js"));

    let mut events = http
        .get(format!("{url}/ui/events"))
        .basic_auth("labadmin", Some("Corr3ct-Horse-Battery"))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status().as_u16(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut got = String::new();
    while !got.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), events.chunk())
            .await
            .expect("no snapshot within 10 s")
            .unwrap()
            .expect("the stream ended");
        got.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(got.starts_with("event: snapshot\ndata: {"), "{got}");
    assert!(got.contains(NODE), "{got}");
}
