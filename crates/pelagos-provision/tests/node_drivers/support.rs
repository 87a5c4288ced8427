//! Test peers: a real OpenSSH sshd on a free loopback port, test users,
//! client keys, the venv's salt-ssh.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const INSTALL_HINT: &str = "run scripts/install-test-deps.sh";

/// Run a program to completion; panic with its output if it fails.
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

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Generate an ed25519 key pair at `path` (and `path.pub`).
pub fn keygen(path: &Path) {
    run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            path.to_str().unwrap(),
        ],
    );
}

/// Options of a test sshd.
#[derive(Default, Clone)]
pub struct SshdOptions {
    pub password_auth: bool,
    /// Public keys accepted for any user (besides the users' own
    /// `~/.ssh/authorized_keys`, where salt's `--key-deploy` writes).
    pub authorized_keys: Vec<PathBuf>,
    /// Listen on this port instead of a fresh one.
    pub port: Option<u16>,
}

/// A real sshd, killed and reaped on drop.
pub struct Sshd {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
    log: Arc<Mutex<Vec<String>>>,
}

impl Sshd {
    pub fn start(opts: SshdOptions) -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "{} is missing (Debian openssh-server); {INSTALL_HINT}",
            sshd.display()
        );
        // sshd's privilege-separation directory.
        std::fs::create_dir_all("/run/sshd").expect("cannot create /run/sshd");
        let dir = open_tempdir();
        let hostkey = dir.path().join("hostkey");
        keygen(&hostkey);
        let auth_keys = dir.path().join("authorized_keys");
        let mut keys = String::new();
        for k in &opts.authorized_keys {
            keys.push_str(&std::fs::read_to_string(k).unwrap());
        }
        std::fs::write(&auth_keys, keys).unwrap();
        set_mode(&auth_keys, 0o644);
        for attempt in 0.. {
            let port = opts.port.unwrap_or_else(free_port);
            let conf = dir.path().join("sshd_config");
            std::fs::write(
                &conf,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {hostkey}\n\
                     PubkeyAuthentication yes\nPasswordAuthentication {pw}\n\
                     KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                     AuthorizedKeysFile {auth_keys} .ssh/authorized_keys\n\
                     PidFile {pid}\nSubsystem sftp /usr/lib/openssh/sftp-server\n",
                    hostkey = hostkey.display(),
                    pw = if opts.password_auth { "yes" } else { "no" },
                    auth_keys = auth_keys.display(),
                    pid = dir.path().join("sshd.pid").display(),
                ),
            )
            .unwrap();
            let mut child = Command::new(sshd)
                .args(["-D", "-e", "-f"])
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start sshd: {e}; {INSTALL_HINT}"));
            let log: Arc<Mutex<Vec<String>>> = Arc::default();
            let (tx, rx) = std::sync::mpsc::channel();
            {
                let stderr = child.stderr.take().unwrap();
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                        let _ = tx.send(line.clone());
                        log.lock().unwrap().push(line);
                    }
                });
            }
            // Wait for sshd's own "listening" line (or its death).
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut seen = Vec::new();
            let listening = loop {
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(line) if line.contains("Server listening on") => break true,
                    Ok(line) => seen.push(line),
                    Err(_) => break false,
                }
            };
            if listening {
                return Sshd {
                    child,
                    port,
                    _dir: dir,
                    log,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            if attempt >= 4 || opts.port.is_some() {
                panic!("sshd did not start on port {port}: {seen:?}");
            }
        }
        unreachable!()
    }

    /// sshd's log so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local user for salt-ssh to log into, created once if absent, with a
/// clean `/bin/sh` login and the given password (`*`: key login only;
/// sshd with `UsePAM no` refuses a locked account).
pub fn ensure_user(name: &str, password: Option<&str>) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let exists = |name: &str| {
        Command::new("id")
            .arg(name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    if !exists(name) {
        let out = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", name])
            .output()
            .expect("useradd");
        // Another test process may have created it meanwhile.
        assert!(
            out.status.success() || exists(name),
            "cannot create test user {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    match password {
        Some(pw) => {
            let mut child = Command::new("chpasswd")
                .stdin(Stdio::piped())
                .spawn()
                .expect("chpasswd");
            std::io::Write::write_all(
                child.stdin.as_mut().unwrap(),
                format!("{name}:{pw}\n").as_bytes(),
            )
            .unwrap();
            drop(child.stdin.take());
            assert!(
                child.wait().unwrap().success(),
                "chpasswd for {name} failed"
            );
        }
        None => {
            run("usermod", &["-p", "*", name]);
        }
    }
    let home = run("getent", &["passwd", name]);
    PathBuf::from(home.trim().split(':').nth(5).expect("home dir"))
}

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

/// The test venv: `$PELAGOS_TEST_VENV`, else `<workspace root>/.venv`.
pub fn venv() -> PathBuf {
    std::env::var_os("PELAGOS_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(".venv")
        })
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

/// The argv of every process on the machine, arguments joined by spaces.
pub fn argvs() -> impl Iterator<Item = String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|a| String::from_utf8_lossy(&a).replace('\0', " "))
}

/// Held while a test runs salt: the salt tests share a target user, and
/// salt-ssh deploys its thin package into that user's /var/tmp dir. A file
/// lock (flock), because nextest runs each test in its own process.
pub struct SaltLock(#[allow(dead_code)] std::fs::File);

pub async fn salt_lock() -> SaltLock {
    tokio::task::spawn_blocking(|| {
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
    })
    .await
    .unwrap()
}

/// Collects tracing events (message plus fields) for assertions.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<String>>>);

impl Captured {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A subscriber writing every event of this thread into `Captured`.
pub fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}
