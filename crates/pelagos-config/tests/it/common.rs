//! Shared fixtures.

use pelagos_config::LabConfig;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `examples/lab.json`, the 5-node demo lab.
pub fn demo_lab_path() -> PathBuf {
    workspace_root().join("examples/lab.json")
}

pub fn demo_lab() -> LabConfig {
    LabConfig::load(&demo_lab_path()).expect("examples/lab.json loads")
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/fixtures")
        .join(name)
}

/// A peer program the tests drive; missing means the machine was not set up.
pub fn require_program(path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.exists(),
        "{path} is missing: run scripts/install-test-deps.sh (as root) first"
    );
    p
}

/// Collects the tracing output of a closure (WARN and above).
pub fn capture_warnings<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

/// A lab of `n` valid nodes, every address dynamic (what the benchmark renders).
pub fn big_lab_json(n: usize) -> String {
    let nodes: Vec<String> = (0..n)
        .map(|i| {
            let (a, b) = (i / 250, i % 250 + 1);
            format!(
                r#"{{"node": "n{i}.lab.test", "mac": "52:54:{:02x}:{:02x}:00:01", "ip": "10.{a}.{b}.1",
                    "ip_type": "dynamic", "bmc_mac": "52:54:{:02x}:{:02x}:00:02", "bmc_ip": "10.{a}.{b}.2",
                    "bmc_ip_type": "dynamic", "t_machine_type": "smithi", "comment": "node {i}"}}"#,
                i / 256,
                i % 256,
                i / 256,
                i % 256
            )
        })
        .collect();
    format!(
        r#"{{"ipmi_user": "admin", "ipmi_pass": "pw", "domain": "lab.test", "nodes": [{}]}}"#,
        nodes.join(",\n")
    )
}

/// The "full" benchmark lab: `n` valid nodes, each with every field
/// make-cfgs writes (mac, ip, bmc_mac, bmc_ip, both address types dynamic,
/// t_machine_type, t_exclude and a comment); about 2.6 MB for 10,000 nodes.
pub fn full_lab_json(n: usize) -> String {
    let nodes: Vec<String> = (0..n)
        .map(|i| {
            let (a, b) = (i / 250, i % 250 + 1);
            let (hi, lo) = (i / 256, i % 256);
            format!(
                r#"{{"node": "n{i}.lab.test", "mac": "52:54:{hi:02x}:{lo:02x}:00:01", "ip": "10.{a}.{b}.1", "ip_type": "dynamic", "bmc_mac": "52:54:{hi:02x}:{lo:02x}:00:02", "bmc_ip": "10.{a}.{b}.2", "bmc_ip_type": "dynamic", "t_machine_type": "smithi", "t_exclude": "no", "comment": "node {i}, rack r{}"}}"#,
                i / 40
            )
        })
        .collect();
    format!(
        r#"{{"ipmi_user": "admin", "ipmi_pass": "pw", "domain": "lab.test", "nodes": [{}]}}"#,
        nodes.join(",\n")
    )
}
