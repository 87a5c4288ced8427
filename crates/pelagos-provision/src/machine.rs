//! The provisioning state machine of one node (DESIGN.md "Provisioning"),
//! written once against the driver traits. Every await is raced against the
//! task's cancellation token, so a dismissal stops it at its next await.

use crate::boot_records::{LOCAL, MAINTENANCE};
use crate::drivers::{Drivers, PowerAction, PowerState};
use pelagos_config::{Node, Timing};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// Message of a dismissed task, as the original wrote it.
pub const DISMISSED: &str = "Stop provisioning thread by request";

/// Why a provision did not finish; each maps to the HTTP status of the task's
/// result ([`ProvisionError::http_status`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProvisionError {
    /// Dismissed by request or by a newer provision of the node: 410.
    #[error("Stop provisioning thread by request")]
    Dismissed,
    /// A BMC command failed: 502.
    #[error("BMCException on node [{node}] {action}: {message}")]
    Bmc {
        node: String,
        action: String,
        message: String,
    },
    /// The console stalled after every cold restart: 502.
    #[error("Caught CannotBootException max cold restart counter ({max}) reached for {node}")]
    CannotBoot { node: String, max: u32 },
    /// SSH did not answer in time: 504.
    #[error("Caught TimeoutException {addr} have not started in timeout {timeout}")]
    Timeout { addr: String, timeout: String },
    /// A salt state failed: 500.
    #[error("Salt execution failed: state [{state}] on node [{node}]: {message}")]
    Salt {
        node: String,
        state: String,
        message: String,
    },
    /// Anything else: 500.
    #[error("{0}")]
    Other(String),
}

impl ProvisionError {
    pub fn http_status(&self) -> u16 {
        match self {
            ProvisionError::Dismissed => 410,
            ProvisionError::Bmc { .. } | ProvisionError::CannotBoot { .. } => 502,
            ProvisionError::Timeout { .. } => 504,
            ProvisionError::Salt { .. } | ProvisionError::Other(_) => 500,
        }
    }
}

/// Seconds as the original printed them: `900`, not `900.0`.
pub(crate) fn secs_text(s: f64) -> String {
    if s.fract() == 0.0 && s.abs() < 1e15 {
        format!("{}", s as i64)
    } else {
        format!("{s}")
    }
}

pub(crate) fn dur(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)
}

/// One provision's context.
pub(crate) struct Run<'a> {
    pub drivers: &'a Drivers,
    pub timing: &'a Timing,
    pub node: &'a Node,
    pub cancel: &'a CancellationToken,
    /// Salt states: the lab's `sls_list` plus the request's extras.
    pub states: Vec<String>,
    /// Called after each boot-record write (the engine's `/nodes` cache).
    pub records_changed: &'a (dyn Fn() + Sync),
}

impl Run<'_> {
    /// The whole sequence for a resolved OS.
    pub async fn provision(&self, os: &str) -> Result<(), ProvisionError> {
        info!("Provision node [{}] with OS [{os}]", self.node.node);
        self.boot_record(os).await?;
        self.power_cycle().await?;
        self.wait_ready().await?;
        self.boot_record(LOCAL).await?;
        if os != LOCAL && os != MAINTENANCE {
            self.configure().await?;
        }
        if self.node.provision_need_reboot {
            info!("Node needs a reboot after provisioning");
            self.power_cycle().await?;
            self.wait_ready().await?;
        }
        info!("Provisioning of node [{}] with [{os}] done", self.node.node);
        Ok(())
    }

    /// Race a future against dismissal.
    async fn guard<F: Future>(&self, f: F) -> Result<F::Output, ProvisionError> {
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(ProvisionError::Dismissed),
            v = f => Ok(v),
        }
    }

    async fn sleep(&self, d: Duration) -> Result<(), ProvisionError> {
        self.guard(tokio::time::sleep(d)).await
    }

    pub async fn boot_record(&self, os: &str) -> Result<(), ProvisionError> {
        let records = self.drivers.boot_records.clone();
        let node = self.node.clone();
        let os_owned = os.to_owned();
        let span = tracing::Span::current();
        // Not raced against dismissal: a write in flight must land before
        // the dismissed task writes `local`, or it would land after it.
        let res = tokio::task::spawn_blocking(move || {
            // Keep the driver's own events in this task's log.
            let _in_task = span.enter();
            records.write(&node, &os_owned)
        })
        .await;
        (self.records_changed)();
        match res {
            Ok(Ok(())) => {
                info!("Boot record of node [{}] set to [{os}]", self.node.node);
                Ok(())
            }
            Ok(Err(e)) => Err(ProvisionError::Other(format!(
                "cannot write boot record: {e}"
            ))),
            Err(e) => Err(ProvisionError::Other(format!(
                "boot record writer failed: {e}"
            ))),
        }
    }

    fn bmc_deadline(&self) -> Duration {
        // The driver owns timeouts and retries; this only guarantees progress.
        dur(self.timing.ipmi_timeout * f64::from(self.timing.ipmi_retries.max(1)) + 5.0)
    }

    async fn bmc_call<T>(
        &self,
        action: &str,
        f: impl Future<Output = Result<T, crate::drivers::DriverError>>,
    ) -> Result<T, ProvisionError> {
        let deadline = self.bmc_deadline();
        let bmc_err = |message: String| ProvisionError::Bmc {
            node: self.node.node.clone(),
            action: action.to_owned(),
            message,
        };
        match self.guard(tokio::time::timeout(deadline, f)).await? {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                error!("BMC command [{action}] failed: {}", e.message);
                Err(bmc_err(e.message))
            }
            Err(_) => Err(bmc_err(format!("no answer within {}s", deadline.as_secs()))),
        }
    }

    async fn power(&self, action: PowerAction) -> Result<(), ProvisionError> {
        info!("Execute BMC command [{action}]");
        let name = action.to_string();
        self.bmc_call(&name, self.drivers.bmc.power(self.node, action))
            .await
    }

    /// `power cycle`, or `power on` when the chassis is off (BMCs refuse to
    /// cycle a chassis that is off); then the hardware start delay.
    async fn power_cycle(&self) -> Result<(), ProvisionError> {
        let state = self
            .bmc_call("power status", self.drivers.bmc.power_status(self.node))
            .await?;
        debug!("Chassis power is {state:?}");
        match state {
            PowerState::Off => self.power(PowerAction::On).await?,
            PowerState::On => self.power(PowerAction::Cycle).await?,
        }
        self.sleep(dur(self.timing.hardware_start_delay)).await
    }

    /// Until SSH answers, watching the console for a stalled boot.
    async fn wait_ready(&self) -> Result<(), ProvisionError> {
        let t = self.timing;
        let node = self.node;
        let deadline = Instant::now() + dur(t.wait_node_ready_timeout);
        let poll = dur(t.ssh_probe_interval.max(0.01));
        let max_age = dur(t.conman_line_max_age);
        let mut watch = self
            .guard(self.drivers.console.watch(node))
            .await?
            .map_err(|e| ProvisionError::Other(format!("cannot watch console: {e}")))?;
        let mut restarts = 0u32;
        info!(
            "Waiting for node [{}] to answer at {}:{} (timeout {}s)",
            node.node,
            node.provision_ip(),
            node.ssh_port,
            secs_text(t.wait_node_ready_timeout)
        );
        loop {
            if Instant::now() >= deadline {
                error!("Node [{}] has not started in time", node.node);
                return Err(ProvisionError::Timeout {
                    addr: node.provision_ip().to_owned(),
                    timeout: secs_text(t.wait_node_ready_timeout),
                });
            }
            let probe = tokio::time::timeout(
                dur(t.ssh_probe_timeout),
                self.drivers.readiness.is_ready(node),
            );
            match self.guard(probe).await? {
                Ok(Ok(true)) => {
                    info!("Connected to node [{}]", node.node);
                    return Ok(());
                }
                Ok(Ok(false)) | Err(_) => {}
                Ok(Err(e)) => debug!("readiness probe: {}", e.message),
            }
            let snap = self
                .guard(watch.poll())
                .await?
                .map_err(|e| ProvisionError::Other(format!("cannot read console: {e}")))?;
            if snap.unchanged_for > max_age {
                if restarts >= t.max_cold_restart {
                    error!(
                        "Reached max cold restart counter {} for node [{}]",
                        t.max_cold_restart, node.node
                    );
                    return Err(ProvisionError::CannotBoot {
                        node: node.node.clone(),
                        max: t.max_cold_restart,
                    });
                }
                restarts += 1;
                warn!(
                    "Node boot failure detected: console unchanged for {:.1}s at {:?}; cold restart {restarts}/{}",
                    snap.unchanged_for.as_secs_f64(),
                    snap.last_line
                        .as_deref()
                        .unwrap_or("no_meaningful_line_found"),
                    t.max_cold_restart
                );
                self.power(PowerAction::Off).await?;
                self.sleep(dur(t.cold_restart_delay)).await?;
                self.power(PowerAction::On).await?;
                watch.reset();
            }
            let next = (Instant::now() + poll).min(deadline);
            self.guard(tokio::time::sleep_until(next)).await?;
        }
    }

    async fn configure(&self) -> Result<(), ProvisionError> {
        info!("Executing salt states {:?}", self.states);
        for state in &self.states {
            info!("Applying salt state [{state}]");
            let run = tokio::time::timeout(
                dur(self.timing.salt_timeout),
                self.drivers.configurator.apply_state(self.node, state),
            );
            let salt_err = |message: String| ProvisionError::Salt {
                node: self.node.node.clone(),
                state: state.clone(),
                message,
            };
            match self.guard(run).await? {
                Ok(Ok(())) => info!("Salt state [{state}] applied"),
                Ok(Err(e)) => return Err(salt_err(e.message)),
                Err(_) => {
                    return Err(salt_err(format!(
                        "no result within {}s",
                        secs_text(self.timing.salt_timeout)
                    )));
                }
            }
        }
        Ok(())
    }
}
