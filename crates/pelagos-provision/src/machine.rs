//! The provisioning state machine of one node (docs/PROVISIONING.md),
//! written once against the driver traits. Every await is raced against the
//! task's cancellation token, so a dismissal stops it at its next await: no
//! BMC command starts after a dismissal (one in flight is dropped, which
//! kills its ipmitool). Whenever a provision does not finish (dismissed, or
//! failed at any step) the engine points the boot record back to `local`,
//! so the node does not reinstall on its next reboot.
//!
//! The path: boot record for the OS; `chassis bootdev pxe` (one time,
//! `efiboot` on UEFI nodes); power cycle (power on when off); wait for the
//! console to show the new boot (at most `hardware_start_delay`); wait for
//! SSH with stall detection and cold restarts; for an image, check that
//! the node runs it (`verify_os`); boot record `local`; salt
//! states unless the OS is `local` or `maintenance_image`; with
//! `provision_need_reboot`, power cycle and wait again. Every knob comes
//! from the lab's [`Timing`] (the original's defaults: 900/30/180/3/30/5).

use crate::drivers::{
    BootDevice, ConsoleWatch, Drivers, LabNode, OsIdentity, PowerAction, ResolvedOs,
};
use crate::metrics::Stage;
use pelagos_config::Timing;
use pelagos_conman::ConsoleMark;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

/// How often the console is read while waiting for the new boot.
const NEW_BOOT_POLL: Duration = Duration::from_millis(250);

/// Longest wait for the OS verifier, whose own timeout (30 s in
/// production) gives the better message.
const VERIFY_DEADLINE: Duration = Duration::from_secs(120);

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
        /// The node's name.
        node: String,
        /// The command as the task log names it: `power on`, `power off`,
        /// `power cycle`, `chassis bootdev pxe`.
        action: String,
        /// The BMC driver's message, or `no answer within <n>s` when the
        /// state machine's own deadline passed first.
        message: String,
    },
    /// The console stalled after every cold restart: 502.
    #[error("Caught CannotBootException max cold restart counter ({max}) reached for {node}")]
    CannotBoot {
        /// The node's name.
        node: String,
        /// The lab's `max_cold_restart`: the cold restarts made before
        /// giving up.
        max: u32,
    },
    /// SSH did not answer in time: 504.
    #[error("Caught TimeoutException {addr} have not started in timeout {timeout}")]
    Timeout {
        /// The provisioning address that was probed (`boot_ip`, else `ip`),
        /// without the port.
        addr: String,
        /// The lab's `wait_node_ready_timeout` in seconds, as text the way
        /// the original printed it (`900`, `2.5`).
        timeout: String,
    },
    /// The node answers on SSH but runs another OS than the requested
    /// image (it did not boot what was asked, e.g. fell back to its disk): 502.
    #[error("Node [{node}] runs {found} instead of the requested image [{os}] ({expected})")]
    WrongOs {
        /// The node's name.
        node: String,
        /// The requested image, as its resolved version name.
        os: String,
        /// The identity the image's manifest records.
        expected: OsIdentity,
        /// What the node reported ([`crate::OsVerifier::running_os`]).
        found: OsIdentity,
    },
    /// What the node runs could not be read (SSH login refused, no answer
    /// within the verifier's timeout, unexpected output): 502.
    #[error("Cannot verify the OS of node [{node}]: {message}")]
    OsUnverified {
        /// The node's name.
        node: String,
        /// The OS verifier's message, or `no answer within 120s` when the
        /// state machine's own deadline passed first.
        message: String,
    },
    /// A salt state failed: 500.
    #[error("Salt execution failed: state [{state}] on node [{node}]: {message}")]
    Salt {
        /// The node's name.
        node: String,
        /// The state that failed; the states after it were not applied.
        state: String,
        /// The configurator's message (salt's verdict and last output
        /// lines), or `no result within <n>s` when the state machine's own
        /// deadline (`salt_timeout` + 5 s) passed first.
        message: String,
    },
    /// Anything else (the boot record cannot be written, the console cannot
    /// be watched), the message saying what: 500.
    #[error("{0}")]
    Other(String),
}

impl ProvisionError {
    /// The `code` of the task's result ([`crate::TaskResult`]): 410
    /// dismissed, 502 BMC, boot, wrong-OS and unverified-OS failures, 504 SSH
    /// timeout, 500 salt and anything else.
    pub fn http_status(&self) -> u16 {
        match self {
            ProvisionError::Dismissed => 410,
            ProvisionError::Bmc { .. }
            | ProvisionError::CannotBoot { .. }
            | ProvisionError::WrongOs { .. }
            | ProvisionError::OsUnverified { .. } => 502,
            ProvisionError::Timeout { .. } => 504,
            ProvisionError::Salt { .. } | ProvisionError::Other(_) => 500,
        }
    }

    /// The failure's one word: the `result` label of
    /// `pelagos_provisions_finished_total` ([`crate::metrics`]).
    pub fn kind(&self) -> &'static str {
        match self {
            ProvisionError::Dismissed => "dismissed",
            ProvisionError::Bmc { .. } => "bmc",
            ProvisionError::CannotBoot { .. } => "cannot_boot",
            ProvisionError::Timeout { .. } => "timeout",
            ProvisionError::WrongOs { .. } => "wrong_os",
            ProvisionError::OsUnverified { .. } => "os_unverified",
            ProvisionError::Salt { .. } => "salt",
            ProvisionError::Other(_) => "error",
        }
    }
}

/// Seconds as the original printed them: `900`, not `900.0`; `2.5`.
pub(crate) fn secs_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        d.as_secs_f64().to_string()
    }
}

/// One provision's context.
pub(crate) struct Run<'a> {
    pub drivers: &'a Drivers,
    pub timing: &'a Timing,
    pub node: &'a LabNode,
    pub cancel: &'a CancellationToken,
    /// Salt states: the lab's `sls_list` plus the request's extras
    /// ([`crate::salt::states_to_apply`]).
    pub states: Vec<String>,
    /// Called after each boot-record write (the engine's `/nodes` cache).
    pub records_changed: &'a (dyn Fn() + Sync),
}

impl Run<'_> {
    /// The whole sequence for a resolved OS.
    pub async fn provision(&self, os: &ResolvedOs) -> Result<(), ProvisionError> {
        info!("Provision node [{}] with OS [{os}]", self.node.node);
        self.stage(Stage::BootRecord, self.boot_record(os)).await?;
        // Followed from before the first power action, so that the new
        // boot's output can be told from what the console showed before.
        let mut console = self.watch_console().await?;
        self.stage(Stage::Bootdev, self.boot_from_network()).await?;
        let before = console.mark();
        self.stage(Stage::Power, self.power(PowerAction::Cycle))
            .await?;
        self.stage(Stage::WaitNewBoot, self.wait_new_boot(&mut console, before))
            .await?;
        self.stage(Stage::WaitSsh, self.wait_ready(&mut console))
            .await?;
        if os.is_image() {
            self.stage(Stage::VerifyOs, self.verify_os(os)).await?;
        }
        self.stage(Stage::LocalRecord, self.boot_record(&ResolvedOs::LOCAL))
            .await?;
        if os.is_image() {
            self.stage(Stage::Salt, self.configure()).await?;
        }
        if self.node.provision_need_reboot {
            info!("Node needs a reboot after provisioning");
            let reboot = async {
                self.power_cycle(&mut console).await?;
                self.wait_ready(&mut console).await
            };
            self.stage(Stage::Reboot, reboot).await?;
        }
        info!("Provisioning of node [{}] with [{os}] done", self.node.node);
        Ok(())
    }

    /// Follow the node's console from now on: stalled after the lab's
    /// `conman_line_max_age`.
    async fn watch_console(&self) -> Result<ConsoleWatch, ProvisionError> {
        let log = self
            .guard(self.drivers.console.watch(self.node))
            .await?
            .map_err(|e| ProvisionError::Other(format!("cannot watch console: {e}")))?;
        Ok(ConsoleWatch::new(log, self.timing.conman_line_max_age))
    }

    /// Run one stage; its duration goes to the stage histogram
    /// ([`crate::metrics::STAGE_SECONDS`]) when it completed.
    async fn stage<T>(
        &self,
        stage: Stage,
        f: impl Future<Output = Result<T, ProvisionError>>,
    ) -> Result<T, ProvisionError> {
        let started = Instant::now();
        let res = f.await;
        if res.is_ok() {
            crate::metrics::stage_done(stage, started.elapsed());
        }
        res
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

    pub async fn boot_record(&self, os: &ResolvedOs) -> Result<(), ProvisionError> {
        // Not raced against dismissal: a write in flight must land before
        // the dismissed task writes `local`, or it would land after it.
        let res = self.drivers.write_record(self.node, os).await;
        (self.records_changed)();
        match res {
            Ok(()) => {
                info!("Boot record of node [{}] set to [{os}]", self.node.node);
                Ok(())
            }
            Err(e) => Err(ProvisionError::Other(format!(
                "cannot write boot record: {e}"
            ))),
        }
    }

    fn bmc_deadline(&self) -> Duration {
        // The driver owns timeouts and retries; this only guarantees
        // progress. One call may be up to four BMC commands (a power cycle
        // reads the power state first; if the cycle is refused because the
        // chassis went off meanwhile, it reads it again and powers on), each
        // with its attempts and backoff between them (at most 8 s).
        let t = &self.timing;
        let attempts = t.ipmi_retries.max(1);
        let one_call = t
            .ipmi_timeout
            .saturating_mul(attempts)
            .saturating_add(Duration::from_secs(8).saturating_mul(attempts - 1));
        one_call
            .saturating_mul(4)
            .saturating_add(Duration::from_secs(5))
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
        let name = format!("power {action}");
        info!("Execute BMC command [{name}]");
        self.bmc_call(&name, self.drivers.bmc.power(self.node, action))
            .await
    }

    /// Boot from the network next time (one time only, `efiboot` for UEFI
    /// nodes): the node must reach its PXE record even if its boot order
    /// starts with the disk. The original never set it and relied on the
    /// boot order; with PXE first it changes nothing, so it stays compatible.
    async fn boot_from_network(&self) -> Result<(), ProvisionError> {
        info!("Execute BMC command [chassis bootdev pxe]");
        self.bmc_call(
            "chassis bootdev pxe",
            self.drivers
                .bmc
                .set_boot_device(self.node, BootDevice::Pxe, false),
        )
        .await
    }

    /// `power cycle` (the BMC driver powers a chassis that is off on
    /// instead: BMCs refuse to cycle it); then wait for the new boot
    /// ([`Self::wait_new_boot`]).
    async fn power_cycle(&self, console: &mut ConsoleWatch) -> Result<(), ProvisionError> {
        let before = console.mark();
        self.power(PowerAction::Cycle).await?;
        self.wait_new_boot(console, before).await
    }

    /// After a power action: wait until the console shows output it had not
    /// shown before the action (`before` is marked then), at most
    /// `hardware_start_delay`.
    ///
    /// The original slept `hardware_start_delay` (30 s) here, unconditionally.
    /// That sleep kept two things from happening too early: the readiness
    /// probe reaching the *old* OS's sshd before the power action took
    /// effect, and the stall clock running while the firmware is still
    /// silent. Ending it when the console shows the new boot is safe
    /// because:
    /// - Only meaningful console output counts (conmand's own `<ConMan>`
    ///   notices, bare timestamps and blank lines do not), and `before` is
    ///   marked before the power command is sent, so output from before the
    ///   action never ends the wait.
    /// - The power command has returned successfully before the wait starts,
    ///   and a BMC answers chassis control only after initiating the action:
    ///   by then the old OS is losing (or has lost) power, so what the
    ///   console shows is the new boot's firmware. The one exception is a
    ///   line the old OS printed in the instant before power dropped; the
    ///   readiness probe then starts early but finds no SSH on a powered-off
    ///   node, and a readiness probe needs a full SSH key exchange, which a
    ///   node losing power cannot complete.
    /// - A console that shows nothing (conmand not connected, no serial
    ///   console) waits the full delay, exactly as before.
    /// - The stall clock is restarted when the wait for readiness begins, as
    ///   the original started it after its sleep.
    ///
    /// Tested here (paused time: the wait ends at the new boot's first line;
    /// the old boot's last lines, written after the watch started but before
    /// the power action, do not end it; a dismissal does) and in
    /// pelagos-server's whole-path test against real peers (the old OS's
    /// sshd, running until the BMC cycles the node, is never probed; a
    /// silent console keeps the task in this wait).
    async fn wait_new_boot(
        &self,
        console: &mut ConsoleWatch,
        before: ConsoleMark,
    ) -> Result<(), ProvisionError> {
        let limit = self.timing.hardware_start_delay;
        let started = Instant::now();
        let deadline = started + limit;
        let every = NEW_BOOT_POLL.min(limit.max(Duration::from_millis(10)));
        loop {
            console.poll_now();
            if console.shown_since(before) {
                info!(
                    "Console shows the new boot after {:.1}s: {:?}",
                    started.elapsed().as_secs_f64(),
                    console.newest_text().unwrap_or_default()
                );
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                info!(
                    "No console output within the hardware start delay ({}s)",
                    secs_text(self.timing.hardware_start_delay)
                );
                return Ok(());
            }
            self.guard(tokio::time::sleep_until((now + every).min(deadline)))
                .await?;
        }
    }

    /// Until SSH answers (probe every `ssh_probe_interval`, at most
    /// `wait_node_ready_timeout`: Timeout), watching the console for a
    /// stalled boot between probes ([`ConsoleWatch::stalled`]): nothing new
    /// for `conman_line_max_age` is a cold restart
    /// (power off, `cold_restart_delay`, power on). After `max_cold_restart`
    /// cold restarts the next stall is CannotBoot. (The original powered the
    /// node off and on once more before giving up, which only left a node
    /// booting that nobody waited for.)
    async fn wait_ready(&self, watch: &mut ConsoleWatch) -> Result<(), ProvisionError> {
        let t = self.timing;
        let node = self.node;
        let deadline = Instant::now() + t.wait_node_ready_timeout;
        let poll = t.ssh_probe_interval.max(Duration::from_millis(10));
        // The stall clock starts now, as the original's did after its sleep.
        watch.reset();
        let mut restarts = 0u32;
        info!(
            "Waiting for node [{}] to answer at {}:{} (timeout {}s)",
            node.node,
            node.provision_ip(),
            node.ssh_port,
            secs_text(t.wait_node_ready_timeout)
        );
        loop {
            // Probes start every `ssh_probe_interval`, however long one takes.
            let tick = Instant::now();
            if tick >= deadline {
                error!("Node [{}] has not started in time", node.node);
                return Err(ProvisionError::Timeout {
                    addr: node.provision_ip().to_owned(),
                    timeout: secs_text(t.wait_node_ready_timeout),
                });
            }
            // The probe has its own timeout; this one only guarantees progress.
            let probe = tokio::time::timeout(
                t.ssh_probe_timeout + Duration::from_secs(1),
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
            watch.poll_now();
            if let Some(stalled) = watch.stalled() {
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
                    "Node boot failure detected: {stalled}; cold restart {restarts}/{}",
                    t.max_cold_restart
                );
                self.power(PowerAction::Off).await?;
                self.sleep(t.cold_restart_delay).await?;
                self.power(PowerAction::On).await?;
                watch.reset();
            }
            let next = (tick + poll).min(deadline);
            self.guard(tokio::time::sleep_until(next)).await?;
        }
    }

    /// Check that the node runs the requested image: what the
    /// [`crate::OsVerifier`] reads on the node against the identity of the
    /// image's manifest ([`OsIdentity::matched_by`]). Right after SSH
    /// answers, so a node that booted another OS (fell back to its disk)
    /// fails before salt touches it, and the engine points its record back
    /// to `local`. Skipped (with a line in the task log) when the lab sets
    /// `verify_os: false`, and with a warning when the manifest records no
    /// identity (hand-made dirs, manifests of an earlier add-image).
    async fn verify_os(&self, os: &ResolvedOs) -> Result<(), ProvisionError> {
        let node = self.node;
        if !node.lab().verify_os {
            info!(
                "verify_os is off: not checking which OS node [{}] runs",
                node.node
            );
            return Ok(());
        }
        let expected = match self.drivers.boot_records.os_identity(os) {
            Ok(Some(expected)) => expected,
            Ok(None) => {
                warn!(
                    "cannot verify the OS of node [{}]: image [{os}] records no OS identity; reinstall it with add-image or set verify_os: false",
                    node.node
                );
                return Ok(());
            }
            Err(e) => {
                warn!("cannot verify the OS of node [{}]: {e}", node.node);
                return Ok(());
            }
        };
        info!(
            "Checking that node [{}] runs [{os}] ({expected})",
            node.node
        );
        // The verifier has its own timeout; this one only guarantees progress.
        let check =
            tokio::time::timeout(VERIFY_DEADLINE, self.drivers.os_verifier.running_os(node));
        let found = match self.guard(check).await? {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                return Err(ProvisionError::OsUnverified {
                    node: node.node.clone(),
                    message: e.message,
                });
            }
            Err(_) => {
                return Err(ProvisionError::OsUnverified {
                    node: node.node.clone(),
                    message: format!("no answer within {}s", VERIFY_DEADLINE.as_secs()),
                });
            }
        };
        if !expected.matched_by(&found) {
            // The engine logs it with the task's result.
            return Err(ProvisionError::WrongOs {
                node: node.node.clone(),
                os: os.to_string(),
                expected,
                found,
            });
        }
        info!("Node [{}] runs [{os}] ({found})", node.node);
        Ok(())
    }

    async fn configure(&self) -> Result<(), ProvisionError> {
        info!("Executing salt states {:?}", self.states);
        for state in &self.states {
            info!("Applying salt state [{state}]");
            // The configurator has its own timeout (a better message); this
            // one only guarantees progress.
            let run = tokio::time::timeout(
                self.timing.salt_timeout + Duration::from_secs(5),
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

#[cfg(test)]
mod tests {
    //! The wait for the new boot and the wait for SSH, on paused time against
    //! the simulated lab (its BMC starts a console writer at each power-on),
    //! and against real sockets for the production SSH probe.
    use super::*;
    use crate::drivers::{BmcDriver, DriverError};
    use crate::production::{ConmanConsole, SshReadiness};
    use crate::readiness::SshProbe;
    use crate::sim::{SimLab, SimMode};
    use pelagos_config::Node;
    use std::sync::{Arc, Mutex};

    const DELAY: Duration = Duration::from_secs(30);

    struct Fixture {
        dir: tempfile::TempDir,
        drivers: Drivers,
        timing: Timing,
        node: LabNode,
        sim: Arc<SimLab>,
    }

    /// One node whose simulated boot takes 20 s: ten lines, the first 2 s
    /// after power-on; `sim` is the node's extra `sim` settings.
    fn fixture_with(sim: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let lab = Arc::new(
            pelagos_config::LabConfig::parse(&format!(
                r#"{{"nodes": [{{"node": "n1.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.1",
                "sim": {{"boot_time": 20{sim}}}}}]}}"#
            ))
            .unwrap(),
        );
        let mut timing = SimMode::Fast.timing(&lab.timing);
        timing.hardware_start_delay = DELAY;
        let lab_sim = SimLab::new(SimMode::Fast, timing.clone(), dir.path().join("console"));
        let records = Arc::new(crate::BootRecords::new(dir.path(), &lab));
        Fixture {
            drivers: lab_sim.drivers(records),
            timing,
            node: LabNode::new(lab, 0).unwrap(),
            sim: lab_sim,
            dir,
        }
    }

    fn fixture() -> Fixture {
        fixture_with("")
    }

    fn run<'a>(f: &'a Fixture, cancel: &'a CancellationToken) -> Run<'a> {
        Run {
            drivers: &f.drivers,
            timing: &f.timing,
            node: &f.node,
            cancel,
            states: Vec::new(),
            records_changed: &|| {},
        }
    }

    /// A BMC driver that records each power action and when it was asked,
    /// then passes it on.
    struct Recording {
        inner: Arc<dyn BmcDriver>,
        actions: Mutex<Vec<(PowerAction, Instant)>>,
    }

    impl Recording {
        fn wrap(f: &mut Fixture) -> Arc<Self> {
            let rec = Arc::new(Self {
                inner: f.drivers.bmc.clone(),
                actions: Mutex::default(),
            });
            f.drivers.bmc = rec.clone();
            rec
        }

        fn actions(&self) -> Vec<PowerAction> {
            self.actions.lock().unwrap().iter().map(|a| a.0).collect()
        }
    }

    #[async_trait::async_trait]
    impl BmcDriver for Recording {
        async fn power(&self, node: &Node, action: PowerAction) -> Result<(), DriverError> {
            self.actions.lock().unwrap().push((action, Instant::now()));
            self.inner.power(node, action).await
        }
        async fn set_boot_device(
            &self,
            node: &Node,
            device: BootDevice,
            persistent: bool,
        ) -> Result<(), DriverError> {
            self.inner.set_boot_device(node, device, persistent).await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_console_is_watched_with_the_labs_max_age() {
        let mut f = fixture();
        f.timing.conman_line_max_age = Duration::from_secs(42);
        let cancel = CancellationToken::new();
        let console = run(&f, &cancel).watch_console().await.unwrap();
        assert_eq!(console.max_age(), Duration::from_secs(42));
        assert!(console.log().path().ends_with("console/console.n1"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_new_boot_ends_the_start_delay() {
        let mut f = fixture();
        let bmc = Recording::wrap(&mut f);
        let cancel = CancellationToken::new();
        let mut console = run(&f, &cancel).watch_console().await.unwrap();
        let started = Instant::now();
        run(&f, &cancel).power_cycle(&mut console).await.unwrap();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(3),
            "{took:?}"
        );
        // The chassis was off: the machine asked for a cycle, nothing else
        // (no power state read), and the BMC powered it on.
        assert_eq!(bmc.actions(), [PowerAction::Cycle]);
        assert_eq!(f.sim.is_on("n1.lab"), Some(true));
    }

    #[tokio::test(start_paused = true)]
    async fn output_from_before_the_power_action_does_not_count() {
        let mut f = fixture();
        // A console that shows only what this test writes: the old boot.
        let quiet = f.dir.path().join("quiet");
        std::fs::create_dir(&quiet).unwrap();
        f.drivers.console = Arc::new(ConmanConsole::new(&quiet));
        let log = quiet.join("console.n1");
        std::fs::write(&log, "2026-11-24 16:40:07 old-os login: \r\n").unwrap();
        let cancel = CancellationToken::new();
        let mut console = run(&f, &cancel).watch_console().await.unwrap();
        std::fs::write(
            &log,
            "2026-11-24 16:40:07 old-os login: \r\n2026-11-24 16:40:08 reboot: Power down\r\n",
        )
        .unwrap();
        let started = Instant::now();
        run(&f, &cancel).power_cycle(&mut console).await.unwrap();
        assert_eq!(started.elapsed(), DELAY);
    }

    #[tokio::test(start_paused = true)]
    async fn dismissal_ends_the_start_delay() {
        let mut f = fixture();
        let quiet = f.dir.path().join("quiet");
        f.drivers.console = Arc::new(ConmanConsole::new(&quiet));
        let cancel = CancellationToken::new();
        let mut console = run(&f, &cancel).watch_console().await.unwrap();
        let canceller = cancel_after(&cancel, Duration::from_secs(5));
        let started = Instant::now();
        let res = run(&f, &cancel).power_cycle(&mut console).await;
        canceller.await.unwrap();
        assert!(matches!(res, Err(ProvisionError::Dismissed)), "{res:?}");
        assert!(started.elapsed() < Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_console_is_cold_restarted_off_wait_on_then_cannot_boot() {
        let mut f = fixture_with(r#", "console_stall": true"#);
        f.timing.max_cold_restart = 2;
        f.timing.cold_restart_delay = Duration::from_secs(7);
        f.timing.wait_node_ready_timeout = Duration::from_secs(3600);
        let bmc = Recording::wrap(&mut f);
        let cancel = CancellationToken::new();
        let mut console = run(&f, &cancel).watch_console().await.unwrap();
        run(&f, &cancel).power_cycle(&mut console).await.unwrap();
        let res = run(&f, &cancel).wait_ready(&mut console).await;
        assert!(
            matches!(res, Err(ProvisionError::CannotBoot { max: 2, .. })),
            "{res:?}"
        );
        use PowerAction::{Cycle, Off, On};
        assert_eq!(bmc.actions(), [Cycle, Off, On, Off, On]);
        let at: Vec<Instant> = bmc.actions.lock().unwrap().iter().map(|a| a.1).collect();
        for pair in [(1, 2), (3, 4)] {
            let gap = at[pair.1] - at[pair.0];
            assert!(gap >= Duration::from_secs(7), "power on {gap:?} after off");
        }
        // The node was left on, booting, after the last cold restart.
        assert_eq!(f.sim.is_on("n1.lab"), Some(true));
    }

    /// A node whose SSH is `port` on loopback, probed with the production
    /// SSH probe.
    /// A node whose SSH port is closed, probed every 50 ms until
    /// `ready_timeout`, with a console that never stalls.
    fn closed_ssh_port(ready_timeout: Duration) -> Fixture {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut f = fixture();
        with_ssh(&mut f, port, Duration::from_secs(3));
        f.timing.ssh_probe_interval = Duration::from_millis(50);
        f.timing.wait_node_ready_timeout = ready_timeout;
        f.timing.conman_line_max_age = Duration::from_secs(3600);
        f
    }

    fn with_ssh(f: &mut Fixture, port: u16, probe_timeout: Duration) {
        let mut lab = f.node.lab().as_ref().clone();
        lab.nodes[0].boot_ip = "127.0.0.1".into();
        lab.nodes[0].ssh_port = port;
        f.node = LabNode::new(Arc::new(lab), 0).unwrap();
        f.drivers.readiness = Arc::new(SshReadiness(SshProbe::new(probe_timeout)));
    }

    #[tokio::test]
    async fn a_closed_ssh_port_is_not_ready_until_the_timeout() {
        let f = closed_ssh_port(Duration::from_millis(500));
        let cancel = CancellationToken::new();
        let mut console = run(&f, &cancel).watch_console().await.unwrap();
        let started = Instant::now();
        let res = run(&f, &cancel).wait_ready(&mut console).await;
        assert!(
            matches!(&res, Err(ProvisionError::Timeout { addr, .. }) if addr == "127.0.0.1"),
            "{res:?}"
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn a_silent_ssh_port_times_out_at_the_deadline() {
        // Accepts TCP and never says a word: each probe runs into its own
        // timeout; probes start every interval until the deadline.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let server = {
            let accepted = accepted.clone();
            tokio::spawn(async move {
                let mut open = Vec::new();
                while let Ok((conn, _)) = listener.accept().await {
                    accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    open.push(conn);
                }
            })
        };
        let mut f = fixture();
        with_ssh(&mut f, port, Duration::from_millis(300));
        f.timing.ssh_probe_interval = Duration::from_millis(400);
        f.timing.wait_node_ready_timeout = Duration::from_millis(1500);
        f.timing.conman_line_max_age = Duration::from_secs(3600);
        let cancel = CancellationToken::new();
        let mut console = run(&f, &cancel).watch_console().await.unwrap();
        let started = Instant::now();
        let res = run(&f, &cancel).wait_ready(&mut console).await;
        let took = started.elapsed();
        server.abort();
        assert!(
            matches!(res, Err(ProvisionError::Timeout { .. })),
            "{res:?}"
        );
        // Probes start at 0, 0.4, 0.8 and 1.2 s; none after 1.5 s.
        let probes = accepted.load(std::sync::atomic::Ordering::SeqCst);
        assert!((2..=5).contains(&probes), "{probes} probes");
        assert!(
            took >= Duration::from_millis(1500) && took < Duration::from_secs(4),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn dismissal_ends_the_wait_for_ssh() {
        let f = closed_ssh_port(Duration::from_secs(3600));
        let cancel = CancellationToken::new();
        let mut console = run(&f, &cancel).watch_console().await.unwrap();
        let canceller = cancel_after(&cancel, Duration::from_millis(300));
        let started = Instant::now();
        let res = run(&f, &cancel).wait_ready(&mut console).await;
        canceller.await.unwrap();
        assert!(matches!(res, Err(ProvisionError::Dismissed)), "{res:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    /// A configurator that records each state it is asked for and fails
    /// the ones named `bad`.
    #[derive(Default)]
    struct StandInSalt(Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl crate::drivers::Configurator for StandInSalt {
        async fn apply_state(&self, node: &Node, state: &str) -> Result<(), DriverError> {
            self.0.lock().unwrap().push(state.to_owned());
            if state == "bad" {
                return Err(DriverError::new("configurator", node, "state bad failed"));
            }
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn salt_states_run_in_order_and_stop_at_the_first_failure() {
        let mut f = fixture();
        let salt = Arc::new(StandInSalt::default());
        f.drivers.configurator = salt.clone();
        let cancel = CancellationToken::new();
        let mut machine = run(&f, &cancel);
        machine.states = ["core", "bad", "ceph", "bad"].map(str::to_owned).to_vec();
        let res = machine.configure().await;
        assert!(
            matches!(&res, Err(ProvisionError::Salt { node, state, message })
                if node == "n1.lab" && state == "bad" && message == "state bad failed"),
            "{res:?}"
        );
        // core, bad; not ceph nor the second bad.
        assert_eq!(*salt.0.lock().unwrap(), ["core", "bad"]);

        // A list without a failure runs every state, in order.
        salt.0.lock().unwrap().clear();
        machine.states = ["core", "ceph"].map(str::to_owned).to_vec();
        machine.configure().await.unwrap();
        assert_eq!(*salt.0.lock().unwrap(), ["core", "ceph"]);
    }

    /// Cancels `cancel` after `after` (of tokio's, possibly paused, time).
    fn cancel_after(cancel: &CancellationToken, after: Duration) -> tokio::task::JoinHandle<()> {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            cancel.cancel();
        })
    }
}
