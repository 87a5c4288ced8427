//! The whole provisioning path in production mode, every real peer at once:
//! the real pelagos-server binary (no `--simulation`) drives
//!
//! - ipmitool (through a wrapper recording its argv) against the pyghmi BMC
//!   simulator of pelagos-ipmi's tests, whose op log shows each power
//!   operation and status query;
//! - a real conmand logging the node's console, a unix socket played by
//!   [`node::NodeSim`]: boot lines when the simulator powers the node on,
//!   silence or endless output for the failure cases;
//! - a real sshd on a loopback port, started when the node has booted;
//! - salt-ssh (PyPI salt in the test venv, through a wrapper recording its
//!   argv) against that sshd.
//!
//! Timeouts are short (seconds) so that each case ends in well under 20 s.
//! Every case ends by grepping everything it saw for the BMC and node
//! passwords. Run as root (sshd, test users); peers come from
//! `scripts/install-test-deps.sh`.

#![allow(clippy::print_stderr)]

mod cases;
mod node;

use node::{Behaviour, Conmand, FakeBmc, NodeSim};
use pelagos_testkit::bmc::BmcOptions;
use pelagos_testkit::salt::{salt_ssh_bin, thin_dir, write_salt_config};
use pelagos_testkit::sshd::{ensure_user, keygen};
use pelagos_testkit::{KillOnDrop, argvs, run, set_mode};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const NODE: &str = "node1.lab";
pub const IMAGE: &str = "sle-15.6-1.0";
/// The salt target user of pelagos-provision's peers tests (key login).
const SALT_USER: &str = "pelagos-salttgt";

/// How a case's lab and node are set up.
#[derive(Debug, Clone)]
pub struct Setup {
    pub behaviour: Behaviour,
    /// The chassis is on (the old OS runs, its sshd answers) at the start.
    pub power_on: bool,
    /// The lab config's `ipmi_pass` is not the BMC's.
    pub wrong_bmc_password: bool,
    pub uefi: bool,
    pub need_reboot: bool,
    pub sls_list: &'static str,
    /// The case runs salt: set up its target user (hold [`pelagos_testkit::salt::salt_lock`]).
    pub salt: bool,
    /// Lab config timing knobs over the short defaults of these tests.
    pub timing: Vec<(&'static str, f64)>,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            behaviour: Behaviour::Boots,
            power_on: false,
            wrong_bmc_password: false,
            uefi: false,
            need_reboot: false,
            sls_list: "",
            salt: false,
            timing: Vec::new(),
        }
    }
}

/// Short versions of the original's 900/30/180/3/30/5, with room for a
/// loaded machine (sshd starting while the console is quiet must not look
/// like a stall).
fn timing(overrides: &[(&'static str, f64)]) -> BTreeMap<&'static str, f64> {
    let mut t: BTreeMap<&'static str, f64> = [
        ("wait_node_ready_timeout", 15.0),
        ("hardware_start_delay", 15.0),
        ("conman_line_max_age", 4.0),
        ("max_cold_restart", 2.0),
        ("cold_restart_delay", 0.3),
        ("ssh_probe_interval", 0.3),
        ("ssh_probe_timeout", 1.0),
        ("ipmi_timeout", 3.0),
        ("ipmi_retries", 2.0),
        ("salt_timeout", 60.0),
    ]
    .into_iter()
    .collect();
    for (k, v) in overrides {
        t.insert(k, *v);
    }
    t
}

/// A password nobody else uses, at most 20 bytes (the IPMI v2 limit).
fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = N.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}{:x}{n:x}{nanos:08x}", std::process::id() & 0xffff)
}

/// A shell wrapper that appends its argv (one argument per line, then
/// `----`) to `log`, then becomes `real`.
fn wrapper(path: &Path, log: &Path, real: &Path) {
    std::fs::write(
        path,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{log}'\necho ---- >> '{log}'\nexec '{real}' \"$@\"\n",
            log = log.display(),
            real = real.display()
        ),
    )
    .unwrap();
    set_mode(path, 0o755);
}

/// Scans every process's argv on the machine while alive, keeping those that
/// hold one of the secrets.
struct ProcWatch {
    stop: Arc<AtomicBool>,
    hits: Arc<Mutex<Vec<String>>>,
    scans: Arc<Mutex<u64>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProcWatch {
    fn start(secrets: Vec<String>) -> ProcWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let hits: Arc<Mutex<Vec<String>>> = Arc::default();
        let scans: Arc<Mutex<u64>> = Arc::default();
        let thread = {
            let (stop, hits, scans) = (stop.clone(), hits.clone(), scans.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    for argv in argvs() {
                        if secrets.iter().any(|s| argv.contains(s.as_str())) {
                            hits.lock().unwrap().push(argv);
                        }
                    }
                    *scans.lock().unwrap() += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        ProcWatch {
            stop,
            hits,
            scans,
            thread: Some(thread),
        }
    }

    fn finish(&mut self) -> (Vec<String>, u64) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (
            self.hits.lock().unwrap().clone(),
            *self.scans.lock().unwrap(),
        )
    }
}

impl Drop for ProcWatch {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The real pelagos-server in production mode; killed on drop.
pub struct Server {
    _child: KillOnDrop,
    pub url: String,
    http: reqwest::Client,
    stderr: PathBuf,
    /// Every API answer (status, headers, body) this test received.
    seen: Mutex<Vec<String>>,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let stderr = dir.join("server.stderr");
        let mut child = Command::new(env!("CARGO_BIN_EXE_pelagos-server"))
            .arg("--config")
            .arg(dir.join("lab.json"))
            .arg("--tftpdir")
            .arg(dir.join("tftp"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .args(["--listen", "127.0.0.1:0"])
            .arg("--ipmitool")
            .arg(dir.join("ipmitool-wrapper"))
            .arg("--salt-ssh")
            .arg(dir.join("salt-ssh-wrapper"))
            // Everything the server logs, to grep it for secrets.
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start pelagos-server");
        let url = crate::common::listening_url(&mut child, Duration::from_secs(30)).unwrap_or_else(
            || {
                panic!(
                    "pelagos-server did not start: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                )
            },
        );
        Server {
            _child: KillOnDrop(child),
            url,
            http: reqwest::Client::new(),
            stderr,
            seen: Mutex::new(Vec::new()),
        }
    }

    async fn record(&self, r: reqwest::Response) -> (u16, String) {
        let code = r.status().as_u16();
        let headers = format!("{:?}", r.headers());
        let body = r.text().await.unwrap();
        self.seen
            .lock()
            .unwrap()
            .push(format!("{code} {headers} {body}"));
        (code, body)
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        self.record(r).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .form(form)
            .send()
            .await
            .unwrap();
        self.record(r).await
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// One case: its own lab, peers and server.
pub struct Case {
    pub dir: tempfile::TempDir,
    pub bmc_password: String,
    pub node_password: String,
    pub bmc: FakeBmc,
    pub node: NodeSim,
    /// Held for its drop: conmand runs as long as the case.
    pub _conmand: Conmand,
    pub server: Server,
    procs: ProcWatch,
    tasks: Mutex<Vec<String>>,
    _thin: tempfile::TempDir,
}

impl Case {
    pub fn start(setup: Setup) -> Case {
        let dir = pelagos_testkit::open_tempdir();
        let d = dir.path();
        let bmc_password = unique("Bq-");
        let node_password = unique("Nq-");
        let procs = ProcWatch::start(vec![bmc_password.clone(), node_password.clone()]);

        let bmc = FakeBmc::spawn(&BmcOptions {
            dir: Some(d),
            password: &bmc_password,
            power: if setup.power_on { "on" } else { "off" },
            log_status: true,
            ..BmcOptions::default()
        });
        let log_dir = d.join("conman");
        let (conmand, console) = node::start_conmand(d, &log_dir, NODE.split('.').next().unwrap());

        // salt: key login as pelagos-provision's peers tests' target user; the roster
        // names the key, the node password is set but must never show.
        let client_key = d.join("client_key");
        keygen(&client_key);
        let out = d.join("out");
        std::fs::create_dir(&out).unwrap();
        if setup.salt {
            ensure_user(SALT_USER, None);
            run("chown", &[SALT_USER, out.to_str().unwrap()]);
        }
        // salt-ssh builds its thin tarball into the cache dir: shared by
        // the cases (they hold the salt lock) so that only the first pays.
        let cache = std::env::temp_dir().join("pelagos-whole-path-salt-cache");
        let states = write_salt_config(d, &out, &cache);
        std::fs::write(
            states.join("slow.sls"),
            "slow_command:\n  cmd.run:\n    - name: sleep 60\n",
        )
        .unwrap();
        let thin = thin_dir(if setup.salt { SALT_USER } else { "root" });
        std::fs::write(
            d.join("deploy.roster"),
            format!(
                "{NODE}:\n  host: 10.255.255.1\n  user: {SALT_USER}\n  priv: {}\n  thin_dir: {}\n",
                client_key.display(),
                thin.path().join("salt").display()
            ),
        )
        .unwrap();
        wrapper(
            &d.join("salt-ssh-wrapper"),
            &d.join("salt-argv.log"),
            &salt_ssh_bin(),
        );
        wrapper(
            &d.join("ipmitool-wrapper"),
            &d.join("ipmitool-argv.log"),
            &pelagos_testkit::which("ipmitool", "ipmitool"),
        );

        let tftp = d.join("tftp");
        std::fs::create_dir_all(tftp.join(IMAGE)).unwrap();
        std::fs::write(tftp.join(IMAGE).join(format!("{IMAGE}.xz")), "disk").unwrap();
        // Production refuses an image dir without kernel and initrd.
        for f in ["pxeboot.kernel", "pxeboot.initrd.xz"] {
            std::fs::write(tftp.join(IMAGE).join(f), f).unwrap();
        }
        std::os::unix::fs::symlink(IMAGE, tftp.join("sle")).unwrap();

        let ssh_port = pelagos_testkit::free_port();
        let mut lab = serde_json::json!({
            "ipmi_user": "admin",
            "ipmi_pass": if setup.wrong_bmc_password { unique("Wq-") } else { bmc_password.clone() },
            "target_node_password": node_password,
            "roster_file": d.join("deploy.roster"),
            "salt_cfg_dir": d.join("salt"),
            "sls_list": setup.sls_list,
            "conman_log_dir": log_dir,
            "nodes": [{
                "node": NODE, "mac": "aa:bb:cc:dd:ee:01", "ip": "10.255.255.1",
                "ip_type": "dynamic", "boot_ip": "127.0.0.1", "ssh_port": ssh_port,
                "bmc_ip": "127.0.0.1", "bmc_port": bmc.port,
                "uefi": if setup.uefi { "yes" } else { "no" },
                "provision_need_reboot": if setup.need_reboot { "yes" } else { "no" },
            }],
        });
        for (k, v) in timing(&setup.timing) {
            lab[k] = if k.starts_with("max_") || k.ends_with("_retries") {
                Value::from(v as u64)
            } else {
                Value::from(v)
            };
        }
        std::fs::write(d.join("lab.json"), lab.to_string()).unwrap();

        let node = NodeSim::start(
            &bmc.ops_path,
            console,
            setup.behaviour,
            ssh_port,
            &d.join("client_key.pub"),
            setup.power_on,
        );
        let server = Server::start(d);
        Case {
            dir,
            bmc_password,
            node_password,
            bmc,
            node,
            _conmand: conmand,
            server,
            procs,
            tasks: Mutex::new(Vec::new()),
            _thin: thin,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// POST /node/provision; the task id.
    pub async fn provision(&self, os: &str, extra_sls: &str) -> String {
        let r = self
            .server
            .http
            .post(format!("{}/node/provision", self.server.url))
            .form(&[("node", NODE), ("os", os), ("extra_sls", extra_sls)])
            .send()
            .await
            .unwrap();
        let id = r
            .headers()
            .get("taskid")
            .map(|v| v.to_str().unwrap().to_owned());
        let (code, body) = self.server.record(r).await;
        assert_eq!(code, 202, "provision: {body}");
        let id = id.expect("TaskID header");
        self.tasks.lock().unwrap().push(id.clone());
        id
    }

    /// Poll the task's status until it is no longer 202: code and body.
    pub async fn wait_task(&self, id: &str) -> (u16, Value) {
        // Longer than the task's own bounds (SSH 15 s, salt 60 s, BMC
        // retries): the server's timeouts must fire first, and salt-ssh on a
        // loaded 2-core machine took over 40 s once.
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let (code, body) = self.server.get(&format!("/tasks/status/{id}")).await;
            if code != 202 {
                return (code, serde_json::from_str(&body).unwrap_or(Value::Null));
            }
            assert!(
                Instant::now() < deadline,
                "task {id} still running; log:\n{}",
                self.task_log(id).await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Provision `os` and wait for the task to end: code, body and log.
    pub async fn run(&self, os: &str) -> (u16, Value, String) {
        let id = self.provision(os, "").await;
        let (code, body) = self.wait_task(&id).await;
        (code, body, self.task_log(&id).await)
    }

    pub async fn task_log(&self, id: &str) -> String {
        let (_, body) = self.server.get(&format!("/tasks/log/{id}")).await;
        serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["LogData"].as_str().map(str::to_owned))
            .unwrap_or(body)
    }

    /// Poll `cond` (deadline 20 s), saying what was awaited on failure.
    pub async fn until<F: AsyncFnMut() -> bool>(&self, what: &str, mut cond: F) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond().await {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; node: {:?}; BMC ops: {:?}",
                self.node.events(),
                self.bmc.actions()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until the BMC was sent `action` (`on`, `off`, ...).
    pub async fn until_bmc_action(&self, action: &str) {
        self.until(&format!("BMC action {action}"), async || {
            self.bmc.actions().iter().any(|a| a == action)
        })
        .await;
    }

    /// Wait until the task log contains `text`.
    pub async fn until_logged(&self, id: &str, text: &str) {
        self.until(&format!("{text:?} in the task log"), async || {
            self.task_log(id).await.contains(text)
        })
        .await;
    }

    /// What `GET /node/<node>` says the boot record boots.
    pub async fn record_os(&self) -> String {
        let (code, body) = self.server.get(&format!("/node/{NODE}")).await;
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["pxe"]["os"].as_str().unwrap_or_default().to_owned()
    }

    /// Dismiss the node's provision; the unix time the request was sent.
    async fn dismiss(&self) -> f64 {
        let at = node::unix_now();
        let (code, body) = self.server.post("/node/dismiss", &[("node", NODE)]).await;
        assert_eq!(code, 200, "dismiss: {body}");
        at
    }

    /// Dismiss the node's provision `id`, then: the task ended 410, the
    /// boot record is `local`, and the BMC got no command after the
    /// dismissal, not even in the `grace` that follows (longer than any
    /// delay the task was in).
    pub async fn dismiss_and_assert(&self, id: &str, grace: Duration) {
        let at = self.dismiss().await;
        let (code, body) = self.wait_task(id).await;
        assert_eq!(code, 410, "{body}");
        assert_eq!(body["error"], "Stop provisioning thread by request");
        assert_eq!(self.record_os().await, "local");
        let log = self.task_log(id).await;
        assert!(
            log.contains("Boot record of node [node1.lab] set to [local]"),
            "{log}"
        );
        tokio::time::sleep(grace).await;
        let late: Vec<_> = self.bmc.ops().into_iter().filter(|o| o.t >= at).collect();
        assert!(
            late.is_empty(),
            "BMC calls after the dismissal: {late:?}\nlog:\n{log}"
        );
    }

    /// Greps everything this case saw for the two passwords: the server's
    /// stderr (RUST_LOG=debug), every API answer, every task's log and the
    /// status list, the argv of each ipmitool and salt-ssh run (wrappers),
    /// the argv of every process alive during the case, the BMC op log and
    /// the console log. Also checks that those sources were not empty, so
    /// that the grep looked at something.
    pub async fn assert_no_secrets(mut self) {
        let ids = self.tasks.lock().unwrap().clone();
        for id in &ids {
            self.task_log(id).await;
        }
        self.server.get("/tasks/statuses").await;
        self.server.get("/nodes").await;
        let (proc_hits, scans) = self.procs.finish();
        let mut sources: Vec<(String, String)> = vec![
            ("server stderr".into(), self.server.stderr()),
            (
                "API answers".into(),
                self.server.seen.lock().unwrap().join("\n"),
            ),
            (
                "ipmitool argv".into(),
                std::fs::read_to_string(self.path("ipmitool-argv.log")).unwrap_or_default(),
            ),
            (
                "salt-ssh argv".into(),
                std::fs::read_to_string(self.path("salt-argv.log")).unwrap_or_default(),
            ),
            (
                "BMC op log".into(),
                std::fs::read_to_string(&self.bmc.ops_path).unwrap_or_default(),
            ),
            (
                "console log".into(),
                String::from_utf8_lossy(
                    &std::fs::read(self.path("conman/console.node1")).unwrap_or_default(),
                )
                .into_owned(),
            ),
        ];
        sources.push(("argv of live processes".into(), proc_hits.join("\n")));
        for (what, text) in &sources {
            for secret in [&self.bmc_password, &self.node_password] {
                assert!(
                    !text.contains(secret.as_str()),
                    "a password shows in the {what}:\n{text}"
                );
            }
        }
        let stderr = &sources[0].1;
        assert!(stderr.contains("production mode"), "{stderr}");
        assert!(
            stderr.contains("pelagos_ipmi"),
            "no BMC command logged: {stderr}"
        );
        assert!(sources[1].1.contains("LogData"));
        let ipmitool = &sources[2].1;
        assert!(
            ipmitool.lines().any(|l| l == "-E"),
            "ipmitool not run with -E: {ipmitool}"
        );
        assert!(!ipmitool.lines().any(|l| l == "-P"), "{ipmitool}");
        assert!(scans > 10, "the process scan hardly ran ({scans} scans)");
        eprintln!(
            "whole path: no secret in {} bytes of server stderr, {} API answers, {} ipmitool runs, {} salt-ssh runs, {scans} process scans",
            stderr.len(),
            self.server.seen.lock().unwrap().len(),
            ipmitool.matches("----").count(),
            sources[3].1.matches("----").count(),
        );
    }
}
