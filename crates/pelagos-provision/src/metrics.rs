//! What the engine and the state machine count and time, emitted through the
//! `metrics` facade: without a recorder every call is a no-op; pelagos-server
//! installs a Prometheus one and serves it as `GET /metrics` (docs/REST.md
//! lists the series).
//!
//! Every label value is one of a fixed set (`&'static str`s of this module
//! and of [`ProvisionError::kind`]), so no request can grow the label sets.

use crate::drivers::{BmcDriver, BootDevice, DriverError, PowerAction};
use crate::machine::ProvisionError;
use async_trait::async_trait;
use pelagos_config::Node;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counter: provisions started (a task spawned).
pub const PROVISIONS_STARTED: &str = "pelagos_provisions_started_total";
/// Counter by `result`: provisions ended ([`finished_result`]).
pub const PROVISIONS_FINISHED: &str = "pelagos_provisions_finished_total";
/// Gauge: provisions running now.
pub const PROVISIONS_ACTIVE: &str = "pelagos_provisions_active";
/// Histogram by `stage` ([`Stage`]): seconds a stage took, for stages that
/// completed.
pub const STAGE_SECONDS: &str = "pelagos_provision_stage_seconds";
/// Histogram by `command` ([`bmc_command`]): seconds a BMC command took, its
/// driver's retries included, whatever its outcome.
pub const BMC_SECONDS: &str = "pelagos_bmc_command_seconds";
/// Counter by `command` and `kind` ([`DriverError::kind`]): failed BMC
/// commands.
pub const BMC_ERRORS: &str = "pelagos_bmc_errors_total";

/// Bucket bounds (seconds) of [`STAGE_SECONDS`]: a boot-record write takes
/// milliseconds, the wait for SSH up to `wait_node_ready_timeout` (900 s).
pub const STAGE_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0,
    3600.0,
];
/// Bucket bounds (seconds) of [`BMC_SECONDS`]: one ipmitool run is tens of
/// milliseconds on a LAN; retries with backoff take tens of seconds.
pub const BMC_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// The `result` label values of [`PROVISIONS_FINISHED`]: `done`,
/// `dismissed`, `interrupted` (stopped by a server shutdown), `panic`, and
/// the failure kinds of [`ProvisionError::kind`].
pub const RESULTS: &[&str] = &[
    "done",
    "dismissed",
    "interrupted",
    "panic",
    "bmc",
    "cannot_boot",
    "timeout",
    "wrong_os",
    "os_unverified",
    "salt",
    "error",
];

/// HELP texts, and the series that exist before anything happened (the
/// counters and gauges at 0, so a scrape right after start shows them).
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(PROVISIONS_STARTED, "Provisions started");
    describe_counter!(
        PROVISIONS_FINISHED,
        "Provisions ended, by result (done, dismissed, interrupted, or the failure)"
    );
    describe_gauge!(PROVISIONS_ACTIVE, "Provisions running now");
    describe_histogram!(
        STAGE_SECONDS,
        metrics::Unit::Seconds,
        "Duration of each completed stage of a provision"
    );
    describe_histogram!(
        BMC_SECONDS,
        metrics::Unit::Seconds,
        "Duration of BMC commands, retries included"
    );
    describe_counter!(BMC_ERRORS, "Failed BMC commands, by command and kind");
    metrics::counter!(PROVISIONS_STARTED).absolute(0);
    metrics::gauge!(PROVISIONS_ACTIVE).set(0.0);
}

/// A provision's task starts.
pub(crate) fn provision_started() {
    metrics::counter!(PROVISIONS_STARTED).increment(1);
    metrics::gauge!(PROVISIONS_ACTIVE).increment(1.0);
}

/// A provision's task ends with `outcome` (as the engine caught it);
/// `closing`: the server is shutting down (a dismissal then is an
/// interruption).
pub(crate) fn provision_finished(
    outcome: &std::thread::Result<Result<(), ProvisionError>>,
    closing: bool,
) {
    let result = finished_result(outcome, closing);
    metrics::counter!(PROVISIONS_FINISHED, "result" => result).increment(1);
    metrics::gauge!(PROVISIONS_ACTIVE).decrement(1.0);
}

/// The `result` label of an ended provision (one of [`RESULTS`]).
pub fn finished_result(
    outcome: &std::thread::Result<Result<(), ProvisionError>>,
    closing: bool,
) -> &'static str {
    match outcome {
        Ok(Ok(())) => "done",
        Ok(Err(ProvisionError::Dismissed)) if closing => "interrupted",
        Ok(Err(e)) => e.kind(),
        Err(_) => "panic",
    }
}

/// The steps of a provision whose durations [`STAGE_SECONDS`] records
/// (docs/PROVISIONING.md, "The steps").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Write the node's boot record for the OS.
    BootRecord,
    /// `chassis bootdev pxe`.
    Bootdev,
    /// The power cycle (power on when off).
    Power,
    /// Until the console shows the new boot (at most `hardware_start_delay`).
    WaitNewBoot,
    /// Until SSH answers, cold restarts included.
    WaitSsh,
    /// The OS check of an image.
    VerifyOs,
    /// Write the `local` record.
    LocalRecord,
    /// Every salt state.
    Salt,
    /// `provision_need_reboot`: power cycle and wait until ready again.
    Reboot,
}

impl Stage {
    /// Every stage, in the order a provision runs them.
    pub const ALL: [Stage; 9] = [
        Stage::BootRecord,
        Stage::Bootdev,
        Stage::Power,
        Stage::WaitNewBoot,
        Stage::WaitSsh,
        Stage::VerifyOs,
        Stage::LocalRecord,
        Stage::Salt,
        Stage::Reboot,
    ];

    /// The `stage` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::BootRecord => "boot_record",
            Stage::Bootdev => "bootdev",
            Stage::Power => "power",
            Stage::WaitNewBoot => "wait_new_boot",
            Stage::WaitSsh => "wait_ssh",
            Stage::VerifyOs => "verify_os",
            Stage::LocalRecord => "local_record",
            Stage::Salt => "salt",
            Stage::Reboot => "reboot",
        }
    }
}

/// `stage` completed after `took`.
pub(crate) fn stage_done(stage: Stage, took: Duration) {
    metrics::histogram!(STAGE_SECONDS, "stage" => stage.as_str()).record(took.as_secs_f64());
}

/// The `command` label of a BMC command.
pub fn bmc_command(action: Option<PowerAction>) -> &'static str {
    match action {
        None => "bootdev",
        Some(PowerAction::On) => "power_on",
        Some(PowerAction::Off) => "power_off",
        Some(PowerAction::Cycle) => "power_cycle",
        Some(PowerAction::Reset) => "power_reset",
        Some(PowerAction::SoftOff) => "power_soft",
    }
}

/// A [`BmcDriver`] that times every command of the driver it wraps
/// ([`BMC_SECONDS`]) and counts its failures by kind ([`BMC_ERRORS`]); the
/// commands and their results pass through unchanged. A command dropped
/// before it ends (a dismissal) is not recorded.
pub struct MeteredBmc {
    inner: Arc<dyn BmcDriver>,
}

impl MeteredBmc {
    /// Meter every command sent to `inner`.
    pub fn new(inner: Arc<dyn BmcDriver>) -> Self {
        Self { inner }
    }
}

fn record_bmc<T>(command: &'static str, started: Instant, res: &Result<T, DriverError>) {
    metrics::histogram!(BMC_SECONDS, "command" => command).record(started.elapsed().as_secs_f64());
    if let Err(e) = res {
        metrics::counter!(BMC_ERRORS, "command" => command, "kind" => e.kind).increment(1);
    }
}

#[async_trait]
impl BmcDriver for MeteredBmc {
    async fn power(&self, node: &Node, action: PowerAction) -> Result<(), DriverError> {
        let started = Instant::now();
        let res = self.inner.power(node, action).await;
        record_bmc(bmc_command(Some(action)), started, &res);
        res
    }

    async fn set_boot_device(
        &self,
        node: &Node,
        device: BootDevice,
        persistent: bool,
    ) -> Result<(), DriverError> {
        let started = Instant::now();
        let res = self.inner.set_boot_device(node, device, persistent).await;
        record_bmc(bmc_command(None), started, &res);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;
    use pelagos_config::LabConfig;

    struct Flaky;

    #[async_trait]
    impl BmcDriver for Flaky {
        async fn power(&self, node: &Node, action: PowerAction) -> Result<(), DriverError> {
            match action {
                PowerAction::Off => Err(DriverError::new("bmc", node, "no").with_kind("timeout")),
                _ => Ok(()),
            }
        }
        async fn set_boot_device(
            &self,
            node: &Node,
            _: BootDevice,
            _: bool,
        ) -> Result<(), DriverError> {
            Err(DriverError::new("bmc", node, "refused"))
        }
    }

    #[tokio::test]
    async fn the_metered_bmc_times_commands_and_counts_errors_by_kind() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let lab =
            LabConfig::parse(r#"{"nodes":[{"node":"n1","mac":"aa:bb:cc:dd:ee:01"}]}"#).unwrap();
        let n = &lab.nodes[0];
        let bmc = MeteredBmc::new(Arc::new(Flaky));
        bmc.power(n, PowerAction::Cycle).await.unwrap();
        bmc.power(n, PowerAction::Cycle).await.unwrap();
        let e = bmc.power(n, PowerAction::Off).await.unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            ("timeout", "no"),
            "passed through"
        );
        bmc.set_boot_device(n, BootDevice::Pxe, false)
            .await
            .unwrap_err();
        let text = handle.render();
        for line in [
            "pelagos_bmc_command_seconds_count{command=\"power_cycle\"} 2",
            "pelagos_bmc_command_seconds_count{command=\"power_off\"} 1",
            "pelagos_bmc_command_seconds_count{command=\"bootdev\"} 1",
            "pelagos_bmc_errors_total{command=\"power_off\",kind=\"timeout\"} 1",
            "pelagos_bmc_errors_total{command=\"bootdev\",kind=\"error\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert!(!text.contains("command=\"power_cycle\",kind"), "{text}");
    }

    #[test]
    fn finished_results_are_the_documented_ones() {
        let kinds = [
            ProvisionError::Dismissed,
            ProvisionError::Bmc {
                node: "n".into(),
                action: "a".into(),
                message: "m".into(),
            },
            ProvisionError::CannotBoot {
                node: "n".into(),
                max: 3,
            },
            ProvisionError::Timeout {
                addr: "a".into(),
                timeout: "1".into(),
            },
            ProvisionError::OsUnverified {
                node: "n".into(),
                message: "m".into(),
            },
            ProvisionError::Salt {
                node: "n".into(),
                state: "s".into(),
                message: "m".into(),
            },
            ProvisionError::Other("x".into()),
        ];
        for e in kinds {
            let r = finished_result(&Ok(Err(e.clone())), false);
            assert!(RESULTS.contains(&r), "{e:?}: {r}");
        }
        assert_eq!(finished_result(&Ok(Ok(())), false), "done");
        assert_eq!(
            finished_result(&Ok(Err(ProvisionError::Dismissed)), false),
            "dismissed"
        );
        assert_eq!(
            finished_result(&Ok(Err(ProvisionError::Dismissed)), true),
            "interrupted"
        );
        assert_eq!(finished_result(&Err(Box::new("boom")), false), "panic");
    }
}
