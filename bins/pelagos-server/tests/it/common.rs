//! Shared by pelagos-server's two test targets (`it` and `peers`): the
//! server started on a fixture lab in fast simulation, its address, and
//! polling helpers.

pub use pelagos_testkit::KillOnDrop;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The URL a server started with `--listen 127.0.0.1:0` and a piped stdout
/// prints (`pelagos-server listening on <url>`), or `None` if it has not
/// within `timeout`. Takes the child's stdout.
pub fn listening_url(child: &mut Child, timeout: Duration) -> Option<String> {
    let stdout = child.stdout.take().expect("the server's stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("pelagos-server listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    rx.recv_timeout(timeout).ok()
}

/// A lab with one node per outcome class.
pub const LAB: &str = r#"{
  # Hjson comments work
  "ipmi_user": "admin",
  "ipmi_pass": "very-secret-bmc-pw",
  "target_node_password": "very-secret-root-pw",
  "default_pxe_server": "10.0.0.254",
  "sls_list": "core",
  "nodes": [
    {"node": "ok1.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.1", "bmc_ip": "10.1.0.1", "comment": "first"},
    {"node": "ok2.lab", "mac": "aa:bb:cc:dd:ee:02", "ip": "10.0.0.2", "bmc_ip": "10.1.0.2"},
    {"node": "bmc.lab", "mac": "aa:bb:cc:dd:ee:03", "ip": "10.0.0.3", "bmc_ip": "10.1.0.3", "sim": {"bmc_error": true}},
    {"node": "stall.lab", "mac": "aa:bb:cc:dd:ee:04", "ip": "10.0.0.4", "sim": {"console_stall": true}},
    {"node": "hang.lab", "mac": "aa:bb:cc:dd:ee:05", "ip": "10.0.0.5", "sim": {"never_ready": true}},
    {"node": "salt.lab", "mac": "aa:bb:cc:dd:ee:06", "ip": "10.0.0.6", "sim": {"salt_error": true}},
    {"node": "slow1.lab", "mac": "aa:bb:cc:dd:ee:07", "ip": "10.0.0.7", "sim": {"boot_time": 120}},
    {"node": "slow2.lab", "mac": "aa:bb:cc:dd:ee:08", "ip": "10.0.0.8", "sim": {"boot_time": 120}}
  ]
}"#;

pub const IMAGE: &str = "sle-15.6-1.0";

/// Lab config, TFTP root with one image (`sle` -> `sle-15.6-1.0`) and state dir.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

#[allow(clippy::new_without_default)]
impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lab.json"), LAB).unwrap();
        let tftp = dir.path().join("tftp");
        std::fs::create_dir_all(tftp.join(IMAGE)).unwrap();
        std::fs::write(tftp.join(IMAGE).join(format!("{IMAGE}.xz")), "disk").unwrap();
        std::os::unix::fs::symlink(IMAGE, tftp.join("sle")).unwrap();
        Self { dir }
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The server binary on this fixture's lab, TFTP root and state dir,
    /// in fast simulation.
    pub fn server_command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pelagos-server"));
        cmd.arg("--config")
            .arg(self.path("lab.json"))
            .arg("--tftpdir")
            .arg(self.path("tftp"))
            .arg("--state-dir")
            .arg(self.path("state"))
            .arg("--simulation=fast");
        cmd
    }
}

/// A running pelagos-server; killed (and reaped) on drop.
pub struct Server {
    pub child: KillOnDrop,
    pub url: String,
    pub http: reqwest::Client,
}

impl Server {
    pub fn start(fx: &Fixture, extra: &[&str]) -> Self {
        let mut cmd = fx.server_command();
        cmd.args(extra).env("RUST_LOG", "warn");
        Self::spawn(cmd, None)
    }

    /// Start `cmd` (a server command; RUST_LOG as the caller set it, `warn`
    /// if not) on an ephemeral loopback port, its stderr into `log` (shown
    /// if it does not start) or the test's own; returns once it listens.
    pub fn spawn(mut cmd: Command, log: Option<&Path>) -> Self {
        if !cmd.get_envs().any(|(k, _)| k == "RUST_LOG") {
            cmd.env("RUST_LOG", "warn");
        }
        cmd.args(["--listen", "127.0.0.1:0"]).stdout(Stdio::piped());
        match log {
            Some(log) => cmd.stderr(std::fs::File::create(log).unwrap()),
            None => cmd.stderr(Stdio::inherit()),
        };
        let mut child = KillOnDrop(cmd.spawn().expect("start pelagos-server"));
        let url = listening_url(&mut child.0, Duration::from_secs(60)).unwrap_or_else(|| {
            panic!(
                "pelagos-server did not start:\n{}",
                log.map(read).unwrap_or_default()
            )
        });
        Server {
            child,
            url,
            http: reqwest::Client::new(),
        }
    }

    /// SIGTERM, as systemd stops it; waits until it has exited.
    pub fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let code = self.child.0.wait().unwrap();
        assert!(code.success(), "server exited with {code}");
    }

    /// SIGKILL, as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
    }

    pub fn u(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.u(path)).send().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.get(path).await;
        let code = r.status().as_u16();
        (code, r.json().await.unwrap())
    }

    /// POST an urlencoded form.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.u(path))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// POST a multipart form.
    pub async fn post_multipart(
        &self,
        path: &str,
        form: reqwest::multipart::Form,
    ) -> reqwest::Response {
        self.http
            .post(self.u(path))
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    pub async fn provision(&self, node: &str, os: &str) -> reqwest::Response {
        self.post_form("/node/provision", &[("node", node), ("os", os)])
            .await
    }

    /// POST a provision that must be accepted; its task id.
    pub async fn start_provision(&self, node: &str, os: &str) -> String {
        let r = self.provision(node, os).await;
        assert_eq!(r.status().as_u16(), 202, "provision {node} {os}");
        r.headers()["taskid"].to_str().unwrap().to_owned()
    }

    /// Poll the task until it is no longer 202; its code and body.
    pub async fn wait_task(&self, id: &str) -> (u16, Value) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.get(&format!("/tasks/status/{id}")).await;
            let code = r.status().as_u16();
            if code != 202 {
                return (code, r.json().await.unwrap());
            }
            assert!(Instant::now() < deadline, "task {id} still running");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Poll `cond` until it holds (deadline 30 s).
pub async fn until<F: AsyncFnMut() -> bool>(what: &str, mut cond: F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}
