//! Shared fixtures.

use pelagos_config::LabConfig;
pub use pelagos_testkit::labs::{big_lab_json, full_lab_json};
use std::path::PathBuf;

pub use pelagos_testkit::workspace_root;

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
