//! Shared by pelagos-pxe's two test targets (`it` and `peers`): the lab,
//! installs into a TFTP root, and a listing of a tree.

use pelagos_config::LabConfig;
use pelagos_pxe::install::{InstallOptions, NoProgress, install};
use pelagos_pxe::{Manifest, PxeError};
use pelagos_testkit::kiwi;
use std::path::Path;

pub fn lab() -> LabConfig {
    LabConfig::parse(
        r#"{
        "default_pxe_server": "10.0.0.1",
        "maintenance_image_kernel": "maint.kernel",
        "maintenance_image_initrd": "maint.initrd.xz",
        "nodes": [
            { "node": "bios1.lab", "mac": "AA:BB:CC:DD:00:73" },
            { "node": "uefi1.lab", "mac": "52:54:00:12:34:56", "uefi": "yes" },
            { "node": "evil.lab", "mac": "../../etc/passwd" }
        ]
    }"#,
    )
    .unwrap()
}

/// Install `source` into the TFTP root `tftp` with the default options.
pub fn install_plain(tftp: &Path, source: &Path) -> Result<Manifest, PxeError> {
    install(tftp, source, &InstallOptions::default(), &NoProgress)
}

/// A fresh TFTP root with [`kiwi::BASE`] installed from a `len`-byte disk.
pub fn tftp_with_base(len: usize) -> tempfile::TempDir {
    let tftp = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    install_plain(tftp.path(), &kiwi::base_build(&src.path().join("out"), len)).unwrap();
    tftp
}

/// Every file under `dir`, relative, with symlinks shown as `a -> b`.
pub fn tree(dir: &std::path::Path) -> Vec<String> {
    fn walk(base: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                out.push(format!(
                    "{rel} -> {}",
                    std::fs::read_link(&p).unwrap().display()
                ));
            } else if ft.is_dir() {
                out.push(format!("{rel}/"));
                walk(base, &p, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
