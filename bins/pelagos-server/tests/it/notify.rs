//! systemd's notify protocol: the real binary started with
//! `$NOTIFY_SOCKET` naming a datagram socket this test binds, as systemd
//! starts a `Type=notify` unit with `WatchdogSec=`.

use crate::{Fixture, Server};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

/// The next datagram's text; fails after `within`.
fn recv(sock: &UnixDatagram, within: Duration) -> String {
    sock.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .expect("no datagram from the server in time");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

/// Receives until a datagram equals `want` (watchdog pings interleave with
/// the rest); returns what came before it.
fn recv_until(sock: &UnixDatagram, want: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {want:?}; got {before:?}");
        let msg = recv(sock, left);
        if msg == want {
            return before;
        }
        before.push(msg);
    }
}

/// `cmd` (a fixture's server command, with the notify variables) on an
/// ephemeral loopback port.
fn start(cmd: Command) -> Server {
    Server::spawn(cmd, None)
}

/// Waits for a server already sent SIGTERM to exit, successfully.
fn exited(mut server: Server) {
    let code = server.child.0.wait().unwrap();
    assert!(code.success(), "server exited with {code}");
}

fn kill(server: &Server, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &server.child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// READY=1 once listening (the REST API answers by then), WATCHDOG=1
/// repeatedly at half of WATCHDOG_USEC, RELOADING=1 then READY=1 around a
/// SIGHUP reload, STOPPING=1 at SIGTERM.
#[tokio::test]
async fn ready_watchdog_reload_and_stopping() {
    let fx = Fixture::new();
    let path = fx.path("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let mut cmd = fx.server_command();
    cmd.env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID");
    let server = start(cmd);

    let before = recv_until(&sock, "READY=1");
    assert!(before.is_empty(), "before READY=1: {before:?}");
    let (code, _) = server.get_json("/nodes").await;
    assert_eq!(code, 200);

    // Pings at 200 ms: three arrive well within the 30 s bound.
    for _ in 0..3 {
        assert_eq!(recv_until(&sock, "WATCHDOG=1"), Vec::<String>::new());
    }

    kill(&server, "-HUP");
    let before = recv_until(&sock, "RELOADING=1");
    assert!(before.iter().all(|m| m == "WATCHDOG=1"), "{before:?}");
    let before = recv_until(&sock, "READY=1");
    assert!(before.iter().all(|m| m == "WATCHDOG=1"), "{before:?}");

    kill(&server, "-TERM");
    let before = recv_until(&sock, "STOPPING=1");
    assert!(before.iter().all(|m| m == "WATCHDOG=1"), "{before:?}");
    exited(server);
}

/// Without $NOTIFY_SOCKET nothing is sent and the server runs as ever; a
/// WATCHDOG_PID naming another process turns the watchdog off.
#[tokio::test]
async fn no_socket_no_notification() {
    let fx = Fixture::new();
    let server = Server::start(&fx, &[]);
    let (code, _) = server.get_json("/nodes").await;
    assert_eq!(code, 200);

    let fx2 = Fixture::new();
    let path = fx2.path("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let mut cmd = fx2.server_command();
    cmd.env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "100000")
        .env("WATCHDOG_PID", "1");
    let other = start(cmd);
    assert_eq!(recv_until(&sock, "READY=1"), Vec::<String>::new());
    kill(&other, "-TERM");
    // Nothing but STOPPING=1 follows: no watchdog pings for another pid.
    assert_eq!(recv_until(&sock, "STOPPING=1"), Vec::<String>::new());
    exited(other);
    server.terminate();
}
