//! salt-ssh: real salt (PyPI, in the test venv) against a real sshd, plus a
//! stand-in executable for the cases salt cannot produce on demand.

use pelagos_config::{LabConfig, Node, Secret};
use pelagos_provision::salt::{SaltError, SaltSsh, StateRun};
use pelagos_testkit::log::LogCapture;
use pelagos_testkit::salt::{salt_lock, salt_ssh_bin, thin_dir, write_salt_config};
use pelagos_testkit::sshd::{Sshd, SshdOptions, ensure_user, keygen};
use pelagos_testkit::{argvs, run, set_mode};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const KEY_USER: &str = "pelagos-salttgt";
const PW_USER: &str = "pelagos-saltpw";
/// The password user's login password (a throwaway account that only a
/// test sshd on loopback accepts).
const PW_USER_PASSWORD: &str = "Pelagos-Test-Pw-4711";

/// A lab with one node whose SSH is a test sshd, and salt set up for it.
struct SaltLab {
    dir: tempfile::TempDir,
    _thin: tempfile::TempDir,
    sshd: Sshd,
    node: Node,
    salt: SaltSsh,
    out: PathBuf,
}

impl SaltLab {
    /// `password_login`: the node's user has a password and no key; salt
    /// must log in with the roster's password and deploy its key.
    fn new(password_login: bool) -> SaltLab {
        let dir = pelagos_testkit::open_tempdir();
        let d = dir.path();
        let (user, password) = if password_login {
            (PW_USER, Secret::new(PW_USER_PASSWORD))
        } else {
            // Key login; the password is a decoy that must not leak either.
            (KEY_USER, Secret::new("Decoy-Secret-9f3b"))
        };
        let home = ensure_user(user, password_login.then_some(PW_USER_PASSWORD));
        if password_login {
            // So that --key-deploy has something to do.
            let _ = std::fs::remove_file(home.join(".ssh/authorized_keys"));
        }
        let client_key = d.join("client_key");
        keygen(&client_key);
        let sshd = Sshd::start(SshdOptions {
            password_auth: password_login,
            authorized_keys: if password_login {
                vec![]
            } else {
                vec![d.join("client_key.pub")]
            },
            port: None,
        });
        let out = d.join("out");
        std::fs::create_dir(&out).unwrap();
        run("chown", &[user, out.to_str().unwrap()]);
        write_salt_config(d, &out, &d.join("saltroot/cache"));
        let thin = thin_dir(user);
        let roster = d.join("deploy.roster");
        std::fs::write(
            &roster,
            format!(
                "n1.lab:\n  host: 10.255.255.1\n  user: {user}\n  thin_dir: {thin}\n\
                 other.lab:\n  host: 10.0.0.2\n",
                thin = thin.path().join("salt").display()
            ),
        )
        .unwrap();
        let lab = LabConfig::parse(&format!(
            r#"{{ "nodes": [ {{ "node": "n1.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.255.255.1",
                  "boot_ip": "127.0.0.1", "ssh_port": {}, "ip_type": "dynamic" }} ] }}"#,
            sshd.port
        ))
        .unwrap();
        let node = lab.node("n1.lab").unwrap().clone();
        let tmp = d.join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        // A wrapper records what salt-ssh is given, then becomes salt-ssh.
        let wrapper = d.join("salt-ssh-wrapper");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" >> {d}/argv.log\necho ---- >> {d}/argv.log\n\
                 stat -c %a \"$3\" >> {d}/roster-mode.log\nexec {salt} \"$@\"\n",
                d = d.display(),
                salt = salt_ssh_bin().display()
            ),
        )
        .unwrap();
        set_mode(&wrapper, 0o755);
        let salt = SaltSsh {
            program: wrapper,
            roster_file: roster,
            config_dir: d.join("salt"),
            password,
            priv_key: (!password_login).then(|| client_key.clone()),
            timeout: Duration::from_secs(180),
            temp_dir: Some(tmp),
        };
        SaltLab {
            dir,
            _thin: thin,
            sshd,
            node,
            salt,
            out,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    fn temp_rosters_left(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.path("tmp"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }
}

/// Watches every process's argv and environment for a string while alive.
struct ProcWatch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl ProcWatch {
    fn start(needle: &str) -> ProcWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let needle = needle.as_bytes().to_vec();
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut hits = Vec::new();
                let mut scans = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    scans += 1;
                    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                        let p = entry.path();
                        for f in ["cmdline", "environ"] {
                            if let Ok(bytes) = std::fs::read(p.join(f))
                                && bytes.windows(needle.len()).any(|w| w == needle)
                            {
                                hits.push(format!(
                                    "{}/{f}: {}",
                                    p.display(),
                                    String::from_utf8_lossy(&bytes).replace('\0', " ")
                                ));
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                assert!(scans > 0);
                hits
            })
        };
        ProcWatch {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// Apply `states` in order, one `apply_state` each, as the provision's
/// state machine does; stop at the first failure.
async fn apply_each(
    salt: &SaltSsh,
    node: &Node,
    states: &[&str],
) -> Result<Vec<StateRun>, SaltError> {
    let mut runs = Vec::with_capacity(states.len());
    for sls in states {
        runs.push(salt.apply_state(node, sls).await?);
    }
    Ok(runs)
}

#[tokio::test]
async fn real_salt_applies_a_state_and_streams_its_output() {
    let _serial = salt_lock();
    let lab = SaltLab::new(false);
    let watch = ProcWatch::start(lab.salt.password.expose());
    let (captured, _guard) = LogCapture::thread();
    let runs = apply_each(&lab.salt, &lab.node, &["hello"])
        .await
        .unwrap_or_else(|e| panic!("{e}\nsshd: {:?}", lab.sshd.log()));
    let hits = watch.finish();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].sls, "hello");
    assert_eq!(
        std::fs::read_to_string(lab.out.join("hello.txt")).unwrap(),
        "hello from salt\n",
        "the state ran on the node"
    );
    let log = captured.text();
    // salt's own output, line by line, tagged with node and state.
    let summary = log
        .lines()
        .find(|l| l.contains("Succeeded: 1"))
        .unwrap_or_else(|| panic!("no summary line in {log}"));
    assert!(
        summary.contains("n1.lab") && summary.contains("hello"),
        "{summary}"
    );
    assert!(log.contains("Failed:    0"), "{log}");
    // The target was the temp roster's entry (boot_ip and ssh_port).
    assert!(
        lab.sshd
            .log()
            .iter()
            .any(|l| l.contains("Accepted publickey for pelagos-salttgt")),
        "{:?}",
        lab.sshd.log()
    );
    // Nothing secret in argv (wrapper's record, every process seen), logs.
    let argv = lab.read("argv.log");
    // Real salt-ssh took `--` as the end of its options: the target and the
    // state after it are what it applied (hello.txt above).
    assert!(
        argv.contains("--roster-file")
            && argv.ends_with("--key-deploy\n--\nn1.lab\nstate.apply\nhello\n----\n"),
        "{argv}"
    );
    assert!(!argv.contains(lab.salt.password.expose()), "{argv}");
    assert!(hits.is_empty(), "password seen in processes: {hits:?}");
    assert!(!log.contains(lab.salt.password.expose()), "{log}");
    for f in ["saltroot/master.log", "saltroot/ssh.log"] {
        assert!(!lab.read(f).contains(lab.salt.password.expose()), "{f}");
    }
    // The private roster was 0600 and is gone.
    assert_eq!(lab.read("roster-mode.log").trim(), "600");
    assert_eq!(lab.temp_rosters_left(), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn real_salt_failure_names_the_state_and_stops_there() {
    let _serial = salt_lock();
    let lab = SaltLab::new(false);
    let err = apply_each(&lab.salt, &lab.node, &["hello", "bad", "hello"])
        .await
        .expect_err("bad.sls runs /bin/false");
    assert_eq!(err.sls(), Some("bad"));
    let msg = err.to_string();
    assert!(
        msg.starts_with("salt state 'bad' failed on node n1.lab: salt-ssh exited with code"),
        "{msg}"
    );
    assert!(
        msg.contains("Failed:    1"),
        "the tail shows salt's summary: {msg}"
    );
    // hello, bad; not the second hello.
    assert_eq!(lab.read("argv.log").matches("----").count(), 2);
    assert_eq!(lab.temp_rosters_left(), Vec::<PathBuf>::new());

    let err = lab
        .salt
        .apply_state(&lab.node, "no_such_state")
        .await
        .expect_err("a missing sls fails");
    assert!(
        matches!(&err, SaltError::Failed { sls, .. } if sls == "no_such_state"),
        "{err:?}"
    );
    assert!(err.to_string().contains("No matching sls found"), "{err}");
}

#[tokio::test]
async fn real_salt_logs_in_with_the_roster_password_and_deploys_its_key() {
    let _serial = salt_lock();
    let lab = SaltLab::new(true);
    let watch = ProcWatch::start(PW_USER_PASSWORD);
    let (captured, _guard) = LogCapture::thread();
    lab.salt
        .apply_state(&lab.node, "hello")
        .await
        .unwrap_or_else(|e| panic!("{e}\nsshd: {:?}", lab.sshd.log()));
    let hits = watch.finish();
    assert!(lab.out.join("hello.txt").exists(), "the state ran");
    let sshd_log = lab.sshd.log();
    assert!(
        sshd_log
            .iter()
            .any(|l| l.contains(&format!("Accepted password for {PW_USER}"))),
        "salt logged in with the password: {sshd_log:?}"
    );
    let home = ensure_user(PW_USER, Some(PW_USER_PASSWORD));
    let keys = std::fs::read_to_string(home.join(".ssh/authorized_keys")).unwrap_or_default();
    assert!(
        keys.starts_with("ssh-rsa "),
        "--key-deploy installed salt's key: {keys:?}"
    );
    assert!(hits.is_empty(), "password seen in processes: {hits:?}");
    let log = captured.text();
    assert!(!log.contains(PW_USER_PASSWORD), "{log}");
    assert!(!lab.read("argv.log").contains(PW_USER_PASSWORD));
    for f in ["saltroot/master.log", "saltroot/ssh.log"] {
        assert!(!lab.read(f).contains(PW_USER_PASSWORD), "{f}");
    }
}

#[tokio::test]
async fn real_salt_timeout_kills_salt_ssh_and_its_ssh_children() {
    let _serial = salt_lock();
    let mut lab = SaltLab::new(false);
    // Warm salt's caches so that the next run reaches the node quickly.
    lab.salt.apply_state(&lab.node, "hello").await.unwrap();
    std::fs::write(
        lab.path("salt/states/slow.sls"),
        "slow_command:\n  cmd.run:\n    - name: sleep 40\n",
    )
    .unwrap();
    lab.salt.timeout = Duration::from_secs(10);
    // ssh's argv names the client key (IdentityFile=...).
    let watch = ProcWatch::start(lab.path("client_key").to_str().unwrap());
    let err = lab
        .salt
        .apply_state(&lab.node, "slow")
        .await
        .expect_err("a 40 s state cannot finish in 10 s");
    let seen = watch.finish();
    assert!(
        matches!(&err, SaltError::Timeout { sls, node, .. } if sls == "slow" && node == "n1.lab"),
        "{err:?}"
    );
    assert!(
        seen.iter().any(|p| p.contains("cmdline: /usr/bin/ssh ")),
        "salt's ssh to the node was running when the timeout hit: {seen:?}"
    );
    assert_no_process_mentions(lab.dir.path()).await;
    assert_eq!(lab.temp_rosters_left(), Vec::<PathBuf>::new());
}

/// Waits (bounded) until no process has `dir` in its argv.
async fn assert_no_process_mentions(dir: &Path) {
    let needle = dir.to_str().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<String> = argvs().filter(|a| a.contains(needle)).collect();
        if left.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "processes left behind: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- stand-in executable: cases real salt will not produce on demand ----

/// A SaltSsh running `script` (a shell script body) instead of salt-ssh.
fn stand_in(script: &str) -> (tempfile::TempDir, SaltSsh, Node) {
    let dir = pelagos_testkit::open_tempdir();
    let d = dir.path();
    let program = d.join("fake-salt-ssh");
    std::fs::write(&program, format!("#!/bin/sh\n{script}\n")).unwrap();
    set_mode(&program, 0o755);
    let roster = d.join("deploy.roster");
    std::fs::write(&roster, "n1.lab:\n  user: root\n").unwrap();
    std::fs::create_dir(d.join("tmp")).unwrap();
    let lab = LabConfig::parse(
        r#"{ "nodes": [ { "node": "n1.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.1",
              "ip_type": "dynamic" } ] }"#,
    )
    .unwrap();
    let salt = SaltSsh {
        program,
        roster_file: roster,
        config_dir: d.join("salt"),
        password: Secret::new("Stand-In-Secret-77"),
        priv_key: None,
        timeout: Duration::from_secs(30),
        temp_dir: Some(d.join("tmp")),
    };
    (dir, salt, lab.node("n1.lab").unwrap().clone())
}

#[tokio::test]
async fn a_password_in_salts_output_is_redacted() {
    // Print the roster's passwd line, as a verbose salt might.
    let (_dir, salt, node) =
        stand_in("grep passwd \"$3\"; echo \"to stderr: $(grep -c passwd \"$3\")\" >&2");
    let (captured, _guard) = LogCapture::thread();
    salt.apply_state(&node, "x").await.unwrap();
    let log = captured.text();
    assert!(log.contains("passwd: ********"), "{log}");
    assert!(
        log.contains("to stderr: 1") && log.contains("stream=\"stderr\""),
        "{log}"
    );
    assert!(!log.contains("Stand-In-Secret-77"), "{log}");
}

#[tokio::test]
async fn a_failed_summary_with_exit_0_fails() {
    let (_dir, salt, node) = stand_in("echo 'Succeeded: 3'; echo 'Failed:    1'; exit 0");
    let err = salt.apply_state(&node, "ceph.osd").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "salt state 'ceph.osd' failed on node n1.lab: 1 state(s) failed (salt-ssh exited 0); \
         last output: Succeeded: 3 | Failed:    1"
    );
}

#[tokio::test]
async fn a_descendant_holding_the_output_does_not_hold_the_run() {
    // Exits at once, leaving a subshell (whose argv, the script's, names
    // `dir`) that keeps stdout open for 60 s.
    let (dir, mut salt, node) = stand_in("echo applied\n(sleep 60; echo never) &\nexit 0");
    salt.timeout = Duration::from_secs(20);
    let (captured, _guard) = LogCapture::thread();
    let run = salt
        .apply_state(&node, "base")
        .await
        .expect("salt-ssh exited 0; the left-over sleep must not turn that into a timeout");
    assert_eq!(run.lines, 1);
    assert!(captured.text().contains("applied"));
    // The left-over was in salt-ssh's process group and is gone.
    assert_no_process_mentions(dir.path()).await;
}

#[tokio::test]
async fn a_missing_salt_ssh_is_a_spawn_error() {
    let (dir, mut salt, node) = stand_in("exit 0");
    salt.program = dir.path().join("no-such-salt-ssh");
    let err = salt.apply_state(&node, "base").await.unwrap_err();
    assert!(matches!(err, SaltError::Spawn { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-salt-ssh"), "{err}");
}

#[tokio::test]
async fn dropping_the_run_kills_salt_ssh_and_its_children() {
    let (dir, salt, node) = stand_in("echo started\nsleep 300 &\nsleep 300 &\nwait");
    // `sleep` does not carry the dir in its argv; the script does.
    let (captured, _guard) = LogCapture::thread();
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut run = Box::pin(salt.apply_state(&node, "base"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        tokio::select! {
            r = &mut run => panic!("the stand-in never ends by itself: {r:?}"),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
            () = cancel.cancelled() => break,
        }
        if captured.text().contains("started") {
            cancel.cancel();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stand-in never started"
        );
    }
    let pgid = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .find_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let mine = cmd
                .windows(dir.path().as_os_str().len())
                .any(|w| w == dir.path().as_os_str().as_encoded_bytes());
            mine.then(|| e.file_name().to_string_lossy().into_owned())
        })
        .expect("the stand-in runs");
    drop(run);
    assert_no_process_mentions(dir.path()).await;
    // Its sleeping children went with it (same process group).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let members: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
            .filter(|stat| {
                // pgrp is the 3rd field after the ")" that ends comm.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(2).map(str::to_owned))
                    .is_some_and(|pgrp| pgrp == pgid)
            })
            .collect();
        if members.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "left in the group: {members:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::read_dir(dir.path().join("tmp"))
        .map(|d| assert_eq!(d.count(), 0, "temp roster removed"));
}

#[test]
fn roster_entry_targets_the_provisioning_address_with_the_password() {
    let (dir, mut salt, _) = stand_in("exit 0");
    std::fs::write(
        &salt.roster_file,
        "n1.lab:\n  host: 10.0.0.1\n  user: admin\n  sudo: true\n  ssh_options: [Compression=yes]\n\
         n2.lab:\n  host: 10.0.0.2\n",
    )
    .unwrap();
    salt.priv_key = Some(dir.path().join("key"));
    let lab = LabConfig::parse(
        r#"{ "nodes": [ { "node": "n1.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.1",
              "boot_ip": "192.168.9.1", "ssh_port": 2200, "ip_type": "dynamic" },
            { "node": "n3.lab", "mac": "aa:bb:cc:dd:ee:03", "ip": "10.0.0.3", "ip_type": "dynamic" } ] }"#,
    )
    .unwrap();
    let entry = salt.roster_entry(lab.node("n1.lab").unwrap()).unwrap();
    let expected: serde_norway::Mapping = serde_norway::from_str(&format!(
        "host: 192.168.9.1\nuser: admin\nsudo: true\nport: 2200\npasswd: Stand-In-Secret-77\n\
         ssh_options: [Compression=yes, StrictHostKeyChecking=no, UserKnownHostsFile=/dev/null]\n\
         priv: {}\n",
        dir.path().join("key").display()
    ))
    .unwrap();
    assert_eq!(entry, expected);
    // A node the roster does not know: root, as the original's roster.
    let entry = salt.roster_entry(lab.node("n3.lab").unwrap()).unwrap();
    assert_eq!(entry.get("user").and_then(|u| u.as_str()), Some("root"));
    assert_eq!(entry.get("host").and_then(|u| u.as_str()), Some("10.0.0.3"));

    salt.roster_file = dir.path().join("missing.roster");
    let err = salt.roster_entry(lab.node("n1.lab").unwrap()).unwrap_err();
    assert!(err.to_string().starts_with(&format!(
        "cannot read salt roster {}",
        dir.path().join("missing.roster").display()
    )));
    std::fs::write(&salt.roster_file, "- a\n- list\n").unwrap();
    let err = salt.roster_entry(lab.node("n1.lab").unwrap()).unwrap_err();
    assert!(matches!(err, SaltError::RosterSyntax { .. }), "{err:?}");
}

#[tokio::test]
async fn a_bad_state_name_runs_nothing() {
    // Records every run's argv beside itself; a bad name must not reach it.
    let (dir, salt, node) =
        stand_in("printf '%s\\n' \"$@\" >> \"$(dirname \"$0\")/argv.log\"; echo 'Failed:    0'");
    let log = dir.path().join("argv.log");
    for bad in [
        "--out-file=/root/.bashrc",
        "-r",
        "-c",
        "--roster-file",
        r#"pillar={"a":1}"#,
        "a b",
        "",
    ] {
        let err = salt.apply_state(&node, bad).await.unwrap_err();
        assert!(
            matches!(&err, SaltError::InvalidState { node, .. } if node == "n1.lab"),
            "{err:?}"
        );
        assert_eq!(err.sls(), Some(bad));
        assert!(
            err.to_string().contains(&format!("{bad:?}")),
            "names the value: {err}"
        );
    }
    assert!(
        !log.exists(),
        "salt-ssh ran: {:?}",
        std::fs::read_to_string(&log)
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0,
        "no roster was written"
    );
    // The same stand-in runs a good list, `--` before the target each time.
    // (That a list with a good state, then a bad one, runs nothing is the
    // engine's: it checks every name before a task exists; tests/engine.rs.)
    apply_each(&salt, &node, &["core", "ceph.osd"])
        .await
        .unwrap();
    let argv = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        argv.matches("--key-deploy\n--\nn1.lab\nstate.apply\n")
            .count(),
        2,
        "{argv}"
    );
    assert!(
        argv.ends_with("--\nn1.lab\nstate.apply\nceph.osd\n"),
        "{argv}"
    );
}
