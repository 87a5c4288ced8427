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
