//! Pelagos BMC power and boot-device control through ipmitool.
//!
//! A [`PowerControl`] backend talks to BMCs; [`IpmiTool`] is the one that
//! exists (one `ipmitool -I lanplus` process per command, a timeout on each,
//! retries with backoff), and a Redfish backend can be added beside it. Each
//! call names its [`BmcTarget`].
//!
//! What runs without a BMC: the target of a lab node, the words ipmitool is
//! given, and its settings from the lab's timing.
//!
//! ```
//! use pelagos_config::LabConfig;
//! use pelagos_ipmi::{BmcError, BmcTarget, BootDevice, IpmiToolConfig, PowerAction};
//!
//! let lab = LabConfig::parse(r#"{ "ipmi_user": "admin", "ipmi_pass": "s3cret",
//!     "nodes": [ { "node": "n1.lab", "mac": "aa:bb:cc:dd:ee:01", "bmc_ip": "10.1.0.1" },
//!                { "node": "n2.lab", "mac": "aa:bb:cc:dd:ee:02" } ] }"#).unwrap();
//! let target = BmcTarget::for_node(&lab, lab.node("n1.lab").unwrap()).unwrap();
//! assert_eq!(target.label(), "n1.lab (10.1.0.1:623)");
//! assert!(!format!("{target:?}").contains("s3cret")); // the password prints masked
//!
//! // A node without bmc_ip has no BMC to drive, and asking again won't help.
//! let err = BmcTarget::for_node(&lab, lab.node("n2.lab").unwrap()).unwrap_err();
//! assert!(matches!(err, BmcError::NoAddress { .. }));
//! assert!(!err.is_retryable());
//!
//! assert_eq!(PowerAction::Cycle.as_ipmitool(), "cycle"); // `ipmitool ... power cycle`
//! assert_eq!(BootDevice::Pxe.as_ipmitool(), "pxe"); // `chassis bootdev pxe`
//! let config = IpmiToolConfig::from_timing(&lab.timing); // ipmi_timeout, ipmi_retries
//! assert!(config.attempts >= 1);
//! ```
//!
//! Driving a BMC (`no_run`: it needs one; the crate's `peers` tests run these
//! calls against a simulated BMC):
//!
//! ```no_run
//! use pelagos_config::Secret;
//! use pelagos_ipmi::{
//!     BmcTarget, BootDevice, BootOptions, IpmiTool, IpmiToolConfig, PowerAction, PowerControl,
//!     PowerState,
//! };
//! use std::time::Duration;
//!
//! # async fn demo() -> Result<(), pelagos_ipmi::BmcError> {
//! let target = BmcTarget::new("10.162.0.17", "admin", Secret::new("secret"))
//!     .with_name("node1.lab")
//!     .with_cipher_suite(Some(3)); // an old BMC
//! let tool = IpmiTool::new(IpmiToolConfig {
//!     timeout: Duration::from_secs(10),
//!     attempts: 3,
//!     ..IpmiToolConfig::default()
//! });
//!
//! tool.set_boot_device(&target, BootDevice::Pxe, BootOptions::once(/* uefi */ true)).await?;
//! tool.power(&target, PowerAction::Cycle).await?; // powers on if it was off
//! assert_eq!(tool.power_status(&target).await?, PowerState::On);
//! # Ok(())
//! # }
//! ```
//!
//! For a node of the lab config, [`BmcTarget::for_node`] takes `bmc_ip`,
//! `bmc_port` and `cipher_suite` from the node and the credentials from the
//! lab; [`IpmiToolConfig::from_timing`] takes `ipmi_timeout` and
//! `ipmi_retries`.
//!
//! Architecture invariants:
//! - The BMC password never reaches argv, logs or errors: it goes to ipmitool
//!   through `IPMI_PASSWORD` (`-E`, with `IPMITOOL_PASSWORD` removed from the
//!   child's environment), and any occurrence in ipmitool's output is
//!   replaced by `********`.
//! - Every ipmitool process is killed when its call times out or is dropped.
//! - Every command and outcome is logged with `tracing` (span `bmc_command`
//!   with `bmc`, `host`, `port`, `op`; events carry `attempt`).

#![deny(missing_docs)]

mod control;
mod error;
mod ipmitool;
mod stderr;
mod target;

pub use control::PowerControl;
pub use error::BmcError;
pub use ipmitool::{IpmiTool, IpmiToolConfig};
pub use target::{BmcTarget, BootDevice, BootOptions, DEFAULT_BMC_PORT, PowerAction, PowerState};
