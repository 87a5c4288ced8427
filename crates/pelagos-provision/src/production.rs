//! The production drivers: the engine's interfaces over the real programs.
//!
//! | Interface | Driver | Talks to |
//! |---|---|---|
//! | [`BmcDriver`] | [`IpmiBmc`] | the node's BMC through `ipmitool -I lanplus` ([`pelagos_ipmi::IpmiTool`]) |
//! | [`ConsoleDriver`] | [`ConmanConsole`] | conmand's log `<conman_log_dir>/console.<short name>` ([`pelagos_conman::ConsoleLog`]) |
//! | [`Readiness`] | [`SshReadiness`] | the node's sshd: banner and key exchange ([`SshProbe`]) |
//! | [`OsVerifier`](crate::OsVerifier) | [`SshOsVerifier`] | the node's sshd: a login reading os-release and `/etc/ImageID` |
//! | [`Configurator`] | [`SaltConfigurator`] | `salt-ssh ... state.apply <sls>` ([`SaltSsh`]) |
//!
//! [`Drivers::production`] wires all five for a lab, with the boot records
//! given. The simulated lab ([`crate::sim`]) reuses [`ConmanConsole`]: its
//! consoles write conman-format files that the state machine follows with
//! the same [`pelagos_conman::ConsoleWatch`].
//!
//! Errors keep the drivers' own messages (they name the node, the operation
//! and the BMC or state, and never hold a secret); the state machine turns
//! a [`BmcDriver`] error into a 502 `BMCException ...`, an [`OsVerifier`](crate::OsVerifier)
//! error into a 502 `Cannot verify the OS ...`, a [`Configurator`] error
//! into a 500 naming the state.
//!
//! ```no_run
//! # async fn demo(lab: std::sync::Arc<pelagos_config::LabConfig>, tftp: &std::path::Path) {
//! use pelagos_provision::{BootRecords, Drivers, production::ProductionOptions};
//! use std::sync::Arc;
//! let records = Arc::new(BootRecords::new(tftp, &lab));
//! let options = ProductionOptions {
//!     ipmitool: "/usr/local/bin/ipmitool".into(),
//!     ..ProductionOptions::default()
//! };
//! let drivers = Drivers::production(&lab, records, options);
//! # }
//! ```

use crate::drivers::{
    BmcDriver, BootDevice, BootRecordWriter, Configurator, ConsoleDriver, ConsoleLog, DriverError,
    Drivers, PowerAction, Readiness,
};
use crate::metrics::MeteredBmc;
use crate::readiness::SshProbe;
use crate::salt::SaltSsh;
use crate::verify::SshOsVerifier;
use async_trait::async_trait;
use pelagos_config::{LabConfig, Node};
use pelagos_ipmi::{BmcError, BmcTarget, BootOptions, IpmiTool, IpmiToolConfig, PowerControl};
use std::path::PathBuf;
use std::sync::Arc;

/// What a production deployment may change about how the real programs
/// are run; the rest comes from the lab config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductionOptions {
    /// The ipmitool program: a path, or a name looked up on `PATH`.
    pub ipmitool: PathBuf,
    /// The salt-ssh program: a path, or a name looked up on `PATH`.
    pub salt_ssh: PathBuf,
    /// SSH client key salt-ssh logs in with, for roster entries without
    /// their own `priv:`.
    pub salt_priv_key: Option<PathBuf>,
    /// Directory for salt-ssh's private temp rosters (default: the system
    /// temp dir).
    pub salt_temp_dir: Option<PathBuf>,
}

impl Default for ProductionOptions {
    fn default() -> Self {
        Self {
            ipmitool: PathBuf::from("ipmitool"),
            salt_ssh: PathBuf::from("salt-ssh"),
            salt_priv_key: None,
            salt_temp_dir: None,
        }
    }
}

impl Drivers {
    /// The real drivers for `lab`: ipmitool with `ipmi_timeout` and
    /// `ipmi_retries`, conmand's logs in `conman_log_dir` (followed by the
    /// state machine, stalled after the engine's `conman_line_max_age`), SSH probes limited
    /// by `ssh_probe_timeout`, an SSH login as salt's user for the OS check,
    /// salt-ssh with the lab's roster, salt config dir,
    /// `target_node_password` and `salt_timeout`.
    pub fn production(
        lab: &Arc<LabConfig>,
        boot_records: Arc<dyn BootRecordWriter>,
        options: ProductionOptions,
    ) -> Drivers {
        let ipmitool = IpmiTool::new(IpmiToolConfig {
            program: options.ipmitool.clone(),
            ..IpmiToolConfig::from_timing(&lab.timing)
        });
        let mut salt = SaltSsh::from_lab(lab);
        salt.program = options.salt_ssh.clone();
        salt.priv_key = options.salt_priv_key.clone();
        salt.temp_dir = options.salt_temp_dir.clone();
        Drivers {
            bmc: Arc::new(MeteredBmc::new(Arc::new(IpmiBmc::new(
                lab.clone(),
                Arc::new(ipmitool),
            )))),
            console: Arc::new(ConmanConsole::new(&lab.conman_log_dir)),
            readiness: Arc::new(SshReadiness(SshProbe::from_timing(&lab.timing))),
            os_verifier: Arc::new(SshOsVerifier::new(salt.clone())),
            configurator: Arc::new(SaltConfigurator(salt)),
            boot_records,
        }
    }
}

/// [`BmcDriver`] over a [`PowerControl`] backend (ipmitool today), with each
/// node's BMC from the lab config ([`BmcTarget::for_node`]: `bmc_ip`,
/// `bmc_port`, `cipher_suite`, the lab's `ipmi_user`/`ipmi_pass`). Power
/// actions go to the backend as they are: a cycle of an off chassis is the
/// backend's to turn into a power on.
///
/// UEFI nodes (`uefi` in the lab config) get `options=efiboot` with their
/// boot device. A BMC that *rejects* the boot device command (it answered,
/// authenticated, but does not support it) is logged as a warning and the
/// provision goes on with the node's configured boot order, which is all the
/// original ever relied on (it never set the boot device). Every other
/// failure is an error.
pub struct IpmiBmc {
    lab: Arc<LabConfig>,
    control: Arc<dyn PowerControl>,
}

impl IpmiBmc {
    /// Send the power and boot device commands of `lab`'s nodes through
    /// `control`, each to the BMC the node's lab entry names.
    pub fn new(lab: Arc<LabConfig>, control: Arc<dyn PowerControl>) -> Self {
        Self { lab, control }
    }

    fn target(&self, node: &Node) -> Result<BmcTarget, DriverError> {
        BmcTarget::for_node(&self.lab, node).map_err(|e| bmc_error(node, &e))
    }
}

fn bmc_error(node: &Node, e: &BmcError) -> DriverError {
    DriverError::new("bmc", node, e.to_string()).with_kind(bmc_error_kind(e))
}

/// The `kind` of a BMC failure ([`DriverError::kind`]), from pelagos-ipmi's
/// classification.
fn bmc_error_kind(e: &BmcError) -> &'static str {
    match e {
        BmcError::Authentication { .. } => "authentication",
        BmcError::Misconfigured { .. } | BmcError::NoAddress { .. } => "misconfigured",
        BmcError::Unreachable { .. } => "unreachable",
        BmcError::Rejected { .. } => "rejected",
        BmcError::Timeout { .. } => "timeout",
        BmcError::UnexpectedOutput { .. } => "unexpected_output",
        BmcError::NotInstalled { .. } | BmcError::Spawn { .. } => "tool",
        _ => "failed",
    }
}

#[async_trait]
impl BmcDriver for IpmiBmc {
    async fn power(&self, node: &Node, action: PowerAction) -> Result<(), DriverError> {
        let target = self.target(node)?;
        self.control
            .power(&target, action)
            .await
            .map_err(|e| bmc_error(node, &e))
    }

    async fn set_boot_device(
        &self,
        node: &Node,
        device: BootDevice,
        persistent: bool,
    ) -> Result<(), DriverError> {
        let target = self.target(node)?;
        let options = BootOptions {
            uefi: node.uefi,
            persistent,
        };
        match self.control.set_boot_device(&target, device, options).await {
            Ok(()) => Ok(()),
            Err(e @ BmcError::Rejected { .. }) => {
                tracing::warn!(
                    "BMC of node [{}] does not take a boot device ({e}); booting in its configured order",
                    node.node
                );
                Ok(())
            }
            Err(e) => Err(bmc_error(node, &e)),
        }
    }
}

/// [`ConsoleDriver`] over conman logs, `<dir>/console.<short name>`
/// ([`pelagos_conman::log_path`], as make-cfgs names them in conman.conf),
/// opened with [`pelagos_conman::ConsoleLog`]: incremental reads, meaningful
/// lines by the rules of docs/PROVISIONING.md "The console", truncation and
/// rotation handled.
#[derive(Debug, Clone)]
pub struct ConmanConsole {
    dir: PathBuf,
}

impl ConmanConsole {
    /// Logs in `dir` (the lab's `conman_log_dir`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `<dir>/console.<short name>`.
    pub fn log_path(&self, node: &Node) -> PathBuf {
        pelagos_conman::log_path(&self.dir, node.short_name())
    }
}

#[async_trait]
impl ConsoleDriver for ConmanConsole {
    async fn watch(&self, node: &Node) -> Result<ConsoleLog, DriverError> {
        // Read errors later are kept by the state machine's watch and logged
        // once; an unreadable log reads as a silent console, which ends in a
        // stall.
        ConsoleLog::open(self.log_path(node))
            .map_err(|e| DriverError::new("console", node, e.to_string()))
    }
}

/// [`Readiness`] by an SSH handshake at the node's provisioning address
/// (`boot_ip`, else `ip`) and `ssh_port`.
#[derive(Debug, Clone, Copy)]
pub struct SshReadiness(pub SshProbe);

#[async_trait]
impl Readiness for SshReadiness {
    async fn is_ready(&self, node: &Node) -> Result<bool, DriverError> {
        // A node that does not answer yet is the normal case, not an error;
        // the probe logs why at debug level.
        Ok(self.0.probe_node(node).await.is_ok())
    }
}

/// [`Configurator`] applying one salt state per call with salt-ssh.
#[derive(Debug, Clone)]
pub struct SaltConfigurator(pub SaltSsh);

#[async_trait]
impl Configurator for SaltConfigurator {
    async fn apply_state(&self, node: &Node, state: &str) -> Result<(), DriverError> {
        self.0
            .apply_state(node, state)
            .await
            .map(|_| ())
            .map_err(|e| DriverError::new("configurator", node, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::ConsoleWatch;
    use std::io::Write;
    use std::time::Duration;

    fn node(name: &str) -> Node {
        let lab = pelagos_config::LabConfig::parse(&format!(
            r#"{{"nodes":[{{"node":"{name}","mac":"aa:bb:cc:dd:ee:01"}}]}}"#
        ))
        .unwrap();
        lab.nodes[0].clone()
    }

    /// The node's log followed as the state machine follows it.
    async fn follow(console: &ConmanConsole, n: &Node) -> ConsoleWatch {
        let log = console.watch(n).await.unwrap();
        ConsoleWatch::new(log, Duration::from_secs(180))
    }

    #[tokio::test(start_paused = true)]
    async fn console_follows_appends_truncation_and_ages() {
        let d = tempfile::tempdir().unwrap();
        let console = ConmanConsole::new(d.path());
        let n = node("n1.lab");
        let path = console.log_path(&n);
        assert!(path.ends_with("console.n1"));
        std::fs::write(&path, "<ConMan> Console [n1] log opened\r\nold line\r\n").unwrap();
        let mut w = follow(&console, &n).await;
        w.poll_now();
        assert_eq!(w.newest_text(), Some("old line"));
        // History is not activity.
        let start = w.mark();

        tokio::time::advance(Duration::from_secs(5)).await;
        w.poll_now();
        assert_eq!(w.newest_text(), Some("old line"));
        assert!(w.quiet_for() >= Duration::from_secs(5));
        assert!(!w.shown_since(start));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        // An unfinished line is output too: the console is alive.
        f.write_all(b"half").unwrap();
        w.poll_now();
        assert_eq!(w.newest_text(), Some("half"));
        assert_eq!(w.quiet_for(), Duration::ZERO);
        assert!(w.shown_since(start));
        let before = w.mark();
        // conman notices, bare timestamps and blank lines are no output.
        f.write_all(b"\r\n<ConMan> Console [n1] disconnected\r\n2026-11-24 16:40:07\r\n\r\n")
            .unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        w.poll_now();
        assert_eq!(w.newest_text(), Some("half"));
        f.write_all(b"2026-11-24 16:40:08 a line\r\n").unwrap();
        w.poll_now();
        assert_eq!(w.newest_text(), Some("a line"));
        assert_eq!(w.quiet_for(), Duration::ZERO);
        assert!(w.shown_since(before));

        // Truncated (log rotated in place): read from the start again.
        std::fs::write(&path, "fresh\n").unwrap();
        w.poll_now();
        assert_eq!(w.newest_text(), Some("fresh"));

        tokio::time::advance(Duration::from_secs(3)).await;
        w.reset();
        w.poll_now();
        assert_eq!(w.quiet_for(), Duration::ZERO);
    }

    #[tokio::test]
    async fn console_missing_file_has_no_line() {
        let d = tempfile::tempdir().unwrap();
        let console = ConmanConsole::new(d.path());
        let mut w = follow(&console, &node("n2")).await;
        w.poll_now();
        assert_eq!(w.newest_text(), None);
        assert_eq!(w.log().activity(), 0);
    }

    #[tokio::test]
    async fn production_console_reads_the_labs_conman_log_dir() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = format!(
            r#"{{"conman_log_dir": {:?}, "conman_line_max_age": 42,
                "nodes": [{{"node": "n7.lab.example.com", "mac": "aa:bb:cc:dd:ee:ff", "ip": "10.0.0.7"}}]}}"#,
            dir.path()
        );
        let lab = Arc::new(LabConfig::parse(&cfg).unwrap());
        std::fs::write(
            dir.path().join("console.n7"),
            "2026-11-24 16:40:07 hello\r\n",
        )
        .unwrap();
        let records = Arc::new(crate::BootRecords::new(dir.path(), &lab));
        let drivers = Drivers::production(&lab, records, ProductionOptions::default());
        let mut log = drivers.console.watch(&lab.nodes[0]).await.unwrap();
        assert_eq!(log.path(), dir.path().join("console.n7"));
        log.poll().unwrap();
        assert_eq!(log.last_line(), Some("hello"));
    }

    /// A backend that records what it is asked and fails boot device
    /// commands as told.
    #[derive(Default)]
    struct Recorder {
        calls: std::sync::Mutex<Vec<String>>,
        bootdev_error: std::sync::Mutex<Option<BmcError>>,
    }

    #[async_trait]
    impl PowerControl for Recorder {
        async fn power_status(
            &self,
            target: &BmcTarget,
        ) -> Result<pelagos_ipmi::PowerState, BmcError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("status {}", target.label()));
            Ok(pelagos_ipmi::PowerState::Off)
        }
        async fn power(
            &self,
            target: &BmcTarget,
            action: pelagos_ipmi::PowerAction,
        ) -> Result<(), BmcError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("power {action} {}", target.label()));
            Ok(())
        }
        async fn set_boot_device(
            &self,
            _: &BmcTarget,
            device: pelagos_ipmi::BootDevice,
            options: BootOptions,
        ) -> Result<(), BmcError> {
            self.calls.lock().unwrap().push(format!(
                "bootdev {device} uefi={} persistent={}",
                options.uefi, options.persistent
            ));
            match self.bootdev_error.lock().unwrap().take() {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
    }

    fn rejected() -> BmcError {
        BmcError::Rejected {
            bmc: "n1.lab (10.1.0.1:623)".into(),
            op: "chassis bootdev pxe".into(),
            command: "ipmitool ... chassis bootdev pxe".into(),
            stderr: "Set Boot Device to pxe failed: Invalid data field in request".into(),
        }
    }

    #[tokio::test]
    async fn bmc_targets_the_nodes_bmc_and_maps_operations() {
        let lab = Arc::new(
            LabConfig::parse(
                r#"{"ipmi_user": "admin", "ipmi_pass": "pw",
                    "nodes": [{"node": "n1.lab", "mac": "aa:bb:cc:dd:ee:01", "bmc_ip": "10.1.0.1",
                               "uefi": "yes"},
                              {"node": "n2.lab", "mac": "aa:bb:cc:dd:ee:02", "bmc_ip": "10.1.0.2",
                               "bmc_port": 6230}]}"#,
            )
            .unwrap(),
        );
        let rec = Arc::new(Recorder::default());
        let bmc = IpmiBmc::new(lab.clone(), rec.clone());
        let (n1, n2) = (&lab.nodes[0], &lab.nodes[1]);
        bmc.power(n1, PowerAction::Off).await.unwrap();
        bmc.power(n2, PowerAction::Cycle).await.unwrap();
        bmc.set_boot_device(n1, BootDevice::Pxe, false)
            .await
            .unwrap();
        bmc.set_boot_device(n2, BootDevice::Disk, true)
            .await
            .unwrap();
        assert_eq!(
            *rec.calls.lock().unwrap(),
            [
                "power off n1.lab (10.1.0.1:623)",
                "power cycle n2.lab (10.1.0.2:6230)",
                "bootdev pxe uefi=true persistent=false",
                "bootdev disk uefi=false persistent=true",
            ]
        );
    }

    #[tokio::test]
    async fn a_rejected_boot_device_is_a_warning_other_failures_are_errors() {
        let lab = Arc::new(
            LabConfig::parse(
                r#"{"nodes": [{"node": "n1.lab", "mac": "aa:bb:cc:dd:ee:01", "bmc_ip": "10.1.0.1"},
                              {"node": "n2.lab", "mac": "aa:bb:cc:dd:ee:02"}]}"#,
            )
            .unwrap(),
        );
        let rec = Arc::new(Recorder::default());
        let bmc = IpmiBmc::new(lab.clone(), rec.clone());
        *rec.bootdev_error.lock().unwrap() = Some(rejected());
        bmc.set_boot_device(&lab.nodes[0], BootDevice::Pxe, false)
            .await
            .expect("a BMC without boot device support boots in its own order");
        *rec.bootdev_error.lock().unwrap() = Some(BmcError::Authentication {
            bmc: "n1.lab (10.1.0.1:623)".into(),
            user: "admin".into(),
            op: "chassis bootdev pxe".into(),
            command: "ipmitool ... chassis bootdev pxe".into(),
            stderr: "RAKP 2 HMAC is invalid".into(),
        });
        let e = bmc
            .set_boot_device(&lab.nodes[0], BootDevice::Pxe, false)
            .await
            .unwrap_err();
        assert_eq!(e.driver, "bmc");
        assert!(e.message.contains("authentication refused"), "{e}");
        // No bmc_ip: an error naming the node, before any command.
        let calls = rec.calls.lock().unwrap().len();
        let e = bmc.power(&lab.nodes[1], PowerAction::On).await.unwrap_err();
        assert!(e.message.contains("n2.lab has no bmc_ip"), "{e}");
        assert_eq!(rec.calls.lock().unwrap().len(), calls);
    }
}
