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
//! `src/generate/templates/`) document the context each one receives; the
//! `yaml`, `sql` and `conman_quote` filters quote values for their format.
//!
//! Templates are parsed once per [`render_all`]; a lab of 1,000 nodes or more
//! renders its outputs on two threads, and [`write_all`] writes the files on
//! parallel threads. The context lists are built record by record from reused
//! buffers and the filters quote into a reused buffer, so rendering allocates
//! little beyond tera's own values (`cargo bench -p pelagos-config` prints the
//! figures for a 10,000-node lab).
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

mod quote;

pub use quote::{conman_quote, sql_literal, yaml_quote};
use quote::{push_conman_quote, push_sql_literal, push_yaml_quote};

use crate::atomic;
use crate::model::{IpType, LabConfig, Node};
use crate::validate::{self, Problem};
use serde::Serialize;
use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// One generated file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Dnsmasq,
    Conman,
    Roster,
    Sql,
    Udev,
}

impl Kind {
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
    pub kind: Kind,
    /// Relative to the target directory.
    pub rel_path: PathBuf,
    pub contents: String,
    /// Unix permission bits.
    pub mode: u32,
    /// The template it came from: `embedded` or the override file's path.
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
    #[error("lab config has {} problem(s), no file generated:\n{}", problems.len(), validate::render(problems))]
    Invalid { problems: Vec<Problem> },
    #[error("unknown output kind \"{0}\" (expected dnsmasq, conman, roster, sql or udev)")]
    UnknownKind(String),
    #[error("cannot read template {path}: {source}")]
    ReadTemplate {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A template that does not parse or fails to render; `message` carries
    /// tera's report with the line and column.
    #[error("template {template}: {message}")]
    Template { template: String, message: String },
    /// A value the output format cannot represent.
    #[error("{} field `{field}` = \"{value}\" cannot be written to {kind}: {message}", node.as_ref().map(|n| format!("node [{n}]")).unwrap_or_else(|| "lab".into()))]
    Unrepresentable {
        kind: Kind,
        node: Option<String>,
        field: String,
        /// The value, or `********` for a secret.
        value: String,
        message: String,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

const EMBEDDED: &str = "embedded";

fn embedded(name: &str) -> &'static str {
    match name {
        "dnsmasq" => include_str!("templates/dnsmasq.tera"),
        "conman" => include_str!("templates/conman.tera"),
        "conman-consoles" => include_str!("templates/conman-consoles.tera"),
        "roster" => include_str!("templates/roster.tera"),
        "sql" => include_str!("templates/sql.tera"),
        "udev" => include_str!("templates/udev.tera"),
        _ => unreachable!("no embedded template {name}"),
    }
}

/// The override path of template `name` (`conman-consoles` or a [`Kind`] name).
pub fn override_path(target_dir: &Path, name: &str) -> PathBuf {
    target_dir.join("templates").join(format!("{name}.tera"))
}

/// The original's conman template, used when `templates/conman.tera` is absent.
pub const LEGACY_CONMAN_TEMPLATE: &str = "states/etc/conman.conf.tmpl";
const CONSOLES_PLACEHOLDER: &str = "@@CONSOLES@@";

/// The templates of one generation run, each parsed once.
struct Templates {
    tera: tera::Tera,
    /// Template name -> where it came from.
    origins: Vec<(String, String)>,
    /// The legacy `conman.conf.tmpl` text and path, when it is used.
    legacy_conman: Option<(String, PathBuf)>,
}

impl Templates {
    fn load(target_dir: &Path, kinds: &[Kind]) -> Result<Self, GenerateError> {
        let mut t = Templates {
            tera: tera::Tera::new(),
            origins: Vec::new(),
            legacy_conman: None,
        };
        t.tera.autoescape_on(Vec::<&str>::new());
        // The filters quote into one reused buffer and return a tera value
        // built from it (stored inline up to 21 bytes): no allocation per call.
        t.tera
            .register_filter("yaml", |v: &str, _: tera::Kwargs, _: &tera::State| {
                with_buf(|b| {
                    push_yaml_quote(b, v);
                    Ok(())
                })
            });
        t.tera.register_filter(
            "sql",
            |v: &tera::Value, _: tera::Kwargs, _: &tera::State| -> tera::TeraResult<tera::Value> {
                with_buf(|b| {
                    if v.is_none() || v.is_undefined() {
                        push_sql_literal(b, None)
                    } else if let Some(s) = v.as_str() {
                        push_sql_literal(b, Some(s))
                    } else {
                        push_sql_literal(b, Some(&v.to_string()))
                    }
                })
            },
        );
        t.tera.register_filter(
            "conman_quote",
            |v: &str, _: tera::Kwargs, _: &tera::State| -> tera::TeraResult<tera::Value> {
                // The value is not echoed: it may hold the BMC password.
                with_buf(|b| push_conman_quote(b, v))
            },
        );
        for &kind in kinds {
            if kind == Kind::Conman {
                t.add(target_dir, "conman-consoles")?;
                let legacy = target_dir.join(LEGACY_CONMAN_TEMPLATE);
                if !override_path(target_dir, "conman").exists() && legacy.exists() {
                    let text = std::fs::read_to_string(&legacy).map_err(|source| {
                        GenerateError::ReadTemplate {
                            path: legacy.clone(),
                            source,
                        }
                    })?;
                    if !text.contains(CONSOLES_PLACEHOLDER) {
                        tracing::warn!(template = %legacy.display(), "conman template has no @@CONSOLES@@ placeholder: no consoles written");
                    }
                    if !text.contains("console.%N") {
                        tracing::warn!(template = %legacy.display(), "conman template does not name logs console.%N: the console watcher will not find them");
                    }
                    t.legacy_conman = Some((text, legacy));
                    continue;
                }
            }
            t.add(target_dir, kind.name())?;
        }
        Ok(t)
    }

    fn add(&mut self, target_dir: &Path, name: &str) -> Result<(), GenerateError> {
        let path = override_path(target_dir, name);
        let (text, origin) = match std::fs::read_to_string(&path) {
            Ok(text) => (text, path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (embedded(name).to_owned(), format!("{EMBEDDED} {name}.tera"))
            }
            Err(source) => return Err(GenerateError::ReadTemplate { path, source }),
        };
        self.tera
            .add_raw_template(name, &text)
            .map_err(|e| GenerateError::Template {
                template: origin.clone(),
                message: e.to_string(),
            })?;
        self.origins.push((name.to_owned(), origin));
        Ok(())
    }

    fn origin(&self, name: &str) -> String {
        self.origins
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, o)| o.clone())
            .unwrap_or_else(|| name.to_owned())
    }

    /// Render `name`; `size_hint` (bytes) sizes the output buffer up front,
    /// which saves re-copying megabytes while a big lab renders.
    fn render(
        &self,
        name: &str,
        ctx: &tera::Context,
        size_hint: usize,
    ) -> Result<String, GenerateError> {
        let fail = |message: String| GenerateError::Template {
            template: self.origin(name),
            message,
        };
        let mut buf = Vec::with_capacity(size_hint);
        self.tera
            .render_to(name, ctx, &mut buf)
            .map_err(|e| fail(error_chain(&e)))?;
        String::from_utf8(buf).map_err(|e| fail(e.to_string()))
    }
}

thread_local! {
    static QUOTE_BUF: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Run a quoting function on this thread's reused buffer; the result as a
/// tera value.
fn with_buf(
    f: impl FnOnce(&mut String) -> Result<(), &'static str>,
) -> tera::TeraResult<tera::Value> {
    QUOTE_BUF.with_borrow_mut(|b| {
        b.clear();
        f(b).map_err(tera::Error::message)?;
        Ok(tera::Value::from(b.as_str()))
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Render every output of `opts` for `lab`; templates are looked up in
/// `target_dir` (see the module docs). Nothing is written. A lab that does
/// not validate is an error listing all its problems.
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
    let render_one = |kind: Kind| -> Result<Output, GenerateError> {
        let (contents, template) = match kind {
            Kind::Dnsmasq => (
                templates.render("dnsmasq", &dnsmasq_context(lab), hint(lab, 200))?,
                templates.origin("dnsmasq"),
            ),
            Kind::Conman => render_conman(lab, &templates)?,
            Kind::Roster => (
                templates.render("roster", &roster_context(lab), hint(lab, 80))?,
                templates.origin("roster"),
            ),
            Kind::Sql => (
                templates.render(
                    "sql",
                    &sql_context(lab, opts.sql_upsert)?,
                    hint(lab, if opts.sql_upsert { 400 } else { 200 }),
                )?,
                templates.origin("sql"),
            ),
            Kind::Udev => (
                templates.render("udev", &udev_context(lab), hint(lab, 200))?,
                templates.origin("udev"),
            ),
        };
        Ok(Output {
            kind,
            rel_path: PathBuf::from(kind.rel_path()),
            contents,
            mode: kind.mode(),
            template,
        })
    };
    // Big lab: the outputs are independent. One helper thread takes the
    // dnsmasq and udev files (about half the work), this thread the rest.
    let (side, here): (Vec<Kind>, Vec<Kind>) = opts
        .kinds
        .iter()
        .partition(|k| matches!(k, Kind::Dnsmasq | Kind::Udev));
    if lab.nodes.len() < PARALLEL_FROM || side.is_empty() || here.is_empty() {
        return opts.kinds.iter().map(|&k| render_one(k)).collect();
    }
    let (side_out, here_out) = std::thread::scope(|s| {
        let helper = s.spawn(|| {
            side.iter()
                .map(|&k| render_one(k))
                .collect::<Result<Vec<_>, _>>()
        });
        let here_out = here
            .iter()
            .map(|&k| render_one(k))
            .collect::<Result<Vec<_>, _>>();
        let side_out = helper
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (side_out, here_out)
    });
    let mut all = here_out?;
    all.extend(side_out?);
    // Back in the order asked for.
    all.sort_by_key(|o| opts.kinds.iter().position(|k| *k == o.kind));
    Ok(all)
}

/// Labs from this many nodes render their outputs on parallel threads.
const PARALLEL_FROM: usize = 1000;

/// Output buffer size for `per_node` bytes per node.
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

/// A MAC as every output writes it: lower-case, colon-separated (validation
/// also accepts upper case and dashes).
fn norm_mac(mac: &str) -> Cow<'_, str> {
    if mac.bytes().any(|b| b.is_ascii_uppercase() || b == b'-') {
        Cow::Owned(mac.to_ascii_lowercase().replace('-', ":"))
    } else {
        Cow::Borrowed(mac)
    }
}

/// Append the PTR name of `ip`: `1.2.3.4` -> `4.3.2.1.in-addr.arpa`.
fn push_reverse_name(out: &mut String, ip: &str) {
    for (i, part) in ip.rsplit('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(part);
    }
    out.push_str(".in-addr.arpa");
}

/// Append `mac` as every output writes it (see [`norm_mac`]).
fn push_norm_mac(out: &mut String, mac: &str) {
    out.extend(mac.chars().map(|c| match c {
        '-' => ':',
        c => c.to_ascii_lowercase(),
    }));
}

/// One record of a template list, as a tera value. The context lists are
/// built record by record from borrowed strings (reused buffers), without an
/// owned copy of each field first.
fn record<T: Serialize>(r: &T) -> tera::Value {
    tera::Value::from_serializable(r)
}

#[derive(Serialize)]
struct DhcpHost<'a> {
    macs: &'a str,
    name: &'a str,
    ip: &'a str,
}

#[derive(Serialize)]
struct PtrRecord<'a> {
    reverse: &'a str,
    name: &'a str,
}

/// Each dynamic address of the lab: `f(macs, name, ip)`, in file order.
fn for_each_dynamic(lab: &LabConfig, mut f: impl FnMut(&str, &str, &str)) {
    let (mut macs, mut name) = (String::new(), String::new());
    for n in &lab.nodes {
        for (which, t) in [n.ip_type, n.bmc_ip_type, n.hsm_ip_type]
            .into_iter()
            .enumerate()
        {
            if t != IpType::Dynamic {
                continue;
            }
            macs.clear();
            name.clear();
            name.push_str(n.short_name());
            let ip = match which {
                0 => {
                    push_norm_mac(&mut macs, &n.mac);
                    &n.ip
                }
                1 => {
                    push_norm_mac(&mut macs, &n.bmc_mac);
                    name.push_str("-bmc");
                    &n.bmc_ip
                }
                _ => {
                    for (i, m) in n.hsm_mac.iter().enumerate() {
                        if i > 0 {
                            macs.push(',');
                        }
                        push_norm_mac(&mut macs, m);
                    }
                    name.push_str("-hsm");
                    &n.hsm_ip
                }
            };
            f(&macs, &name, ip);
        }
    }
}

fn dnsmasq_context(lab: &LabConfig) -> tera::Context {
    // One list after the other (rather than both in one pass), so that each
    // list's records lie together in memory while the template walks it.
    let mut hosts = Vec::with_capacity(2 * lab.nodes.len());
    for_each_dynamic(lab, |macs, name, ip| {
        hosts.push(record(&DhcpHost { macs, name, ip }));
    });
    let mut ptrs = Vec::with_capacity(hosts.len());
    let (mut reverse, mut fqdn) = (String::new(), String::new());
    for_each_dynamic(lab, |_, name, ip| {
        reverse.clear();
        push_reverse_name(&mut reverse, ip);
        fqdn.clear();
        fqdn.push_str(name);
        if !lab.domain.is_empty() {
            fqdn.push('.');
            fqdn.push_str(&lab.domain);
        }
        ptrs.push(record(&PtrRecord {
            reverse: &reverse,
            name: &fqdn,
        }));
    });
    let mut ctx = tera::Context::new();
    ctx.insert_value("dhcp_hosts", tera::Value::from(hosts));
    ctx.insert_value("ptr_records", tera::Value::from(ptrs));
    ctx.insert("domain", &lab.domain);
    ctx
}

#[derive(Serialize)]
struct Console<'a> {
    name: &'a str,
    dev: &'a str,
    ipmiopts: &'a str,
}

fn render_conman(lab: &LabConfig, t: &Templates) -> Result<(String, String), GenerateError> {
    let unrepresentable = |node: Option<&Node>, field: &str, value: &str, message: &str| {
        GenerateError::Unrepresentable {
            kind: Kind::Conman,
            node: node.map(|n| n.node.clone()),
            field: field.into(),
            value: value.into(),
            message: message.into(),
        }
    };
    // IPMIOPTS is a comma-separated list inside one conman string.
    let pass = lab.ipmi_pass.expose();
    if pass.contains(',') {
        return Err(unrepresentable(
            None,
            "ipmi_pass",
            "********",
            "IPMIOPTS values cannot contain a comma",
        ));
    }
    if let Err(e) = conman_quote(pass) {
        return Err(unrepresentable(None, "ipmi_pass", "********", e));
    }
    if lab.ipmi_user.contains(',') {
        return Err(unrepresentable(
            None,
            "ipmi_user",
            &lab.ipmi_user,
            "IPMIOPTS values cannot contain a comma",
        ));
    }
    // User and password share one IPMIOPTS string: together they must be quotable.
    if let Err(e) = conman_quote(&format!("{}{pass}", lab.ipmi_user)) {
        return Err(unrepresentable(
            None,
            "ipmi_user and ipmi_pass",
            "********",
            e,
        ));
    }
    let mut consoles = Vec::with_capacity(lab.nodes.len());
    let (mut dev, mut ipmiopts) = (String::new(), String::new());
    for n in &lab.nodes {
        if n.console_dev.is_none() && n.bmc_ip.is_empty() {
            tracing::debug!(node = %n.node, "no bmc_ip nor console_dev: no conman console");
            continue;
        }
        dev.clear();
        match &n.console_dev {
            Some(d) => dev.push_str(d),
            None => {
                dev.push_str("ipmi:");
                dev.push_str(&n.bmc_ip);
            }
        }
        if let Err(e) = quote::conman_quote_char(&dev) {
            return Err(unrepresentable(Some(n), "console_dev", &dev, e));
        }
        ipmiopts.clear();
        if dev.starts_with("ipmi:") {
            ipmiopts.push_str("U:");
            ipmiopts.push_str(&lab.ipmi_user);
            ipmiopts.push_str(",P:");
            ipmiopts.push_str(pass);
            if let Some(cs) = n.cipher_suite {
                use std::fmt::Write;
                let _ = write!(ipmiopts, ",C:{cs}");
            }
        }
        consoles.push(record(&Console {
            name: n.short_name(),
            dev: &dev,
            ipmiopts: &ipmiopts,
        }));
    }
    let mut ctx = tera::Context::new();
    ctx.insert_value("consoles", tera::Value::from(consoles));
    ctx.insert("conman_log_dir", &lab.conman_log_dir);
    let lines = t.render("conman-consoles", &ctx, hint(lab, 100))?;
    if let Some((text, path)) = &t.legacy_conman {
        let block = lines.strip_suffix('\n').unwrap_or(&lines);
        return Ok((
            text.replace(CONSOLES_PLACEHOLDER, block),
            path.display().to_string(),
        ));
    }
    ctx.insert("console_lines", &lines);
    Ok((
        t.render("conman", &ctx, lines.len() + 1024)?,
        t.origin("conman"),
    ))
}

#[derive(Serialize)]
struct RosterHost<'a> {
    name: &'a str,
    host: &'a str,
    port: u16,
}

fn roster_context(lab: &LabConfig) -> tera::Context {
    let hosts: Vec<RosterHost> = lab
        .nodes
        .iter()
        .filter(|n| !n.provision_ip().is_empty())
        .map(|n| RosterHost {
            name: &n.node,
            host: n.provision_ip(),
            port: n.ssh_port,
        })
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("hosts", &hosts);
    ctx.insert("user", "root");
    ctx
}

#[derive(Serialize)]
struct SqlRow<'a> {
    name: &'a str,
    machine_type: &'a str,
    mac_address: Option<Cow<'a, str>>,
    arch: &'a str,
    description: &'a str,
}

/// paddles column widths (`varchar(n)`): a longer value would fail the load.
const SQL_WIDTHS: [(&str, usize); 4] = [
    ("node", 256),
    ("t_machine_type", 32),
    ("t_arch", 16),
    ("mac", 17),
];

fn sql_context(lab: &LabConfig, upsert: bool) -> Result<tera::Context, GenerateError> {
    let mut rows = Vec::new();
    for n in lab.nodes.iter().filter(|n| !n.t_exclude) {
        for (field, width) in SQL_WIDTHS {
            let value = match field {
                "node" => &n.node,
                "t_machine_type" => &n.t_machine_type,
                "t_arch" => &n.t_arch,
                _ => &n.mac,
            };
            let too_long = value.chars().count() > width;
            let nul = value.contains('\0') || n.comment.contains('\0');
            if too_long || nul {
                return Err(GenerateError::Unrepresentable {
                    kind: Kind::Sql,
                    node: Some(n.node.clone()),
                    field: if too_long {
                        field.into()
                    } else {
                        "comment".into()
                    },
                    value: if too_long {
                        value.clone()
                    } else {
                        n.comment.clone()
                    },
                    message: if too_long {
                        format!("longer than the paddles column ({width} characters)")
                    } else {
                        "a NUL character cannot be stored in PostgreSQL text".into()
                    },
                });
            }
        }
        rows.push(SqlRow {
            name: &n.node,
            machine_type: &n.t_machine_type,
            mac_address: (!n.mac.is_empty()).then(|| norm_mac(&n.mac)),
            arch: &n.t_arch,
            description: &n.comment,
        });
    }
    let mut ctx = tera::Context::new();
    ctx.insert("rows", &rows);
    ctx.insert("upsert", &upsert);
    Ok(ctx)
}

#[derive(Serialize)]
struct UdevNode<'a> {
    name: &'a str,
    rules: Vec<UdevRule<'a>>,
}

#[derive(Serialize)]
struct UdevRule<'a> {
    mac: Cow<'a, str>,
    ifname: Cow<'static, str>,
}

/// Management NIC name and the first high-speed NIC number, as the original.
const MGMT_NIC: &str = "eth0";
const HSM_START: usize = 2;

fn udev_context(lab: &LabConfig) -> tera::Context {
    let nodes: Vec<UdevNode> = lab
        .nodes
        .iter()
        .map(|n| {
            let mut rules = Vec::new();
            if !n.mac.is_empty() {
                rules.push(UdevRule {
                    mac: norm_mac(&n.mac),
                    ifname: Cow::Borrowed(MGMT_NIC),
                });
            }
            for (i, m) in n.hsm_mac.iter().enumerate() {
                rules.push(UdevRule {
                    mac: norm_mac(m),
                    ifname: Cow::Owned(format!("eth{}", HSM_START + i)),
                });
            }
            UdevNode {
                name: &n.node,
                rules,
            }
        })
        .filter(|u| !u.rules.is_empty())
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("nodes", &nodes);
    ctx
}
