//! The records as firmware reads them: QEMU boots a BIOS node through
//! pxelinux and a UEFI node (OVMF) through GRUB's network boot, from a TFTP
//! root where add-image installed a kiwi-shaped build (with a real Linux
//! kernel from Debian's netboot installer) and BootRecords wrote the node's
//! record. The kernel's own "Command line:" on the node's ttyS1 (the records'
//! console option) must carry the kiwi install options: proof that the boot
//! loader found the per-MAC record, chose its default entry and booted the
//! kernel and options it names. QEMU's user-mode network serves DHCP and
//! TFTP, so no root, bridge or dnsmasq is needed.

use crate::{install_plain, kiwi, lab};

use pelagos_pxe::BootRecords;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KERNEL: &str = "/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64/linux";
const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
const GRUB_EFI: &str = "/usr/lib/grub/x86_64-efi";
const PXELINUX: &str = "/usr/lib/PXELINUX/pxelinux.0";
const SYSLINUX_BIOS: &str = "/usr/lib/syslinux/modules/bios";
const QEMU: &str = "/usr/bin/qemu-system-x86_64";

fn need(path: &str) -> &Path {
    let p = Path::new(path);
    assert!(
        p.exists(),
        "{path} is missing: run scripts/install-test-deps.sh"
    );
    p
}

/// Kills QEMU when the test ends, passing or not.
struct Vm(Child);
impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One VM at a time: under TCG on a small machine two slow each other down.
static ONE_VM: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The lab, with the kernel's early console on ttyS1 (through the
/// debug_opts knob) so "Command line:" shows as soon as the kernel runs.
fn vm_lab() -> pelagos_config::LabConfig {
    let mut lab = lab();
    lab.pxe.debug_opts = "rd.debug rd.kiwi.debug earlyprintk=serial,ttyS1,115200".into();
    lab
}

/// A TFTP root with the image installed from a kiwi build whose kernel is real.
fn tftp_with_image() -> (tempfile::TempDir, BootRecords) {
    let tftp = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let dir = kiwi::base_build(&src.path().join("out"), 4096);
    std::fs::copy(
        need(KERNEL),
        dir.join(format!("pxeboot.{}.kernel", kiwi::BASE)),
    )
    .unwrap();
    install_plain(tftp.path(), &dir).unwrap();
    let r = BootRecords::new(tftp.path(), &vm_lab());
    (tftp, r)
}

/// Wait until the node's ttyS1 log shows the kernel command line.
#[allow(clippy::print_stderr)]
fn wait_cmdline(vm: &mut Vm, ttys0: &Path, ttys1: &Path) -> String {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(600);
    loop {
        // OVMF mirrors its console to every serial port: binary noise first.
        let log = String::from_utf8_lossy(&std::fs::read(ttys1).unwrap_or_default()).into_owned();
        // Only a complete line: the file may be read mid-write.
        let complete = log
            .find("Command line:")
            .and_then(|i| log[i..].find('\n').map(|j| log[i..i + j].to_owned()));
        if let Some(line) = complete {
            eprintln!(
                "kernel command line after {:.0} s",
                start.elapsed().as_secs_f64()
            );
            return line;
        }
        let early = String::from_utf8_lossy(&std::fs::read(ttys0).unwrap_or_default()).into_owned();
        if let Ok(Some(st)) = vm.0.try_wait() {
            panic!("QEMU exited ({st}) before the kernel started.\nttyS0:\n{early}\nttyS1:\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "no kernel command line on ttyS1 within 600 s.\nttyS0:\n{early}\nttyS1:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn qemu(
    dir: &Path,
    tftp: &Path,
    bootfile: &str,
    mac: &str,
    extra: &[String],
) -> (Vm, PathBuf, PathBuf) {
    let (s0, s1) = (dir.join("ttyS0.log"), dir.join("ttyS1.log"));
    let child = Command::new(need(QEMU))
        .args([
            "-accel",
            "tcg",
            "-m",
            "512",
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
        ])
        .args(["-serial", &format!("file:{}", s0.display())])
        .args(["-serial", &format!("file:{}", s1.display())])
        .args(extra)
        .args([
            "-netdev",
            &format!("user,id=n0,tftp={},bootfile={bootfile}", tftp.display()),
            "-device",
            &format!("e1000,netdev=n0,mac={mac},bootindex=1"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (Vm(child), s0, s1)
}

fn assert_install_cmdline(line: &str, base_url: &str) {
    for want in [
        "rd.kiwi.install.pxe".to_owned(),
        format!(
            "rd.kiwi.install.image={base_url}/opensuse-leap-15.6.1/opensuse-leap.x86_64-15.6.1.xz"
        ),
        "console=ttyS1,115200".to_owned(),
        "biosdevname=0 net.ifnames=0".to_owned(),
        "splash=silent".to_owned(),
        "rd.debug rd.kiwi.debug earlyprintk=serial,ttyS1,115200".to_owned(),
    ] {
        assert!(
            line.contains(&want),
            "kernel command line lacks {want}: {line}"
        );
    }
}

#[test]
fn bios_node_boots_its_pxelinux_record() {
    let _one = ONE_VM.lock().unwrap_or_else(|e| e.into_inner());
    let (tftp, r) = tftp_with_image();
    let t = tftp.path();
    std::fs::copy(need(PXELINUX), t.join("pxelinux.0")).unwrap();
    for m in ["ldlinux.c32", "menu.c32", "libutil.c32"] {
        std::fs::copy(Path::new(need(SYSLINUX_BIOS)).join(m), t.join(m)).unwrap();
    }
    let lab = vm_lab();
    let n = lab.node("bios1.lab").unwrap();
    r.write(n, &r.resolve_os("opensuse-leap-15.6.1").unwrap())
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let (mut vm, s0, s1) = qemu(
        work.path(),
        t,
        "pxelinux.0",
        "aa:bb:cc:dd:00:73",
        &["-boot".into(), "n".into()],
    );
    let line = wait_cmdline(&mut vm, &s0, &s1);
    assert_install_cmdline(&line, "http://10.0.0.1/images");
}

#[test]
fn uefi_node_boots_its_grub_record() {
    let _one = ONE_VM.lock().unwrap_or_else(|e| e.into_inner());
    let (tftp, r) = tftp_with_image();
    let t = tftp.path();
    let st = Command::new("grub-mknetdir")
        .arg(format!("--net-directory={}", t.display()))
        .arg("--subdir=grub")
        .arg("-d")
        .arg(need(GRUB_EFI))
        .output()
        .expect("grub-mknetdir is missing: run scripts/install-test-deps.sh");
    assert!(
        st.status.success(),
        "grub-mknetdir: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    // A lab menu that would boot nothing: only the per-MAC record can boot the kernel.
    std::fs::write(
        t.join("grub/grub.cfg"),
        "echo 'lab menu, no record found'\nsleep 1\nreboot\n",
    )
    .unwrap();
    let r = r.with_server_port(5000);
    let lab = vm_lab();
    let n = lab.node("uefi1.lab").unwrap();
    r.write(n, &r.resolve_os("opensuse-leap-15.6.1").unwrap())
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let vars = work.path().join("OVMF_VARS.fd");
    std::fs::copy(need(OVMF_VARS), &vars).unwrap();
    let extra = [
        "-drive".to_owned(),
        format!(
            "if=pflash,format=raw,readonly=on,file={}",
            need(OVMF_CODE).display()
        ),
        "-drive".to_owned(),
        format!("if=pflash,format=raw,file={}", vars.display()),
    ];
    let (mut vm, s0, s1) = qemu(
        work.path(),
        t,
        "grub/x86_64-efi/core.efi",
        "52:54:00:12:34:56",
        &extra,
    );
    let line = wait_cmdline(&mut vm, &s0, &s1);
    assert_install_cmdline(&line, "http://10.0.0.1:5000/images");
    // GRUB (not pxelinux) booted it.
    assert!(
        line.contains("BOOT_IMAGE=(tftp)/opensuse-leap-15.6.1/pxeboot.kernel"),
        "{line}"
    );
}

#[test]
fn ipxe_node_boots_its_ipxe_record_through_the_sample_chain_script() {
    let _one = ONE_VM.lock().unwrap_or_else(|e| e.into_inner());
    let (tftp, r) = tftp_with_image();
    let t = tftp.path();
    let lab = vm_lab();
    let n = lab.node("uefi1.lab").unwrap();
    r.write(n, &r.resolve_os("opensuse-leap-15.6.1").unwrap())
        .unwrap();
    // The lab's chain script from states.sample, as dnsmasq would hand it to iPXE.
    let sample =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../states.sample/tftp/ipxe/boot.ipxe");
    std::fs::copy(sample, t.join("ipxe/boot.ipxe")).unwrap();
    let work = tempfile::tempdir().unwrap();
    // SeaBIOS runs the NIC's iPXE ROM, which runs the script it is given.
    let (mut vm, s0, s1) = qemu(
        work.path(),
        t,
        "ipxe/boot.ipxe",
        "52:54:00:12:34:56",
        &["-boot".into(), "n".into()],
    );
    let line = wait_cmdline(&mut vm, &s0, &s1);
    assert_install_cmdline(&line, "http://10.0.0.1/images");
    // iPXE (not pxelinux/GRUB) booted it: its initrd= argument is there.
    assert!(line.contains("initrd=pxeboot.initrd.xz"), "{line}");
}
