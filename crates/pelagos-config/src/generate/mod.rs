//! The service files generated from a lab config (what `make-cfgs` writes).
//!
//! ```
//! use pelagos_config::{LabConfig, generate::{self, Kind, Options}};
//! let lab = LabConfig::parse(r#"{ "domain": "lab.example", "nodes": [
//!     { "node": "n1.lab.example", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.1",
//!       "ip_type": "dynamic" } ] }"#).unwrap();
//! let target = std::path::Path::new("/nonexistent");
//! let out = generate::render_all(&lab, &Options::only([Kind::Dnsmasq]), target).unwrap();
//! assert_eq!(out[0].contents, "dhcp-host=aa:bb:cc:dd:ee:01,n1,10.0.0.1\n\
//!                              ptr-record=1.0.0.10.in-addr.arpa,n1.lab.example\n");
//! ```
//!
//! Each output is rendered from a [tera](https://keats.github.io/tera/)
//! template embedded in the crate. A file in the target directory overrides it:
//!
//! | kind      | written to (relative to the target dir)           | override template                  |
//! |-----------|----------------------------------------------------|------------------------------------|
//! | `dnsmasq` | `states/etc/dnsmasq/dnsmasq.d/network_nodes.conf`  | `templates/dnsmasq.tera`           |
//! | `conman`  | `states/etc/conman.conf` (mode 0600)               | `templates/conman.tera`, else `states/etc/conman.conf.tmpl` |
//! |           | (its CONSOLE lines)                                | `templates/conman-consoles.tera`   |
//! | `roster`  | `deploy.roster`                                    | `templates/roster.tera`            |
//! | `sql`     | `sql/nodes.sql`                                    | `templates/sql.tera`               |
//! | `udev`    | `udev/70-persistent-net.rules`                     | `templates/udev.tera`              |
//!
//! The original's `states/etc/conman.conf.tmpl` keeps working: when it exists
//! (and `templates/conman.tera` does not) it is copied with its `@@CONSOLES@@`
//! placeholder replaced by the CONSOLE lines. The embedded templates (in
//! `src/generate/templates/`) document the context each one receives, and
//! are where an override starts from; the `yaml`, `sql` and `conman_quote`
//! filters quote values for their format.
//!
//! Without an override, an output is written line by line by its module
//! (`dnsmasq`, `conman`, `roster`, `sql`, `udev`), exactly as its embedded
//! template renders (a test renders both and compares); only `conman.conf`'s
//! frame always goes through tera. Override templates are parsed once per
//! [`render_all`] and get the same context lists as before; [`write_all`]
//! writes the files on parallel threads (`cargo bench -p pelagos-config`
//! prints the figures for a 10,000-node lab).
//!
//! `conman.conf` necessarily holds the BMC password (conmand needs it), so it
//! is written mode 0600 from its first byte.
//!
//! Where the original `bin/make_cfgs.py` was buggy or vague, this module:
//! - writes the high-speed NIC record as `dhcp-host=<mac1>[,<mac2>...],<short>-hsm,<ip>`
//!   (dnsmasq gives the address to whichever listed MAC asks; the original printed a
//!   Python list) and gives its `ptr-record` the domain like the others;
//! - writes a `ptr-record` name as `<short>.<domain>`, or just `<short>` when
//!   the lab has no `domain` (the original wrote `<short>.`);
//! - puts the space before `IPMIOPTS`, adds `C:<cipher_suite>` when the node sets one,
//!   writes `IPMIOPTS` only for `ipmi:` devices, and leaves out nodes with
//!   neither a `bmc_ip` nor a `console_dev` (the original wrote `dev="ipmi:"`);
//! - writes one CONSOLE line per node without blank lines between them;
//! - quotes every roster value, uses the node's provision address (`boot_ip`,
//!   else `ip`), adds `port:` for a non-22 `ssh_port`, and leaves out nodes with no address;
//! - includes in the SQL every node whose `t_exclude` is not yes (the original also
//!   dropped nodes without a `t_exclude` key), escapes values, writes `t_arch`
//!   (default `x86-64`), `NULL` for a missing MAC, and wraps the script in one transaction;
//!   with `sql_upsert` an existing row gets the new machine_type, mac_address, arch and
//!   description, never a new `locked` or `is_vm` (those are paddles' own state);
//! - writes an empty dnsmasq file for a lab without dynamic addresses (the original
//!   wrote two blank lines);
//! - writes every MAC lower-case and colon-separated (as the kernel reports it);
//! - writes udev rules for a `hsm_mac` given as one string too (the original only
//!   for lists), without trailing blanks, and nothing for a node without MACs;
//! - writes nothing at all when the lab does not validate.

mod conman;
mod dnsmasq;
mod quote;
mod roster;
mod sql;
mod templates;
mod udev;

pub use quote::{conman_quote, sql_literal, yaml_quote};
pub use templates::{LEGACY_CONMAN_TEMPLATE, override_path};

use crate::atomic;
use crate::mac::MacAddr;
use crate::model::LabConfig;
use crate::validate::{self, Problem};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use templates::Templates;

/// One generated file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// dnsmasq's `states/etc/dnsmasq/dnsmasq.d/network_nodes.conf`: a
    /// `dhcp-host` and a `ptr-record` per dynamic address (`ip`, `bmc_ip`,
    /// `hsm_ip` with their MACs; `domain` for the PTR names).
    Dnsmasq,
    /// conmand's `states/etc/conman.conf` (mode 0600: it holds
    /// `ipmi_pass`): one CONSOLE line per node with a `bmc_ip` or a
    /// `console_dev`, logs in `conman_log_dir`.
    Conman,
    /// salt-ssh's `deploy.roster`: each node with an address (`boot_ip`,
    /// else `ip`; `ssh_port` when not 22), user `root`.
    Roster,
    /// teuthology's `sql/nodes.sql`: a paddles `nodes` row per node whose
    /// `t_exclude` is not yes (`t_machine_type`, `mac`, `t_arch`, `comment`).
    Sql,
    /// `udev/70-persistent-net.rules`: `eth0` for the node's `mac`, `eth2`,
    /// `eth3`, ... for its `hsm_mac`s.
    Udev,
}

impl Kind {
    /// Every kind, in the order make-cfgs renders and writes them by
    /// default ([`Options::default`]).
    pub const ALL: [Kind; 5] = [
        Kind::Dnsmasq,
        Kind::Conman,
        Kind::Roster,
        Kind::Sql,
        Kind::Udev,
    ];

    /// The name used by `--only` and in template file names.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Dnsmasq => "dnsmasq",
            Kind::Conman => "conman",
            Kind::Roster => "roster",
            Kind::Sql => "sql",
            Kind::Udev => "udev",
        }
    }

    /// Where the file goes, relative to the target directory.
    pub fn rel_path(self) -> &'static str {
        match self {
            Kind::Dnsmasq => "states/etc/dnsmasq/dnsmasq.d/network_nodes.conf",
            Kind::Conman => "states/etc/conman.conf",
            Kind::Roster => "deploy.roster",
            Kind::Sql => "sql/nodes.sql",
            Kind::Udev => "udev/70-persistent-net.rules",
        }
    }

    /// Unix permission bits of the written file.
    pub fn mode(self) -> u32 {
        match self {
            Kind::Conman => 0o600,
            _ => 0o644,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = GenerateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s.trim())
            .ok_or_else(|| GenerateError::UnknownKind(s.to_owned()))
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The outputs, in this order. Default: all of [`Kind::ALL`].
    pub kinds: Vec<Kind>,
    /// `sql/nodes.sql` updates existing rows (`ON CONFLICT (name) DO UPDATE`),
    /// so the script can be loaded again after the lab changed.
    pub sql_upsert: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            kinds: Kind::ALL.to_vec(),
            sql_upsert: false,
        }
    }
}

impl Options {
    /// Just these kinds, in [`Kind::ALL`] order, without duplicates.
    pub fn only(kinds: impl IntoIterator<Item = Kind>) -> Self {
        let mut kinds: Vec<Kind> = kinds.into_iter().collect();
        kinds.sort();
        kinds.dedup();
        Self {
            kinds,
            ..Self::default()
        }
    }

    /// Parse a `--only` list such as `dnsmasq,conman`.
    pub fn parse_kinds(list: &str) -> Result<Vec<Kind>, GenerateError> {
        list.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(str::parse)
            .collect()
    }
}

/// One rendered file. `Debug` leaves out the contents (conman.conf holds the
/// BMC password).
#[derive(Clone, PartialEq, Eq)]
pub struct Output {
    /// Which file this is.
    pub kind: Kind,
    /// Relative to the target directory ([`Kind::rel_path`]).
    pub rel_path: PathBuf,
    /// The whole file, as [`write_all`] writes it (for `conman.conf`, with
    /// the BMC password in clear).
    pub contents: String,
    /// Unix permission bits ([`Kind::mode`]).
    pub mode: u32,
    /// The template it came from: `embedded <name>.tera`, or the path of
    /// the override file (or of the legacy `conman.conf.tmpl`).
    pub template: String,
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("kind", &self.kind)
            .field("rel_path", &self.rel_path)
            .field("contents", &format_args!("<{} bytes>", self.contents.len()))
            .field("mode", &format_args!("{:o}", self.mode))
            .field("template", &self.template)
            .finish()
    }
}

/// Why the files could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The lab does not validate (any problem, lab-wide or of one node):
    /// nothing is rendered.
    #[error("lab config has {} problem(s), no file generated:\n{}", problems.len(), validate::render(problems))]
    Invalid {
        /// Every problem of the lab, as [`LabConfig::validate`] reports them.
        problems: Vec<Problem>,
    },
    /// A name in a `--only` list ([`Options::parse_kinds`]) that is not a
    /// [`Kind::name`]; it holds the name as given.
    #[error("unknown output kind \"{0}\" (expected dnsmasq, conman, roster, sql or udev)")]
    UnknownKind(String),
    /// An override template (or the legacy `conman.conf.tmpl`) exists in
    /// the target directory but cannot be read.
    #[error("cannot read template {path}: {source}")]
    ReadTemplate {
        /// The template file.
        path: PathBuf,
        /// Why reading it failed.
        #[source]
        source: std::io::Error,
    },
    /// A template that does not parse or fails to render; `message` carries
    /// tera's report with the line and column.
    #[error("template {template}: {message}")]
    Template {
        /// The template: `embedded <name>.tera` or the override file's path.
        template: String,
        /// tera's report (or the quoting filter's) of what failed.
        message: String,
    },
    /// A value the output format cannot represent.
    #[error("{} field `{field}` = \"{value}\" cannot be written to {kind}: {message}", node.as_ref().map(|n| format!("node [{n}]")).unwrap_or_else(|| "lab".into()))]
    Unrepresentable {
        /// The file the value was to go into (`conman`, `sql`).
        kind: Kind,
        /// The node whose value it is; `None` for a top-level key
        /// (`ipmi_user`, `ipmi_pass`).
        node: Option<String>,
        /// The lab config key (e.g. `console_dev`, `t_arch`), or
        /// `ipmi_user and ipmi_pass` when only the two together cannot be
        /// quoted.
        field: String,
        /// The value, or `********` for a secret.
        value: String,
        /// Why the format cannot hold it (e.g. a comma in an `IPMIOPTS`
        /// value, a value wider than its paddles column).
        message: String,
    },
    /// A generated file (or its directory) could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file, under the target directory.
        path: PathBuf,
        /// Why creating its directory, writing, renaming or syncing failed.
        #[source]
        source: std::io::Error,
    },
}

/// Render every output of `opts` for `lab`; override templates are looked
/// up in `target_dir` (see the module docs). Nothing is written. A lab that
/// does not validate is an error listing all its problems.
pub fn render_all(
    lab: &LabConfig,
    opts: &Options,
    target_dir: &Path,
) -> Result<Vec<Output>, GenerateError> {
    let problems = lab.validate();
    if !problems.is_empty() {
        return Err(GenerateError::Invalid { problems });
    }
    let templates = Templates::load(target_dir, &opts.kinds)?;
    opts.kinds
        .iter()
        .map(|&kind| {
            let (contents, template) = match kind {
                Kind::Dnsmasq => dnsmasq::render(lab, &templates)?,
                Kind::Conman => conman::render(lab, &templates)?,
                Kind::Roster => roster::render(lab, &templates)?,
                Kind::Sql => sql::render(lab, opts.sql_upsert, &templates)?,
                Kind::Udev => udev::render(lab, &templates)?,
            };
            Ok(Output {
                kind,
                rel_path: PathBuf::from(kind.rel_path()),
                contents,
                mode: kind.mode(),
                template,
            })
        })
        .collect()
}

/// Output buffer size for `per_node` bytes per node: sizing it up front
/// saves re-copying megabytes while a big lab renders.
fn hint(lab: &LabConfig, per_node: usize) -> usize {
    1024 + per_node * lab.nodes.len()
}

/// Write `outputs` under `target_dir`, each atomically (temp file + rename)
/// with its mode, creating directories. Returns the written paths, in order.
/// The files are written on parallel threads: each waits for its `fsync`.
pub fn write_all(outputs: &[Output], target_dir: &Path) -> Result<Vec<PathBuf>, GenerateError> {
    let write = |o: &Output| {
        let path = target_dir.join(&o.rel_path);
        atomic::write_atomic_mode(&path, o.contents.as_bytes(), o.mode).map_err(|source| {
            GenerateError::Write {
                path: path.clone(),
                source,
            }
        })?;
        tracing::debug!(path = %path.display(), kind = %o.kind, "generated file written");
        Ok(path)
    };
    if outputs.len() < 2 {
        return outputs.iter().map(write).collect();
    }
    std::thread::scope(|s| {
        let threads: Vec<_> = outputs.iter().map(|o| s.spawn(move || write(o))).collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Append `mac` as every output writes it: lower-case, colon-separated
/// ([`MacAddr`]'s `Display`).
fn push_mac(out: &mut String, mac: &MacAddr) {
    use std::fmt::Write;
    let _ = write!(out, "{mac}");
}
