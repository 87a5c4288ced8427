//! The one start-up warning a server reachable from the network without
//! authentication gives, and the loopback default of `--demo`.

use crate::Fixture;
use crate::common::{KillOnDrop, listening_url};
use std::process::Stdio;
use std::time::Duration;

const WARNING: &str = "anyone who reaches this address can reimage every node";

/// Start the server with `args`, wait until it listens, stop it; its stderr.
fn start_and_stop(fx: &Fixture, args: &[&str]) -> (String, String) {
    let log = fx.path("stderr.log");
    let mut child = KillOnDrop(
        fx.server_command()
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start pelagos-server"),
    );
    let url = listening_url(&mut child.0, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no address printed: {}", crate::read(&log)));
    // The warning is logged before the address is printed.
    drop(child);
    (url, crate::read(&log))
}

#[test]
fn unauthenticated_server_on_the_network_warns_once() {
    let fx = Fixture::new();
    let (_, err) = start_and_stop(&fx, &["--listen", "0.0.0.0:0"]);
    assert_eq!(err.matches(WARNING).count(), 1, "{err}");
    assert!(
        err.contains("no --htpasswd while listening on 0.0.0.0:"),
        "{err}"
    );

    let (_, err) = start_and_stop(&fx, &["--listen", "127.0.0.1:0"]);
    assert!(
        !err.contains(WARNING),
        "loopback is not the lab network: {err}"
    );

    let htpasswd = fx.path("htpasswd");
    let hash = bcrypt::hash("pw", 4).unwrap();
    std::fs::write(&htpasswd, format!("admin:{hash}\n")).unwrap();
    let (_, err) = start_and_stop(
        &fx,
        &[
            "--listen",
            "0.0.0.0:0",
            "--htpasswd",
            htpasswd.to_str().unwrap(),
        ],
    );
    assert!(!err.contains(WARNING), "authentication is on: {err}");
    assert!(!err.contains(&hash), "the hash is never logged: {err}");
}
