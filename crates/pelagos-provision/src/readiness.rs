//! Readiness: a node is ready when its SSH server speaks SSH.
//!
//! An open TCP port is not enough (a BMC's serial-over-LAN proxy, a half-started
//! sshd or an installer's netcat would pass that test), so a probe connects,
//! reads the server's identification banner and completes a key exchange
//! through libssh2 ([`ssh2::Session::handshake`]); no authentication is tried.
//! libssh2 blocks, so each probe runs on tokio's blocking pool and is bounded
//! by its timeout: when the deadline passes, the socket is shut down, which
//! ends the blocked handshake.
//!
//!
//! One probe is all this module does: the provisioning state machine probes
//! every `ssh_probe_interval` until `wait_node_ready_timeout`, and watches
//! the console for a stalled boot between probes.
//!
//! ```no_run
//! # async fn demo(node: &pelagos_config::Node, timing: &pelagos_config::Timing) {
//! use pelagos_provision::readiness::SshProbe;
//! let probe = SshProbe::from_timing(timing);
//! match probe.probe_node(node).await {
//!     Ok(ready) => tracing::info!(banner = %ready.banner, "node is up"),
//!     Err(not_yet) => tracing::debug!("{not_yet}"),
//! }
//! # }
//! ```

use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A successful probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// The server's identification string, e.g. `SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10`.
    pub banner: String,
}

/// Why one probe found the node not ready.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// The host name did not resolve to any address.
    #[error("cannot resolve SSH address {addr}: {source}")]
    Resolve {
        /// `host:port` as probed (an IPv6 host in brackets).
        addr: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// Nothing listens on the port (the node is still booting, or sshd is down).
    #[error("SSH connection to {addr} refused")]
    Refused {
        /// `host:port` as probed (an IPv6 host in brackets).
        addr: String,
    },
    /// No connection, banner or key exchange within the probe's timeout.
    #[error("no SSH handshake with {addr} within {timeout:?} ({stage})")]
    Timeout {
        /// `host:port` as probed (an IPv6 host in brackets).
        addr: String,
        /// The probe's limit ([`SshProbe::timeout`]).
        timeout: Duration,
        /// What was still missing: `connect`, or `banner/key exchange`.
        stage: &'static str,
    },
    /// Something answered on the port, but not an SSH server.
    #[error("{addr} accepts connections but does not speak SSH: {detail}")]
    NotSsh {
        /// `host:port` as probed (an IPv6 host in brackets).
        addr: String,
        /// Why the banner or key exchange failed, as libssh2 tells.
        detail: String,
    },
    /// Any other network error (unreachable host or network, reset, ...).
    #[error("cannot connect to SSH at {addr}: {source}")]
    Connect {
        /// `host:port` as probed (an IPv6 host in brackets).
        addr: String,
        /// The connect error of the last address tried.
        #[source]
        source: io::Error,
    },
    /// The blocking probe task itself failed (panic or runtime shutdown).
    #[error("SSH probe of {addr} did not complete: {detail}")]
    Aborted {
        /// `host:port` as probed (an IPv6 host in brackets).
        addr: String,
        /// The blocking task's join error.
        detail: String,
    },
}

impl NotReady {
    /// The `host:port` the probe tried.
    pub fn addr(&self) -> &str {
        match self {
            NotReady::Resolve { addr, .. }
            | NotReady::Refused { addr }
            | NotReady::Timeout { addr, .. }
            | NotReady::NotSsh { addr, .. }
            | NotReady::Connect { addr, .. }
            | NotReady::Aborted { addr, .. } => addr,
        }
    }
}

/// One SSH handshake probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SshProbe {
    /// Limit of one probe: connect, banner and key exchange together.
    pub timeout: Duration,
}

impl SshProbe {
    /// A probe whose connect, banner and key exchange together must finish
    /// within `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }

    /// A probe limited by `ssh_probe_timeout`.
    pub fn from_timing(timing: &pelagos_config::Timing) -> Self {
        Self::new(timing.ssh_probe_timeout)
    }

    /// Probe a node at its provisioning address (`boot_ip`, else `ip`) and `ssh_port`.
    pub async fn probe_node(&self, node: &pelagos_config::Node) -> Result<Ready, NotReady> {
        self.probe(node.provision_ip(), node.ssh_port).await
    }

    /// Connect to `host:port`, read the SSH banner and complete a key exchange.
    pub async fn probe(&self, host: &str, port: u16) -> Result<Ready, NotReady> {
        let addr = display_addr(host, port);
        let timeout = self.timeout;
        // The blocking side hands its socket here so that the deadline can
        // shut it down and so end a handshake libssh2 is blocked in.
        let socket: Arc<Mutex<Option<TcpStream>>> = Arc::default();
        let started = Instant::now();
        let task = {
            let (host, addr, socket) = (host.to_owned(), addr.clone(), Arc::clone(&socket));
            let deadline = started.into_std() + timeout;
            tokio::task::spawn_blocking(move || {
                probe_blocking(&host, port, &addr, timeout, deadline, &socket)
            })
        };
        // Slack over the probe's own timeout: the blocking side normally
        // reports its timeout itself; this only catches a stuck libssh2.
        let outcome = tokio::time::timeout(timeout + Duration::from_millis(250), task).await;
        let result = match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(NotReady::Aborted {
                addr,
                detail: join.to_string(),
            }),
            Err(_) => {
                // No socket yet: still resolving or connecting.
                let stage = match socket.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    Some(s) => {
                        let _ = s.shutdown(Shutdown::Both);
                        "banner/key exchange"
                    }
                    None => "connect",
                };
                Err(NotReady::Timeout {
                    addr,
                    timeout,
                    stage,
                })
            }
        };
        match &result {
            Ok(ready) => tracing::debug!(
                target: "pelagos::readiness",
                host, port, banner = %ready.banner, elapsed = ?started.elapsed(), "SSH handshake completed"
            ),
            Err(e) => tracing::debug!(
                target: "pelagos::readiness",
                host, port, elapsed = ?started.elapsed(), "SSH probe failed: {e}"
            ),
        }
        result
    }
}

fn display_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn probe_blocking(
    host: &str,
    port: u16,
    addr: &str,
    timeout: Duration,
    deadline: std::time::Instant,
    socket: &Mutex<Option<TcpStream>>,
) -> Result<Ready, NotReady> {
    let remaining = || deadline.saturating_duration_since(std::time::Instant::now());
    let timed_out = |stage| NotReady::Timeout {
        addr: addr.to_owned(),
        timeout,
        stage,
    };
    let targets: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|source| NotReady::Resolve {
            addr: addr.to_owned(),
            source,
        })?
        .collect();
    let mut last_err = None;
    let mut stream = None;
    for target in targets {
        let left = remaining();
        if left.is_zero() {
            return Err(timed_out("connect"));
        }
        match TcpStream::connect_timeout(&target, left) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let stream = match (stream, last_err) {
        (Some(s), _) => s,
        (None, Some(e)) => {
            return Err(match e.kind() {
                io::ErrorKind::ConnectionRefused => NotReady::Refused {
                    addr: addr.to_owned(),
                },
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => timed_out("connect"),
                _ => NotReady::Connect {
                    addr: addr.to_owned(),
                    source: e,
                },
            });
        }
        (None, None) => {
            return Err(NotReady::Resolve {
                addr: addr.to_owned(),
                source: io::Error::new(io::ErrorKind::NotFound, "no address"),
            });
        }
    };
    if let Ok(clone) = stream.try_clone() {
        *socket.lock().unwrap_or_else(|p| p.into_inner()) = Some(clone);
    }
    let left = remaining();
    if left.is_zero() {
        return Err(timed_out("banner/key exchange"));
    }
    // Both the socket and libssh2 get the remaining time: libssh2 waits on
    // the socket itself and enforces its own timeout.
    let _ = stream.set_read_timeout(Some(left));
    let _ = stream.set_write_timeout(Some(left));
    let mut session = ssh2::Session::new().map_err(|e| NotReady::Aborted {
        addr: addr.to_owned(),
        detail: format!("cannot create an SSH session: {e}"),
    })?;
    session.set_timeout(u32::try_from(left.as_millis().max(1)).unwrap_or(u32::MAX));
    session.set_tcp_stream(stream);
    let result = session.handshake();
    // Whatever happened, the socket is ours no longer once we return.
    socket.lock().unwrap_or_else(|p| p.into_inner()).take();
    match result {
        Ok(()) => {
            let banner = session.banner().unwrap_or_default().trim().to_owned();
            let _ = session.disconnect(None, "pelagos readiness probe", None);
            Ok(Ready { banner })
        }
        Err(e) => Err(classify(e, addr, timeout, remaining().is_zero())),
    }
}

/// Map a libssh2 handshake error to why the node is not ready.
fn classify(e: ssh2::Error, addr: &str, timeout: Duration, expired: bool) -> NotReady {
    const LIBSSH2_ERROR_TIMEOUT: i32 = -9;
    const LIBSSH2_ERROR_SOCKET_TIMEOUT: i32 = -30;
    let code = match e.code() {
        ssh2::ErrorCode::Session(c) => c,
        ssh2::ErrorCode::SFTP(c) => c,
    };
    if code == LIBSSH2_ERROR_TIMEOUT || code == LIBSSH2_ERROR_SOCKET_TIMEOUT || expired {
        return NotReady::Timeout {
            addr: addr.to_owned(),
            timeout,
            stage: "banner/key exchange",
        };
    }
    NotReady::NotSsh {
        addr: addr.to_owned(),
        detail: format!("{} (libssh2 error {code})", e.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_print_with_brackets_for_ipv6() {
        assert_eq!(display_addr("10.0.0.1", 22), "10.0.0.1:22");
        assert_eq!(display_addr("::1", 2222), "[::1]:2222");
    }

    #[test]
    fn probe_from_timing_uses_the_lab_knob() {
        let t = pelagos_config::Timing {
            ssh_probe_timeout: Duration::from_millis(2500),
            ..Default::default()
        };
        assert_eq!(
            SshProbe::from_timing(&t).timeout,
            Duration::from_millis(2500)
        );
    }

    #[tokio::test]
    async fn unresolvable_host_is_not_ready() {
        let probe = SshProbe::new(Duration::from_secs(2));
        let err = probe
            .probe("no-such-host.invalid", 22)
            .await
            .expect_err("an unresolvable name cannot be ready");
        assert!(
            matches!(err, NotReady::Resolve { .. } | NotReady::Timeout { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("no-such-host.invalid:22"), "{err}");
    }
}
