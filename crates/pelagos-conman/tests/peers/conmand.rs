//! A real conmand logs a console whose "serial port" is a unix socket served
//! by the test (the scripted node). The watcher must see each boot line as
//! the last meaningful line, and a stall when the node stops writing.

use pelagos_conman::{ConsoleWatch, Stalled, log_path};
use pelagos_testkit::conmand::{self as peer, Conmand};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::time::{Instant, timeout};

/// Upper bound for anything that should happen in well under a second.
const DEADLINE: Duration = Duration::from_secs(15);

/// How often the tests poll the watcher.
const EVERY: Duration = Duration::from_millis(50);

/// The node's short name, which make-cfgs uses as the conman console name.
const NODE: &str = "node1";

/// The test's conman.conf: as make-cfgs writes it, logging into `<dir>/log`.
fn test_conf(dir: &Path, sock: &Path) -> impl Fn(u16) -> String + use<> {
    peer::test_conf(dir, &dir.join("log"), NODE, sock)
}

/// Starts conmand (see [`Conmand::start`]); the node's end of the console
/// as a tokio stream.
fn start_conmand(
    dir: &Path,
    listener: &std::os::unix::net::UnixListener,
    conf: impl Fn(u16) -> String,
) -> (Conmand, UnixStream) {
    let (conmand, node) = Conmand::start(dir, listener, conf);
    node.set_nonblocking(true).unwrap();
    (conmand, UnixStream::from_std(node).unwrap())
}

/// Waits until `check` holds for the watcher, which follows the log meanwhile.
async fn wait_until(
    watch: &mut ConsoleWatch,
    what: &str,
    conmand: &Conmand,
    check: impl Fn(&ConsoleWatch) -> bool,
) {
    let result = timeout(DEADLINE, async {
        loop {
            watch.poll_now();
            if check(watch) {
                return;
            }
            tokio::time::sleep(EVERY).await;
        }
    })
    .await;
    if result.is_err() {
        let log = std::fs::read(watch.log().path()).unwrap_or_default();
        panic!(
            "the watcher never showed {what} (last line {:?}, newest text {:?}); log:\n{}\nconmand:\n{}",
            watch.last_line(),
            watch.newest_text(),
            String::from_utf8_lossy(&log),
            conmand.stderr()
        );
    }
}

/// Polls the watcher until it reports a stall.
async fn until_stalled(watch: &mut ConsoleWatch) -> Stalled {
    loop {
        watch.poll_now();
        if let Some(stalled) = watch.stalled() {
            return stalled;
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Waits until the watcher's last meaningful line is `expected`.
async fn wait_for_line(watch: &mut ConsoleWatch, expected: &str, conmand: &Conmand) {
    wait_until(
        watch,
        &format!("{expected:?} as the last line"),
        conmand,
        |w| w.last_line() == Some(expected),
    )
    .await;
}

/// Boot lines as a node's serial port sends them, and what they must read as.
const BOOT: &[(&[u8], &str)] = &[
    (
        b"SeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n",
        "SeaBIOS (version 1.16.2-debian-1.16.2-1)",
    ),
    (
        b"\x1b[2J\x1b[19;1HSATA\x1b[19;6HPort\x1b[19;11HA\x1b[19;13Hdevice not found.\r\n",
        "SATA Port A device not found.",
    ),
    (
        b"\r\n\r\n[  \x1b[0;32mOK  \x1b[0m] Reached target \x1b[0;1;39mBasic System\x1b[0m.\r\n",
        "[  OK  ] Reached target Basic System.",
    ),
    (
        b"Welcome to Pelagos Linux (ttyS0)\r\n",
        "Welcome to Pelagos Linux (ttyS0)",
    ),
];

#[tokio::test]
async fn watcher_follows_a_real_conmand_and_sees_the_stall() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("node.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let log = log_path(&dir.path().join("log"), NODE);

    let max_age = Duration::from_secs(2);
    let mut watch = ConsoleWatch::open(&log, max_age).unwrap();
    let (conmand, mut node) = start_conmand(dir.path(), &listener, test_conf(dir.path(), &sock));

    // conmand's own notices arrive first; they are not console output.
    let notices = timeout(DEADLINE, async {
        loop {
            if std::fs::read_to_string(&log).is_ok_and(|t| t.contains("connected to")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        notices.is_ok(),
        "conmand wrote no <ConMan> notice to {}: {}",
        log.display(),
        conmand.stderr()
    );
    watch.poll_now();
    assert_eq!(
        watch.last_line(),
        None,
        "a <ConMan> notice was taken for output"
    );
    assert_eq!(watch.last_activity(), None);

    for (bytes, expected) in BOOT {
        node.write_all(bytes).await.unwrap();
        wait_for_line(&mut watch, expected, &conmand).await;
    }

    // The log really is what conmand wrote: timestamped, CRLF, escapes sanitized.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("<ConMan> Console [node1]"), "{text}");
    assert!(text.contains("\r\n"), "{text:?}");
    assert!(text.contains("^[[19;1HSATA"), "{text}");
    assert!(
        text.split('\n').any(|l| l.len() > 20
            && l.as_bytes()[4] == b'-'
            && l.ends_with("Welcome to Pelagos Linux (ttyS0)\r")),
        "{text}"
    );

    // A login prompt has no newline: it shows as the newest text.
    let mark = watch.mark();
    node.write_all(b"node1 login: ").await.unwrap();
    wait_until(&mut watch, "the login prompt", &conmand, |w| {
        w.newest_text() == Some("node1 login:")
    })
    .await;
    assert!(watch.shown_since(mark));
    assert_eq!(watch.last_line(), Some("Welcome to Pelagos Linux (ttyS0)"));

    // The node stops writing (connection still open): a stall after max_age.
    let quiet_from = Instant::now();
    let stalled = timeout(DEADLINE, until_stalled(&mut watch))
        .await
        .expect("a stall within the deadline");
    assert!(stalled.age >= max_age, "{stalled:?}");
    assert!(
        quiet_from.elapsed() + Duration::from_millis(100) >= max_age,
        "{stalled:?}"
    );
    assert_eq!(stalled.last_line.as_deref(), Some("node1 login:"));
    assert_eq!(stalled.error, None);

    // After a cold restart the node boots again: progress, then a new stall.
    watch.reset();
    let mark = watch.mark();
    node.write_all(b"\r\nSeaBIOS (version 1.16.2-debian-1.16.2-1)\r\n")
        .await
        .unwrap();
    let shown = timeout(DEADLINE, async {
        while !watch.shown_since(mark) {
            tokio::time::sleep(EVERY).await;
            watch.poll_now();
        }
    })
    .await;
    assert!(
        shown.is_ok(),
        "the second boot never showed: {}",
        conmand.stderr()
    );
    assert!(watch.shown_since(mark));
    let stalled = timeout(DEADLINE, until_stalled(&mut watch)).await.unwrap();
    assert_eq!(
        stalled.last_line.as_deref(),
        Some("SeaBIOS (version 1.16.2-debian-1.16.2-1)")
    );
    drop(node);
}

#[tokio::test]
async fn watcher_follows_conmand_across_log_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("node.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let log = log_path(&dir.path().join("log"), NODE);
    let mut watch = ConsoleWatch::open(&log, Duration::from_secs(60)).unwrap();
    let (conmand, mut node) = start_conmand(dir.path(), &listener, test_conf(dir.path(), &sock));

    node.write_all(b"before rotation\r\n").await.unwrap();
    wait_for_line(&mut watch, "before rotation", &conmand).await;

    // logrotate's way: rename, then SIGHUP makes conmand reopen its logs.
    let rotated = dir.path().join("log").join("console.node1.1");
    std::fs::rename(&log, &rotated).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &conmand.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let reopened = timeout(DEADLINE, async {
        while !log.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        reopened.is_ok(),
        "conmand did not reopen {}: {}",
        log.display(),
        conmand.stderr()
    );

    node.write_all(b"after rotation\r\n").await.unwrap();
    wait_for_line(&mut watch, "after rotation", &conmand).await;
    let new_text = std::fs::read_to_string(&log).unwrap();
    assert!(new_text.contains("after rotation"), "{new_text}");
    assert!(!new_text.contains("before rotation"), "{new_text}");
}

#[tokio::test]
async fn make_cfgs_conman_conf_and_watcher_agree_on_log_names() {
    use pelagos_config::LabConfig;
    use pelagos_config::generate::{self, Kind, Options};

    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("node.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let lab = LabConfig::parse(&format!(
        r#"{{ "domain": "lab.example", "conman_log_dir": {logdir:?}, "conman_line_max_age": 2,
             "nodes": [ {{ "node": "node1.lab.example", "mac": "aa:bb:cc:dd:ee:01",
                           "ip": "10.0.0.1", "console_dev": "unix:{sock}" }} ] }}"#,
        logdir = dir.path().join("log").display().to_string(),
        sock = sock.display(),
    ))
    .unwrap();
    let target = dir.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let out = generate::render_all(&lab, &Options::only([Kind::Conman]), &target).unwrap();
    let generated = out[0].contents.clone();
    assert!(generated.contains("CONSOLE name=\"node1\""), "{generated}");

    // make-cfgs' file as is, except what would clash with the host's conmand
    // or other tests: its pidfile, daemon log file, port and interface.
    let conf = move |port: u16| {
        let mut text: String = generated
            .lines()
            .filter(|l| {
                let l = l.trim_start().to_ascii_lowercase();
                ![
                    "server pidfile",
                    "server logfile",
                    "server port",
                    "server loopback",
                ]
                .iter()
                .any(|k| l.starts_with(k))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        text.push_str(&format!("SERVER port={port}\nSERVER loopback=ON\n"));
        text
    };
    // Where pelagos-provision's ConmanConsole opens a node's log.
    let node = &lab.nodes[0];
    let max_age = lab.timing.conman_line_max_age;
    let mut watch =
        ConsoleWatch::open(log_path(&lab.conman_log_dir, node.short_name()), max_age).unwrap();
    assert_eq!(watch.max_age(), Duration::from_secs(2));
    let (conmand, mut node) = start_conmand(dir.path(), &listener, conf);
    node.write_all(b"\x1b[0mGRUB loading.\r\n").await.unwrap();
    wait_for_line(&mut watch, "GRUB loading.", &conmand).await;
    assert_eq!(
        watch.log().path(),
        dir.path().join("log").join("console.node1")
    );
    let stalled = timeout(DEADLINE, until_stalled(&mut watch)).await.unwrap();
    assert_eq!(stalled.last_line.as_deref(), Some("GRUB loading."));
}
