//! systemd's service notification protocol (sd_notify(3)), written by hand:
//! one datagram of `KEY=VALUE` lines to the unix socket named by
//! `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading
//! `@`). Without `$NOTIFY_SOCKET` (not started by systemd, or not
//! `Type=notify`) every call does nothing.
//!
//! The unit (`states.sample/etc/systemd/system/pelagos.service`) is
//! `Type=notify` with `WatchdogSec=`: `main.rs` sends `READY=1` once the
//! server listens, `WATCHDOG=1` at half of `$WATCHDOG_USEC` from a task
//! that reads the engine ([`watchdog`]), `RELOADING=1` then `READY=1`
//! around a SIGHUP reload, and `STOPPING=1` when a stop begins.

use pelagos_provision::Engine;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, warn};

/// The socket systemd listens on, if it gave one.
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; `None` when it is unset or empty. A value
    /// that names no usable socket is logged and treated as unset.
    pub fn from_env() -> Option<Arc<Self>> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        if name.is_empty() {
            return None;
        }
        match Self::open(&name) {
            Ok(n) => Some(Arc::new(n)),
            Err(e) => {
                warn!("NOTIFY_SOCKET={name:?} unusable, systemd is not notified: {e}");
                None
            }
        }
    }

    fn open(name: &std::ffi::OsStr) -> std::io::Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = name.as_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(abstract_name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(abstract_name)?
            }
            None if bytes.starts_with(b"/") => SocketAddr::from_pathname(name)?,
            None => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "neither an absolute path nor an abstract name (@...)",
                ));
            }
        };
        Ok(Self {
            socket: UnixDatagram::unbound()?,
            addr,
        })
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines). A failure is
    /// logged, never fatal: systemd acts on the missing message itself.
    pub fn notify(&self, state: &str) {
        match self.socket.send_to_addr(state.as_bytes(), &self.addr) {
            Ok(_) => debug!(state, "notified systemd"),
            Err(e) => warn!("cannot notify systemd ({state}): {e}"),
        }
    }
}

/// Sends `state` if there is a notifier.
pub fn send(notifier: Option<&Arc<Notifier>>, state: &str) {
    if let Some(n) = notifier {
        n.notify(state);
    }
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, if it is set
/// for this process (`$WATCHDOG_PID` unset or ours), as sd_watchdog_enabled(3)
/// advises.
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.trim().parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Sends `WATCHDOG=1` every `interval` while the engine answers: each
/// ping follows a read of the engine's task map (its lock) and lab state
/// on the runtime that serves requests, so a wedged runtime or a lock
/// held forever stops the pings and systemd restarts the service.
pub async fn watchdog(notifier: Arc<Notifier>, engine: Arc<Engine>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let tasks = engine.task_count();
        let nodes = engine.lab().nodes.len();
        tracing::trace!(tasks, nodes, "watchdog");
        notifier.notify("WATCHDOG=1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abstract_and_path_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let n = Notifier::open(path.as_os_str()).unwrap();
        n.notify("READY=1");
        let mut buf = [0u8; 64];
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("pelagos-notify-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        let n = Notifier::open(format!("@{name}").as_ref()).unwrap();
        n.notify("WATCHDOG=1");
        let len = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");

        assert!(Notifier::open("relative/path".as_ref()).is_err());
    }
}
