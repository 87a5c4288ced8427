//! The generated CONSOLE lines, read by the real conmand.

use pelagos_config::LabConfig;
use pelagos_config::generate::{self, Kind, Options};
use pelagos_testkit::require_program;
use pelagos_testkit::{KillOnDrop, free_port};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn wait_for(what: &str, deadline: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn conmand_accepts_the_generated_consoles_and_logs_them_by_short_name() {
    let conmand = require_program("/usr/sbin/conmand");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lab = LabConfig::parse(&format!(
        r#"{{ "ipmi_user": "ADMIN", "ipmi_pass": "pa\"ss", "nodes": [
            {{ "node": "vm1.lab.test", "console_dev": "unix:{}/vm1.sock" }},
            {{ "node": "hw1.lab.test", "bmc_ip": "127.0.0.1", "cipher_suite": 3 }} ] }}"#,
        d.display()
    ))
    .unwrap();
    // The original's template mechanism, with test-private server settings.
    let tmpl = d.join(generate::LEGACY_CONMAN_TEMPLATE);
    std::fs::create_dir_all(tmpl.parent().unwrap()).unwrap();
    std::fs::write(
        &tmpl,
        format!(
            "SERVER logdir=\"{0}/log/\"\nSERVER pidfile=\"{0}/conmand.pid\"\nSERVER port={1}\n\
             SERVER loopback=ON\nGLOBAL log=\"console.%N\"\nGLOBAL logopts=\"sanitize,timestamp\"\n\n@@CONSOLES@@\n",
            d.display(),
            free_port()
        ),
    )
    .unwrap();
    let out = generate::render_all(&lab, &Options::only([Kind::Conman]), d).unwrap();
    assert!(
        out[0].contents.contains("IPMIOPTS='U:ADMIN,P:pa\"ss,C:3'"),
        "{}",
        out[0].contents
    );
    let conf = generate::write_all(&out, d).unwrap().remove(0);

    // Kills conmand when the test ends, on failure too.
    let mut daemon = KillOnDrop(
        Command::new(conmand)
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let log = |name: &str| d.join("log").join(format!("console.{name}"));
    wait_for(
        "conmand to open both console logs",
        Duration::from_secs(20),
        || log("vm1").exists() && log("hw1").exists(),
    );
    assert!(Path::new(&log("vm1")).is_file());
    let _ = daemon.0.kill();
    let _ = daemon.0.wait();
    let mut stderr = String::new();
    daemon
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        !stderr.contains("ERROR"),
        "conmand refused the config:\n{stderr}"
    );
    assert!(stderr.contains("Starting ConMan daemon"), "{stderr}");
}
