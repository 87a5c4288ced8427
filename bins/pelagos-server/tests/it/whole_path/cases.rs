//! The cases of the whole path: success, each failure, dismissal in each
//! stage. Each ends by grepping everything it saw for the passwords.

use super::node::Behaviour;
use super::{Case, IMAGE, NODE, Setup};
use pelagos_testkit::argvs;
use pelagos_testkit::salt::salt_lock;
use std::time::Duration;

/// Power operations between two `on`s of a cold restart: off, then on no
/// sooner than `delay` later.
fn assert_cold_restarts(case: &Case, pairs: usize, delay: f64) {
    let ops: Vec<_> = case
        .bmc
        .ops()
        .into_iter()
        .filter(|o| o.op != "status")
        .collect();
    let names: Vec<&str> = ops.iter().map(|o| o.op.as_str()).collect();
    let mut expected = vec!["bootdev", "on"];
    for _ in 0..pairs {
        expected.extend(["off", "on"]);
    }
    assert_eq!(names, expected, "BMC operations");
    for w in ops.windows(2) {
        if w[0].op == "off" {
            let gap = w[1].t - w[0].t;
            assert!(gap >= delay, "power on {gap:.3}s after power off");
        }
    }
}

#[tokio::test]
async fn success_with_every_real_peer() {
    let _salt = salt_lock();
    let case = Case::start(Setup {
        behaviour: Behaviour::Boots,
        power_on: true,
        uefi: true,
        sls_list: "hello",
        salt: true,
        ..Setup::default()
    });
    let (code, body, log) = case.run("sle").await;
    assert_eq!(code, 200, "{body}\n{log}\nnode: {:?}", case.node.events());
    assert_eq!(body["status"], "done");
    assert_eq!(body["os"], IMAGE);
    assert_eq!(body["node"]["node"], NODE);

    // One-time network boot in UEFI mode, then a cycle of the running chassis.
    assert_eq!(case.bmc.actions(), ["bootdev", "cycle"], "{log}");
    let bootdev = case.bmc.bootdev();
    assert_eq!(bootdev["dev"], "network");
    assert_eq!(bootdev["efi"], true);
    assert_eq!(bootdev["persistent"], false);

    // The start delay (15 s) ended when the console showed the new boot.
    let after: f64 = log
        .split("Console shows the new boot after ")
        .nth(1)
        .and_then(|s| s.split('s').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no new-boot line in the task log:\n{log}"));
    assert!(after < 15.0, "{log}");
    let new_boot = log.find("Console shows the new boot").unwrap();
    let connected = log.find("Connected to node [node1.lab]").expect(&log);
    assert!(new_boot < connected, "{log}");
    // The old OS's sshd (running before the cycle) was never probed.
    let events = case.node.events();
    assert!(events[0].starts_with("sshd up (old OS)"), "{events:?}");
    let old = events
        .iter()
        .find(|e| e.starts_with("sshd stopped"))
        .expect("the old sshd stopped");
    assert!(!old.contains("Connection"), "old sshd was reached: {old}");
    assert!(!old.contains("preauth"), "old sshd was reached: {old}");

    assert!(log.contains("Salt state [hello] applied"), "{log}");
    let hello = std::fs::read_to_string(case.path("out/hello.txt")).unwrap();
    assert_eq!(hello.trim(), "hello from salt");
    assert_eq!(case.record_os().await, "local");
    let console = std::fs::read_to_string(case.path("conman/console.node1")).unwrap();
    assert!(console.contains("SeaBIOS"), "{console}");
    case.assert_no_secrets().await;
}

#[tokio::test]
async fn a_node_that_needs_a_reboot_boots_twice() {
    let case = Case::start(Setup {
        need_reboot: true,
        ..Setup::default()
    });
    let (code, body, log) = case.run("local").await;
    assert_eq!(code, 200, "{body}\n{log}");
    // Off: powered on; after the first boot, cycled (a running chassis).
    assert_eq!(case.bmc.actions(), ["bootdev", "on", "cycle"], "{log}");
    assert_eq!(
        log.matches("Console shows the new boot").count(),
        2,
        "{log}"
    );
    assert_eq!(
        log.matches("Connected to node [node1.lab]").count(),
        2,
        "{log}"
    );
    let events = case.node.events();
    assert!(
        events.iter().any(|e| e == "power cycle: boot 2"),
        "{events:?}"
    );
    assert_eq!(case.record_os().await, "local");
    case.assert_no_secrets().await;
}

#[tokio::test]
async fn wrong_bmc_password_is_a_502_bmc_exception() {
    let case = Case::start(Setup {
        wrong_bmc_password: true,
        ..Setup::default()
    });
    let (code, body, _) = case.run("local").await;
    assert_eq!(code, 502, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.starts_with("BMCException"), "{error}");
    assert!(error.contains("authentication refused"), "{error}");
    assert!(error.contains("127.0.0.1"), "{error}");
    assert!(case.bmc.actions().is_empty(), "{:?}", case.bmc.actions());
    case.assert_no_secrets().await;
}

#[tokio::test]
async fn stalled_console_cold_restarts_then_cannot_boot() {
    let case = Case::start(Setup {
        behaviour: Behaviour::Stalls,
        timing: vec![("conman_line_max_age", 1.5)],
        ..Setup::default()
    });
    let (code, body, log) = case.run("local").await;
    assert_eq!(code, 502, "{body}\n{log}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("CannotBootException"), "{error}");
    assert!(error.contains("(2)"), "{error}");
    // Power on from off, then two cold restarts (max_cold_restart 2).
    assert_cold_restarts(&case, 2, 0.3);
    assert!(log.contains("cold restart 1/2"), "{log}");
    assert!(log.contains("cold restart 2/2"), "{log}");
    assert!(log.contains("iPXE"), "the stall names the last line: {log}");
    case.assert_no_secrets().await;
}

#[tokio::test]
async fn ssh_never_up_is_a_504_timeout() {
    let case = Case::start(Setup {
        behaviour: Behaviour::NeverReady,
        timing: vec![("wait_node_ready_timeout", 4.0)],
        ..Setup::default()
    });
    let (code, body, log) = case.run("local").await;
    assert_eq!(code, 504, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("TimeoutException"), "{error}");
    // The task log says why the node was not ready, probe by probe.
    assert!(
        log.contains("SSH probe failed") && log.contains("127.0.0.1"),
        "{log}"
    );
    assert!(error.contains("127.0.0.1"), "{error}");
    // The console kept printing: no cold restart.
    assert_eq!(case.bmc.actions(), ["bootdev", "on"]);
    // A BIOS node: network boot without the EFI flag.
    let bootdev = case.bmc.bootdev();
    assert_eq!(bootdev["dev"], "network");
    assert_eq!(bootdev["efi"], false);
    case.assert_no_secrets().await;
}

#[tokio::test]
async fn salt_failure_names_the_state() {
    let _salt = salt_lock();
    let case = Case::start(Setup {
        sls_list: "bad",
        salt: true,
        ..Setup::default()
    });
    let (code, body, log) = case.run("sle").await;
    assert_eq!(code, 500, "{body}\n{log}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("Salt execution failed"), "{error}");
    assert!(error.contains("[bad]"), "{error}");
    assert_eq!(case.bmc.actions(), ["bootdev", "on"]);
    // The node was installed: it boots locally from now on.
    assert_eq!(case.record_os().await, "local");
    case.assert_no_secrets().await;
}

#[tokio::test]
async fn dismissed_while_waiting_for_the_new_boot() {
    // A console that stays silent: the task waits the whole start delay.
    let case = Case::start(Setup {
        behaviour: Behaviour::Silent,
        timing: vec![("hardware_start_delay", 30.0)],
        ..Setup::default()
    });
    let id = case.provision("sle", "").await;
    case.until_bmc_action("on").await;
    assert_eq!(case.record_os().await, IMAGE);
    case.dismiss_and_assert(&id, Duration::from_secs(1)).await;
    let log = case.task_log(&id).await;
    assert!(!log.contains("Waiting for node"), "{log}");
    case.assert_no_secrets().await;
}

#[tokio::test]
async fn dismissed_while_waiting_for_ssh() {
    let case = Case::start(Setup {
        behaviour: Behaviour::NeverReady,
        timing: vec![("wait_node_ready_timeout", 60.0)],
        ..Setup::default()
    });
    let id = case.provision("sle", "").await;
    case.until_logged(&id, "Waiting for node [node1.lab]").await;
    case.dismiss_and_assert(&id, Duration::from_secs(1)).await;
    assert_eq!(case.bmc.actions(), ["bootdev", "on"]);
    case.assert_no_secrets().await;
}

#[tokio::test]
async fn dismissed_during_a_cold_restart() {
    // Dismissed between power off and power on: the node stays off.
    let case = Case::start(Setup {
        behaviour: Behaviour::Stalls,
        timing: vec![("conman_line_max_age", 1.5), ("cold_restart_delay", 2.0)],
        ..Setup::default()
    });
    let id = case.provision("sle", "").await;
    case.until_bmc_action("off").await;
    // Longer than the cold restart delay: a power on would have come.
    case.dismiss_and_assert(&id, Duration::from_millis(2500))
        .await;
    assert_eq!(case.bmc.actions(), ["bootdev", "on", "off"]);
    case.assert_no_secrets().await;
}

#[tokio::test]
async fn dismissed_during_salt() {
    let _salt = salt_lock();
    let case = Case::start(Setup {
        sls_list: "slow",
        salt: true,
        ..Setup::default()
    });
    let id = case.provision("sle", "").await;
    case.until("salt-ssh to start the slow state", async || {
        std::fs::read_to_string(case.path("salt-argv.log")).is_ok_and(|a| a.contains("slow"))
    })
    .await;
    // salt-ssh runs (its argv has `-c <salt dir>`) ...
    let salt_dir = case.path("salt").display().to_string();
    let salt_runs = || -> Vec<String> {
        argvs()
            .filter(|a| a.contains(&format!(" {salt_dir} ")))
            .collect()
    };
    assert!(!salt_runs().is_empty(), "salt-ssh is not running");
    case.dismiss_and_assert(&id, Duration::from_millis(500))
        .await;
    assert_eq!(case.bmc.actions(), ["bootdev", "on"]);
    // ... and is stopped by the dismissal.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !salt_runs().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "left running: {:?}",
            salt_runs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    case.assert_no_secrets().await;
}
