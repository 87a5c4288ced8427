//! The BMC simulator, `peers/fake_bmc.py` (pyghmi, RMCP+ on a free UDP
//! port) in this crate, whose JSON-lines op log says what the BMC was
//! asked; a recorder standing in for ipmitool; a BMC that never answers.
//! With feature `ipmi`: the simulator as a pelagos-ipmi target.

use crate::{INSTALL_HINT, KillOnDrop, venv_python};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The simulator's user unless [`BmcOptions::user`] says otherwise.
pub const USER: &str = "admin";
/// Its password unless [`BmcOptions::password`] says otherwise.
/// Distinctive, so a leak is found by a plain substring search.
pub const PASSWORD: &str = "Pw-7f3kQ-sim";

/// Upper bound for the simulator to start.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// Panics with the install hint when ipmitool is not on PATH.
pub fn require_ipmitool() {
    let ok = Command::new("ipmitool")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ipmitool is not installed: {INSTALL_HINT}");
}

/// How to start a [`FakeBmc`].
#[derive(Debug, Clone)]
pub struct BmcOptions<'a> {
    /// Where its op log (`bmc-ops.jsonl`) and stderr (`bmc.stderr`) go;
    /// a temp dir the simulator owns if `None`.
    pub dir: Option<&'a Path>,
    pub user: &'a str,
    /// Passed in the environment, never in argv.
    pub password: &'a str,
    /// The chassis power at the start: `on` or `off`.
    pub power: &'a str,
    /// Log each power status query too (`{"op": "status"}`).
    pub log_status: bool,
    /// More simulator options (`--off-at-cycle`, ...).
    pub extra_args: &'a [&'a str],
}

impl Default for BmcOptions<'_> {
    fn default() -> Self {
        BmcOptions {
            dir: None,
            user: USER,
            password: PASSWORD,
            power: "off",
            log_status: false,
            extra_args: &[],
        }
    }
}

/// One operation the simulator recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    /// Unix time (seconds).
    pub t: f64,
    /// `on`, `off`, `cycle`, `cycle-rejected`, `reset`, `shutdown`,
    /// `bootdev`, `status`, ...
    pub op: String,
    /// Power state after the operation.
    pub power: String,
    pub dev: Option<String>,
    pub efi: Option<bool>,
    pub persistent: Option<bool>,
    /// The whole record.
    pub raw: Value,
}

/// A running simulator; killed on drop.
pub struct FakeBmc {
    _child: KillOnDrop,
    pub port: u16,
    /// The op log: one JSON object per line.
    pub ops_path: PathBuf,
    dir: PathBuf,
    _own_dir: Option<tempfile::TempDir>,
}

impl FakeBmc {
    /// Starts the simulator and returns once it has printed its port
    /// (not yet known to answer: see `FakeBmc::start` of feature `ipmi`).
    pub fn spawn(opts: &BmcOptions) -> FakeBmc {
        let python = venv_python(&["pyghmi"]);
        let own_dir = match opts.dir {
            Some(_) => None,
            None => Some(tempfile::tempdir().expect("temp dir")),
        };
        let dir = opts
            .dir
            .map(Path::to_owned)
            .unwrap_or_else(|| own_dir.as_ref().unwrap().path().to_owned());
        let ops_path = dir.join("bmc-ops.jsonl");
        let sim_err = dir.join("bmc.stderr");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/fake_bmc.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg("0")
            .arg(&ops_path)
            .args(["--user", opts.user, "--power", opts.power])
            .args(opts.log_status.then_some("--log-status"))
            .args(opts.extra_args)
            .env("FAKE_BMC_PASSWORD", opts.password)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&sim_err).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {INSTALL_HINT}", python.display()));
        let stdout = child.stdout.take().expect("stdout");
        let child = KillOnDrop(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx.recv_timeout(START_DEADLINE).unwrap_or_else(|e| {
            panic!(
                "fake_bmc.py printed no port ({e}): {}",
                std::fs::read_to_string(&sim_err).unwrap_or_default()
            )
        });
        let port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected fake_bmc.py line {line:?}"));
        FakeBmc {
            _child: child,
            port,
            ops_path,
            dir,
            _own_dir: own_dir,
        }
    }

    /// The dir holding its op log and stderr.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Operations recorded so far (complete lines).
    pub fn ops(&self) -> Vec<Op> {
        let text = std::fs::read_to_string(&self.ops_path).unwrap_or_default();
        text.split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("ops log line is JSON");
                Op {
                    t: v["t"].as_f64().expect("t"),
                    op: v["op"].as_str().expect("op").to_owned(),
                    power: v["power"].as_str().expect("power").to_owned(),
                    dev: v["dev"].as_str().map(str::to_owned),
                    efi: v["efi"].as_bool(),
                    persistent: v["persistent"].as_bool(),
                    raw: v,
                }
            })
            .collect()
    }

    /// Just the operation names.
    pub fn op_names(&self) -> Vec<String> {
        self.ops().into_iter().map(|o| o.op).collect()
    }

    /// The operations that change the chassis or its boot device (status
    /// queries left out).
    pub fn actions(&self) -> Vec<String> {
        self.ops()
            .into_iter()
            .filter(|o| o.op != "status")
            .map(|o| o.op)
            .collect()
    }

    /// The raw record of the first `bootdev` operation.
    pub fn bootdev(&self) -> Value {
        self.ops()
            .into_iter()
            .find(|o| o.op == "bootdev")
            .expect("a bootdev operation")
            .raw
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

    /// The UDP port nobody answers on.
    pub fn port(&self) -> u16 {
        self.socket.local_addr().unwrap().port()
    }
}

#[cfg(feature = "ipmi")]
mod ipmi {
    use super::{BmcOptions, FakeBmc, PASSWORD, SilentBmc, USER, require_ipmitool};
    use pelagos_config::Secret;
    use pelagos_ipmi::{BmcTarget, IpmiTool, IpmiToolConfig, PowerControl};
    use std::time::{Duration, Instant};

    impl FakeBmc {
        /// A simulator whose chassis is `power` ("on"/"off"), returned once
        /// `ipmitool power status` succeeds against it.
        pub async fn start(power: &str) -> Self {
            Self::start_with(power, &[]).await
        }

        /// Like [`FakeBmc::start`], with more simulator options.
        pub async fn start_with(power: &str, extra_args: &[&str]) -> Self {
            require_ipmitool();
            let bmc = FakeBmc::spawn(&BmcOptions {
                power,
                extra_args,
                ..BmcOptions::default()
            });
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

        /// This simulator (started with the default user and password)
        /// with the right credentials.
        pub fn target(&self) -> BmcTarget {
            BmcTarget::new("127.0.0.1", USER, Secret::new(PASSWORD))
                .with_name("sim-node")
                .with_port(self.port)
        }
    }

    impl SilentBmc {
        /// This BMC as `user` with `password`.
        pub fn target(&self, user: &str, password: &str) -> BmcTarget {
            BmcTarget::new("127.0.0.1", user, Secret::new(password)).with_port(self.port())
        }
    }
}
