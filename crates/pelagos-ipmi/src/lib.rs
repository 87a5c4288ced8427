//! Pelagos BMC power and boot-device control through ipmitool.
//!
//! A [`PowerControl`] backend talks to BMCs; [`IpmiTool`] is the one that
//! exists (one `ipmitool -I lanplus` process per command, a timeout on each,
//! retries with backoff), and a Redfish backend can be added beside it. Each
//! call names its [`BmcTarget`].
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

mod control;
mod error;
mod ipmitool;
mod stderr;
mod target;

pub use control::PowerControl;
pub use error::BmcError;
pub use ipmitool::{IpmiTool, IpmiToolConfig};
pub use target::{BmcTarget, BootDevice, BootOptions, DEFAULT_BMC_PORT, PowerAction, PowerState};
