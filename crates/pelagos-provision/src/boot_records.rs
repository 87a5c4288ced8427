//! A minimal pxelinux [`BootRecordWriter`]: `pxelinux.cfg/01-<mac>` headed by
//! `# os=` and `# node=` lines, written atomically. It stands in until the
//! engine is wired to `pelagos-pxe`'s full records (pxelinux, GRUB, iPXE).

use crate::drivers::{BootRecordWriter, DriverError, OsNotFound};
use pelagos_config::{LabConfig, Node, atomic::write_atomic};
use std::path::{Path, PathBuf};

pub const LOCAL: &str = "local";
pub const MAINTENANCE: &str = "maintenance_image";
/// What the original answered for a node without a record of its own.
pub const DEFAULT_PXE: &str = "Default config is used: pxelinux.cfg/default";
/// ... and for a record without an `os=` line.
pub const DEDICATED_PXE: &str = "Dedicated undefined config is used";

#[derive(Debug, Clone)]
pub struct PxeLinuxRecords {
    root: PathBuf,
    server: String,
    kernel: String,
    initrd: String,
}

impl PxeLinuxRecords {
    pub fn new(tftp_root: impl Into<PathBuf>, lab: &LabConfig) -> Self {
        Self {
            root: tftp_root.into(),
            server: lab.default_pxe_server.clone(),
            kernel: lab.maintenance_image_kernel.clone(),
            initrd: lab.maintenance_image_initrd.clone(),
        }
    }

    fn record(&self, node: &Node, os: &str) -> String {
        let body = match os {
            LOCAL => {
                "LABEL local\n  MENU LABEL Boot local hard drive\n  LOCALBOOT -1\n  MENU DEFAULT\n"
                    .to_owned()
            }
            MAINTENANCE => format!(
                "LABEL maintenance_image\n  MENU DEFAULT\n  KERNEL boot/{}\n  INITRD boot/{}\n  APPEND console=tty1 console=ttyS1,115200 kiwiserver={} ramdisk_size=2048000 disableProgressInfo=1 kiwidebug=1\n",
                self.kernel, self.initrd, self.server
            ),
            _ => format!(
                "LABEL oem linux\n  KERNEL {os}/pxeboot.kernel\n  INITRD {os}/pxeboot.initrd.xz\n  APPEND rd.kiwi.install.pxe rd.kiwi.install.image=http://{}/{os}/{os}.xz\n  MENU DEFAULT\n",
                self.server
            ),
        };
        format!(
            "# os={os}\n# node={}\n\nDEFAULT menu.c32\nPROMPT 0\nTIMEOUT 100\n\n{body}",
            node.node
        )
    }
}

/// A plain name inside the root: no separators, no `..`.
pub fn is_plain_name(os: &str) -> bool {
    !os.is_empty() && os != "." && os != ".." && !os.contains('/') && !os.contains('\0')
}

impl BootRecordWriter for PxeLinuxRecords {
    fn root(&self) -> PathBuf {
        self.root.clone()
    }

    fn resolve_os(&self, os: &str) -> Result<String, OsNotFound> {
        if os == LOCAL || os == MAINTENANCE {
            return Ok(os.to_owned());
        }
        let not_found = |why: &str| OsNotFound {
            os: os.to_owned(),
            message: format!("os image [{os}] in [{}]: {why}", self.root.display()),
        };
        if !is_plain_name(os) {
            return Err(not_found("not a plain name"));
        }
        let p = self.root.join(os);
        let meta = std::fs::symlink_metadata(&p).map_err(|_| not_found("no such entry"))?;
        if meta.file_type().is_symlink() {
            if !p.is_dir() {
                return Err(not_found("symlink to no directory"));
            }
            let target = std::fs::read_link(&p).map_err(|e| not_found(&e.to_string()))?;
            let name = target
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| not_found("symlink target has no name"))?;
            Ok(name.to_owned())
        } else if meta.is_dir() {
            Ok(os.to_owned())
        } else {
            Err(not_found("not a directory"))
        }
    }

    fn write(&self, node: &Node, os: &str) -> Result<(), DriverError> {
        let path = self.record_path(node);
        write_atomic(&path, self.record(node, os).as_bytes()).map_err(|e| {
            DriverError::new(
                "boot records",
                node,
                format!("cannot write {}: {e}", path.display()),
            )
        })
    }

    fn remove(&self, node: &Node) -> Result<(), DriverError> {
        let path = self.record_path(node);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DriverError::new(
                "boot records",
                node,
                format!("cannot remove {}: {e}", path.display()),
            )),
        }
    }

    fn configured_os(&self, node: &Node) -> String {
        configured_os_of(&self.record_path(node))
    }

    fn record_path(&self, node: &Node) -> PathBuf {
        self.root
            .join("pxelinux.cfg")
            .join(format!("01-{}", node.mac_dashed()))
    }
}

fn configured_os_of(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .find_map(|l| l.split_once("os=").map(|(_, os)| os.trim().to_owned()))
            .unwrap_or_else(|| DEDICATED_PXE.to_owned()),
        Err(_) => DEFAULT_PXE.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_writes_and_reads_back() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sle-15.1-0.1.1-29.1")).unwrap();
        std::os::unix::fs::symlink(d.path().join("sle-15.1-0.1.1-29.1"), d.path().join("sle"))
            .unwrap();
        std::fs::write(d.path().join("file"), "").unwrap();
        let lab =
            LabConfig::parse(r#"{"nodes":[{"node":"n1","mac":"AA:BB:CC:DD:EE:01"}]}"#).unwrap();
        let r = PxeLinuxRecords::new(d.path(), &lab);
        assert_eq!(r.resolve_os("sle").unwrap(), "sle-15.1-0.1.1-29.1");
        assert_eq!(
            r.resolve_os("sle-15.1-0.1.1-29.1").unwrap(),
            "sle-15.1-0.1.1-29.1"
        );
        assert_eq!(r.resolve_os("local").unwrap(), "local");
        for bad in ["../etc", "a/b", "", "..", "file", "missing"] {
            assert!(r.resolve_os(bad).is_err(), "{bad} resolved");
        }
        let n = &lab.nodes[0];
        assert_eq!(r.configured_os(n), DEFAULT_PXE);
        r.write(n, "sle-15.1-0.1.1-29.1").unwrap();
        assert!(
            r.record_path(n)
                .ends_with("pxelinux.cfg/01-aa-bb-cc-dd-ee-01")
        );
        assert_eq!(r.configured_os(n), "sle-15.1-0.1.1-29.1");
        r.write(n, LOCAL).unwrap();
        assert_eq!(r.configured_os(n), "local");
        r.remove(n).unwrap();
        r.remove(n).unwrap();
        assert_eq!(r.configured_os(n), DEFAULT_PXE);
    }
}
