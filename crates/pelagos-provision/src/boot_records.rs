//! [`BootRecordWriter`] over `pelagos-pxe`'s [`BootRecords`]: pxelinux for
//! every node, GRUB and iPXE beside it for UEFI nodes, written atomically;
//! and `Drivers::change_record` (crate-private), the one way the engine
//! and the state machine change a node's records.

use crate::drivers::{BootRecordWriter, DriverError, Drivers, LabNode, OsIdentity, OsNotFound};
use pelagos_config::Node;
use pelagos_pxe::{BootRecords, PxeError, ResolvedOs};
use std::path::PathBuf;

/// A change of a node's boot records.
#[derive(Debug, Clone)]
pub(crate) enum RecordChange {
    /// Write the records for a resolved OS.
    Write(ResolvedOs),
    /// Remove them (no error when there are none).
    Remove,
}

impl Drivers {
    /// Apply `change` to the node's records on the blocking pool, inside the
    /// caller's span, so the driver's own events reach the task's log. Every
    /// boot-record change of the engine and the state machine goes through
    /// here. The caller waits for it: a change in flight always lands.
    pub(crate) async fn change_record(
        &self,
        node: &LabNode,
        change: RecordChange,
    ) -> Result<(), DriverError> {
        let records = self.boot_records.clone();
        let n = node.clone();
        let span = tracing::Span::current();
        let apply = move || {
            let _in_caller_span = span.enter();
            match change {
                RecordChange::Write(os) => records.write(&n, &os),
                RecordChange::Remove => records.remove(&n),
            }
        };
        match tokio::task::spawn_blocking(apply).await {
            Ok(res) => res,
            Err(e) => Err(DriverError::new(
                "boot records",
                node,
                format!("boot record writer failed: {e}"),
            )),
        }
    }

    /// [`Self::change_record`] writing `os`.
    pub(crate) async fn write_record(
        &self,
        node: &LabNode,
        os: &ResolvedOs,
    ) -> Result<(), DriverError> {
        self.change_record(node, RecordChange::Write(os.clone()))
            .await
    }
}

impl BootRecordWriter for BootRecords {
    fn root(&self) -> PathBuf {
        self.tftp_root().to_owned()
    }

    fn resolve_os(&self, os: &str) -> Result<ResolvedOs, OsNotFound> {
        BootRecords::resolve_os(self, os).map_err(|e| OsNotFound {
            os: os.to_owned(),
            message: e.to_string(),
            cannot_install: matches!(e, PxeError::NotInstallable { .. }),
        })
    }

    fn write(&self, node: &Node, os: &ResolvedOs) -> Result<(), DriverError> {
        BootRecords::write(self, node, os)
            .map_err(|e| DriverError::new("boot records", node, e.to_string()))
    }

    fn remove(&self, node: &Node) -> Result<(), DriverError> {
        match BootRecords::remove(self, node) {
            Ok(()) | Err(PxeError::NoRecord { .. }) => Ok(()),
            Err(e) => Err(DriverError::new("boot records", node, e.to_string())),
        }
    }

    fn configured_os(&self, node: &Node) -> String {
        BootRecords::configured_os(self, node)
    }

    fn record_path(&self, node: &Node) -> PathBuf {
        BootRecords::record_path(self, node)
    }

    fn os_identity(&self, os: &ResolvedOs) -> Result<Option<OsIdentity>, String> {
        if !os.is_image() {
            return Ok(None);
        }
        match self.catalog().manifest(os.as_str()) {
            Ok(m) => Ok(m.and_then(|m| m.os)),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pelagos_config::LabConfig;

    #[test]
    fn resolves_writes_and_reads_back_through_the_trait() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sle-15.1-0.1.1-29.1")).unwrap();
        std::os::unix::fs::symlink(d.path().join("sle-15.1-0.1.1-29.1"), d.path().join("sle"))
            .unwrap();
        std::fs::write(d.path().join("file"), "").unwrap();
        let lab =
            LabConfig::parse(r#"{"nodes":[{"node":"n1","mac":"AA:BB:CC:DD:EE:01"}]}"#).unwrap();
        let r: &dyn BootRecordWriter = &BootRecords::new(d.path(), &lab);
        assert_eq!(r.resolve_os("sle").unwrap(), "sle-15.1-0.1.1-29.1");
        assert_eq!(r.resolve_os("local").unwrap(), "local");
        for bad in ["../etc", "a/b", "", "..", "file", "missing"] {
            assert!(r.resolve_os(bad).is_err(), "{bad} resolved");
        }
        let n = &lab.nodes[0];
        assert_eq!(r.configured_os(n), pelagos_pxe::DEFAULT_CONFIG_USED);
        r.write(n, &r.resolve_os("sle-15.1-0.1.1-29.1").unwrap())
            .unwrap();
        assert!(
            r.record_path(n)
                .ends_with("pxelinux.cfg/01-aa-bb-cc-dd-ee-01")
        );
        assert_eq!(r.configured_os(n), "sle-15.1-0.1.1-29.1");
        r.write(n, &ResolvedOs::LOCAL).unwrap();
        assert_eq!(r.configured_os(n), "local");
        r.remove(n).unwrap();
        r.remove(n).unwrap();
        assert_eq!(r.configured_os(n), pelagos_pxe::DEFAULT_CONFIG_USED);
    }
}
