//! The generated dnsmasq file, read by the real dnsmasq.

use crate::common::demo_lab;
use pelagos_config::generate::{self, Kind, Options};
use pelagos_testkit::require_program;
use std::process::Command;

/// `dnsmasq --test` on a minimal main config that includes `file`.
fn dnsmasq_test(dir: &std::path::Path, file: &std::path::Path) -> std::process::Output {
    let dnsmasq = require_program("/usr/sbin/dnsmasq");
    let main = dir.join("dnsmasq-main.conf");
    std::fs::write(&main, format!("port=0\nconf-file={}\n", file.display())).unwrap();
    Command::new(dnsmasq)
        .arg("--test")
        .arg("-C")
        .arg(&main)
        .output()
        .unwrap()
}

#[test]
fn generated_hosts_file_passes_dnsmasq_test() {
    let dir = tempfile::tempdir().unwrap();
    let outputs =
        generate::render_all(&demo_lab(), &Options::only([Kind::Dnsmasq]), dir.path()).unwrap();
    let file = &generate::write_all(&outputs, dir.path()).unwrap()[0];
    assert!(outputs[0].contents.contains("storage-01-hsm"));
    let out = dnsmasq_test(dir.path(), file);
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("syntax check OK"),
        "dnsmasq said: {text}"
    );
}

#[test]
fn dnsmasq_test_does_catch_a_bad_line() {
    // The check above can fail: a broken record is refused.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.conf");
    std::fs::write(&file, "dhcp-host=52:54:00:zz:00:11,bad,10.0.0.1,x\n").unwrap();
    let out = dnsmasq_test(dir.path(), &file);
    assert!(!out.status.success(), "dnsmasq accepted a broken record");
}
