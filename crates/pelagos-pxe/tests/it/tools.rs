//! The records and the provisioning-host samples against the real tools
//! that read them: grub-script-check (Debian grub-common) and dnsmasq.

use crate::{lab, tftp_with_base};
use pelagos_pxe::BootRecords;
use std::path::{Path, PathBuf};
use std::process::Command;

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/bin", "/sbin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is missing: run scripts/install-test-deps.sh");
}

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../states.sample")
}

fn grub_check(file: &Path) {
    let out = Command::new(tool("grub-script-check"))
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "grub-script-check refused {}: {}{}\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(file).unwrap()
    );
}

#[test]
fn grub_records_pass_grub_script_check() {
    let tftp = tftp_with_base(1024);
    let mut lab = lab();
    // Options GRUB would misparse unquoted must come out quoted.
    lab.pxe.debug_opts = "rd.debug foo=a;b bar=$x{y} it's".into();
    let r = BootRecords::new(tftp.path(), &lab);
    let n = lab.node("uefi1.lab").unwrap();
    for os in ["local", "maintenance_image", "opensuse-leap-15.6.1"] {
        r.write(n, &r.resolve_os(os).unwrap()).unwrap();
        grub_check(&r.grub_record_path(n));
    }
    let text = std::fs::read_to_string(r.grub_record_path(n)).unwrap();
    assert!(text.contains(r"'foo=a;b' 'bar=$x{y}' 'it'\''s'"), "{text}");
    grub_check(&samples().join("tftp/grub/grub.cfg"));
}

#[test]
fn grub_script_check_catches_a_broken_record() {
    // The check above can fail: an unclosed menuentry is refused.
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("bad.cfg");
    std::fs::write(&f, "menuentry 'x' {\n  linux /k\n").unwrap();
    let st = Command::new(tool("grub-script-check"))
        .arg(&f)
        .output()
        .unwrap();
    assert!(!st.status.success());
}

#[test]
fn dnsmasq_accepts_the_sample_config() {
    let d = tempfile::tempdir().unwrap();
    let conf_d = samples().join("etc/dnsmasq/dnsmasq.d");
    let mut main = format!("tftp-root={}\nport=0\n", d.path().display());
    for f in ["main.conf", "network.conf", "pxe.conf", "tftp.conf"] {
        let text = std::fs::read_to_string(conf_d.join(f)).unwrap();
        // Fill in the admin's <...> values.
        let filled: String = text
            .lines()
            .map(|l| match l.split_once('=') {
                Some((k, _)) if l.contains('<') && !l.starts_with('#') => match k {
                    "interface" => "interface=lo".to_owned(),
                    "listen-address" => "listen-address=127.0.0.1".to_owned(),
                    "domain" => "domain=lab.example".to_owned(),
                    "dhcp-range" => "dhcp-range=10.77.0.0,static,1w".to_owned(),
                    "dhcp-option" => "dhcp-option=option:router,10.77.0.254".to_owned(),
                    other => panic!("unexpected placeholder key {other} in {f}"),
                },
                _ => l.replace(
                    "/etc/dnsmasq.d/hosts",
                    &d.path().join("hosts").display().to_string(),
                ),
            })
            .map(|l| {
                if l.starts_with("tftp-root=") {
                    String::new()
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let p = d.path().join(f);
        std::fs::write(&p, filled).unwrap();
        main.push_str(&format!("conf-file={}\n", p.display()));
    }
    std::fs::write(d.path().join("hosts"), "").unwrap();
    let conf = d.path().join("dnsmasq.conf");
    std::fs::write(&conf, main).unwrap();
    let out = Command::new(tool("dnsmasq"))
        .arg("--test")
        .arg("-C")
        .arg(&conf)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && all.contains("syntax check OK"),
        "{all}"
    );
}
