//! teuthology's own `pelagos` provisioner client (PyPI `teuthology`, unmodified
//! but for shorter poll sleeps) against the real server in fast simulation.

#![allow(clippy::print_stderr)]

#[allow(dead_code)]
mod common;

use common::KillOnDrop;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("PELAGOS_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    let py = venv.join("bin/python");
    assert!(
        py.exists(),
        "no Python test venv at {} (run scripts/install-test-deps.sh)",
        venv.display()
    );
    py
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const DOMAIN: &str = "teuth.test";
const SHORTS: [&str; 5] = ["tc1", "tc2", "tc3", "tc4", "tc5"];

fn lab_json() -> String {
    let nodes: Vec<String> = SHORTS
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                r#"{{"node": "{s}.{DOMAIN}", "mac": "52:54:00:aa:00:{i:02x}", "ip": "10.9.0.{n}",
                   "ip_type": "dynamic", "bmc_ip": "10.9.1.{n}", "bmc_ip_type": "static",
                   "t_machine_type": "tc-a", "t_exclude": "no"}}"#,
                n = i + 10
            )
        })
        .collect();
    format!(
        r#"{{"ipmi_user": "admin", "ipmi_pass": "bmc-secret-teuth", "target_node_password": "node-secret-teuth",
            "default_pxe_server": "127.0.0.1", "domain": "{DOMAIN}", "sls_list": "",
            "nodes": [{}]}}"#,
        nodes.join(",\n")
    )
}

#[test]
fn teuthology_client_drives_the_server() {
    let python = venv_python();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lab.json");
    std::fs::write(&config, lab_json()).unwrap();
    let tftp = dir.path().join("tftp");
    // A hand-made image dir named as teuthology names an OS: <os_type>-<os_version>.
    let image = tftp.join("opensuse-15.2");
    std::fs::create_dir_all(&image).unwrap();
    std::fs::write(image.join("pxeboot.kernel"), b"kernel").unwrap();
    std::fs::write(image.join("pxeboot.initrd.xz"), b"initrd").unwrap();
    let state = dir.path().join("state");

    let port = free_port();
    let mut server = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_pelagos-server"))
            .arg("--config")
            .arg(&config)
            .arg("--tftpdir")
            .arg(&tftp)
            .arg("--state-dir")
            .arg(&state)
            .arg("--simulation=fast")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pelagos-server"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.0.try_wait() {
            let mut err = String::new();
            server
                .0
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("pelagos-server exited with {status}: {err}");
        }
        assert!(
            Instant::now() < deadline,
            "pelagos-server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let out = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/teuthology/client_check.py"))
        .arg(format!("http://127.0.0.1:{port}/"))
        .arg(DOMAIN)
        .arg("opensuse")
        .arg("15.2")
        .arg(SHORTS.join(","))
        .output()
        .expect("run the teuthology client script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert!(
        out.status.success() && stdout.contains("ALL CHECKS PASSED"),
        "teuthology client checks failed:\n{stdout}\n{stderr}"
    );
    for secret in ["bmc-secret-teuth", "node-secret-teuth"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} leaked to the client"
        );
    }
}
