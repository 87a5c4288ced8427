//! A real conmand (Debian `conman` 0.2.7) whose console is a unix socket
//! the test serves: std only, no tokio.

use std::fs::File;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{INSTALL_HINT, free_port};

/// How long conmand may take to start and connect to the console socket.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// conmand, on `$PATH` or in the sbin dirs.
pub fn conmand_bin() -> PathBuf {
    crate::which("conmand", "conman")
}

/// A conman.conf as make-cfgs writes it (logs named `console.%N` in
/// `log_dir`, sanitized and timestamped; the console name is the node's
/// short name `name`, its device the unix socket `sock`), with a private
/// pidfile in `dir`; the port is the argument.
pub fn test_conf(
    dir: &Path,
    log_dir: &Path,
    name: &str,
    sock: &Path,
) -> impl Fn(u16) -> String + use<> {
    let (dir, log_dir, name, sock) = (
        dir.to_owned(),
        log_dir.to_owned(),
        name.to_owned(),
        sock.to_owned(),
    );
    move |port| {
        format!(
            "SERVER logdir=\"{log_dir}/\"\n\
             SERVER pidfile=\"{dir}/conmand.pid\"\n\
             SERVER port={port}\n\
             SERVER loopback=ON\n\
             GLOBAL log=\"console.%N\"\n\
             GLOBAL logopts=\"sanitize,timestamp\"\n\
             CONSOLE name=\"{name}\" dev=\"unix:{sock}\"\n",
            log_dir = log_dir.display(),
            dir = dir.display(),
            sock = sock.display(),
        )
    }
}

/// A conmand started by the test, killed (and reaped) when dropped.
pub struct Conmand {
    child: Child,
    stderr: PathBuf,
}

impl Conmand {
    /// Starts conmand with `conf(<free port>)` as its `<dir>/conman.conf`
    /// and returns it with the connection it made to `listener`, the
    /// node's serial port. The listener must exist before conmand starts
    /// (conmand 0.2.7 waits a minute before retrying a socket it could not
    /// connect to).
    pub fn start(
        dir: &Path,
        listener: &UnixListener,
        conf: impl Fn(u16) -> String,
    ) -> (Conmand, UnixStream) {
        listener.set_nonblocking(true).unwrap();
        let bin = conmand_bin();
        let stderr = dir.join("conmand.stderr");
        let mut last_err = String::new();
        // Another process may take the port between our probe and conmand's bind.
        for _ in 0..3 {
            let conf_path = dir.join("conman.conf");
            std::fs::write(&conf_path, conf(free_port())).unwrap();
            let child = Command::new(&bin)
                .arg("-F")
                .arg("-c")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(&stderr).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}; {INSTALL_HINT}", bin.display()));
            let mut conmand = Conmand {
                child,
                stderr: stderr.clone(),
            };
            let started = Instant::now();
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        return (conmand, stream);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("accept on the console socket: {e}"),
                }
                if let Some(status) = conmand.child.try_wait().unwrap() {
                    last_err = format!("conmand exited ({status}): {}", conmand.stderr());
                    break;
                }
                assert!(
                    started.elapsed() < START_DEADLINE,
                    "conmand did not connect to the console socket within {START_DEADLINE:?}: {}",
                    conmand.stderr()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("conmand would not start: {last_err}");
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Conmand {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
