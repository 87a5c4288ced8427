//! ipmitool reads `IPMITOOL_PASSWORD` before `IPMI_PASSWORD`: a stale one in
//! the server's environment must not reach ipmitool. Its own test binary,
//! because it changes the process environment.

use pelagos_ipmi::{IpmiTool, IpmiToolConfig, PowerControl, PowerState};
use pelagos_testkit::bmc::{FakeBmc, PASSWORD, Recorder, USER};

#[tokio::test]
async fn inherited_ipmitool_password_is_removed() {
    // SAFETY: the only test of this binary, on a current-thread runtime,
    // before any thread or child process is started.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("IPMITOOL_PASSWORD", "stale-wrong-password");
    }
    let sim = FakeBmc::start("on").await;
    let rec = Recorder::new(sim.dir());
    let ipmi = IpmiTool::new(IpmiToolConfig {
        program: rec.program.clone(),
        attempts: 1,
        ..IpmiToolConfig::default()
    });

    assert_eq!(
        ipmi.power_status(&sim.target()).await.unwrap(),
        PowerState::On
    );
    let env = rec.env_names();
    assert_eq!(env.len(), 1);
    assert!(
        !env[0].split(' ').any(|n| n == "IPMITOOL_PASSWORD"),
        "{env:?}"
    );

    // Control: with the stale variable left in place, ipmitool fails.
    let out = std::process::Command::new("ipmitool")
        .args(["-I", "lanplus", "-H", "127.0.0.1", "-p"])
        .arg(sim.port.to_string())
        .args(["-U", USER, "-E", "power", "status"])
        .env("IPMI_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "ipmitool ignored IPMITOOL_PASSWORD: the test proves nothing"
    );
}
