//! Pelagos provisioning task engine, drivers and task state store.
//!
//! A provision (docs/PROVISIONING.md) is a tokio task running one state
//! machine against driver traits in the lab's words ([`BmcDriver`],
//! [`ConsoleDriver`], [`Readiness`], [`OsVerifier`], [`Configurator`],
//! [`BootRecordWriter`])
//! over the driver crates' own types (pelagos-ipmi's power actions,
//! pelagos-conman's console watch); production and the simulated lab
//! ([`sim`]) differ only in the drivers. [`Drivers::production`] wires the
//! real ones ([`production`]: ipmitool, conmand's logs, SSH probes, an SSH
//! login reading os-release ([`verify`]), salt-ssh); both read consoles
//! through the same [`ConmanConsole`]. The
//! [`Engine`] keeps one provision per node (a new one dismisses the running
//! one and waits for it), a log per task (fed by [`TaskLogs::layer`]) and the
//! task state in a [`TaskStore`] (SQLite by default) so it survives restarts:
//! at [`Engine::start`] tasks that were running read as failed ("interrupted
//! by server restart", 500) and their nodes' boot records go back to `local`;
//! [`Engine::shutdown`] does the same at a clean stop, keeping their logs.
//! [`store::conformance`] is the behaviour suite every store passes.
//!
//! ```
//! use pelagos_provision::{Engine, ProvisionRequest, SqliteStore, TaskLogs, sim};
//! use std::sync::Arc;
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let lab = Arc::new(pelagos_config::LabConfig::parse(
//!     r#"{"nodes": [{"node": "n1.lab", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.1"}]}"#,
//! ).unwrap());
//! let timing = sim::SimMode::Fast.timing(&lab.timing);
//! let records = Arc::new(pelagos_provision::BootRecords::new(dir.path(), &lab));
//! let drivers = sim::SimLab::new(sim::SimMode::Fast, timing.clone(), dir.path().join("console"))
//!     .drivers(records);
//! let store = Arc::new(SqliteStore::in_memory().await.unwrap());
//! let engine = Engine::start(lab, timing, drivers, store, TaskLogs::new()).await.unwrap();
//! let id = engine
//!     .provision(ProvisionRequest { node: "n1.lab".into(), os: "local".into(), ..Default::default() })
//!     .await
//!     .unwrap();
//! while engine.status(&id).unwrap().end.is_none() {
//!     tokio::time::sleep(std::time::Duration::from_millis(50)).await;
//! }
//! assert_eq!(engine.status(&id).unwrap().result().unwrap().code, 200);
//! # });
//! ```

#![deny(missing_docs)]

pub mod boot_records;
pub mod drivers;
mod engine;
mod machine;
pub mod metrics;
pub mod production;
pub mod readiness;
pub mod reload;
pub mod salt;
pub mod sim;
pub mod store;
pub mod tasklog;
pub mod verify;

pub use drivers::{
    BmcDriver, BootRecordWriter, Configurator, ConsoleDriver, DriverError, Drivers, LabNode,
    OsIdentity, OsNotFound, OsVerifier, Readiness, ResolvedOs,
};
pub use engine::{
    Engine, EngineError, INTERRUPTED, ProvisionRequest, ReloadSummary, TaskInfo, now_secs,
};
pub use machine::{DISMISSED, ProvisionError};
pub use pelagos_pxe::BootRecords;
pub use production::{ConmanConsole, ProductionOptions};
pub use reload::{ReloadError, Reloader, SwapRecords};
pub use store::{SqliteStore, StoreError, TaskEnd, TaskResult, TaskRow, TaskStore};
pub use tasklog::{TaskLogLayer, TaskLogs};
