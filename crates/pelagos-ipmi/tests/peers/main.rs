//! pelagos-ipmi against real ipmitool and a simulated RMCP+ BMC (pyghmi).
//! Needs ipmitool and the test venv: scripts/install-test-deps.sh.

use pelagos_config::{LabConfig, Secret};
use pelagos_ipmi::{
    BmcError, BmcTarget, BootDevice, BootOptions, IpmiTool, IpmiToolConfig, PowerAction,
    PowerControl, PowerState,
};
use pelagos_testkit::bmc::{FakeBmc, PASSWORD, Recorder, SilentBmc, USER};
use pelagos_testkit::log::LogCapture;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn tool(config: IpmiToolConfig) -> IpmiTool {
    IpmiTool::new(config)
}

fn quick() -> IpmiToolConfig {
    IpmiToolConfig {
        timeout: Duration::from_secs(5),
        attempts: 3,
        backoff: Duration::from_millis(100),
        ..IpmiToolConfig::default()
    }
}

#[tokio::test]
async fn power_operations_are_recorded_by_the_bmc() {
    let sim = FakeBmc::start("off").await;
    let (ipmi, target) = (tool(quick()), sim.target());
    let power = |action| ipmi.power(&target, action);

    assert_eq!(ipmi.power_status(&target).await.unwrap(), PowerState::Off);
    power(PowerAction::On).await.unwrap();
    assert_eq!(ipmi.power_status(&target).await.unwrap(), PowerState::On);
    power(PowerAction::Reset).await.unwrap();
    power(PowerAction::Cycle).await.unwrap();
    power(PowerAction::SoftOff).await.unwrap();
    assert_eq!(ipmi.power_status(&target).await.unwrap(), PowerState::Off);
    power(PowerAction::On).await.unwrap();
    power(PowerAction::Off).await.unwrap();
    assert_eq!(ipmi.power_status(&target).await.unwrap(), PowerState::Off);

    assert_eq!(
        sim.op_names(),
        ["on", "reset", "cycle", "shutdown", "on", "off"]
    );
    let powers: Vec<String> = sim.ops().into_iter().map(|o| o.power).collect();
    assert_eq!(powers, ["on", "on", "on", "off", "on", "off"]);
}

#[tokio::test]
async fn cycle_on_an_off_chassis_powers_it_on() {
    let sim = FakeBmc::start("off").await;
    let rec = Recorder::new(sim.dir());
    let ipmi = tool(IpmiToolConfig {
        program: rec.program.clone(),
        ..quick()
    });
    let target = sim.target();
    // The ipmitool operations run so far (argv ends with the operation).
    let ops = || -> Vec<String> {
        rec.argv()
            .iter()
            .map(|a| a.rsplit(" -R ").next().unwrap_or_default().to_owned())
            .map(|a| a.split_once(' ').map(|(_, op)| op.to_owned()).unwrap_or(a))
            .collect()
    };

    ipmi.power(&target, PowerAction::Cycle).await.unwrap();
    // The state is read once per cycle, by the backend (callers never read it).
    assert_eq!(ops(), ["power status", "power on"]);
    assert_eq!(ipmi.power_status(&target).await.unwrap(), PowerState::On);
    // The simulator rejects a cycle when off (as real BMCs do): the backend
    // must not have sent one.
    assert_eq!(sim.op_names(), ["on"]);

    ipmi.power(&target, PowerAction::Cycle).await.unwrap();
    assert_eq!(sim.op_names(), ["on", "cycle"]);
    assert_eq!(
        ops()[3..],
        ["power status", "power cycle"],
        "one status read, then the cycle"
    );
}

#[tokio::test]
async fn cycle_rejected_because_the_chassis_went_off_powers_it_on() {
    // Status says on, then the chassis goes off before the cycle arrives.
    let sim = FakeBmc::start_with("on", &["--off-at-cycle"]).await;
    let ipmi = tool(quick());
    let target = sim.target();

    ipmi.power(&target, PowerAction::Cycle).await.unwrap();
    assert_eq!(sim.op_names(), ["cycle-rejected", "on"]);
    assert_eq!(ipmi.power_status(&target).await.unwrap(), PowerState::On);
}

#[tokio::test]
async fn raw_cycle_on_an_off_chassis_is_rejected_by_the_simulator() {
    // The behaviour the backend works around, seen through ipmitool itself.
    let sim = FakeBmc::start("off").await;
    let out = std::process::Command::new("ipmitool")
        .args(["-I", "lanplus", "-H", "127.0.0.1", "-p"])
        .arg(sim.port.to_string())
        .args(["-U", USER, "-E", "power", "cycle"])
        .env("IPMI_PASSWORD", PASSWORD)
        .env_remove("IPMITOOL_PASSWORD")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not supported in present state"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sim.op_names(), ["cycle-rejected"]);
}

#[tokio::test]
async fn boot_device_pxe_and_disk_with_and_without_efiboot() {
    let sim = FakeBmc::start("on").await;
    let (ipmi, target) = (tool(quick()), sim.target());

    let persistent_uefi = BootOptions {
        uefi: true,
        persistent: true,
    };
    for (device, options) in [
        (BootDevice::Pxe, BootOptions::once(false)),
        (BootDevice::Disk, BootOptions::once(false)),
        (BootDevice::Pxe, BootOptions::once(true)),
        (BootDevice::Disk, BootOptions::once(true)),
        (BootDevice::Pxe, persistent_uefi),
    ] {
        ipmi.set_boot_device(&target, device, options)
            .await
            .unwrap();
    }

    let got: Vec<_> = sim
        .ops()
        .into_iter()
        .map(|o| (o.op, o.dev, o.efi, o.persistent))
        .collect();
    let want = |dev: &str, efi: bool, persistent: bool| {
        (
            "bootdev".to_owned(),
            Some(dev.to_owned()),
            Some(efi),
            Some(persistent),
        )
    };
    assert_eq!(
        got,
        [
            want("network", false, false),
            want("hd", false, false),
            want("network", true, false),
            want("hd", true, false),
            want("network", true, true),
        ]
    );
}

#[tokio::test]
async fn wrong_password_is_an_authentication_error_without_retries() {
    let sim = FakeBmc::start("off").await;
    let rec = Recorder::new(sim.dir());
    let ipmi = tool(IpmiToolConfig {
        program: rec.program.clone(),
        attempts: 3,
        backoff: Duration::from_secs(2),
        ..quick()
    });
    let wrong = "Wr0ng-pw-9x";
    let target = BmcTarget {
        password: Secret::new(wrong),
        ..sim.target()
    };
    let capture = LogCapture::global();
    let err = ipmi.power(&target, PowerAction::On).await.unwrap_err();

    assert!(
        matches!(err, BmcError::Authentication { .. }),
        "not an authentication error: {err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(rec.argv().len(), 1, "authentication failure was retried");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("RAKP 2 HMAC is invalid"), "{shown}");
    assert!(
        shown.starts_with("power on failed on BMC sim-node (127.0.0.1:"),
        "{shown}"
    );
    assert!(
        !shown.contains(wrong) && !shown.contains(PASSWORD),
        "{shown}"
    );
    // This test's lines: the simulator's port is unique to it.
    let port = format!("port={}", sim.port);
    let logs: String = capture
        .text()
        .lines()
        .filter(|l| l.contains(&port))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(logs.contains("op=power on"), "{logs}");
    assert!(logs.contains("attempt=1"), "{logs}");
    assert!(logs.contains("BMC command failed"), "{logs}");
    assert!(!logs.contains(wrong), "password in the logs: {logs}");
    assert!(
        !capture.text().contains(PASSWORD),
        "the simulator's password is in the logs"
    );
    assert!(sim.ops().is_empty(), "the BMC acted: {:?}", sim.ops());
}

#[tokio::test]
async fn unknown_user_is_an_authentication_error() {
    // pyghmi ignores RAKP 1 for an unknown user; ipmitool then spends about
    // 5 s retrying before it gives up. Whether it gives up or the timeout
    // kills it first, this is an authentication failure, not retried.
    let sim = FakeBmc::start("off").await;
    let rec = Recorder::new(sim.dir());
    let target = BmcTarget {
        user: "nobody".into(),
        ..sim.target()
    };
    let ipmi = tool(IpmiToolConfig {
        program: rec.program.clone(),
        timeout: Duration::from_secs(3),
        ..quick()
    });
    let err = ipmi.power_status(&target).await.unwrap_err();
    assert!(matches!(err, BmcError::Authentication { .. }), "{err:?}");
    assert!(
        err.to_string().contains("no response from RAKP 1 message"),
        "{err}"
    );
    assert_eq!(rec.argv().len(), 1, "authentication failure was retried");
}

#[tokio::test]
async fn silent_bmc_is_unreachable_after_every_attempt() {
    let bmc = SilentBmc::start();
    let rec = &bmc.rec;
    let config = IpmiToolConfig {
        program: rec.program.clone(),
        timeout: Duration::from_secs(4),
        attempts: 2,
        backoff: Duration::from_millis(100),
        session_retries: None,
    };
    let target = bmc.target(USER, PASSWORD);
    let started = Instant::now();
    let err = tool(config.clone())
        .power_status(&target)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();

    // ipmitool gives up by itself (-R 1: about 2 s) before the 4 s timeout.
    assert!(
        matches!(err, BmcError::Unreachable { attempts: 2, .. }),
        "{err:?}"
    );
    assert_eq!(rec.argv().len(), 2, "each attempt runs ipmitool once");
    let bound = config.timeout * config.attempts + Duration::from_secs(1);
    assert!(elapsed < bound, "took {elapsed:?}, bound {bound:?}");
    assert!(!format!("{err} {err:?}").contains(PASSWORD));
}

#[tokio::test]
async fn timeout_kills_ipmitool() {
    let bmc = SilentBmc::start();
    let rec = &bmc.rec;
    // ipmitool would wait about 6 s (-R 2); the timeout is 1 s.
    let config = IpmiToolConfig {
        program: rec.program.clone(),
        timeout: Duration::from_secs(1),
        attempts: 1,
        backoff: Duration::ZERO,
        session_retries: Some(2),
    };
    let target = bmc.target(USER, PASSWORD);
    let err = tool(config).power_status(&target).await.unwrap_err();

    assert!(
        matches!(err, BmcError::Timeout { attempts: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("no answer within 1s"), "{err}");
    let pids = rec.pids();
    assert_eq!(pids.len(), 1);
    assert!(
        !PathBuf::from(format!("/proc/{}", pids[0])).exists(),
        "ipmitool (pid {}) still there after the timeout",
        pids[0]
    );
}

#[tokio::test]
async fn dropping_a_call_kills_ipmitool() {
    // What a dismissed provision does to a BMC call in flight.
    let bmc = SilentBmc::start();
    let rec = &bmc.rec;
    let ipmi = tool(IpmiToolConfig {
        program: rec.program.clone(),
        timeout: Duration::from_secs(30),
        attempts: 1,
        ..quick()
    });
    let target = bmc.target(USER, PASSWORD);

    // Boxed, so that drop() below drops the future itself.
    let mut call = Box::pin(ipmi.power_status(&target));
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        tokio::select! {
            r = &mut call => panic!("finished early: {r:?}"),
            () = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        if let Some(&pid) = rec.pids().first() {
            // The recorder has exec'd ipmitool once its comm says so.
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "ipmitool" {
                break pid;
            }
        }
        assert!(Instant::now() < deadline, "ipmitool never started");
    };
    drop(call);

    // SIGKILL is sent on drop; tokio reaps the child in the background.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .chars()
            .next();
        if stat.is_empty() || state == Some('Z') {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ipmitool {pid} still running: {stat}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn missing_program_is_not_installed_and_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("no-ipmitool-here");
    let ipmi = tool(IpmiToolConfig {
        program: program.clone(),
        ..quick()
    });
    let target = BmcTarget::new("127.0.0.1", "admin", Secret::new(PASSWORD));
    let err = ipmi.power_status(&target).await.unwrap_err();
    assert!(matches!(err, BmcError::NotInstalled { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&program.display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn password_only_in_the_environment() {
    let sim = FakeBmc::start("off").await;
    let rec = Recorder::new(sim.dir());
    let ipmi = tool(IpmiToolConfig {
        program: rec.program.clone(),
        ..quick()
    });
    let target = sim.target().with_cipher_suite(Some(3));
    ipmi.power(&target, PowerAction::Cycle).await.unwrap();
    ipmi.set_boot_device(&target, BootDevice::Pxe, BootOptions::once(true))
        .await
        .unwrap();

    let argv = rec.argv();
    assert_eq!(argv.len(), 3, "{argv:?}"); // status, on, bootdev
    for line in &argv {
        assert!(!line.contains(PASSWORD), "password in argv: {line}");
        assert!(!line.split(' ').any(|a| a == "-P"), "{line}");
        assert!(line.starts_with(&format!(
            "-I lanplus -H 127.0.0.1 -p {} -U admin -E -C 3 ",
            sim.port
        )));
    }
    assert!(argv[2].ends_with("chassis bootdev pxe options=efiboot"));
    for names in rec.env_names() {
        let names: Vec<&str> = names.split(' ').collect();
        assert!(names.contains(&"IPMI_PASSWORD"), "{names:?}");
        assert!(!names.contains(&"IPMITOOL_PASSWORD"), "{names:?}");
    }
}

#[test]
fn target_for_a_lab_node() {
    let lab = LabConfig::parse(
        r#"{
            "ipmi_user": "root", "ipmi_pass": "labpw",
            "nodes": [
                {"node": "n1.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.1",
                 "bmc_ip": "10.1.0.1", "bmc_port": 6230, "cipher_suite": 3},
                {"node": "n2.lab", "mac": "aa:bb:cc:dd:ee:02", "ip": "10.0.0.2"}
            ]
        }"#,
    )
    .unwrap();
    let t = BmcTarget::for_node(&lab, lab.node("n1.lab").unwrap()).unwrap();
    assert_eq!(
        (t.host.as_str(), t.port, t.user.as_str(), t.cipher_suite),
        ("10.1.0.1", 6230, "root", Some(3))
    );
    assert_eq!(t.password.expose(), "labpw");
    assert_eq!(t.label(), "n1.lab (10.1.0.1:6230)");
    assert!(!format!("{t:?}").contains("labpw"));
    let err = BmcTarget::for_node(&lab, lab.node("n2.lab").unwrap()).unwrap_err();
    assert!(matches!(err, BmcError::NoAddress { .. }));
    assert!(err.to_string().contains("n2.lab"), "{err}");
}

#[tokio::test]
async fn over_long_credentials_are_misconfigured_and_not_retried() {
    // ipmitool refuses them before sending a packet (IPMI v2: user at most
    // 16 bytes, password at most 20), so a silent port is enough.
    let long_password = "Pw-21-bytes-long-xyz!";
    assert_eq!(long_password.len(), 21);
    for (user, password) in [("admin", long_password), ("user-of-17-bytes!", "short-pw")] {
        let bmc = SilentBmc::start();
        let rec = &bmc.rec;
        let ipmi = tool(IpmiToolConfig {
            program: rec.program.clone(),
            attempts: 3,
            ..quick()
        });
        let target = bmc.target(user, password);
        let err = ipmi.power_status(&target).await.unwrap_err();
        assert!(matches!(err, BmcError::Misconfigured { .. }), "{err:?}");
        assert!(!err.is_retryable());
        assert_eq!(rec.argv().len(), 1, "refused credentials were retried");
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("ipmi_pass"), "{shown}");
        assert!(!shown.contains(password), "password shown: {shown}");
    }
}
