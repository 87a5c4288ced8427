//! Resetting a node to `local` on a TFTP root that is full (or read-only):
//! on a real small tmpfs, since only a real file system says ENOSPC.
//! Mounting needs root (CAP_SYS_ADMIN); without it these tests fail, they
//! do not skip.

use crate::{install_plain, kiwi, lab, tree};
use pelagos_pxe::{BootRecords, DEFAULT_CONFIG_USED, ResolvedOs};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `size` mounted in a temp dir; unmounted on drop (a panicking
/// test too), before the temp dir goes.
struct Tmpfs {
    mnt: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("tftp");
        std::fs::create_dir(&mnt).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&mnt)
            .output()
            .expect("cannot run mount(8)");
        assert!(
            out.status.success(),
            "cannot mount a {size} tmpfs at {} ({}): {}\n\
             this test needs root (CAP_SYS_ADMIN) to make a small full file system",
            mnt.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Self { mnt, _dir: dir }
    }

    fn path(&self) -> &Path {
        &self.mnt
    }

    fn remount_read_only(&self) {
        let out = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.mnt)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cannot remount {} read-only: {}",
            self.mnt.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.mnt)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Busy (a file still open): detach it now, gone when released.
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

/// Fill the file system holding `dir` to the last byte: `dir/filler` grows
/// until ENOSPC.
fn fill(dir: &Path) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("filler"))
        .unwrap();
    for chunk in [65536, 4096, 1] {
        let buf = vec![0x5a_u8; chunk];
        loop {
            match f.write(&buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(28), "filling: {e}");
                    break;
                }
            }
        }
    }
    // Truly full: not one more byte fits anywhere.
    let e = std::fs::write(dir.join("probe"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC, got {e}");
    let _ = std::fs::remove_file(dir.join("probe"));
}

/// Files of the tree that are temp files or record leftovers.
fn temp_files(root: &Path) -> Vec<String> {
    tree(root)
        .into_iter()
        .filter(|p| p.contains(".tmp."))
        .collect()
}

/// A TFTP root on a small tmpfs with the base image installed, and the
/// BIOS and UEFI nodes' install records written in it.
fn installing_nodes() -> (Tmpfs, BootRecords) {
    let fs = Tmpfs::mount("512k");
    let src = tempfile::tempdir().unwrap();
    install_plain(fs.path(), &kiwi::base_build(&src.path().join("out"), 4096)).unwrap();
    let lab = lab();
    let r = BootRecords::new(fs.path(), &lab);
    let os = r.resolve_os("opensuse-leap").unwrap();
    for name in ["bios1.lab", "uefi1.lab"] {
        let n = lab.node(name).unwrap();
        r.write(n, &os).unwrap();
        assert_eq!(r.configured_os(n), os);
    }
    (fs, r)
}

#[test]
fn local_on_a_full_tftp_root_removes_the_install_records() {
    let (fs, r) = installing_nodes();
    let lab = lab();
    let bios = lab.node("bios1.lab").unwrap();
    let uefi = lab.node("uefi1.lab").unwrap();
    for n in [bios, uefi] {
        // Full again: removing the last node's records freed some space.
        fill(fs.path());
        r.write(n, &ResolvedOs::LOCAL)
            .unwrap_or_else(|e| panic!("{}: local on a full root: {e}", n.node));
        assert!(
            !r.record_path(n).exists(),
            "{}: pxelinux record left",
            n.node
        );
        assert_eq!(r.configured_os(n), DEFAULT_CONFIG_USED);
    }
    assert!(!r.grub_record_path(uefi).exists(), "GRUB record left");
    assert!(!r.ipxe_record_path(uefi).exists(), "iPXE record left");
    assert_eq!(temp_files(fs.path()), Vec::<String>::new());
    let left: Vec<_> = tree(fs.path())
        .into_iter()
        .filter(|p| {
            ["pxelinux.cfg/", "grub/", "ipxe/"]
                .iter()
                .any(|d| p.starts_with(d))
        })
        .filter(|p| !p.ends_with('/'))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "records left: {left:?}");

    // Again, with nothing left to remove: still fine.
    r.write(bios, &ResolvedOs::LOCAL).unwrap();
    r.write(uefi, &ResolvedOs::LOCAL).unwrap();

    // Space again: the record is written as usual.
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    r.write(uefi, &ResolvedOs::LOCAL).unwrap();
    assert_eq!(r.configured_os(uefi), "local");
    assert!(r.grub_record_path(uefi).exists());
}

#[test]
fn an_install_record_on_a_full_tftp_root_fails_and_keeps_the_old_one() {
    let (fs, r) = installing_nodes();
    let lab = lab();
    let bios = lab.node("bios1.lab").unwrap();
    r.write(bios, &ResolvedOs::LOCAL).unwrap();
    fill(fs.path());
    // Only `local` falls back to removal; another OS is an error.
    let e = r.write(bios, &ResolvedOs::MAINTENANCE).unwrap_err();
    assert!(e.to_string().contains("cannot write"), "{e}");
    assert_eq!(r.configured_os(bios), "local");
    assert_eq!(temp_files(fs.path()), Vec::<String>::new());
}

#[test]
fn local_on_a_read_only_tftp_root_fails_naming_both_errors() {
    let (fs, r) = installing_nodes();
    let lab = lab();
    let bios = lab.node("bios1.lab").unwrap();
    fs.remount_read_only();
    let e = r.write(bios, &ResolvedOs::LOCAL).unwrap_err().to_string();
    assert!(e.contains("neither write nor remove"), "{e}");
    assert!(e.contains("removing the records instead"), "{e}");
    assert!(r.record_path(bios).exists());
}

/// The removal fallback relies on this: a node without a record boots the
/// lab's default config, and the samples' default entry is the local disk.
#[test]
fn the_sample_default_configs_boot_local() {
    let tftp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../states.sample/tftp");
    let read = |p: &str| std::fs::read_to_string(tftp.join(p)).unwrap();

    // pxelinux: the one `MENU DEFAULT` is in `LABEL local`, a LOCALBOOT.
    let pxe = read("pxelinux.cfg/default.sample");
    let labels: Vec<&str> = pxe.split("\nLABEL ").skip(1).collect();
    let defaults: Vec<&&str> = labels
        .iter()
        .filter(|l| l.lines().any(|x| x.trim() == "MENU DEFAULT"))
        .collect();
    assert_eq!(defaults.len(), 1, "one MENU DEFAULT: {defaults:?}");
    assert!(defaults[0].starts_with("local\n"), "{}", defaults[0]);
    assert!(defaults[0].contains("LOCALBOOT"), "{}", defaults[0]);
    assert!(
        !pxe.contains("ONTIMEOUT"),
        "ONTIMEOUT overrides MENU DEFAULT"
    );

    // GRUB: `set default=local`, and that entry leaves GRUB.
    let grub = read("grub/grub.cfg");
    assert!(grub.lines().any(|l| l.trim() == "set default=local"));
    let local = grub.split("--id local {").nth(1).expect("a local entry");
    let body = local.split('}').next().unwrap();
    assert_eq!(body.trim(), "exit");

    // iPXE: no record goes on to GRUB or pxelinux, i.e. the menus above.
    let ipxe = read("ipxe/boot.ipxe");
    assert!(ipxe.contains("|| goto no_record"));
}
