//! The release pelagos-server the benchmarks and the simulation drive: built
//! once, started on a lab in a temp dir (simulated hardware, free loopback
//! port), killed on drop.

use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `cargo build --release -p pelagos-server`; the binary's path.
pub fn build_release() -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent dir")?;
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "pelagos-server"])
        .current_dir(root)
        .status()?;
    ensure!(status.success(), "release build failed");
    Ok(std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("release/pelagos-server"))
}

/// An image dir `<dir>/tftp/<name>` with a stand-in kernel and initrd.
pub fn write_image_dir(dir: &Path, name: &str) -> Result<()> {
    let image = dir.join("tftp").join(name);
    std::fs::create_dir_all(&image)?;
    std::fs::write(image.join("pxeboot.kernel"), b"k")?;
    std::fs::write(image.join("pxeboot.initrd.xz"), b"i")?;
    Ok(())
}

/// A running server; killed (and reaped) on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Start `bin` on the lab `lab_json` (written to `<dir>/lab.json`) with
    /// the TFTP root `<dir>/tftp` and `--simulation=<mode>`; returns once it
    /// accepts connections. Its stderr goes to `<dir>/server.log`.
    pub fn start(bin: &Path, dir: &Path, lab_json: &str, mode: &str) -> Result<Server> {
        let config = dir.join("lab.json");
        std::fs::write(&config, lab_json)?;
        std::fs::create_dir_all(dir.join("tftp"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .arg("--tftpdir")
            .arg(dir.join("tftp"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg(format!("--simulation={mode}"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            // Its log (per-request warnings of a stand-in image) would drown
            // the figures: kept in the temp dir for an early exit's report.
            .stderr(std::fs::File::create(dir.join("server.log"))?)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let mut server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.try_wait()? {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                bail!("pelagos-server exited before listening: {status}\n{log}");
            }
            ensure!(Instant::now() < deadline, "server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// Peak resident memory (VmHWM) of the server, in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .context("no VmHWM in /proc status")?;
        Ok(line.split_whitespace().nth(1).unwrap_or("0").parse()?)
    }
}
