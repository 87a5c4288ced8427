//! Readiness probes against a real sshd and against things that are not SSH.

use crate::support::{Sshd, SshdOptions, free_port};
use pelagos_provision::readiness::{NotReady, SshProbe, WaitPolicy};
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

#[tokio::test]
async fn wait_gives_up_after_max_attempts() {
    let port = free_port();
    let policy = WaitPolicy {
        interval: Duration::from_millis(50),
        max_attempts: Some(3),
        deadline: None,
    };
    let never = PROBE
        .wait_ready("127.0.0.1", port, &policy)
        .await
        .expect_err("nothing listens");
    assert_eq!(never.attempts, 3);
    assert!(matches!(never.last, NotReady::Refused { .. }), "{never}");
}

#[tokio::test]
async fn wait_gives_up_at_the_deadline() {
    let (port, _server) = fake_server(|mut conn| async move {
        drain(&mut conn).await;
    })
    .await;
    let probe = SshProbe::new(Duration::from_millis(300));
    let policy = WaitPolicy {
        interval: Duration::from_millis(400),
        max_attempts: None,
        deadline: Some(Duration::from_millis(1500)),
    };
    let never = probe
        .wait_ready("127.0.0.1", port, &policy)
        .await
        .expect_err("a silent listener never becomes ready");
    // Probes start at 0, 0.4, 0.8 and 1.2 s; the next would start at 1.6 s.
    assert!((2..=5).contains(&never.attempts), "{never}");
    assert!(matches!(never.last, NotReady::Timeout { .. }), "{never}");
}

#[tokio::test]
async fn wait_succeeds_once_sshd_comes_up() {
    let port = free_port();
    let policy = WaitPolicy {
        interval: Duration::from_millis(100),
        max_attempts: None,
        deadline: Some(Duration::from_secs(60)),
    };
    let waiting = tokio::spawn(async move { PROBE.wait_ready("127.0.0.1", port, &policy).await });
    // The node "boots": first probes are refused, then sshd listens.
    let sshd = tokio::task::spawn_blocking(move || {
        Sshd::start(SshdOptions {
            port: Some(port),
            ..Default::default()
        })
    })
    .await
    .unwrap();
    let ready = waiting.await.unwrap().expect("sshd came up on the port");
    assert!(ready.banner.starts_with("SSH-2.0-"), "{ready:?}");
    drop(sshd);
}

#[tokio::test]
async fn dropping_the_wait_cancels_it() {
    let port = free_port();
    let policy = WaitPolicy {
        interval: Duration::from_millis(50),
        max_attempts: None,
        deadline: None,
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let waiter = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = PROBE.wait_ready("127.0.0.1", port, &policy) => Some(r.is_ok()),
                () = cancel.cancelled() => None,
            }
        })
    };
    cancel.cancel();
    assert_eq!(waiter.await.unwrap(), None, "cancellation must win");
}
