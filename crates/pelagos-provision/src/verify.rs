//! Which OS a node runs: log in over SSH and read its os-release and kiwi's
//! `/etc/ImageID` ([`SshOsVerifier`], the production [`OsVerifier`]).
//!
//! A node that never PXE-boots (its boot order, a BMC that ignored the
//! boot device, a broken install) falls back to the OS already on its disk,
//! whose sshd answers just as well: readiness alone would call such a
//! provision done. After SSH answers, the state machine asks the verifier
//! what the node runs and compares it with the requested image's manifest.
//!
//! The login is the one salt-ssh uses: the node's salt roster entry's `user`
//! (default `root`), with the lab's `target_node_password` (password
//! authentication), else with the roster entry's `priv` or the salt client
//! key (`--salt-priv-key`). libssh2 runs in-process, so the password never
//! reaches argv, and no message of this module holds it. One command, POSIX
//! sh (busybox and dropbear nodes too), prints both files:
//! [`REMOTE_COMMAND`]. libssh2 blocks: the login runs on tokio's blocking
//! pool, bounded by [`SshOsVerifier::timeout`] (the deadline shuts the socket
//! down, which ends a blocked libssh2 call).

use crate::drivers::{DriverError, OsIdentity, OsVerifier};
use crate::salt::{SaltError, SaltSsh};
use async_trait::async_trait;
use pelagos_config::{LabConfig, Node, Secret};
use std::io::{self, Read};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Printed between os-release and the image id.
pub const SEPARATOR: &str = "--pelagos-image-id--";

/// What the verifier runs on the node: os-release (`/etc`, else
/// `/usr/lib`), [`SEPARATOR`], `/etc/ImageID` (nothing when missing).
pub const REMOTE_COMMAND: &str = "cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null; \
     echo --pelagos-image-id--; cat /etc/ImageID 2>/dev/null; exit 0";

/// Default limit of one check: connect, key exchange, login and command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Most bytes of output read; os-release is a few hundred.
const MAX_OUTPUT: u64 = 64 * 1024;

/// The production [`OsVerifier`]: an SSH login as the node's salt user.
#[derive(Debug, Clone)]
pub struct SshOsVerifier {
    /// Where the user and key of each node come from, and the password.
    salt: SaltSsh,
    /// Limit of one check.
    pub timeout: Duration,
}

/// How the verifier logs in.
enum Login {
    Password(Secret),
    Key(PathBuf),
}

impl SshOsVerifier {
    /// Logs in as salt-ssh would with `salt` (its roster, password and
    /// client key), each check limited to [`DEFAULT_TIMEOUT`].
    pub fn new(salt: SaltSsh) -> Self {
        Self {
            salt,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// With the lab's roster and `target_node_password`, no client key.
    pub fn from_lab(lab: &LabConfig) -> Self {
        Self::new(SaltSsh::from_lab(lab))
    }

    /// The node's login: user and how.
    fn login(&self, node: &Node) -> Result<(String, Login), String> {
        let entry = match self.salt.roster_entry(node) {
            Ok(entry) => entry,
            // A lab without salt may have no roster: log in as root.
            Err(SaltError::RosterRead { source, .. })
                if source.kind() == io::ErrorKind::NotFound =>
            {
                serde_norway::Mapping::new()
            }
            Err(e) => return Err(format!("cannot tell how to log in: {e}")),
        };
        let text = |k: &str| entry.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let user = text("user").unwrap_or_else(|| "root".to_owned());
        if !self.salt.password.is_empty() {
            return Ok((user, Login::Password(self.salt.password.clone())));
        }
        match text("priv")
            .map(PathBuf::from)
            .or(self.salt.priv_key.clone())
        {
            Some(key) => Ok((user, Login::Key(key))),
            None => Err(format!(
                "cannot log in as {user}: the lab has no target_node_password and no client key is configured"
            )),
        }
    }

    /// Log in to `host:port` and read what the node runs.
    pub async fn check(&self, node: &Node) -> Result<OsIdentity, String> {
        let (user, login) = self.login(node)?;
        let host = node.provision_ip().to_owned();
        let port = node.ssh_port;
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let timeout = self.timeout;
        let socket: Arc<Mutex<Option<TcpStream>>> = Arc::default();
        let deadline = Instant::now() + timeout;
        let task = {
            let socket = Arc::clone(&socket);
            let addr = addr.clone();
            let span = tracing::Span::current();
            tokio::task::spawn_blocking(move || {
                let _in_caller_span = span.enter();
                read_blocking(&host, port, &addr, &user, &login, deadline, &socket)
            })
        };
        let output = match tokio::time::timeout(timeout + Duration::from_millis(250), task).await {
            Ok(Ok(res)) => res?,
            Ok(Err(join)) => return Err(format!("SSH login to {addr} did not complete: {join}")),
            Err(_) => {
                if let Some(s) = socket.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    let _ = s.shutdown(Shutdown::Both);
                }
                return Err(format!(
                    "no answer from {addr} within {}s",
                    timeout.as_secs_f64()
                ));
            }
        };
        parse_output(&output).ok_or_else(|| {
            format!("{addr} printed no os-release (unexpected output of the check command)")
        })
    }
}

#[async_trait]
impl OsVerifier for SshOsVerifier {
    async fn running_os(&self, node: &Node) -> Result<OsIdentity, DriverError> {
        self.check(node)
            .await
            .map_err(|m| DriverError::new("os verifier", node, m))
    }
}

/// The node's identity from the command's output; `None` without the
/// separator (not what [`REMOTE_COMMAND`] prints).
pub fn parse_output(output: &str) -> Option<OsIdentity> {
    let (os_release, image_id) = output.split_once(SEPARATOR)?;
    Some(OsIdentity::from_os_release(os_release, image_id))
}

/// Connect, key exchange, log in, run [`REMOTE_COMMAND`], return its
/// output. The socket goes into `socket` so the async side can shut it down
/// at the deadline. No message holds the password.
fn read_blocking(
    host: &str,
    port: u16,
    addr: &str,
    user: &str,
    login: &Login,
    deadline: Instant,
    socket: &Mutex<Option<TcpStream>>,
) -> Result<String, String> {
    let remaining = || deadline.saturating_duration_since(Instant::now());
    let targets: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .collect();
    let mut last: Option<io::Error> = None;
    let mut stream = None;
    for t in targets {
        let left = remaining();
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&t, left) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let stream = stream.ok_or_else(|| match last {
        Some(e) => format!("cannot connect to {addr}: {e}"),
        None => format!("cannot connect to {addr}: no address"),
    })?;
    if let Ok(clone) = stream.try_clone() {
        *socket.lock().unwrap_or_else(|p| p.into_inner()) = Some(clone);
    }
    let left = remaining().max(Duration::from_millis(1));
    let _ = stream.set_read_timeout(Some(left));
    let _ = stream.set_write_timeout(Some(left));
    let ssh_err = |what: &str, e: ssh2::Error| format!("{what} at {addr} failed: {}", e.message());
    let mut session = ssh2::Session::new().map_err(|e| ssh_err("SSH session setup", e))?;
    session.set_timeout(u32::try_from(left.as_millis().max(1)).unwrap_or(u32::MAX));
    session.set_tcp_stream(stream);
    session
        .handshake()
        .map_err(|e| ssh_err("SSH key exchange", e))?;
    let auth = match login {
        Login::Password(pw) => session.userauth_password(user, pw.expose()).or_else(|e| {
            // sshd with only keyboard-interactive: answer its prompts with
            // the password.
            let methods = session.auth_methods(user).unwrap_or_default();
            if session.authenticated() || !methods.contains("keyboard-interactive") {
                return Err(e);
            }
            session.userauth_keyboard_interactive(user, &mut Answer(pw))
        }),
        Login::Key(key) => session.userauth_pubkey_file(user, None, key, None),
    };
    let how = match login {
        Login::Password(_) => "password (target_node_password)".to_owned(),
        Login::Key(key) => format!("key {}", key.display()),
    };
    if let Err(e) = auth
        && !session.authenticated()
    {
        return Err(format!(
            "SSH login as {user} at {addr} with {how} refused: {}",
            e.message()
        ));
    }
    let mut channel = session
        .channel_session()
        .map_err(|e| ssh_err("opening an SSH channel", e))?;
    channel
        .exec(REMOTE_COMMAND)
        .map_err(|e| ssh_err("running the os-release check", e))?;
    let mut out = Vec::new();
    channel
        .by_ref()
        .take(MAX_OUTPUT)
        .read_to_end(&mut out)
        .map_err(|e| format!("reading the os-release check's output from {addr} failed: {e}"))?;
    let _ = channel.wait_close();
    let _ = session.disconnect(None, "pelagos os check", None);
    socket.lock().unwrap_or_else(|p| p.into_inner()).take();
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Answers every keyboard-interactive prompt with the password.
struct Answer<'a>(&'a Secret);

impl ssh2::KeyboardInteractivePrompt for Answer<'_> {
    fn prompt<'b>(
        &mut self,
        _username: &str,
        _instructions: &str,
        prompts: &[ssh2::Prompt<'b>],
    ) -> Vec<String> {
        prompts.iter().map(|_| self.0.expose().to_owned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_prints_the_separator_it_is_parsed_by() {
        assert!(REMOTE_COMMAND.contains(&format!("echo {SEPARATOR};")));
    }

    #[test]
    fn output_is_split_at_the_separator() {
        let out = format!("NAME=Alpha\nID=alpha\nVERSION_ID=\"1.0\"\n{SEPARATOR}\ne2e-alpha-1\n");
        let os = parse_output(&out).unwrap();
        assert_eq!(os.to_string(), "ID=alpha VERSION_ID=1.0 image=e2e-alpha-1");
        // No /etc/ImageID: an empty image id.
        let os = parse_output(&format!("ID=debian\nVERSION_ID=12\n{SEPARATOR}\n")).unwrap();
        assert_eq!(os.to_string(), "ID=debian VERSION_ID=12 image=-");
        // No os-release at all.
        let os = parse_output(&format!("{SEPARATOR}\n")).unwrap();
        assert_eq!(os.id, "");
        assert!(parse_output("ID=debian\n").is_none());
    }

    fn lab(password: &str, roster: &str) -> (tempfile::TempDir, LabConfig) {
        let dir = tempfile::tempdir().unwrap();
        let roster_file = dir.path().join("deploy.roster");
        std::fs::write(&roster_file, roster).unwrap();
        let lab = LabConfig::parse(&format!(
            r#"{{"target_node_password": "{password}", "roster_file": "{}",
                "nodes": [{{"node": "n1.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.1"}}]}}"#,
            roster_file.display()
        ))
        .unwrap();
        (dir, lab)
    }

    #[test]
    fn the_login_is_the_rosters_user_with_the_password_else_a_key() {
        let (_d, l) = lab("pw-1", "n1.lab:\n  host: 10.0.0.1\n  user: admin\n");
        let v = SshOsVerifier::from_lab(&l);
        let (user, login) = v.login(&l.nodes[0]).unwrap();
        assert_eq!(user, "admin");
        assert!(matches!(login, Login::Password(p) if p.expose() == "pw-1"));

        // No entry, or no roster at all: root.
        let (d, l) = lab("pw-1", "other.lab:\n  host: 10.0.0.2\n");
        let (user, _) = SshOsVerifier::from_lab(&l).login(&l.nodes[0]).unwrap();
        assert_eq!(user, "root");
        std::fs::remove_file(d.path().join("deploy.roster")).unwrap();
        let (user, _) = SshOsVerifier::from_lab(&l).login(&l.nodes[0]).unwrap();
        assert_eq!(user, "root");

        // No password: the entry's key, else the salt client key, else none.
        let (_d, l) = lab("", "n1.lab:\n  priv: /keys/n1\n");
        let (_, login) = SshOsVerifier::from_lab(&l).login(&l.nodes[0]).unwrap();
        assert!(matches!(login, Login::Key(k) if k == std::path::Path::new("/keys/n1")));
        let (_d, l) = lab("", "n1.lab: {}\n");
        let mut salt = SaltSsh::from_lab(&l);
        salt.priv_key = Some("/keys/salt".into());
        let (_, login) = SshOsVerifier::new(salt).login(&l.nodes[0]).unwrap();
        assert!(matches!(login, Login::Key(k) if k == std::path::Path::new("/keys/salt")));
        let e = SshOsVerifier::from_lab(&l)
            .login(&l.nodes[0])
            .err()
            .unwrap();
        assert!(e.contains("no target_node_password"), "{e}");
    }

    #[tokio::test]
    async fn a_closed_port_fails_naming_the_address_and_not_the_password() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let (_d, mut l) = lab("Secret-Pw-77", "n1.lab: {}\n");
        l.nodes[0].boot_ip = "127.0.0.1".into();
        l.nodes[0].ssh_port = port;
        let mut v = SshOsVerifier::from_lab(&l);
        v.timeout = Duration::from_secs(3);
        let e = v.check(&l.nodes[0]).await.unwrap_err();
        assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
        assert!(!e.contains("Secret-Pw-77"), "{e}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (_d, mut l) = lab("pw", "n1.lab: {}\n");
        l.nodes[0].boot_ip = "127.0.0.1".into();
        l.nodes[0].ssh_port = port;
        let mut v = SshOsVerifier::from_lab(&l);
        v.timeout = Duration::from_millis(500);
        let started = Instant::now();
        let e = v.check(&l.nodes[0]).await.unwrap_err();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert!(e.contains("within") || e.contains("key exchange"), "{e}");
        drop(listener);
    }
}
