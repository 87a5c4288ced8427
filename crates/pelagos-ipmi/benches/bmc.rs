//! Latency of BMC operations through ipmitool against the pyghmi simulator
//! on loopback: prints milliseconds per operation (one ipmitool process
//! each), and how long the two failure modes take to be reported.
//! Goal: tens of milliseconds per operation, so the BMC never dominates a
//! provision; an authentication failure reported at once, not after retries.
#![allow(clippy::print_stdout)]

use pelagos_testkit::bmc as peer;

use pelagos_config::Secret;
use pelagos_ipmi::{
    BmcTarget, BootDevice, BootOptions, IpmiTool, IpmiToolConfig, PowerAction, PowerControl,
};
use std::time::{Duration, Instant};

const ROUNDS: u32 = 30;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn time<F, Fut>(label: &str, rounds: u32, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut all = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        f().await;
        all.push(t.elapsed());
    }
    all.sort();
    let mean = all.iter().sum::<Duration>() / rounds;
    println!(
        "{label:<40} mean {:7.1} ms   median {:7.1} ms   max {:7.1} ms   ({rounds} runs)",
        ms(mean),
        ms(all[all.len() / 2]),
        ms(*all.last().unwrap_or(&Duration::ZERO)),
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let t = Instant::now();
    let sim = peer::FakeBmc::start("off").await;
    println!(
        "simulator start until power status answers: {:.0} ms",
        ms(t.elapsed())
    );
    let ipmi = IpmiTool::new(IpmiToolConfig {
        timeout: Duration::from_secs(5),
        attempts: 3,
        backoff: Duration::from_millis(200),
        ..IpmiToolConfig::default()
    });
    let target = sim.target();

    time("power status", ROUNDS, || async {
        ipmi.power_status(&target).await.unwrap();
    })
    .await;
    time("power on + power off", ROUNDS, || async {
        ipmi.power(&target, PowerAction::On).await.unwrap();
        ipmi.power(&target, PowerAction::Off).await.unwrap();
    })
    .await;
    time("power cycle (off: status + on)", ROUNDS, || async {
        ipmi.power(&target, PowerAction::Cycle).await.unwrap();
        ipmi.power(&target, PowerAction::Off).await.unwrap();
    })
    .await;
    time("chassis bootdev pxe options=efiboot", ROUNDS, || async {
        ipmi.set_boot_device(&target, BootDevice::Pxe, BootOptions::once(true))
            .await
            .unwrap();
    })
    .await;
    let wrong = BmcTarget {
        password: Secret::new("wrong"),
        ..target.clone()
    };
    time("wrong password -> Authentication", 5, || async {
        ipmi.power_status(&wrong).await.unwrap_err();
    })
    .await;

    let silent = peer::silent_udp_port();
    let silent_target = BmcTarget::new("127.0.0.1", "admin", Secret::new("x"))
        .with_port(silent.local_addr().unwrap().port());
    let one_try = IpmiTool::new(IpmiToolConfig {
        timeout: Duration::from_secs(4),
        attempts: 1,
        ..IpmiToolConfig::default()
    });
    time("silent BMC -> Unreachable (timeout 4 s)", 1, || async {
        let e = one_try.power_status(&silent_target).await.unwrap_err();
        assert!(matches!(e, pelagos_ipmi::BmcError::Unreachable { .. }));
    })
    .await;
}
