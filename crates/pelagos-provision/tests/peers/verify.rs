//! The production OS check ([`SshOsVerifier`]) against a real sshd: it logs
//! in as a test user with the lab's password and reads this host's
//! os-release, which is what that user sees. Through the engine (the
//! simulated lab with the production verifier plugged in), a manifest
//! naming this host's OS passes, one naming another OS fails naming both,
//! and a wrong password fails without the password anywhere.

use pelagos_config::LabConfig;
use pelagos_provision::sim::{SimLab, SimMode};
use pelagos_provision::verify::SshOsVerifier;
use pelagos_provision::{BootRecords, Engine, ProvisionRequest, SqliteStore, TaskLogs, TaskRow};
use pelagos_pxe::OsIdentity;
use pelagos_testkit::sshd::{Sshd, SshdOptions, ensure_user};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const USER: &str = "pelagos-oscheck";
/// The test user's password (a throwaway account only a test sshd on
/// loopback accepts).
const PASSWORD: &str = "Pelagos-OsCheck-Pw-5150";

/// What this host's os-release and /etc/ImageID say.
fn host_os() -> OsIdentity {
    let os_release = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .expect("this host has an os-release");
    let image_id = std::fs::read_to_string("/etc/ImageID").unwrap_or_default();
    OsIdentity::from_os_release(&os_release, &image_id)
}

/// A lab whose one node's SSH is `sshd`, logged into as [`USER`] (from
/// the roster) with `password`.
fn lab(dir: &Path, sshd: &Sshd, password: &str) -> Arc<LabConfig> {
    let roster = dir.join("deploy.roster");
    std::fs::write(
        &roster,
        format!("n1.lab:\n  host: 10.255.255.1\n  user: {USER}\n"),
    )
    .unwrap();
    Arc::new(
        LabConfig::parse(&format!(
            r#"{{"target_node_password": "{password}", "roster_file": "{}",
                "nodes": [{{"node": "n1.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.255.255.1",
                            "boot_ip": "127.0.0.1", "ssh_port": {}}}]}}"#,
            roster.display(),
            sshd.port
        ))
        .unwrap(),
    )
}

fn sshd() -> Sshd {
    ensure_user(USER, Some(PASSWORD));
    Sshd::start(SshdOptions {
        password_auth: true,
        ..Default::default()
    })
}

#[tokio::test]
async fn the_verifier_reads_what_the_node_runs() {
    let sshd = sshd();
    let dir = pelagos_testkit::open_tempdir();
    let lab = lab(dir.path(), &sshd, PASSWORD);
    let found = SshOsVerifier::from_lab(&lab)
        .check(&lab.nodes[0])
        .await
        .unwrap();
    let host = host_os();
    assert!(!host.id.is_empty());
    assert_eq!(found, host);
}

/// An image dir `<id>` with a manifest recording `os`.
fn image(tftp: &Path, name: &str, version: &str, os: &OsIdentity) {
    let dir = tftp.join(format!("{name}-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["pxeboot.kernel", "pxeboot.initrd.xz", "disk.xz"] {
        std::fs::write(dir.join(f), "").unwrap();
    }
    let manifest = serde_json::json!({
        "name": name, "version": version, "kernel": "pxeboot.kernel",
        "initrd": "pxeboot.initrd.xz", "image": "disk.xz", "files": [],
        "installed": "2026-11-30T00:00:00Z", "os": os,
    });
    std::fs::write(dir.join("image.json"), manifest.to_string()).unwrap();
}

/// The simulated lab with the production OS verifier, its task logs
/// captured on this (the runtime's only) thread.
async fn engine(dir: &Path, lab: Arc<LabConfig>, logs: Arc<TaskLogs>) -> Arc<Engine> {
    let tftp = dir.join("tftp");
    image(&tftp, "thishost", "1", &host_os());
    let other = OsIdentity {
        id: "alpha".into(),
        version_id: "1.0".into(),
        image_id: "e2e-alpha-1".into(),
    };
    image(&tftp, "alpha", "1.0", &other);
    let timing = SimMode::Fast.timing(&lab.timing);
    let records = Arc::new(BootRecords::new(&tftp, &lab));
    let mut drivers =
        SimLab::new(SimMode::Fast, timing.clone(), dir.join("console")).drivers(records);
    let mut verifier = SshOsVerifier::from_lab(&lab);
    verifier.timeout = Duration::from_secs(20);
    drivers.os_verifier = Arc::new(verifier);
    let store = Arc::new(SqliteStore::in_memory().await.unwrap());
    Engine::start(lab, timing, drivers, store, logs)
        .await
        .unwrap()
}

async fn provision(engine: &Arc<Engine>, os: &str) -> (TaskRow, String) {
    let id = engine
        .provision(ProvisionRequest {
            node: "n1.lab".into(),
            os: os.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let t = engine.status(&id).unwrap();
        if t.result().is_some() {
            let log = engine.log(&id).await.unwrap();
            return (t, log);
        }
        assert!(tokio::time::Instant::now() < deadline, "{t:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn error_of(t: &TaskRow) -> String {
    t.result().unwrap().json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn the_engine_passes_this_hosts_os_and_fails_another_naming_both() {
    use tracing_subscriber::layer::SubscriberExt;
    let logs = TaskLogs::new();
    let _g = tracing::subscriber::set_default(tracing_subscriber::registry().with(logs.layer()));
    let sshd = sshd();
    let dir = pelagos_testkit::open_tempdir();
    let lab = lab(dir.path(), &sshd, PASSWORD);
    let engine = engine(dir.path(), lab, logs).await;
    let host = host_os();

    let (t, log) = provision(&engine, "thishost").await;
    assert_eq!(t.result().unwrap().code, 200, "{:?}\n{log}", t.result());
    assert!(
        log.contains(&format!("Node [n1.lab] runs [thishost-1] ({host})")),
        "{log}"
    );

    let (t, log) = provision(&engine, "alpha").await;
    assert_eq!(t.result().unwrap().code, 502, "{:?}\n{log}", t.result());
    let want = format!(
        "Node [n1.lab] runs {host} instead of the requested image [alpha-1.0] \
         (ID=alpha VERSION_ID=1.0 image=e2e-alpha-1)"
    );
    assert_eq!(error_of(&t), want);
    assert!(log.contains(&want), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
}

#[tokio::test]
async fn a_wrong_password_fails_clearly_without_the_password() {
    use tracing_subscriber::layer::SubscriberExt;
    let logs = TaskLogs::new();
    let _g = tracing::subscriber::set_default(tracing_subscriber::registry().with(logs.layer()));
    let sshd = sshd();
    let dir = pelagos_testkit::open_tempdir();
    let wrong = "Not-The-Password-8086";
    let lab = lab(dir.path(), &sshd, wrong);
    let engine = engine(dir.path(), lab, logs).await;
    let (t, log) = provision(&engine, "thishost").await;
    assert_eq!(t.result().unwrap().code, 502, "{:?}\n{log}", t.result());
    let e = error_of(&t);
    assert!(
        e.starts_with("Cannot verify the OS of node [n1.lab]: SSH login as pelagos-oscheck"),
        "{e}"
    );
    assert!(e.contains("password (target_node_password) refused"), "{e}");
    for secret in [wrong, PASSWORD] {
        assert!(!e.contains(secret), "{e}");
        assert!(!log.contains(secret), "{log}");
    }
}
