//! Per-node boot records: pxelinux for every node, GRUB2 and iPXE beside it
//! for UEFI nodes. All three say the same thing: boot the kiwi OEM install
//! of an image, the maintenance image, or the local disk, with a way back
//! to the lab's main menu.

use crate::catalog::{self, BootFiles, Catalog, ResolvedOs};
use crate::error::PxeError;
use pelagos_config::atomic::{sync_dir, write_atomic};
use pelagos_config::{LabConfig, Node, PxeSettings};
use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};

/// OS id that boots the local disk.
pub const LOCAL: &str = "local";
/// OS id that boots the lab's maintenance image.
pub const MAINTENANCE: &str = "maintenance_image";
/// Default URL path under which pelagos-server serves the image tree, so the
/// default image URL is `http://<default_pxe_server>[:<port>]/images/<os>/<image>`
/// (see [`BootRecords::with_image_route`] for another path).
pub const IMAGE_ROUTE: &str = "/images";

/// What `configured_os` says when the node has no dedicated record.
pub const DEFAULT_CONFIG_USED: &str = "Default config is used: pxelinux.cfg/default";
/// What `configured_os` says when the record carries no `# os=` line.
pub const DEDICATED_UNDEFINED: &str = "Dedicated undefined config is used";

/// The `"pxe"` part of `GET /node/<name>`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PxeInfo {
    /// The OS the node's record boots ([`BootRecords::configured_os`]).
    pub os: String,
    /// The path of the node's pxelinux record (`pxelinux.cfg/01-<mac>`),
    /// whether it exists or not.
    pub pxe_file: String,
}

/// Writes, reads and removes the boot records of nodes in one TFTP root.
#[derive(Debug, Clone)]
pub struct BootRecords {
    root: PathBuf,
    catalog: Catalog,
    settings: PxeSettings,
    server: String,
    image_base_url: String,
    explicit_image_base: bool,
    /// Port and path of pelagos-server's own image route, for the default
    /// image URL.
    server_port: Option<u16>,
    image_route: String,
    maintenance_kernel: String,
    maintenance_initrd: String,
    grub_dir: String,
    ipxe_dir: String,
    /// Refuse to resolve an image dir that cannot be installed (see
    /// [`BootRecords::require_installable`]).
    require_installable: bool,
}

/// What one record boots.
#[derive(Debug, Clone, PartialEq)]
enum Entry {
    Local,
    Maintenance {
        kernel: String,
        initrd: String,
        append: String,
    },
    Image {
        kernel: String,
        initrd: String,
        append: String,
    },
}

impl Entry {
    /// The GRUB and iPXE menu entry: id and title.
    fn menu(&self) -> (&'static str, &'static str) {
        match self {
            Entry::Local => ("local", "Boot local hard drive"),
            Entry::Maintenance { .. } => ("maintenance_image", "maintenance_image"),
            Entry::Image { .. } => ("oem", "oem linux"),
        }
    }

    /// Kernel, initrd and options of a network boot; `None` for local.
    fn boot(&self) -> Option<(&str, &str, &str)> {
        match self {
            Entry::Local => None,
            Entry::Maintenance {
                kernel,
                initrd,
                append,
            }
            | Entry::Image {
                kernel,
                initrd,
                append,
            } => Some((kernel, initrd, append)),
        }
    }
}

impl BootRecords {
    /// Records in `tftp_root` with `lab`'s boot settings (`default_pxe_server`,
    /// `pxe.*`, the maintenance image). Image URLs are `pxe.image_base_url`,
    /// else `http://<default_pxe_server>/images` (no port) until
    /// [`Self::with_server_port`]/[`Self::with_image_route`] say otherwise.
    pub fn new(tftp_root: impl Into<PathBuf>, lab: &LabConfig) -> Self {
        let root = tftp_root.into();
        let explicit = !lab.pxe.image_base_url.trim().is_empty();
        let image_base_url = if explicit {
            lab.pxe
                .image_base_url
                .trim()
                .trim_end_matches('/')
                .to_owned()
        } else {
            String::new()
        };
        let mut records = Self {
            catalog: Catalog::new(root.clone()),
            root,
            settings: lab.pxe.clone(),
            server: lab.default_pxe_server.clone(),
            image_base_url,
            explicit_image_base: explicit,
            server_port: None,
            image_route: IMAGE_ROUTE.into(),
            maintenance_kernel: lab.maintenance_image_kernel.clone(),
            maintenance_initrd: lab.maintenance_image_initrd.clone(),
            grub_dir: "grub".into(),
            ipxe_dir: "ipxe".into(),
            require_installable: false,
        };
        records.update_default_base();
        records
    }

    /// Recompute the default image URL from `default_pxe_server`, the
    /// server's port and its image route; an explicit
    /// `pxe.image_base_url` stays as it is.
    fn update_default_base(&mut self) {
        if self.explicit_image_base {
            return;
        }
        // An IPv6 literal needs brackets in a URL.
        let host = if self.server.contains(':') && !self.server.starts_with('[') {
            format!("[{}]", self.server)
        } else {
            self.server.clone()
        };
        let port = self
            .server_port
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        self.image_base_url = format!("http://{host}{port}{}", self.image_route);
    }

    /// The port pelagos-server serves [`IMAGE_ROUTE`] on; the default image
    /// URL becomes `http://<default_pxe_server>:<port>/images`. No effect
    /// when the lab sets `pxe.image_base_url` (a separate web server).
    pub fn with_server_port(mut self, port: u16) -> Self {
        self.server_port = Some(port);
        self.update_default_base();
        self
    }

    /// The URL path pelagos-server serves the image tree under, when not
    /// [`IMAGE_ROUTE`]: `/boot-images` (a leading `/` is added, trailing
    /// ones dropped; `/` alone means the root). No effect when the lab sets
    /// `pxe.image_base_url`.
    pub fn with_image_route(mut self, route: &str) -> Self {
        let route = route.trim().trim_matches('/');
        self.image_route = if route.is_empty() {
            String::new()
        } else {
            format!("/{route}")
        };
        self.update_default_base();
        self
    }

    /// With `yes`, [`Self::resolve_os`] refuses an image dir that lacks the
    /// kernel, install initrd or disk image its records would name
    /// ([`PxeError::NotInstallable`], naming the dir and the missing
    /// files), so a node is never powered into an installer with nothing
    /// to install. `local` and `maintenance_image` are not image dirs and
    /// always resolve. Off by default (a simulated lab boots bare dirs);
    /// pelagos-server turns it on in production mode.
    pub fn require_installable(mut self, yes: bool) -> Self {
        self.require_installable = yes;
        self
    }

    /// The TFTP root, which is also the image tree served over HTTP.
    pub fn tftp_root(&self) -> &Path {
        &self.root
    }

    /// The image catalog in the TFTP root.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Base URL records put before `<os>/<image>`, without a trailing slash.
    pub fn image_base_url(&self) -> &str {
        &self.image_base_url
    }

    /// `"local"`, `"maintenance_image"`, or an image in the catalog; the
    /// resolved OS (for an image, the image dir's name, e.g.
    /// `sle-15.1-0.1.1-29.1`). The one way to a [`ResolvedOs`] naming an
    /// image. With [`Self::require_installable`], an image dir that lacks
    /// its boot files is refused.
    pub fn resolve_os(&self, os: &str) -> Result<ResolvedOs, PxeError> {
        catalog::validate_name(os)?;
        match os {
            LOCAL => Ok(ResolvedOs::LOCAL),
            MAINTENANCE => Ok(ResolvedOs::MAINTENANCE),
            _ => {
                let resolved = self.catalog.resolve(os)?;
                if self.require_installable {
                    self.catalog.check_installable(os, resolved.as_str())?;
                }
                Ok(resolved)
            }
        }
    }

    /// The URL kiwi's install initrd downloads the disk image of the
    /// resolved OS `os` from.
    pub fn image_url(&self, os: &str) -> Result<String, PxeError> {
        Ok(self.installed(os)?.1)
    }

    /// The boot files of the installed image `os` and its image URL.
    fn installed(&self, os: &str) -> Result<(BootFiles, String), PxeError> {
        catalog::validate_name(os)?;
        if !self.root.join(os).is_dir() {
            return Err(PxeError::NotFound {
                os: os.to_owned(),
                dir: self.root.clone(),
            });
        }
        let files = self.catalog.boot_files(os)?;
        let url = self.url_of(os, &files);
        Ok((files, url))
    }

    fn url_of(&self, os: &str, files: &BootFiles) -> String {
        format!("{}/{os}/{}", self.image_base_url, files.image)
    }

    /// The path of the node's pxelinux record, `pxelinux.cfg/01-<mac>`.
    pub fn record_path(&self, node: &Node) -> PathBuf {
        self.root
            .join("pxelinux.cfg")
            .join(format!("01-{}", node.mac_dashed()))
    }

    /// The GRUB2 per-MAC record. GRUB's network boot reads, in its prefix
    /// dir (FWPATH, `grub/` as made by `grub-mknetdir --subdir=grub`):
    /// `grub.cfg-<client UUID>` (only if DHCP gave one), `grub.cfg-01-<mac
    /// lower-case, dashes>`, `grub.cfg-<IPv4 upper-case hex>` shortened one
    /// digit at a time, then `grub.cfg` (GNU GRUB manual, "Network",
    /// <https://www.gnu.org/software/grub/manual/html_node/Network.html>).
    /// The per-MAC search is upstream since GRUB 2.06 (distributions carried
    /// it earlier). Seen on this machine: OVMF + Debian GRUB 2.06 fetched
    /// `grub/grub.cfg-01-52-54-00-12-34-56` first, and the `vm` tests boot
    /// a kernel from this record.
    pub fn grub_record_path(&self, node: &Node) -> PathBuf {
        self.root
            .join(&self.grub_dir)
            .join(format!("grub.cfg-01-{}", node.mac_dashed()))
    }

    /// The iPXE script; the lab's `ipxe/boot.ipxe` chains to
    /// `ipxe/01-${mac:hexhyp}.ipxe` (see states.sample).
    pub fn ipxe_record_path(&self, node: &Node) -> PathBuf {
        self.root
            .join(&self.ipxe_dir)
            .join(format!("01-{}.ipxe", node.mac_dashed()))
    }

    /// The node has a MAC (parsed when the lab was read); the error shows
    /// its `mac` as written.
    fn check_mac(node: &Node) -> Result<(), PxeError> {
        match node.mac {
            Some(_) => Ok(()),
            None => Err(PxeError::BadMac {
                node: node.node.clone(),
                mac: node
                    .raw
                    .get("mac")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned(),
            }),
        }
    }

    fn entry(&self, os: &ResolvedOs) -> Result<Entry, PxeError> {
        let s = &self.settings;
        Ok(match os.as_str() {
            LOCAL => Entry::Local,
            MAINTENANCE => Entry::Maintenance {
                kernel: format!("boot/{}", one_line(&self.maintenance_kernel)),
                initrd: format!("boot/{}", one_line(&self.maintenance_initrd)),
                // The original's options, console from the settings.
                append: format!(
                    "{} kiwiserver={}  ramdisk_size=2048000 disableProgressInfo=1 kiwidebug=1",
                    one_line(&s.console_opts),
                    one_line(&self.server)
                ),
            },
            os => {
                let (files, url) = self.installed(os)?;
                // One line whatever the settings hold: a newline in an
                // option must not start a new record directive.
                let append = [
                    s.bios_opts.as_str(),
                    "rd.kiwi.install.pxe",
                    &format!("rd.kiwi.install.image={url}"),
                    &s.console_opts,
                    &s.debug_opts,
                    &files.kernel_options,
                ]
                .iter()
                .flat_map(|o| o.split_whitespace())
                .collect::<Vec<_>>()
                .join(" ");
                Entry::Image {
                    kernel: format!("{os}/{}", files.kernel),
                    initrd: format!("{os}/{}", files.initrd),
                    append,
                }
            }
        })
    }

    /// The pxelinux record for a resolved OS, as written by [`Self::write`].
    pub fn render_pxelinux(&self, node: &Node, os: &ResolvedOs) -> Result<String, PxeError> {
        Ok(render_pxelinux(
            &one_line(&node.node),
            os.as_str(),
            &self.entry(os)?,
        ))
    }

    /// The GRUB2 record for a resolved OS.
    pub fn render_grub(&self, node: &Node, os: &ResolvedOs) -> Result<String, PxeError> {
        Ok(render_grub(
            &one_line(&node.node),
            os.as_str(),
            &self.entry(os)?,
        ))
    }

    /// The iPXE script for a resolved OS.
    pub fn render_ipxe(&self, node: &Node, os: &ResolvedOs) -> Result<String, PxeError> {
        Ok(render_ipxe(
            &one_line(&node.node),
            os.as_str(),
            &self.entry(os)?,
        ))
    }

    /// Write the node's records (pxelinux always; GRUB + iPXE too for
    /// `node.uefi`) for a resolved OS (from [`Self::resolve_os`], or
    /// [`ResolvedOs::LOCAL`]/[`ResolvedOs::MAINTENANCE`]), each atomically.
    /// Everything is rendered before the first write, so bad input writes
    /// nothing.
    ///
    /// `local` cannot fail for want of space: when a record cannot be
    /// written (a full TFTP file system, any write error), the node's
    /// records are removed instead, which needs none, and the node boots
    /// the lab's default config, whose default entry is the local disk
    /// (`states.sample/tftp`). A warning names the node and the error; the
    /// result is `Ok` (the node will not reinstall), `Err` only when the
    /// removal failed too.
    pub fn write(&self, node: &Node, os: &ResolvedOs) -> Result<(), PxeError> {
        Self::check_mac(node)?;
        let entry = self.entry(os)?;
        let os = os.as_str();
        let mut files = Vec::new();
        if node.uefi {
            files.push((
                self.grub_record_path(node),
                render_grub(&one_line(&node.node), os, &entry),
            ));
            files.push((
                self.ipxe_record_path(node),
                render_ipxe(&one_line(&node.node), os, &entry),
            ));
        }
        // pxelinux last: it is the record `configured_os` reads back.
        files.push((
            self.record_path(node),
            render_pxelinux(&one_line(&node.node), os, &entry),
        ));
        let written = files.iter().try_for_each(|(path, text)| {
            write_atomic(path, text.as_bytes()).map_err(PxeError::io("write", path))
        });
        if let Err(error) = written {
            return if os == LOCAL {
                self.local_by_removal(node, error)
            } else {
                Err(error)
            };
        }
        tracing::info!(node = %node.node, os, record = %self.record_path(node).display(),
            uefi = node.uefi, "boot record written");
        Ok(())
    }

    /// `local` could not be written (`error`): remove the node's records
    /// instead, so it boots the default config, the local disk.
    fn local_by_removal(&self, node: &Node, error: PxeError) -> Result<(), PxeError> {
        let record = self.record_path(node);
        match self.remove_records(node) {
            Ok(_) => {
                tracing::warn!(node = %node.node, %error, record = %record.display(),
                    "cannot write the local boot record; removed the node's boot records \
                     instead, so it boots the default config (local disk)");
                Ok(())
            }
            Err(removal) => {
                tracing::error!(node = %node.node, %error, %removal, record = %record.display(),
                    "cannot write the local boot record nor remove the node's boot records");
                let kind = match &removal {
                    PxeError::Io { source, .. } => source.kind(),
                    _ => std::io::ErrorKind::Other,
                };
                Err(PxeError::Io {
                    action: "reset to local (neither write nor remove)",
                    path: record,
                    source: std::io::Error::new(
                        kind,
                        format!("{error}; removing the records instead: {removal}"),
                    ),
                })
            }
        }
    }

    /// Remove every record file [`Self::write`] may have written for the
    /// node (iPXE and GRUB ones too, whatever `node.uefi` says now), missing
    /// ones tolerated, and fsync their directories. Tries them all even
    /// after a failure; returns whether any existed, or the first error.
    fn remove_records(&self, node: &Node) -> Result<bool, PxeError> {
        let mut removed = false;
        let mut first_error = None;
        // In the order clients read them: iPXE's chain script, then GRUB,
        // then pxelinux (the one `configured_os` reads back).
        for path in [
            self.ipxe_record_path(node),
            self.grub_record_path(node),
            self.record_path(node),
        ] {
            let result = match fs::remove_file(&path) {
                Ok(()) => {
                    removed = true;
                    let dir = path.parent().unwrap_or(&self.root);
                    sync_dir(dir).map_err(PxeError::io("fsync", dir))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(PxeError::io("remove", &path)(e)),
            };
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }

    /// Remove the node's dedicated records (rmbootrecord). Fails with
    /// [`PxeError::NoRecord`] when there was none of any kind.
    pub fn remove(&self, node: &Node) -> Result<(), PxeError> {
        Self::check_mac(node)?;
        let removed = self.remove_records(node)?;
        if !removed {
            return Err(PxeError::NoRecord {
                node: node.node.clone(),
                path: self.record_path(node),
            });
        }
        tracing::info!(node = %node.node, "boot records removed");
        Ok(())
    }

    /// The OS the node's record names (`# os=` header), or the original's
    /// phrases when there is no record ([`DEFAULT_CONFIG_USED`]) or it names
    /// none ([`DEDICATED_UNDEFINED`]).
    pub fn configured_os(&self, node: &Node) -> String {
        if Self::check_mac(node).is_err() {
            return DEFAULT_CONFIG_USED.into();
        }
        match fs::read_to_string(self.record_path(node)) {
            Ok(text) => text
                .lines()
                .find_map(|l| l.split_once("os=").map(|(_, v)| v.trim().to_owned()))
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| DEDICATED_UNDEFINED.into()),
            Err(_) => DEFAULT_CONFIG_USED.into(),
        }
    }

    /// `{"os": ..., "pxe_file": ...}` of `GET /node/<name>` and `GET /nodes`.
    pub fn pxe_info(&self, node: &Node) -> PxeInfo {
        PxeInfo {
            os: self.configured_os(node),
            pxe_file: self.record_path(node).display().to_string(),
        }
    }
}

/// Whitespace runs (newlines included) as single spaces, control
/// characters dropped: a value from the lab config stays on its line.
fn one_line(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(|c: char| c.is_control(), "")
}

fn render_pxelinux(node: &str, os: &str, entry: &Entry) -> String {
    // Layout and blank lines as the original wrote them.
    let mut s = format!(
        "# os={os}\n# node={node}\n\n\nDEFAULT menu.c32\nPROMPT 0\nTIMEOUT 100\nMENU TIMEOUTROW 20\n\n"
    );
    match entry {
        Entry::Local => s.push_str(
            "\n\nLABEL local\n  MENU LABEL Boot local hard drive\n  LOCALBOOT -1\n  MENU DEFAULT\n\n",
        ),
        Entry::Maintenance {
            kernel,
            initrd,
            append,
        } => s.push_str(&format!(
            "\n\nLABEL maintenance_image\n  MENU DEFAULT\n  KERNEL {kernel}\n  INITRD {initrd}\n  APPEND {append}\n  MENU DEFAULT\n\n\n\
             LABEL memtest86\n  MENU LABEL Memtest86+ 5.01\n  KERNEL /boot/memtest86+-5.01\n\n"
        )),
        Entry::Image {
            kernel,
            initrd,
            append,
        } => s.push_str(&format!(
            "\n\nLABEL oem linux\n  KERNEL {kernel}\n  INITRD {initrd}\n  APPEND {append}\n  MENU DEFAULT\n\n"
        )),
    }
    s.push_str("\n\nLABEL mainmenu\n  MENU LABEL Main Menu\n  KERNEL menu.c32\n  APPEND pxelinux.cfg/default\n\n");
    s
}

/// One GRUB word: kept bare when it has no shell-like metacharacters,
/// else single-quoted.
fn grub_word(w: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_.,:/=+@%()".contains(c);
    if !w.is_empty() && w.chars().all(safe) {
        w.to_owned()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

fn grub_args(append: &str) -> String {
    append
        .split_whitespace()
        .map(grub_word)
        .collect::<Vec<_>>()
        .join(" ")
}

fn render_grub(node: &str, os: &str, entry: &Entry) -> String {
    // Same menu as pxelinux: one default entry, 10 s timeout, main menu.
    let (id, title) = entry.menu();
    let mut s = format!("# os={os}\n# node={node}\n\nset timeout=10\nset default={id}\n\n");
    let body = match entry.boot() {
        None => {
            s.push_str("# Leave GRUB: the firmware boots the next entry, the local disk.\n");
            "  exit\n".to_owned()
        }
        Some((kernel, initrd, append)) => format!(
            "  linux (tftp)/{} {}\n  initrd (tftp)/{}\n",
            grub_word(kernel),
            grub_args(append),
            grub_word(initrd)
        ),
    };
    s.push_str(&format!("menuentry '{title}' --id {id} {{\n{body}}}\n"));
    s.push_str("\nmenuentry 'Main Menu' --id mainmenu {\n  configfile $prefix/grub.cfg\n}\n");
    s
}

fn render_ipxe(node: &str, os: &str, entry: &Entry) -> String {
    let (label, title) = entry.menu();
    // Paths starting with '/' resolve against this script's own URI
    // (tftp://<server>/ipxe/...), i.e. the TFTP root, like pxelinux's.
    let mut s = format!(
        "#!ipxe\n# os={os}\n# node={node}\n\n\
         menu Pelagos: {node}\n\
         item {label} {title}\n\
         item mainmenu Main Menu\n\
         choose --default {label} --timeout 10000 target || set target {label}\n\
         goto ${{target}}\n\n:{label}\n"
    );
    match entry.boot() {
        // Back to the firmware, which boots the next device: the local disk.
        None => s.push_str("exit\n"),
        Some((kernel, initrd, append)) => {
            let initrd_name = initrd.rsplit('/').next().unwrap_or(initrd);
            s.push_str(&format!(
                "kernel /{kernel} initrd={initrd_name} {append}\ninitrd /{initrd}\nboot\n"
            ));
        }
    }
    s.push_str("\n:mainmenu\nchain default.ipxe\n");
    s
}
