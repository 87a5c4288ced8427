//! add-image's library side: install from a kiwi dir and an install tar,
//! refusals that change nothing, list/remove/prune.

use crate::{install_plain, kiwi, tree};
use pelagos_pxe::install::{self, InstallOptions, NoProgress, Progress};
use pelagos_pxe::{Catalog, PxeError};
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::ops::ControlFlow;
use std::path::Path;

fn sha(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn install_from_build_dir() {
    let tftp = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let raw = kiwi::raw_disk(64 * 1024, 9);
    let dir = kiwi::build_dir(&src.path().join("out"), kiwi::BASE, &raw);
    let m = install_plain(tftp.path(), &dir).unwrap();
    assert_eq!(
        (m.name.as_str(), m.version.as_str(), m.arch.as_str()),
        ("opensuse-leap", "15.6.1", "x86_64")
    );
    assert_eq!(m.kernel_options, "splash=silent");
    assert_eq!(m.config_bootoptions, "root=UUID=1234 rw");
    assert_eq!(m.image_md5, kiwi::md5_line(&raw).trim());
    let id = "opensuse-leap-15.6.1";
    let d = tftp.path().join(id);
    for f in &m.files {
        let data = std::fs::read(d.join(&f.name)).unwrap();
        assert_eq!(f.size, data.len() as u64, "{}", f.name);
        assert_eq!(f.sha256, sha(&data), "{}", f.name);
    }
    assert_eq!(
        std::fs::read(d.join("pxeboot.kernel")).unwrap(),
        b"KERNEL-bytes"
    );
    // kiwi-dump's kexec kernel and system initrd, under kiwi's names.
    let kiwi_name = |ext: &str| d.join(format!("{}{ext}", kiwi::BASE));
    assert_eq!(
        std::fs::read(kiwi_name(".kernel")).unwrap(),
        b"KERNEL-bytes"
    );
    assert_eq!(
        std::fs::read(kiwi_name(".initrd")).unwrap(),
        b"system initrd"
    );
    insta::assert_snapshot!("installed_tree", tree(tftp.path()).join("\n"));
    // The manifest on disk is what install returned.
    assert_eq!(Catalog::new(tftp.path()).manifest(id).unwrap().unwrap(), m);

    // Installing the same version again is refused.
    let e = install_plain(tftp.path(), &dir).unwrap_err();
    assert!(matches!(e, PxeError::AlreadyInstalled { .. }), "{e}");
}

#[test]
fn install_from_install_tar_and_name_override() {
    let tftp = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let raw = kiwi::raw_disk(32 * 1024, 4);
    let tar = kiwi::install_tar(src.path(), kiwi::BASE, &raw);
    let opts = InstallOptions {
        name: Some("leap".into()),
        version: Some("15.6-7".into()),
        ..Default::default()
    };
    // The tar directly.
    let m = install::install(tftp.path(), &tar, &opts, &NoProgress).unwrap();
    assert_eq!(m.id(), "leap-15.6-7");
    assert_eq!(
        std::fs::read_link(tftp.path().join("leap"))
            .unwrap()
            .to_str(),
        Some("leap-15.6-7")
    );
    // A build dir holding only the tar.
    let opts2 = InstallOptions {
        version: Some("15.6-8".into()),
        ..opts
    };
    let m2 = install::install(tftp.path(), src.path(), &opts2, &NoProgress).unwrap();
    assert_eq!(m2.id(), "leap-15.6-8");
    let d = tftp.path().join("leap-15.6-8");
    for f in &m2.files {
        assert_eq!(
            f.sha256,
            sha(&std::fs::read(d.join(&f.name)).unwrap()),
            "{}",
            f.name
        );
    }
    // Not set current: the first version stays.
    assert_eq!(
        std::fs::read_link(tftp.path().join("leap"))
            .unwrap()
            .to_str(),
        Some("leap-15.6-7")
    );
    // No staging dirs left.
    assert!(
        tree(tftp.path()).iter().all(|l| !l.starts_with('.')),
        "{:?}",
        tree(tftp.path())
    );
}

/// Installs an older version (15.5.0) that must survive untouched; the
/// TFTP root's tree after it.
fn install_older(tftp: &Path, src: &Path) -> Vec<String> {
    let ok = kiwi::build_dir(
        &src.join("ok"),
        "opensuse-leap.x86_64-15.5.0",
        &kiwi::raw_disk(4096, 1),
    );
    install_plain(tftp, &ok).unwrap();
    tree(tftp)
}

#[test]
fn corrupted_checksum_changes_nothing() {
    let tftp = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let before = install_older(tftp.path(), src.path());

    let raw = kiwi::raw_disk(8192, 2);
    let bad = kiwi::build_dir(&src.path().join("bad"), kiwi::BASE, &raw);
    let mut other = raw.clone();
    other[100] ^= 1;
    std::fs::write(
        bad.join(format!("{}.md5", kiwi::BASE)),
        kiwi::md5_line(&other),
    )
    .unwrap();
    let opts = InstallOptions {
        set_current: true,
        ..Default::default()
    };
    let e = install::install(tftp.path(), &bad, &opts, &NoProgress).unwrap_err();
    assert!(matches!(e, PxeError::Checksum { .. }), "{e}");
    assert!(e.to_string().contains(&format!("{}.xz", kiwi::BASE)), "{e}");
    assert_eq!(tree(tftp.path()), before);

    // Right md5, wrong block count: refused too.
    let md5 = kiwi::md5_line(&raw);
    let sum = md5.split_whitespace().next().unwrap();
    std::fs::write(
        bad.join(format!("{}.md5", kiwi::BASE)),
        format!("{sum} 3 512\n"),
    )
    .unwrap();
    let e = install::install(tftp.path(), &bad, &opts, &NoProgress).unwrap_err();
    assert!(matches!(e, PxeError::Checksum { .. }), "{e}");
    // A truncated xz stream.
    std::fs::write(bad.join(format!("{}.md5", kiwi::BASE)), md5).unwrap();
    let xz = kiwi::xz(&raw);
    std::fs::write(bad.join(format!("{}.xz", kiwi::BASE)), &xz[..xz.len() / 2]).unwrap();
    let e = install::install(tftp.path(), &bad, &opts, &NoProgress).unwrap_err();
    assert!(matches!(e, PxeError::KiwiOutput { .. }), "{e}");
    assert_eq!(tree(tftp.path()), before);
}

/// Stops the install after `after` bytes, like a Ctrl-C.
struct StopAfter {
    after: u64,
    seen: Cell<u64>,
}
impl Progress for StopAfter {
    fn advance(&self, bytes: u64) -> ControlFlow<()> {
        self.seen.set(self.seen.get() + bytes);
        if self.seen.get() > self.after {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

#[test]
fn interrupted_install_leaves_catalog_as_it_was() {
    let tftp = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let before = install_older(tftp.path(), src.path());
    let dir = kiwi::build_dir(
        &src.path().join("new"),
        kiwi::BASE,
        &kiwi::raw_disk(1 << 20, 5),
    );
    let tar = kiwi::install_tar(
        &src.path().join("tar"),
        kiwi::BASE,
        &kiwi::raw_disk(1 << 20, 5),
    );
    for source in [&dir, &tar] {
        for after in [0, 10, 300_000] {
            let p = StopAfter {
                after,
                seen: Cell::new(0),
            };
            let opts = InstallOptions {
                set_current: true,
                ..Default::default()
            };
            let e = install::install(tftp.path(), source, &opts, &p).unwrap_err();
            assert!(matches!(e, PxeError::Interrupted { .. }), "{e}");
            assert_eq!(
                tree(tftp.path()),
                before,
                "after {after} bytes of {}",
                source.display()
            );
        }
    }
}

#[test]
fn missing_outputs_named() {
    let tftp = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let dir = kiwi::base_build(&src.path().join("out"), 1024);
    std::fs::remove_file(dir.join(format!("pxeboot.{}.initrd.xz", kiwi::BASE))).unwrap();
    let e = install_plain(tftp.path(), &dir).unwrap_err();
    assert!(e.to_string().contains("initrd"), "{e}");
    let dir2 = kiwi::base_build(&src.path().join("out3"), 1024);
    std::fs::remove_file(dir2.join(format!("{}.initrd", kiwi::BASE))).unwrap();
    let e = install_plain(tftp.path(), &dir2).unwrap_err();
    assert!(e.to_string().contains("system initrd"), "{e}");
    let empty = src.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = install_plain(tftp.path(), &empty).unwrap_err();
    assert!(e.to_string().contains("no disk image"), "{e}");
    let dir = kiwi::base_build(&src.path().join("out2"), 1024);
    // Reserved and invalid names refused.
    for name in ["local", "maintenance_image", "grub", "../x"] {
        let opts = InstallOptions {
            name: Some(name.into()),
            ..Default::default()
        };
        let e = install::install(tftp.path(), &dir, &opts, &NoProgress).unwrap_err();
        assert!(matches!(e, PxeError::InvalidName { .. }), "{name}: {e}");
    }
    assert!(tree(tftp.path()).is_empty(), "{:?}", tree(tftp.path()));
}

#[test]
fn list_remove_prune() {
    let tftp = tempfile::tempdir().unwrap();
    let t = tftp.path();
    let src = tempfile::tempdir().unwrap();
    for (i, v) in ["15.4.0", "15.5.0", "15.6.0", "15.6.1"].iter().enumerate() {
        let base = format!("opensuse-leap.x86_64-{v}");
        let d = kiwi::build_dir(&src.path().join(v), &base, &kiwi::raw_disk(1024, i as u8));
        install_plain(t, &d).unwrap();
    }
    let d = kiwi::build_dir(
        &src.path().join("sle"),
        "sle.x86_64-15.1.0",
        &kiwi::raw_disk(1024, 7),
    );
    install_plain(t, &d).unwrap();
    install::set_current(t, "opensuse-leap-15.5.0").unwrap();

    let cat = Catalog::new(t);
    let list: Vec<(String, bool)> = cat
        .images()
        .unwrap()
        .into_iter()
        .map(|e| (e.id, e.current))
        .collect();
    assert_eq!(
        list,
        [
            ("opensuse-leap-15.4.0".into(), false),
            ("opensuse-leap-15.5.0".into(), true),
            ("opensuse-leap-15.6.0".into(), false),
            ("opensuse-leap-15.6.1".into(), false),
            ("sle-15.1.0".into(), true),
        ]
    );

    // Current refused without force.
    let e = install::remove(t, "opensuse-leap-15.5.0", false).unwrap_err();
    assert!(matches!(e, PxeError::IsCurrent { .. }), "{e}");
    assert!(t.join("opensuse-leap-15.5.0").is_dir());
    let e = install::remove(t, "nosuch-1", false).unwrap_err();
    assert!(matches!(e, PxeError::NoSuchImage { .. }), "{e}");
    let e = install::remove(t, "../x", false).unwrap_err();
    assert!(matches!(e, PxeError::InvalidName { .. }), "{e}");

    // Prune keeps the newest one plus the current one.
    let removed = install::prune(t, 1).unwrap();
    assert_eq!(removed, ["opensuse-leap-15.4.0", "opensuse-leap-15.6.0"]);
    let ids: Vec<String> = cat.images().unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        ["opensuse-leap-15.5.0", "opensuse-leap-15.6.1", "sle-15.1.0"]
    );

    // Forced removal of the current one moves the symlink to the newest left.
    install::remove(t, "opensuse-leap-15.5.0", true).unwrap();
    assert_eq!(
        cat.symlink_target("opensuse-leap").as_deref(),
        Some("opensuse-leap-15.6.1")
    );
    install::remove(t, "sle-15.1.0", true).unwrap();
    assert!(std::fs::symlink_metadata(t.join("sle")).is_err());
    assert!(tree(t).iter().all(|l| !l.starts_with('.')), "{:?}", tree(t));
}

#[test]
fn next_install_cleans_dead_staging_but_not_live() {
    let tftp = tempfile::tempdir().unwrap();
    let t = tftp.path();
    // A dead process's leftover (pid far above pid_max) and a live one's (ours).
    let dead = t.join(".add-image.999999999.123");
    let live = t.join(format!(".add-image.{}.456", std::process::id()));
    std::fs::create_dir_all(dead.join("src")).unwrap();
    std::fs::create_dir_all(&live).unwrap();
    let src = tempfile::tempdir().unwrap();
    let d = kiwi::base_build(&src.path().join("o"), 1024);
    install_plain(t, &d).unwrap();
    assert!(!dead.exists());
    assert!(live.exists());
}
