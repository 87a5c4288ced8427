//! The real programs of the e2e lab, each started inside the run's network
//! namespace and killed (and reaped) when dropped: dnsmasq, conmand, one
//! BMC simulator per VM (RMCP+ for ipmitool, QMP to the VM's QEMU) and
//! pelagos-server in production mode.

use anyhow::{Context, Result, bail};
use pelagos_testkit::KillOnDrop;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Poll `cond` every 50 ms until it holds or `limit` passes.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if cond()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alive(child: &mut KillOnDrop, what: &str, log: &Path) -> Result<()> {
    if let Some(st) = child.0.try_wait()? {
        bail!(
            "{what} exited ({st}): {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
    Ok(())
}

pub struct Dnsmasq {
    child: KillOnDrop,
    pub log: PathBuf,
}

impl Dnsmasq {
    /// `dnsmasq -k -C <main>`; returns once it wrote its pid file.
    pub fn start(main: &Path, dir: &Path) -> Result<Dnsmasq> {
        let log = dir.join("dnsmasq.log");
        let stderr = dir.join("dnsmasq.stderr");
        let child = Command::new("dnsmasq")
            .arg("-k")
            .arg("-C")
            .arg(main)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()
            .context("start dnsmasq")?;
        let mut d = Dnsmasq {
            child: KillOnDrop(child),
            log,
        };
        let pid = dir.join("dnsmasq.pid");
        wait_for("dnsmasq's pid file", Duration::from_secs(10), || {
            alive(&mut d.child, "dnsmasq", &stderr)?;
            Ok(pid.exists())
        })?;
        Ok(d)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub struct Conmand {
    _child: KillOnDrop,
}

impl Conmand {
    /// conmand in the foreground on the conman.conf make-cfgs wrote;
    /// returns once it has opened the log of every console in `logs`.
    pub fn start(conf: &Path, logs: &[PathBuf], dir: &Path) -> Result<Conmand> {
        let stderr = dir.join("conmand.stderr");
        let child = Command::new(pelagos_testkit::which("conmand", "conman"))
            .arg("-F")
            .arg("-c")
            .arg(conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()
            .context("start conmand")?;
        let mut c = KillOnDrop(child);
        wait_for(
            "conmand to connect to every console",
            Duration::from_secs(20),
            || {
                alive(&mut c, "conmand", &stderr)?;
                Ok(logs
                    .iter()
                    .all(|l| std::fs::read_to_string(l).is_ok_and(|t| t.contains("connected to"))))
            },
        )?;
        Ok(Conmand { _child: c })
    }
}

/// The pyghmi BMC simulator of the test kit, driving one VM through QMP.
pub struct Bmc {
    child: Option<KillOnDrop>,
    pub ops: PathBuf,
}

impl Bmc {
    pub fn start(
        python: &Path,
        script: &Path,
        address: &str,
        port: u16,
        qmp: &Path,
        password: &str,
        dir: &Path,
    ) -> Result<Bmc> {
        std::fs::create_dir_all(dir)?;
        let ops = dir.join("bmc-ops.jsonl");
        let stderr = dir.join("bmc.stderr");
        let mut child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .arg(&ops)
            .args(["--address", address, "--qmp"])
            .arg(qmp)
            .args(["--power", "off"])
            .env("FAKE_BMC_PASSWORD", password)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()
            .context("start fake_bmc.py")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut child = KillOnDrop(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.starts_with("listening") => {}
            other => {
                alive(&mut child, "fake_bmc.py", &stderr)?;
                bail!("fake_bmc.py did not start: {other:?}");
            }
        }
        Ok(Bmc {
            child: Some(child),
            ops,
        })
    }

    /// Stop it: the BMC no longer answers.
    pub fn stop(&mut self) {
        self.child = None;
    }
}

pub struct Server {
    _child: KillOnDrop,
    pub url: String,
    pub log: PathBuf,
}

impl Server {
    /// pelagos-server in production mode on the lab, listening on the
    /// lab network; its log (RUST_LOG=info) goes to `<dir>/server.log`.
    pub fn start(
        bin: &Path,
        work: &Path,
        listen: &str,
        salt_ssh: &Path,
        venv_bin: &Path,
    ) -> Result<Server> {
        let log = work.join("server.log");
        let path = format!(
            "{}:{}",
            venv_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(work.join("lab.json"))
            .arg("--tftpdir")
            .arg(work.join("tftp"))
            .arg("--state-dir")
            .arg(work.join("state"))
            .args(["--listen", listen])
            .arg("--salt-ssh")
            .arg(salt_ssh)
            .env("RUST_LOG", "info")
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("start pelagos-server")?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut child = KillOnDrop(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("pelagos-server listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                alive(&mut child, "pelagos-server", &log)?;
                bail!("pelagos-server did not say where it listens");
            }
        };
        Ok(Server {
            _child: child,
            url,
            log,
        })
    }
}
