//! salt-ssh (PyPI salt in the test venv): its program, a config dir with
//! two states, and the lock the salt tests share.

use crate::{INSTALL_HINT, run, venv};
use std::path::{Path, PathBuf};

/// Where salt-ssh puts its thin on the node (the roster's `thin_dir` is
/// `<returned dir>/salt`): a fresh dir owned by the node's `user`, removed
/// when the returned guard drops. Salt's default,
/// `/var/tmp/.<user>_<hash>_salt`, outlives the test and is refused to a
/// later user of the same name with another uid (a fresh machine's test
/// users). Not inside the test's own dir: the node-side `salt-call` of a
/// timed-out state may outlive salt-ssh, as it would on a real node.
pub fn thin_dir(user: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("pelagos-thin-")
        .tempdir_in("/var/tmp")
        .unwrap();
    run("chown", &[user, dir.path().to_str().unwrap()]);
    dir
}

pub fn salt_ssh_bin() -> PathBuf {
    let bin = venv().join("bin/salt-ssh");
    assert!(
        bin.exists(),
        "{} is missing (PyPI salt in the test venv); {INSTALL_HINT}",
        bin.display()
    );
    bin
}

/// A salt-ssh config dir `<dir>/salt`: its `master` file (root
/// `<dir>/saltroot`, cache `cache`) and the states `hello` (writes
/// `<out>/hello.txt`) and `bad` (fails). The states dir.
pub fn write_salt_config(dir: &Path, out: &Path, cache: &Path) -> PathBuf {
    let states = dir.join("salt/states");
    std::fs::create_dir_all(&states).unwrap();
    std::fs::write(
        dir.join("salt/master"),
        format!(
            "root_dir: {root}\nfile_roots:\n  base:\n    - {states}\ncachedir: {cache}\n\
             pki_dir: {root}/pki\nlog_file: {root}/master.log\nssh_log_file: {root}/ssh.log\n",
            root = dir.join("saltroot").display(),
            states = states.display(),
            cache = cache.display(),
        ),
    )
    .unwrap();
    std::fs::write(
        states.join("hello.sls"),
        format!(
            "hello_file:\n  file.managed:\n    - name: {}/hello.txt\n    - contents: hello from salt\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::write(
        states.join("bad.sls"),
        "bad_command:\n  cmd.run:\n    - name: /bin/false\n",
    )
    .unwrap();
    states
}

/// Held while a test runs salt: the salt tests share a target user, and
/// salt-ssh deploys its thin package into that user's /var/tmp dir. A file
/// lock (flock), because nextest runs each test in its own process.
pub struct SaltLock(#[allow(dead_code)] std::fs::File);

/// Waits (blocking: call it before the test starts its own work) for the
/// other salt tests of the machine to end.
pub fn salt_lock() -> SaltLock {
    let path = std::env::temp_dir().join("pelagos-salt-tests.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
    SaltLock(file)
}
