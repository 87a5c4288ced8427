//! What the workspace's tests share: free ports, child processes killed on
//! drop, the test venv, log capture, and the real peers the tests drive.
//!
//! - [`conmand`]: a real conmand whose console is a unix socket the test serves;
//! - [`sshd`]: a real OpenSSH sshd on loopback, test users, keys;
//! - [`salt`]: salt-ssh (PyPI salt in the test venv), its config and lock;
//! - [`bmc`] (feature `bmc`): the pyghmi RMCP+ BMC simulator
//!   (`peers/fake_bmc.py`) and an ipmitool recorder; with feature `ipmi`,
//!   the simulator as a `pelagos_ipmi::BmcTarget`;
//! - `kiwi` (feature `kiwi`): a synthetic kiwi OEM PXE build;
//! - [`labs`]: large generated lab JSON (thousands of nodes);
//! - `log` (feature `log`): tracing output captured for assertions.
//!
//! A peer that is not installed fails its test with [`INSTALL_HINT`]; it
//! never skips. Peers take free ports and temp dirs and are killed on drop,
//! so tests run in parallel.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

#[cfg(feature = "bmc")]
pub mod bmc;
pub mod conmand;
#[cfg(feature = "kiwi")]
pub mod kiwi;
pub mod labs;
#[cfg(feature = "log")]
pub mod log;
pub mod salt;
pub mod sshd;

/// What a test says when a peer program is missing.
pub const INSTALL_HINT: &str = "run scripts/install-test-deps.sh (as root)";

/// A TCP port free on 127.0.0.1 right now (another process may take it
/// before the caller binds it: retry on a bind failure).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (and reaped) on drop, on failure too.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The workspace root (holds `examples/`, `states.sample/`, `.venv`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The test venv: `$PELAGOS_TEST_VENV`, else `<workspace root>/.venv`.
pub fn venv() -> PathBuf {
    std::env::var_os("PELAGOS_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv"))
}

/// The test venv's python, able to `import` each of `modules`; panics with
/// the install hint otherwise.
pub fn venv_python(modules: &[&str]) -> PathBuf {
    let python = venv().join("bin/python");
    assert!(
        python.exists(),
        "no Python test venv at {}: {INSTALL_HINT}",
        venv().display()
    );
    for module in modules {
        let ok = Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "{} cannot import {module}: {INSTALL_HINT}",
            python.display()
        );
    }
    python
}

/// `program` on `$PATH` or in the usual system dirs; panics with the
/// install hint (and `package`, the Debian package) if it is nowhere.
pub fn which(program: &str, package: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    for dir in path.split(':').chain([
        "/usr/bin",
        "/usr/sbin",
        "/usr/local/bin",
        "/usr/local/sbin",
        "/bin",
        "/sbin",
    ]) {
        let p = Path::new(dir).join(program);
        if p.is_file() {
            return p;
        }
    }
    panic!("{program} not found (Debian package `{package}`): {INSTALL_HINT}");
}

/// A peer program at a fixed path; panics with the install hint if missing.
pub fn require_program(path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(p.exists(), "{path} is missing: {INSTALL_HINT}");
    p
}

/// Run a program to completion; its stdout. Panics with its stderr if it
/// fails, with the install hint if it cannot start.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Set `path`'s permission bits.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A world-readable temp dir (sshd and the test users read files in it).
pub fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("pelagos-node-")
        .tempdir()
        .unwrap();
    set_mode(dir.path(), 0o755);
    dir
}

/// The argv of every process on the machine, arguments joined by spaces.
pub fn argvs() -> impl Iterator<Item = String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|a| String::from_utf8_lossy(&a).replace('\0', " "))
}
