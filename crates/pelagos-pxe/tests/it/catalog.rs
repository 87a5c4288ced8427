//! OS resolution through the catalog, each form.

use crate::{kiwi, lab};
use pelagos_pxe::install::{InstallOptions, NoProgress, install};
use pelagos_pxe::{BootRecords, PxeError};

fn add(tftp: &std::path::Path, version: &str, aliases: &[&str], current: bool) {
    let src = tempfile::tempdir().unwrap();
    let base = format!("opensuse-leap.x86_64-{version}");
    let dir = kiwi::build_dir(&src.path().join("out"), &base, &kiwi::raw_disk(2048, 3));
    let opts = InstallOptions {
        aliases: aliases.iter().map(|s| s.to_string()).collect(),
        set_current: current,
        ..Default::default()
    };
    install(tftp, &dir, &opts, &NoProgress).unwrap();
}

/// Each `(os, resolved)` pair resolves as given.
fn assert_resolves(r: &BootRecords, pairs: &[(&str, &str)]) {
    for (os, want) in pairs {
        assert_eq!(r.resolve_os(os).unwrap(), *want, "resolving {os}");
    }
}

#[test]
fn resolve_each_form() {
    let tftp = tempfile::tempdir().unwrap();
    let t = tftp.path();
    add(t, "15.5.2", &["opensuse"], false); // first: becomes current
    add(t, "15.6.1", &["opensuse"], false); // newer, not current
    add(t, "15.6.10", &["opensuse"], false);
    let r = BootRecords::new(t, &lab());

    assert_resolves(
        &r,
        &[
            // Specials.
            ("local", "local"),
            ("maintenance_image", "maintenance_image"),
            // Name alone: the symlink (current), not the newest.
            ("opensuse-leap", "opensuse-leap-15.5.2"),
            // Name-version: the dir itself.
            ("opensuse-leap-15.6.1", "opensuse-leap-15.6.1"),
            // teuthology's <os_type>-<os_version>: a leading part of the
            // version, newest match (15.6.10 > 15.6.1), through the name or
            // an alias.
            ("opensuse-leap-15.6", "opensuse-leap-15.6.10"),
            ("opensuse-15.6", "opensuse-leap-15.6.10"),
            ("opensuse-15.5", "opensuse-leap-15.5.2"),
            // Alias alone: current.
            ("opensuse", "opensuse-leap-15.5.2"),
        ],
    );
    // Not a prefix at a component boundary.
    assert!(matches!(r.resolve_os("opensuse-15.6.1"), Ok(ref s) if s == "opensuse-leap-15.6.1"));
    let e = r.resolve_os("opensuse-15.").unwrap_err();
    assert!(matches!(e, PxeError::NotFound { .. }), "{e}");
    let e = r.resolve_os("opensuse-leap-15.61").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "No os image [opensuse-leap-15.61] found in dir [{}]",
            t.display()
        )
    );

    // After the symlink flips, the name follows it.
    pelagos_pxe::install::set_current(t, "opensuse-leap-15.6.1").unwrap();
    assert_resolves(
        &r,
        &[
            ("opensuse-leap", "opensuse-leap-15.6.1"),
            // The current one wins among teuthology-prefix matches too.
            ("opensuse-15.6", "opensuse-leap-15.6.1"),
        ],
    );
}

#[test]
fn hand_made_dirs_and_symlinks_as_the_original() {
    let tftp = tempfile::tempdir().unwrap();
    let t = tftp.path();
    let tdir = "sle-15.1-0.1.1-29.1";
    std::fs::create_dir(t.join(tdir)).unwrap();
    std::fs::write(
        t.join(tdir).join("minimal-sle-15-sp1.x86_64-0.1.1.xz"),
        b"x",
    )
    .unwrap();
    std::fs::write(t.join(tdir).join("pxeboot.initrd.xz"), b"x").unwrap();
    // The original made absolute symlinks.
    std::os::unix::fs::symlink(t.join(tdir), t.join("sle-15.1")).unwrap();
    let r = BootRecords::new(t, &lab());
    assert_resolves(&r, &[(tdir, tdir), ("sle-15.1", tdir)]);
    assert_eq!(
        r.image_url(tdir).unwrap(),
        "http://10.0.0.1/images/sle-15.1-0.1.1-29.1/minimal-sle-15-sp1.x86_64-0.1.1.xz"
    );
    let lab = lab();
    let n = lab.node("bios1.lab").unwrap();
    r.write(n, &r.resolve_os(tdir).unwrap()).unwrap();
    let text = std::fs::read_to_string(r.record_path(n)).unwrap();
    assert!(
        text.contains("KERNEL sle-15.1-0.1.1-29.1/pxeboot.kernel"),
        "{text}"
    );
    assert!(
        text.contains("INITRD sle-15.1-0.1.1-29.1/pxeboot.initrd.xz"),
        "{text}"
    );

    // A symlink leading outside the root, or dangling, resolves to nothing.
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), t.join("escape")).unwrap();
    std::os::unix::fs::symlink(t.join("gone"), t.join("dangling")).unwrap();
    for os in ["escape", "dangling"] {
        let e = r.resolve_os(os).unwrap_err();
        assert!(matches!(e, PxeError::NotFound { .. }), "{os}: {e}");
    }
}

/// The message of a refusal for want of boot files, after checking that it
/// is one.
fn not_installable(r: &BootRecords, os: &str) -> String {
    match r.resolve_os(os) {
        Err(e @ PxeError::NotInstallable { .. }) => e.to_string(),
        other => panic!("{os}: expected NotInstallable, got {other:?}"),
    }
}

#[test]
fn images_without_boot_files_are_refused_only_when_required() {
    let tftp = tempfile::tempdir().unwrap();
    let t = tftp.path();
    let write = |rel: &str| {
        let p = t.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    };
    std::fs::create_dir(t.join("bare-1")).unwrap();
    std::os::unix::fs::symlink("bare-1", t.join("bare")).unwrap();
    for f in ["pxeboot.kernel", "pxeboot.initrd.xz", "disk.xz"] {
        write(&format!("whole-1/{f}"));
    }
    for f in ["pxeboot.kernel", "pxeboot.initrd.xz", "a.xz", "b.xz"] {
        write(&format!("two-1/{f}"));
    }
    write("nokernel-1/pxeboot.initrd.xz");
    write("nokernel-1/disk.xz");
    // A directory where the kernel should be is no kernel.
    std::fs::create_dir_all(t.join("dirkernel-1/pxeboot.kernel")).unwrap();
    write("dirkernel-1/pxeboot.initrd.xz");
    write("dirkernel-1/disk.xz");
    add(t, "15.6.1", &[], true);
    let kiwi_dir = t.join("opensuse-leap-15.6.1");
    let manifest = pelagos_pxe::Catalog::new(t)
        .manifest("opensuse-leap-15.6.1")
        .unwrap()
        .unwrap();

    // Simulation's default: bare dirs resolve, as before.
    let lenient = BootRecords::new(t, &lab());
    for os in ["bare", "bare-1", "two-1", "nokernel-1", "dirkernel-1"] {
        lenient.resolve_os(os).unwrap();
    }

    let strict = BootRecords::new(t, &lab()).require_installable(true);
    assert_resolves(
        &strict,
        &[
            ("local", "local"),
            ("maintenance_image", "maintenance_image"),
            ("whole-1", "whole-1"),
            ("opensuse-leap", "opensuse-leap-15.6.1"),
        ],
    );
    // A bare dir, through its symlink too: the dir and all three are named.
    for os in ["bare", "bare-1"] {
        let m = not_installable(&strict, os);
        assert_eq!(
            m,
            format!(
                "os image [{os}] in dir [{}] cannot be installed: missing kernel pxeboot.kernel, \
                 initrd pxeboot.initrd.xz, disk image (one .xz file; found none)",
                t.join("bare-1").display()
            )
        );
    }
    let m = not_installable(&strict, "two-1");
    assert!(
        m.ends_with("missing disk image (one .xz file; found 2: a.xz, b.xz)"),
        "{m}"
    );
    for os in ["nokernel-1", "dirkernel-1"] {
        let m = not_installable(&strict, os);
        assert!(m.ends_with("missing kernel pxeboot.kernel"), "{m}");
    }
    // An installed image that lost its disk image: the manifest's name.
    std::fs::remove_file(kiwi_dir.join(&manifest.image)).unwrap();
    let m = not_installable(&strict, "opensuse-leap");
    assert_eq!(
        m,
        format!(
            "os image [opensuse-leap] in dir [{}] cannot be installed: missing disk image {}",
            kiwi_dir.display(),
            manifest.image
        )
    );
    std::fs::remove_file(kiwi_dir.join(&manifest.kernel)).unwrap();
    let m = not_installable(&strict, "opensuse-leap-15.6.1");
    assert!(
        m.ends_with(&format!(
            "missing kernel {}, disk image {}",
            manifest.kernel, manifest.image
        )),
        "{m}"
    );
    // Unknown names are still NotFound, not a missing-files refusal.
    let e = strict.resolve_os("nosuch").unwrap_err();
    assert!(matches!(e, PxeError::NotFound { .. }), "{e}");
}
