//! The BMC simulator (`tests/peers/fake_bmc.py`, pyghmi) and helpers around it.

use pelagos_config::Secret;
use pelagos_ipmi::{BmcTarget, IpmiTool, IpmiToolConfig, PowerControl};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const USER: &str = "admin";
/// Distinctive, so a leak is found by a plain substring search.
pub const PASSWORD: &str = "Pw-7f3kQ-sim";

const INSTALL_HINT: &str = "run scripts/install-test-deps.sh";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The test venv's python, with pyghmi importable; panics with the install
/// hint otherwise.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("PELAGOS_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv"));
    let python = venv.join("bin/python");
    let ok = std::process::Command::new(&python)
        .args(["-c", "import pyghmi"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the BMC simulator needs {} with pyghmi: {INSTALL_HINT}",
        python.display()
    );
    python
}

/// Panics with the install hint when ipmitool is not on PATH.
pub fn require_ipmitool() {
    let ok = std::process::Command::new("ipmitool")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ipmitool is not installed: {INSTALL_HINT}");
}

/// One operation the simulator recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub t: f64,
    pub op: String,
    /// Power state after the operation.
    pub power: String,
    pub dev: Option<String>,
    pub efi: Option<bool>,
    pub persistent: Option<bool>,
}

/// A running simulator; killed on drop.
pub struct FakeBmc {
    _child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    ops_log: PathBuf,
}

impl FakeBmc {
    /// Start a simulator whose chassis is `power` ("on"/"off") and wait until
    /// `ipmitool power status` succeeds against it.
    pub async fn start(power: &str) -> Self {
        Self::start_with(power, &[]).await
    }

    /// Like [`FakeBmc::start`], with more simulator options.
    pub async fn start_with(power: &str, extra_args: &[&str]) -> Self {
        require_ipmitool();
        let python = venv_python();
        let dir = tempfile::tempdir().expect("temp dir");
        let ops_log = dir.path().join("ops.log");
        let sim_err = dir.path().join("fake_bmc.stderr");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/fake_bmc.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg("0")
            .arg(&ops_log)
            .args(["--user", USER, "--power", power])
            .args(extra_args)
            .env("FAKE_BMC_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&sim_err).expect("stderr file"))
            .kill_on_drop(true)
            .spawn()
            .expect("start fake_bmc.py");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("fake_bmc.py printed no port within 20 s")
            .expect("read fake_bmc.py stdout");
        let Some(line) = line else {
            panic!(
                "fake_bmc.py exited: {}",
                std::fs::read_to_string(&sim_err).unwrap_or_default()
            );
        };
        let port: u16 = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected fake_bmc.py line {line:?}"));
        let bmc = Self {
            _child: child,
            port,
            dir,
            ops_log,
        };
        bmc.wait_ready().await;
        bmc
    }

    async fn wait_ready(&self) {
        let probe = IpmiTool::new(IpmiToolConfig {
            timeout: Duration::from_secs(3),
            attempts: 1,
            ..IpmiToolConfig::default()
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match probe.power_status(&self.target()).await {
                Ok(_) => return,
                Err(e @ pelagos_ipmi::BmcError::Authentication { .. }) => {
                    panic!("BMC simulator on port {} refused the login: {e}", self.port)
                }
                Err(e) if Instant::now() > deadline => {
                    panic!("BMC simulator on port {} never answered: {e}", self.port)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// This simulator with the right credentials.
    pub fn target(&self) -> BmcTarget {
        BmcTarget::new("127.0.0.1", USER, Secret::new(PASSWORD))
            .with_name("sim-node")
            .with_port(self.port)
    }

    /// Operations recorded so far.
    pub fn ops(&self) -> Vec<Op> {
        let text = std::fs::read_to_string(&self.ops_log).unwrap_or_default();
        text.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("ops log line is JSON");
                Op {
                    t: v["t"].as_f64().expect("t"),
                    op: v["op"].as_str().expect("op").to_owned(),
                    power: v["power"].as_str().expect("power").to_owned(),
                    dev: v["dev"].as_str().map(str::to_owned),
                    efi: v["efi"].as_bool(),
                    persistent: v["persistent"].as_bool(),
                }
            })
            .collect()
    }

    /// Just the operation names.
    pub fn op_names(&self) -> Vec<String> {
        self.ops().into_iter().map(|o| o.op).collect()
    }
}

/// A shell script standing in for ipmitool: it records its argv, the names
/// of its environment variables and its pid, then execs the real ipmitool.
pub struct Recorder {
    pub program: PathBuf,
    dir: PathBuf,
}

impl Recorder {
    pub fn new(dir: &Path) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let program = dir.join("ipmitool-recorder");
        let d = dir.display();
        let script = format!(
            "#!/bin/sh\n\
             printf '%s\\n' \"$*\" >> '{d}/argv.log'\n\
             env | cut -d= -f1 | sort | tr '\\n' ' ' >> '{d}/env.log'\n\
             echo >> '{d}/env.log'\n\
             echo $$ >> '{d}/pids.log'\n\
             exec ipmitool \"$@\"\n"
        );
        std::fs::write(&program, script).expect("write recorder");
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755))
            .expect("chmod recorder");
        Self {
            program,
            dir: dir.to_owned(),
        }
    }

    fn read(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.join(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// One line per run: the arguments.
    pub fn argv(&self) -> Vec<String> {
        self.read("argv.log")
    }

    /// One line per run: environment variable names.
    pub fn env_names(&self) -> Vec<String> {
        self.read("env.log")
    }

    /// One pid per run (exec keeps the pid, so it is ipmitool's).
    pub fn pids(&self) -> Vec<u32> {
        self.read("pids.log")
            .iter()
            .map(|p| p.parse().expect("pid"))
            .collect()
    }
}

/// A UDP port that is bound but never answers: a BMC that is down.
pub fn silent_udp_port() -> std::net::UdpSocket {
    std::net::UdpSocket::bind("127.0.0.1:0").expect("bind UDP")
}

/// A BMC that is down ([`silent_udp_port`]) and a [`Recorder`] for the
/// ipmitool runs against it.
pub struct SilentBmc {
    socket: std::net::UdpSocket,
    pub rec: Recorder,
    _dir: tempfile::TempDir,
}

impl SilentBmc {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        SilentBmc {
            socket: silent_udp_port(),
            rec: Recorder::new(dir.path()),
            _dir: dir,
        }
    }

    /// This BMC as `user` with `password`.
    pub fn target(&self, user: &str, password: &str) -> BmcTarget {
        BmcTarget::new("127.0.0.1", user, Secret::new(password))
            .with_port(self.socket.local_addr().unwrap().port())
    }
}

/// Tracing output of the whole test binary, captured into a buffer. Global
/// rather than per-thread: a thread-local subscriber misses events whose
/// callsite another test thread registered first.
#[derive(Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn global() -> &'static LogCapture {
        static CAPTURE: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();
        CAPTURE.get_or_init(|| {
            let capture = LogCapture::default();
            let sink = capture.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(move || sink.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
            capture
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
