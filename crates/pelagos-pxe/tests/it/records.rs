//! Boot records: every kind snapshotted, read back, removed; bad input
//! writes nothing.

use crate::{lab, tftp_with_base, tree};
use pelagos_pxe::{BootRecords, DEDICATED_UNDEFINED, DEFAULT_CONFIG_USED, PxeError, ResolvedOs};

fn with_image() -> (tempfile::TempDir, BootRecords) {
    let tftp = tftp_with_base(4096);
    let records = BootRecords::new(tftp.path(), &lab());
    (tftp, records)
}

#[test]
fn bios_local_record() {
    let tftp = tempfile::tempdir().unwrap();
    let lab = lab();
    let r = BootRecords::new(tftp.path(), &lab);
    let n = lab.node("bios1.lab").unwrap();
    r.write(n, &ResolvedOs::LOCAL).unwrap();
    let text = std::fs::read_to_string(r.record_path(n)).unwrap();
    insta::assert_snapshot!("bios_local", text);
    assert!(
        r.record_path(n)
            .ends_with("pxelinux.cfg/01-aa-bb-cc-dd-00-73")
    );
    assert_eq!(r.configured_os(n), "local");
    // A BIOS node gets no GRUB/iPXE records.
    assert_eq!(
        tree(tftp.path()),
        ["pxelinux.cfg/", "pxelinux.cfg/01-aa-bb-cc-dd-00-73"]
    );
}

#[test]
fn bios_maintenance_record() {
    let tftp = tempfile::tempdir().unwrap();
    let lab = lab();
    let r = BootRecords::new(tftp.path(), &lab);
    let n = lab.node("bios1.lab").unwrap();
    let os = r.resolve_os("maintenance_image").unwrap();
    r.write(n, &os).unwrap();
    insta::assert_snapshot!(
        "bios_maintenance",
        std::fs::read_to_string(r.record_path(n)).unwrap()
    );
    assert_eq!(r.configured_os(n), "maintenance_image");
}

#[test]
fn bios_image_record() {
    let (_tftp, r) = with_image();
    let lab = lab();
    let n = lab.node("bios1.lab").unwrap();
    let os = r.resolve_os("opensuse-leap").unwrap();
    assert_eq!(os, "opensuse-leap-15.6.1");
    r.write(n, &os).unwrap();
    let text = std::fs::read_to_string(r.record_path(n)).unwrap();
    insta::assert_snapshot!("bios_image", text);
    assert!(text.contains(
        "rd.kiwi.install.pxe rd.kiwi.install.image=http://10.0.0.1/images/opensuse-leap-15.6.1/opensuse-leap.x86_64-15.6.1.xz"
    ));
    assert_eq!(r.configured_os(n), "opensuse-leap-15.6.1");

    // What kiwi-dump fetches: the .xz URL, and .md5/.kernel/.initrd made
    // from it by replacing ".xz"; all must be files in the served tree.
    let url = r.image_url(&os).unwrap();
    let rel = url.strip_prefix(r.image_base_url()).unwrap();
    for ext in [".xz", ".md5", ".kernel", ".initrd"] {
        let p = _tftp
            .path()
            .join(rel.trim_start_matches('/').replace(".xz", ext));
        assert!(p.is_file(), "{ext}: {} missing", p.display());
    }
}

#[test]
fn uefi_records_grub_and_ipxe() {
    let (tftp, r) = with_image();
    let r = r.with_server_port(8080);
    let lab = lab();
    let n = lab.node("uefi1.lab").unwrap();
    r.write(n, &r.resolve_os("opensuse-leap-15.6.1").unwrap())
        .unwrap();
    let grub = tftp.path().join("grub/grub.cfg-01-52-54-00-12-34-56");
    let ipxe = tftp.path().join("ipxe/01-52-54-00-12-34-56.ipxe");
    assert_eq!(r.grub_record_path(n), grub);
    assert_eq!(r.ipxe_record_path(n), ipxe);
    insta::assert_snapshot!("uefi_image_grub", std::fs::read_to_string(&grub).unwrap());
    insta::assert_snapshot!("uefi_image_ipxe", std::fs::read_to_string(&ipxe).unwrap());
    insta::assert_snapshot!(
        "uefi_image_pxelinux",
        std::fs::read_to_string(r.record_path(n)).unwrap()
    );
    assert_eq!(
        r.image_url("opensuse-leap-15.6.1").unwrap(),
        "http://10.0.0.1:8080/images/opensuse-leap-15.6.1/opensuse-leap.x86_64-15.6.1.xz"
    );

    r.write(n, &ResolvedOs::LOCAL).unwrap();
    insta::assert_snapshot!("uefi_local_grub", std::fs::read_to_string(&grub).unwrap());
    insta::assert_snapshot!("uefi_local_ipxe", std::fs::read_to_string(&ipxe).unwrap());
    r.write(n, &ResolvedOs::MAINTENANCE).unwrap();
    insta::assert_snapshot!(
        "uefi_maintenance_grub",
        std::fs::read_to_string(&grub).unwrap()
    );
    insta::assert_snapshot!(
        "uefi_maintenance_ipxe",
        std::fs::read_to_string(&ipxe).unwrap()
    );

    r.remove(n).unwrap();
    assert!(!grub.exists() && !ipxe.exists() && !r.record_path(n).exists());
    assert_eq!(r.configured_os(n), DEFAULT_CONFIG_USED);
}

#[test]
fn explicit_image_base_url_wins() {
    let (_tftp, _) = with_image();
    let mut lab = lab();
    lab.pxe.image_base_url = "http://web.lab/tftp/".into();
    let r = BootRecords::new(_tftp.path(), &lab)
        .with_server_port(8080)
        .with_image_route("/elsewhere");
    assert_eq!(
        r.image_url("opensuse-leap-15.6.1").unwrap(),
        "http://web.lab/tftp/opensuse-leap-15.6.1/opensuse-leap.x86_64-15.6.1.xz"
    );
    for os in ["nosuch", "local"] {
        let e = r.image_url(os).unwrap_err();
        assert!(matches!(e, PxeError::NotFound { .. }), "{os}: {e}");
    }
}

#[test]
fn image_route_and_port_make_the_default_url() {
    let (tftp, r) = with_image();
    assert_eq!(r.image_base_url(), "http://10.0.0.1/images");
    // Either order of the builder calls gives the same URL.
    let r = r.with_image_route("boot-images/").with_server_port(5000);
    assert_eq!(r.image_base_url(), "http://10.0.0.1:5000/boot-images");
    let r = r.with_image_route("/");
    assert_eq!(
        r.image_url("opensuse-leap-15.6.1").unwrap(),
        "http://10.0.0.1:5000/opensuse-leap-15.6.1/opensuse-leap.x86_64-15.6.1.xz"
    );
    let mut lab = lab();
    lab.default_pxe_server = "fd00::1".into();
    let r = BootRecords::new(tftp.path(), &lab).with_server_port(5000);
    assert_eq!(r.image_base_url(), "http://[fd00::1]:5000/images");
}

#[test]
fn configured_os_phrases() {
    let tftp = tempfile::tempdir().unwrap();
    let lab = lab();
    let r = BootRecords::new(tftp.path(), &lab);
    let n = lab.node("bios1.lab").unwrap();
    assert_eq!(r.configured_os(n), DEFAULT_CONFIG_USED);
    std::fs::create_dir_all(r.record_path(n).parent().unwrap()).unwrap();
    std::fs::write(r.record_path(n), "DEFAULT menu.c32\n").unwrap();
    assert_eq!(r.configured_os(n), DEDICATED_UNDEFINED);
    let info = r.pxe_info(n);
    assert_eq!(info.os, DEDICATED_UNDEFINED);
    assert!(info.pxe_file.ends_with("pxelinux.cfg/01-aa-bb-cc-dd-00-73"));
}

#[test]
fn remove_without_record_is_an_error() {
    let tftp = tempfile::tempdir().unwrap();
    let lab = lab();
    let r = BootRecords::new(tftp.path(), &lab);
    let err = r.remove(lab.node("bios1.lab").unwrap()).unwrap_err();
    assert!(matches!(err, PxeError::NoRecord { .. }), "{err}");
    assert!(err.to_string().contains("bios1.lab"));
}

#[test]
fn bad_input_writes_nothing() {
    let (tftp, r) = with_image();
    let before = tree(tftp.path());
    let lab = lab();
    let n = lab.node("uefi1.lab").unwrap();
    for os in [
        "../etc",
        "a/b",
        "..",
        "",
        "x\ny",
        ".hidden",
        "/etc/passwd",
        "opensuse\0",
    ] {
        // `write` takes only a resolved OS (`ResolvedOs`), which only
        // resolution makes: these never reach it.
        let e = r.resolve_os(os).unwrap_err();
        assert!(matches!(e, PxeError::InvalidName { .. }), "{os:?}: {e}");
    }
    // Unknown images and reserved dirs are not OSes.
    for os in ["nosuch", "pxelinux.cfg", "grub"] {
        let e = r.resolve_os(os).unwrap_err();
        assert!(matches!(e, PxeError::NotFound { .. }), "{os:?}: {e}");
    }
    // An image removed after it was resolved is not written.
    let gone = tftp.path().join("opensuse-leap-15.6.1");
    let os = r.resolve_os("opensuse-leap-15.6.1").unwrap();
    let moved = tftp.path().join(".moved");
    std::fs::rename(&gone, &moved).unwrap();
    let e = r.write(n, &os).unwrap_err();
    assert!(matches!(e, PxeError::NotFound { .. }), "{os}: {e}");
    std::fs::rename(&moved, &gone).unwrap();
    // A MAC that would make a path is refused.
    let e = r
        .write(lab.node("evil.lab").unwrap(), &ResolvedOs::LOCAL)
        .unwrap_err();
    assert!(matches!(e, PxeError::BadMac { .. }), "{e}");
    assert!(e.to_string().contains("evil.lab"));
    assert_eq!(tree(tftp.path()), before);
}

#[test]
fn rewrite_replaces_atomically_leaving_no_temp_files() {
    let (tftp, r) = with_image();
    let lab = lab();
    let n = lab.node("uefi1.lab").unwrap();
    for os in [
        "local",
        "opensuse-leap-15.6.1",
        "maintenance_image",
        "local",
    ] {
        r.write(n, &r.resolve_os(os).unwrap()).unwrap();
        assert_eq!(r.configured_os(n), os);
    }
    for d in ["pxelinux.cfg", "grub", "ipxe"] {
        let files: Vec<_> = std::fs::read_dir(tftp.path().join(d)).unwrap().collect();
        assert_eq!(files.len(), 1, "{d}: {files:?}");
    }
}

#[test]
fn config_values_cannot_add_record_lines() {
    let (_tftp, _) = with_image();
    let mut lab = lab();
    lab.pxe.console_opts = "console=ttyS0\nLABEL evil\n  KERNEL x".into();
    lab.maintenance_image_kernel = "k\nLOCALBOOT 0".into();
    lab.nodes[0].node = "bios1\nDEFAULT evil".into();
    let r = BootRecords::new(_tftp.path(), &lab);
    let n = &lab.nodes[0];
    for os in ["opensuse-leap-15.6.1", "maintenance_image", "local"] {
        r.write(n, &r.resolve_os(os).unwrap()).unwrap();
        let text = std::fs::read_to_string(r.record_path(n)).unwrap();
        for bad in ["LABEL evil", "LOCALBOOT 0", "DEFAULT evil"] {
            assert!(
                !text.lines().any(|l| l.trim_start().starts_with(bad)),
                "{os}: {bad} on its own line:\n{text}"
            );
        }
    }
}
