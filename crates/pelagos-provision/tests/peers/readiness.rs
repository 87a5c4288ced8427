//! Readiness probes against a real sshd and against things that are not SSH.

use pelagos_provision::Readiness;
use pelagos_provision::production::SshReadiness;
use pelagos_provision::readiness::{NotReady, SshProbe};
use pelagos_testkit::free_port;
use pelagos_testkit::sshd::{Sshd, SshdOptions};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const PROBE: SshProbe = SshProbe {
    timeout: Duration::from_secs(3),
};

/// Serves each connection with `serve` until the test ends.
async fn fake_server<F, Fut>(serve: F) -> (u16, tokio::task::JoinHandle<()>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(serve(conn));
        }
    });
    (port, task)
}

/// Reads (and ignores) everything until the peer closes: the connection
/// stays open and silent.
async fn drain(conn: &mut tokio::net::TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = conn.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

#[tokio::test]
async fn real_sshd_is_ready() {
    let sshd = Sshd::start(SshdOptions::default());
    let ready = PROBE
        .probe("127.0.0.1", sshd.port)
        .await
        .expect("a real sshd must be ready");
    assert!(
        ready.banner.starts_with("SSH-2.0-OpenSSH"),
        "banner {:?}",
        ready.banner
    );
}

#[tokio::test]
async fn node_address_and_ssh_port_come_from_the_config() {
    let sshd = Sshd::start(SshdOptions::default());
    let lab = pelagos_config::LabConfig::parse(&format!(
        r#"{{ "nodes": [ {{ "node": "n1.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.255.255.1",
              "boot_ip": "127.0.0.1", "ssh_port": {}, "ip_type": "dynamic" }} ] }}"#,
        sshd.port
    ))
    .unwrap();
    let node = lab.node("n1.lab").unwrap();
    PROBE
        .probe_node(node)
        .await
        .expect("probe must use boot_ip and ssh_port");
}

#[tokio::test]
async fn silent_listener_is_not_ready_within_the_timeout() {
    // Accepts TCP, never says a word, keeps the connection open.
    let (port, _server) = fake_server(|mut conn| async move {
        drain(&mut conn).await;
    })
    .await;
    let probe = SshProbe::new(Duration::from_millis(800));
    let started = std::time::Instant::now();
    let err = probe
        .probe("127.0.0.1", port)
        .await
        .expect_err("a silent listener is not SSH");
    assert!(
        matches!(err, NotReady::Timeout { .. }),
        "expected a timeout, got {err:?}"
    );
    // Bounded by the timeout (generous slack: this checks "does not hang").
    assert!(started.elapsed() < Duration::from_secs(5), "{err}");
}

#[tokio::test]
async fn closed_port_is_refused() {
    let port = free_port();
    let err = PROBE
        .probe("127.0.0.1", port)
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, NotReady::Refused { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("SSH connection to 127.0.0.1:{port} refused")
    );
}

#[tokio::test]
async fn fake_banner_then_garbage_is_not_ssh() {
    let (port, _server) = fake_server(|mut conn| async move {
        let _ = conn.write_all(b"SSH-2.0-FakeServer_1.0\r\n").await;
        // A "packet" whose length field is absurd, then noise.
        let _ = conn
            .write_all(b"\xff\xff\xff\xf0garbage garbage garbage garbage\r\n")
            .await;
        drain(&mut conn).await;
    })
    .await;
    let err = PROBE
        .probe("127.0.0.1", port)
        .await
        .expect_err("garbage after the banner is not SSH");
    assert!(matches!(err, NotReady::NotSsh { .. }), "{err:?}");
}

#[tokio::test]
async fn http_server_is_not_ssh() {
    let (port, _server) = fake_server(|mut conn| async move {
        let _ = conn
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
        // and hang up, as web servers do
    })
    .await;
    let err = PROBE
        .probe("127.0.0.1", port)
        .await
        .expect_err("HTTP is not SSH");
    assert!(matches!(err, NotReady::NotSsh { .. }), "{err:?}");
    assert!(err.to_string().contains("does not speak SSH"), "{err}");
}

/// A lab node whose provisioning address is loopback and SSH port `port`.
fn loopback_node(port: u16) -> pelagos_config::Node {
    let lab = pelagos_config::LabConfig::parse(&format!(
        r#"{{ "nodes": [ {{ "node": "n1.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.255.255.1",
              "boot_ip": "127.0.0.1", "ssh_port": {port}, "ip_type": "dynamic" }} ] }}"#
    ))
    .unwrap();
    lab.nodes[0].clone()
}

// The wait itself (probe every interval until the deadline, dismissal,
// stall checks between probes) is the state machine's; its tests in
// src/machine.rs run it with this probe against closed and silent ports.

#[tokio::test]
async fn closed_port_is_not_ready_for_the_state_machine() {
    let port = free_port();
    let node = loopback_node(port);
    let readiness = SshReadiness(PROBE);
    for _ in 0..3 {
        assert!(!readiness.is_ready(&node).await.unwrap(), "nothing listens");
        let err = PROBE.probe_node(&node).await.expect_err("nothing listens");
        assert!(matches!(err, NotReady::Refused { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn ready_once_sshd_comes_up() {
    let port = free_port();
    let node = loopback_node(port);
    let readiness = SshReadiness(PROBE);
    // The node "boots": first probes are refused, then sshd listens.
    assert!(!readiness.is_ready(&node).await.unwrap());
    let sshd = tokio::task::spawn_blocking(move || {
        Sshd::start(SshdOptions {
            port: Some(port),
            ..Default::default()
        })
    })
    .await
    .unwrap();
    assert!(
        readiness.is_ready(&node).await.unwrap(),
        "sshd came up on the port"
    );
    let ready = PROBE.probe_node(&node).await.unwrap();
    assert!(ready.banner.starts_with("SSH-2.0-"), "{ready:?}");
    drop(sshd);
}
