//! Helpers shared by the unit tests of `log` and `watch`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `console.n1` in a fresh temp dir (not created); keep the dir alive.
pub(crate) fn console_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("console.n1");
    (dir, path)
}

/// Append `data` to `path` the way conmand does, creating it if missing.
pub(crate) fn append(path: &Path, data: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(data).unwrap();
}
