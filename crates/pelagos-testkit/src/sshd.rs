//! A real OpenSSH sshd on a free loopback port, test users, client keys.

use crate::{INSTALL_HINT, free_port, open_tempdir, run, set_mode};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
