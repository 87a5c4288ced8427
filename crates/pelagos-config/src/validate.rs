//! Lab checks. Every problem is collected, not just the first, so an admin
//! fixes a config in one pass.

use crate::mac::MacAddr;
use crate::model::{IpType, LabConfig, Node, string_list_items};
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::fmt;
use std::hash::Hash;
use std::net::Ipv4Addr;

/// One thing wrong with a lab config.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The node's name, or its index when it has none; `None` for top-level keys.
    pub node: Option<String>,
    /// The lab config key at fault, as written (`ip`, `sls_list`,
    /// `hsm_mac[1]` for one MAC of several); empty when the whole file could
    /// not be read or parsed.
    pub field: String,
    /// The offending value as the lab config wrote it; empty when there is
    /// none to show (a missing value, a count) and for a password, which is
    /// never shown.
    pub value: String,
    /// What is wrong, for an admin (e.g. `not an IPv4 address`).
    pub message: String,
    /// What the problem takes down: the whole lab, or its node only.
    pub scope: Scope,
}

/// What a [`Problem`] takes down. A server refuses a lab with a lab-wide
/// problem (an unparsable file, no nodes, a bad top-level key, two nodes
/// of one name) and starts on a lab whose problems all belong to single
/// nodes, with those nodes disabled ([`crate::LabConfig::disable_bad_nodes`]).
/// make-cfgs refuses both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The lab cannot be used.
    Lab,
    /// Only the named node cannot be used.
    Node,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(n) => write!(f, "node [{n}] field `{}`", self.field)?,
            // The whole file (it could not be read or parsed).
            None if self.field.is_empty() => return f.write_str(&self.message),
            None => write!(f, "field `{}`", self.field)?,
        }
        if !self.value.is_empty() {
            write!(f, " = \"{}\"", self.value)?;
        }
        write!(f, ": {}", self.message)
    }
}

pub(crate) fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Longest BMC user name IPMI v2 (and ipmitool) accepts, in bytes.
pub const IPMI_USER_MAX: usize = 16;
/// Longest BMC password IPMI v2 (and ipmitool) accepts, in bytes.
pub const IPMI_PASS_MAX: usize = 20;

/// Longest salt state name accepted, in bytes.
pub const SLS_NAME_MAX: usize = 128;
/// Most salt states one list may hold (a request's `extra_sls`, the lab's
/// `sls_list`).
pub const SLS_STATES_MAX: usize = 64;
/// What a salt state name may be, as error messages say it.
pub const SLS_NAME_ALLOWED: &str = "letters, digits, _ . -, not starting with - or .";

/// Why a salt state name (or a list of them) is refused; see
/// [`check_sls_name`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlsError {
    /// Not a state name; the value is shown quoted and escaped (`{:?}`),
    /// cut after 200 bytes.
    #[error("invalid salt state name {}{}", shown(value), name_rule(value))]
    Name {
        /// The refused name, whole (only its display is cut).
        value: String,
    },
    /// The list holds more than [`SLS_STATES_MAX`] states.
    #[error("{count} salt states; at most {SLS_STATES_MAX} are allowed")]
    TooMany {
        /// How many states the list holds.
        count: usize,
    },
}

impl SlsError {
    /// The message with where the value came from, e.g.
    /// ``invalid salt state name in form field `extra_sls`: "-r" (allowed: ...)``.
    pub fn in_place(&self, place: &str) -> String {
        match self {
            SlsError::Name { value } => format!(
                "invalid salt state name in {place}: {}{}",
                shown(value),
                name_rule(value)
            ),
            SlsError::TooMany { count } => {
                format!("too many salt states in {place}: {count} (at most {SLS_STATES_MAX})")
            }
        }
    }
}

fn shown(value: &str) -> String {
    const SHOWN_MAX: usize = 200;
    if value.len() <= SHOWN_MAX {
        return format!("{value:?}");
    }
    let mut end = SHOWN_MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &value[..end], value.len())
}

fn name_rule(value: &str) -> String {
    if value.len() > SLS_NAME_MAX {
        format!(" ({} bytes long; at most {SLS_NAME_MAX})", value.len())
    } else {
        format!(" (allowed: {SLS_NAME_ALLOWED})")
    }
}

/// The one rule for a salt state name, wherever one comes from (the lab's
/// `sls_list`, a request's `extra_sls`/`add_sls`, a library caller): ASCII
/// letters, digits, `_`, `.` and `-` only, not starting with `-` or `.`, 1
/// to [`SLS_NAME_MAX`] bytes. Such a name is never read by salt-ssh as an
/// option (`-r`, `--out-file=...`), a keyword argument (`pillar={...}`), a
/// path (`../x`) or two words.
pub fn check_sls_name(name: &str) -> Result<(), SlsError> {
    let ok = !name.is_empty()
        && name.len() <= SLS_NAME_MAX
        && !name.starts_with(['-', '.'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(SlsError::Name {
            value: name.to_owned(),
        })
    }
}

/// [`check_sls_name`] for each state of a list, plus the bound of
/// [`SLS_STATES_MAX`] states; the first problem found.
pub fn check_sls_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<(), SlsError> {
    let mut count = 0;
    for name in names {
        check_sls_name(name)?;
        count += 1;
    }
    if count > SLS_STATES_MAX {
        return Err(SlsError::TooMany { count });
    }
    Ok(())
}

pub(crate) fn validate(lab: &LabConfig) -> Vec<Problem> {
    let mut out = Vec::new();
    for rule in LAB_RULES {
        rule(lab, &mut out);
    }
    let mut unique = Unique::new(lab.nodes.len());
    for i in 0..lab.nodes.len() {
        // What the node's record could not be read as (a wrong type).
        out.extend(lab.nodes[i].read_problems.iter().cloned());
        let mut at = AtNode {
            lab,
            i,
            out: &mut out,
        };
        for rule in NODE_RULES {
            rule(&lab.nodes[i], &mut at);
        }
        unique.check(&mut at);
    }
    // A duplicate name is also a duplicate short name: report it once.
    out.dedup_by(|b, a| {
        a.node == b.node
            && a.field == "node"
            && b.field == "node"
            && a.message.starts_with("duplicate")
            && b.message.starts_with("duplicate")
    });
    out
}

/// The rules of the lab's top-level keys, in report order. Each problem
/// they find is lab-wide ([`Scope::Lab`]): these settings serve every node.
const LAB_RULES: &[fn(&LabConfig, &mut Vec<Problem>)] = &[
    has_nodes,
    ipmi_user_fits,
    ipmi_pass_fits,
    sls_names_are_state_names,
    sls_list_is_bounded,
];

/// The rules of one node, in report order (then [`Unique::check`]). Each
/// problem they find disables that node only ([`Scope::Node`]): a malformed
/// MAC or address, an unknown address type, a missing half of a DHCP
/// record, a name that is not a host name (a node without a name is listed
/// by its index). Of [`Unique::check`]'s, a duplicate name is lab-wide (a
/// request naming it could not tell the nodes apart); a duplicate short
/// name, MAC or address disables the second node, the first one keeps it.
const NODE_RULES: &[fn(&Node, &mut AtNode)] = &[
    name_is_a_host_name,
    macs_are_macs,
    ips_are_ipv4,
    ip_types_are_known,
    dynamic_addresses_are_complete,
];

fn lab_problem(field: &str, value: &str, message: String) -> Problem {
    Problem {
        node: None,
        field: field.into(),
        value: value.into(),
        message,
        scope: Scope::Lab,
    }
}

fn has_nodes(lab: &LabConfig, out: &mut Vec<Problem>) {
    if lab.nodes.is_empty() {
        out.push(lab_problem("nodes", "", "the lab has no nodes".into()));
    }
}

/// ipmitool refuses longer credentials (IPMI v2 limits).
fn ipmi_user_fits(lab: &LabConfig, out: &mut Vec<Problem>) {
    let len = lab.ipmi_user.len();
    if len > IPMI_USER_MAX {
        let message = format!("{len} bytes long; IPMI v2 allows at most {IPMI_USER_MAX}");
        out.push(lab_problem("ipmi_user", &lab.ipmi_user, message));
    }
}

/// As [`ipmi_user_fits`]; the password's value is never shown, only its length.
fn ipmi_pass_fits(lab: &LabConfig, out: &mut Vec<Problem>) {
    let len = lab.ipmi_pass.expose().len();
    if len > IPMI_PASS_MAX {
        let message = format!(
            "{len} bytes long; IPMI v2 allows at most {IPMI_PASS_MAX} (the value is not shown)"
        );
        out.push(lab_problem("ipmi_pass", "", message));
    }
}

/// States are handed to salt-ssh on its command line.
fn sls_names_are_state_names(lab: &LabConfig, out: &mut Vec<Problem>) {
    for name in &lab.sls_list {
        if check_sls_name(name).is_err() {
            let message = if name.len() > SLS_NAME_MAX {
                format!(
                    "not a salt state name: {} bytes long; at most {SLS_NAME_MAX}",
                    name.len()
                )
            } else {
                format!("not a salt state name (allowed: {SLS_NAME_ALLOWED})")
            };
            out.push(lab_problem("sls_list", name, message));
        }
    }
}

fn sls_list_is_bounded(lab: &LabConfig, out: &mut Vec<Problem>) {
    let count = lab.sls_list.len();
    if count > SLS_STATES_MAX {
        let message = format!("{count} salt states; at most {SLS_STATES_MAX} are allowed");
        out.push(lab_problem("sls_list", "", message));
    }
}

/// Where the problems of node `i` go.
struct AtNode<'l, 'o> {
    lab: &'l LabConfig,
    i: usize,
    out: &'o mut Vec<Problem>,
}

impl AtNode<'_, '_> {
    fn push(&mut self, field: &str, value: &str, message: impl Into<String>) {
        self.push_scoped(Scope::Node, field, value, message);
    }

    fn push_scoped(&mut self, scope: Scope, field: &str, value: &str, message: impl Into<String>) {
        self.out.push(Problem {
            node: Some(self.who(self.i)),
            field: field.into(),
            value: value.into(),
            message: message.into(),
            scope,
        });
    }

    /// How a problem names node `j`: its name, or `#<index>` without one.
    fn who(&self, j: usize) -> String {
        match self.lab.nodes[j].node.as_str() {
            "" => format!("#{j}"),
            name => name.to_owned(),
        }
    }
}

/// The name goes into DHCP host names, DNS records, conman and salt files,
/// and URLs: keep it a host name.
fn name_is_a_host_name(n: &Node, at: &mut AtNode) {
    let name = n.node.as_str();
    if name.is_empty() {
        at.push("node", "", "a node needs a name");
    } else if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_'))
    {
        at.push(
            "node",
            name,
            "a node name may only contain letters, digits, '.', '-' and '_'",
        );
    } else if name.starts_with(['.', '-']) {
        at.push(
            "node",
            name,
            "a node name must start with a letter or digit",
        );
    }
}

/// The model holds MACs parsed ([`MacAddr`]); one that did not parse is
/// found in the record as written.
fn macs_are_macs(n: &Node, at: &mut AtNode) {
    for (field, mac) in macs_written(n) {
        if let Err(e) = mac.parse::<MacAddr>() {
            at.push(&field, mac, e.to_string());
        }
    }
}

fn ips_are_ipv4(n: &Node, at: &mut AtNode) {
    for (field, ip) in [
        ("ip", &n.ip),
        ("bmc_ip", &n.bmc_ip),
        ("hsm_ip", &n.hsm_ip),
        ("boot_ip", &n.boot_ip),
    ] {
        if !ip.is_empty() && ip.parse::<Ipv4Addr>().is_err() {
            at.push(field, ip, "not an IPv4 address");
        }
    }
}

fn ip_types_are_known(n: &Node, at: &mut AtNode) {
    for (field, t) in [
        ("ip_type", n.ip_type),
        ("bmc_ip_type", n.bmc_ip_type),
        ("hsm_ip_type", n.hsm_ip_type),
    ] {
        if t == IpType::Unknown {
            at.push(
                field,
                &raw_str(n, field),
                "unknown address type (expected dynamic, static or unmanaged)",
            );
        }
    }
}

/// A dynamic address type needs both halves of its DHCP record.
fn dynamic_addresses_are_complete(n: &Node, at: &mut AtNode) {
    let needs = [
        (
            "ip_type",
            n.ip_type,
            [("mac", no_mac(n, n.mac, "mac")), ("ip", n.ip.is_empty())],
        ),
        (
            "bmc_ip_type",
            n.bmc_ip_type,
            [
                ("bmc_mac", no_mac(n, n.bmc_mac, "bmc_mac")),
                ("bmc_ip", n.bmc_ip.is_empty()),
            ],
        ),
        (
            "hsm_ip_type",
            n.hsm_ip_type,
            [
                ("hsm_mac", n.hsm_mac.is_empty() && !written(n, "hsm_mac")),
                ("hsm_ip", n.hsm_ip.is_empty()),
            ],
        ),
    ];
    for (type_field, ip_type, halves) in needs {
        if ip_type != IpType::Dynamic {
            continue;
        }
        for (field, missing) in halves {
            if missing {
                at.push(
                    field,
                    "",
                    format!("required because {type_field} is dynamic"),
                );
            }
        }
    }
}

/// What must be unique across the lab: value -> index of the first node
/// that used it, per class. The index, not the name, tells "another node"
/// from "this node": two nodes may share a name (that is one of the
/// problems). Keys borrow from the lab.
struct Unique<'l> {
    names: Seen<'l>,
    shorts: Seen<'l>,
    /// Every MAC of every field (`mac`, `bmc_mac`, `hsm_mac`) in one class.
    macs: FxHashMap<MacAddr, usize>,
    /// `ip` and `hsm_ip`.
    ips: Seen<'l>,
    bmc_ips: Seen<'l>,
}

/// FxHash: the keys are the lab's own names and addresses, so flooding
/// resistance is not needed, and SipHash would cost as much as the rest of
/// the validation.
type Seen<'l> = FxHashMap<Cow<'l, str>, usize>;

impl<'l> Unique<'l> {
    fn new(nodes: usize) -> Self {
        Unique {
            names: seen(nodes),
            shorts: seen(nodes),
            macs: FxHashMap::with_capacity_and_hasher(2 * nodes, Default::default()),
            ips: seen(nodes),
            bmc_ips: seen(nodes),
        }
    }

    fn check(&mut self, at: &mut AtNode<'l, '_>) {
        let n = &at.lab.nodes[at.i];
        let same = |s: &'l str| (Cow::Borrowed(s), s);
        let text = |seen: &mut Seen<'l>,
                    at: &mut AtNode<'l, '_>,
                    field,
                    (key, shown): (Cow<'l, str>, &str)| {
            if !key.is_empty() {
                once(seen, at, Scope::Node, field, key, shown);
            }
        };
        // Two nodes of one name: no request could tell them apart.
        if !n.node.is_empty() {
            once(
                &mut self.names,
                at,
                Scope::Lab,
                "node",
                same(&n.node).0,
                &n.node,
            );
        }
        text(&mut self.shorts, at, "node", same(n.short_name()));
        for (field, mac) in macs_of(n) {
            once(&mut self.macs, at, Scope::Node, &field, mac, mac);
        }
        text(&mut self.ips, at, "ip", same(&n.ip));
        text(&mut self.ips, at, "hsm_ip", same(&n.hsm_ip));
        text(&mut self.bmc_ips, at, "bmc_ip", same(&n.bmc_ip));
    }
}

fn seen<'l>(capacity: usize) -> Seen<'l> {
    FxHashMap::with_capacity_and_hasher(capacity, Default::default())
}

/// Record `key` (shown as `shown`, formatted only for a report) for this
/// node, or report that it is taken.
fn once<K: Hash + Eq>(
    seen: &mut FxHashMap<K, usize>,
    at: &mut AtNode,
    scope: Scope,
    field: &str,
    key: K,
    shown: impl fmt::Display,
) {
    match seen.get(&key) {
        None => {
            seen.insert(key, at.i);
        }
        Some(&j) if j == at.i => at.push_scoped(
            scope,
            field,
            &shown.to_string(),
            "duplicate: used twice by this node",
        ),
        Some(&j) => {
            let message = format!("duplicate: already used by node [{}]", at.who(j));
            at.push_scoped(scope, field, &shown.to_string(), message);
        }
    }
}

/// The field a MAC is reported under: `hsm_mac[1]` when there are several.
fn mac_field(field: &'static str, i: usize, count: usize) -> Cow<'static, str> {
    match count {
        1 => Cow::Borrowed(field),
        _ => Cow::Owned(format!("{field}[{i}]")),
    }
}

/// Every MAC of a node with the field it is reported under.
fn macs_of(n: &Node) -> impl Iterator<Item = (Cow<'static, str>, MacAddr)> + '_ {
    [("mac", n.mac), ("bmc_mac", n.bmc_mac)]
        .into_iter()
        .filter_map(|(f, m)| Some((Cow::Borrowed(f), m?)))
        .chain(
            n.hsm_mac
                .iter()
                .enumerate()
                .map(|(i, m)| (mac_field("hsm_mac", i, n.hsm_mac.len()), *m)),
        )
}

/// Every MAC the node's record wrote (non-empty), as written, with the field
/// it is reported under.
fn macs_written(n: &Node) -> Vec<(Cow<'static, str>, &str)> {
    let mut out = Vec::new();
    for field in ["mac", "bmc_mac"] {
        if let Some(mac) = n.raw.get(field).and_then(|v| v.as_str())
            && !mac.is_empty()
        {
            out.push((Cow::Borrowed(field), mac));
        }
    }
    if let Some(v) = n.raw.get("hsm_mac") {
        let items = string_list_items(v);
        let count = items.len();
        for (i, mac) in items.into_iter().enumerate() {
            out.push((mac_field("hsm_mac", i, count), mac));
        }
    }
    out
}

/// A node has no MAC in `field` (typed `mac`): neither a parsed one nor any
/// text (a malformed MAC is its own problem, not a missing one).
fn no_mac(n: &Node, mac: Option<MacAddr>, field: &str) -> bool {
    mac.is_none() && !written(n, field)
}

/// The record as written has a non-empty value for `key`.
fn written(n: &Node, key: &str) -> bool {
    match n.raw.get(key) {
        Some(serde_json::Value::String(s)) if key != "hsm_mac" => !s.is_empty(),
        Some(v) => !string_list_items(v).is_empty(),
        None => false,
    }
}

/// The value of `key` as the lab config wrote it.
fn raw_str(n: &Node, key: &str) -> String {
    n.raw
        .get(key)
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| v.to_string())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use crate::LabConfig;

    /// MACs are compared parsed (case and separator aside), and a
    /// malformed one is reported as written, once, not also as missing.
    #[test]
    fn macs_compare_parsed_and_malformed_ones_show_as_written() {
        let lab = LabConfig::parse(
            r#"{"nodes": [
                {"node": "a", "mac": "aa:bb:cc:dd:ee:01", "ip": "10.0.0.1", "ip_type": "dynamic"},
                {"node": "b", "mac": "AA-BB-CC-DD-EE-01", "hsm_mac": "aa:bb:cc:dd:ee:0g, aa:bb:cc:dd:ee:02",
                 "hsm_ip": "10.0.2.2", "hsm_ip_type": "dynamic"},
                {"node": "c", "bmc_mac": "nope", "bmc_ip": "10.0.1.3", "bmc_ip_type": "dynamic"}]}"#,
        )
        .unwrap();
        let shown: Vec<String> = lab.validate().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            shown,
            [
                "node [b] field `hsm_mac[0]` = \"aa:bb:cc:dd:ee:0g\": not a MAC address (expected aa:bb:cc:dd:ee:ff)",
                "node [b] field `mac` = \"aa:bb:cc:dd:ee:01\": duplicate: already used by node [a]",
                "node [c] field `bmc_mac` = \"nope\": not a MAC address (expected aa:bb:cc:dd:ee:ff)",
            ]
        );
        assert_eq!(lab.nodes[1].hsm_mac, ["aa:bb:cc:dd:ee:02"]);
        assert_eq!(lab.nodes[2].bmc_mac, None);
    }
}
