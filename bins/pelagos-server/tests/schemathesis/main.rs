//! `/api/v1` fuzzed by schemathesis (PyPI, pinned in
//! scripts/requirements-test.txt, from the test venv) against its own
//! OpenAPI document: the `peers_schemathesis` target, since it needs the
//! venv.
//!
//! - `schemathesis_finds_nothing_in_api_v1`: the real binary in fast
//!   simulation, behind `--htpasswd` (a bcrypt entry made with the venv's
//!   `bcrypt`), on a lab of a few nodes (one disabled by a malformed MAC,
//!   one without `mac`) and a TFTP root with one installed image;
//!   `schemathesis run --checks all` with a fixed seed and few examples
//!   per operation (every phase: examples, coverage, fuzzing, stateful
//!   through the document's links) must pass: no 5xx, every answer's
//!   status, content type, headers and body as documented, requests
//!   without credentials refused, schema-violating input refused and
//!   schema-valid input accepted.

// schemathesis' report is printed for the reader.
#![allow(clippy::print_stdout)]

use pelagos_testkit::{KillOnDrop, venv, venv_python};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const LAB: &str = r#"{
  "ipmi_user": "admin",
  "ipmi_pass": "very-secret-bmc-pw",
  "target_node_password": "very-secret-root-pw",
  "default_pxe_server": "10.0.0.254",
  "sls_list": "core",
  "nodes": [
    {"node": "n1.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.1", "bmc_ip": "10.1.0.1", "role": "storage"},
    {"node": "n2.lab", "mac": "aa:bb:cc:dd:ee:02", "ip": "10.0.0.2", "bmc_ip": "10.1.0.2", "uefi": "yes"},
    {"node": "n3.lab", "mac": "aa:bb:cc:dd:ee:03", "ip": "10.0.0.3", "sim": {"salt_error": true}},
    {"node": "bad.lab", "mac": "aa.bb.cc.dd:68:73", "ip": "10.0.0.4"},
    {"node": "nomac.lab", "ip": "10.0.0.5"}
  ]
}"#;

const IMAGE: &str = "sle-15.6-1.0";

/// An installed image as add-image leaves it: files and manifest, and the
/// `sle` symlink.
fn image_tree(tftp: &Path) {
    let dir = tftp.join(IMAGE);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["pxeboot.kernel", "pxeboot.initrd.xz", "sle.xz"] {
        std::fs::write(dir.join(f), f).unwrap();
    }
    let manifest = serde_json::json!({
        "name": "sle", "version": "15.6-1.0", "arch": "x86_64",
        "aliases": ["sles"],
        "kernel": "pxeboot.kernel", "initrd": "pxeboot.initrd.xz", "image": "sle.xz",
        "files": [{"name": "sle.xz", "size": 6, "sha256": "00"}],
        "installed": "2026-01-01T00:00:00Z", "source": "/build",
        "os": {"id": "sles", "version_id": "15.6", "image_id": "sle"}
    });
    std::fs::write(dir.join("image.json"), manifest.to_string()).unwrap();
    std::os::unix::fs::symlink(IMAGE, tftp.join("sle")).unwrap();
}

#[test]
fn schemathesis_finds_nothing_in_api_v1() {
    let python = venv_python(&["schemathesis", "bcrypt"]);
    let schemathesis = venv().join("bin/schemathesis");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("lab.json"), LAB).unwrap();
    image_tree(&d.join("tftp"));
    let hash = Command::new(&python)
        .args([
            "-c",
            "import bcrypt; print(bcrypt.hashpw(b'fuzz-pw', bcrypt.gensalt(6)).decode())",
        ])
        .output()
        .unwrap();
    assert!(hash.status.success());
    let hash = String::from_utf8(hash.stdout).unwrap();
    std::fs::write(d.join("htpasswd"), format!("fuzzer:{}", hash.trim())).unwrap();

    let mut server = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_pelagos-server"))
            .arg("--config")
            .arg(d.join("lab.json"))
            .arg("--tftpdir")
            .arg(d.join("tftp"))
            .arg("--state-dir")
            .arg(d.join("state"))
            .arg("--htpasswd")
            .arg(d.join("htpasswd"))
            .args(["--simulation=fast", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            // Every request without credentials logs a warning: kept out
            // of the report.
            .stderr(std::fs::File::create(d.join("server.log")).unwrap())
            .spawn()
            .expect("start pelagos-server"),
    );
    let url = listening_url(&mut server, Duration::from_secs(60));

    let out = Command::new(&schemathesis)
        .current_dir(d)
        .env("NO_COLOR", "1")
        .args(["run", &format!("{url}/api/v1/openapi.json")])
        .args(["--auth", "fuzzer:fuzz-pw", "--checks", "all"])
        .args(["--max-examples", "50", "--seed", "20261130"])
        .args(["--request-timeout", "30", "--no-color"])
        .output()
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found failures (above)");
    // Every operation of the document but the document's own.
    let tested = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse::<usize>().ok());
    assert_eq!(tested, Some(9), "operations tested");
}

/// The URL the server prints once it listens.
fn listening_url(server: &mut KillOnDrop, timeout: Duration) -> String {
    let stdout = server.0.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("pelagos-server listening on ") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    rx.recv_timeout(timeout)
        .expect("pelagos-server did not report its address")
}
