//! `--demo` starts on the bundled lab with its own dirs and provisions.

use crate::common::KillOnDrop;
use crate::until;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test]
async fn demo_starts_and_provisions() {
    let d = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pelagos-server"))
        .args(["--demo", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(d.path().join("demo"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let guard = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
            if line.starts_with("Stop with Ctrl-C") {
                let _ = tx.send(text.clone());
            }
        }
    });
    let text = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("demo banner");
    let url = text
        .lines()
        .find_map(|l| l.strip_prefix("pelagos-server listening on "))
        .unwrap()
        .to_owned();
    assert!(text.contains(&format!("curl {url}/nodes")), "{text}");
    assert!(text.contains("/node/provision"), "{text}");
    assert!(d.path().join("demo/lab.json").is_file());

    let http = reqwest::Client::new();
    let get_json = async |path: &str| -> serde_json::Value {
        let r = http.get(format!("{url}{path}")).send().await.unwrap();
        r.json().await.unwrap()
    };
    let nodes = get_json("/nodes").await;
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 5);
    let first = nodes["nodes"][0]["node"].as_str().unwrap().to_owned();
    let check = get_json("/check_image/opensuse-leap").await;
    assert_eq!(check, json!({"os": "opensuse-leap-15.6.0"}));
    let r = http
        .post(format!("{url}/node/provision"))
        .form(&[("node", first.as_str()), ("os", "opensuse-leap")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    until("demo provision done", async || {
        http.get(&loc).send().await.unwrap().status() == 200
    })
    .await;
    drop(guard);
}
