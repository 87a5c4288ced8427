//! Lab checks. Every problem is collected, not just the first, so an admin
//! fixes a config in one pass.

use crate::model::{IpType, LabConfig, Node};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

/// One thing wrong with a lab config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The node's name, or its index when it has none; `None` for top-level keys.
    pub node: Option<String>,
    pub field: String,
    pub value: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(n) => write!(f, "node [{n}] field `{}`", self.field)?,
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
    Name { value: String },
    #[error("{count} salt states; at most {SLS_STATES_MAX} are allowed")]
    TooMany { count: usize },
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

pub(crate) fn validate<'a>(lab: &'a LabConfig) -> Vec<Problem> {
    let mut out = Vec::new();
    if lab.nodes.is_empty() {
        out.push(Problem {
            node: None,
            field: "nodes".into(),
            value: String::new(),
            message: "the lab has no nodes".into(),
        });
    }
    // ipmitool refuses longer credentials (IPMI v2 limits); the password's
    // value is never shown, only its length.
    if lab.ipmi_user.len() > IPMI_USER_MAX {
        out.push(Problem {
            node: None,
            field: "ipmi_user".into(),
            value: lab.ipmi_user.clone(),
            message: format!(
                "{} bytes long; IPMI v2 allows at most {IPMI_USER_MAX}",
                lab.ipmi_user.len()
            ),
        });
    }
    let pass_len = lab.ipmi_pass.expose().len();
    if pass_len > IPMI_PASS_MAX {
        out.push(Problem {
            node: None,
            field: "ipmi_pass".into(),
            value: String::new(),
            message: format!(
                "{pass_len} bytes long; IPMI v2 allows at most {IPMI_PASS_MAX} (the value is not shown)"
            ),
        });
    }
    // States are handed to salt-ssh on its command line.
    for name in &lab.sls_list {
        if let Err(e) = check_sls_name(name) {
            out.push(Problem {
                node: None,
                field: "sls_list".into(),
                value: name.clone(),
                message: match e {
                    SlsError::Name { value } if value.len() > SLS_NAME_MAX => format!(
                        "not a salt state name: {} bytes long; at most {SLS_NAME_MAX}",
                        value.len()
                    ),
                    _ => format!("not a salt state name (allowed: {SLS_NAME_ALLOWED})"),
                },
            });
        }
    }
    if lab.sls_list.len() > SLS_STATES_MAX {
        out.push(Problem {
            node: None,
            field: "sls_list".into(),
            value: String::new(),
            message: format!(
                "{} salt states; at most {SLS_STATES_MAX} are allowed",
                lab.sls_list.len()
            ),
        });
    }
    // value -> (index, name) of the first node that used it, per uniqueness
    // class. The index, not the name, tells "another node" from "this node":
    // two nodes may share a name (that is one of the problems).
    // Keys borrow from the lab (only MACs are normalised into new strings),
    // so a 10,000-node lab validates in a few milliseconds.
    let mut names: Seen<'a> = seen(lab.nodes.len());
    let mut shorts: Seen<'a> = seen(lab.nodes.len());
    let mut macs: Seen<'a> = seen(2 * lab.nodes.len());
    let mut ips: Seen<'a> = seen(lab.nodes.len());
    let mut bmc_ips: Seen<'a> = seen(lab.nodes.len());
    let who_of = |j: usize| -> String {
        match lab.nodes[j].node.as_str() {
            "" => format!("#{j}"),
            name => name.to_owned(),
        }
    };

    for (i, n) in lab.nodes.iter().enumerate() {
        let mut p = |field: &str, value: &str, message: String| {
            out.push(Problem {
                node: Some(who_of(i)),
                field: field.into(),
                value: value.into(),
                message,
            })
        };
        if n.node.is_empty() {
            p("node", "", "a node needs a name".into());
        } else if !n
            .node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            // The name goes into DHCP host names, DNS records, conman and
            // salt files, and URLs: keep it a host name.
            p(
                "node",
                &n.node,
                "a node name may only contain letters, digits, '.', '-' and '_'".into(),
            );
        } else if n.node.starts_with(['.', '-']) {
            p(
                "node",
                &n.node,
                "a node name must start with a letter or digit".into(),
            );
        }

        for (field, mac) in macs_of(n) {
            if !mac.is_empty() && !is_mac(mac) {
                p(
                    &field,
                    mac,
                    "not a MAC address (expected aa:bb:cc:dd:ee:ff)".into(),
                );
            }
        }
        for (field, ip) in [
            ("ip", &n.ip),
            ("bmc_ip", &n.bmc_ip),
            ("hsm_ip", &n.hsm_ip),
            ("boot_ip", &n.boot_ip),
        ] {
            if !ip.is_empty() && ip.parse::<Ipv4Addr>().is_err() {
                p(field, ip, "not an IPv4 address".into());
            }
        }
        for (field, t) in [
            ("ip_type", n.ip_type),
            ("bmc_ip_type", n.bmc_ip_type),
            ("hsm_ip_type", n.hsm_ip_type),
        ] {
            if t == IpType::Unknown {
                p(
                    field,
                    &raw_str(n, field),
                    "unknown address type (expected dynamic, static or unmanaged)".into(),
                );
            }
        }
        // A dynamic address type needs both halves of its DHCP record.
        let hsm_mac = n.hsm_mac.join(",");
        let dynamic_needs = [
            (("ip_type", n.ip_type), [("mac", &n.mac), ("ip", &n.ip)]),
            (
                ("bmc_ip_type", n.bmc_ip_type),
                [("bmc_mac", &n.bmc_mac), ("bmc_ip", &n.bmc_ip)],
            ),
            (
                ("hsm_ip_type", n.hsm_ip_type),
                [("hsm_mac", &hsm_mac), ("hsm_ip", &n.hsm_ip)],
            ),
        ];
        for ((type_field, ip_type), needs) in dynamic_needs {
            if ip_type != IpType::Dynamic {
                continue;
            }
            for (field, value) in needs {
                if value.is_empty() {
                    p(
                        field,
                        "",
                        format!("required because {type_field} is dynamic"),
                    );
                }
            }
        }

        let mut dup = |map: &mut Seen<'a>, field: &str, key: Cow<'a, str>, shown: &str| {
            if key.is_empty() {
                return;
            }
            match map.get(key.as_ref()) {
                Some(&j) if j != i => out.push(Problem {
                    node: Some(who_of(i)),
                    field: field.into(),
                    value: shown.into(),
                    message: format!("duplicate: already used by node [{}]", who_of(j)),
                }),
                Some(_) => out.push(Problem {
                    node: Some(who_of(i)),
                    field: field.into(),
                    value: shown.into(),
                    message: "duplicate: used twice by this node".into(),
                }),
                None => {
                    map.insert(key, i);
                }
            }
        };
        dup(&mut names, "node", Cow::Borrowed(&n.node), &n.node);
        dup(
            &mut shorts,
            "node",
            Cow::Borrowed(n.short_name()),
            n.short_name(),
        );
        for (field, mac) in macs_of(n) {
            dup(&mut macs, &field, norm_mac(mac), mac);
        }
        dup(&mut ips, "ip", Cow::Borrowed(&n.ip), &n.ip);
        dup(&mut ips, "hsm_ip", Cow::Borrowed(&n.hsm_ip), &n.hsm_ip);
        dup(&mut bmc_ips, "bmc_ip", Cow::Borrowed(&n.bmc_ip), &n.bmc_ip);
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

type Seen<'a> = HashMap<Cow<'a, str>, usize, std::hash::BuildHasherDefault<FxHasher>>;

fn seen<'a>(capacity: usize) -> Seen<'a> {
    HashMap::with_capacity_and_hasher(capacity, Default::default())
}

/// MACs compare case-insensitively, `-` and `:` alike; no allocation for the
/// usual lower-case colon form.
fn norm_mac(mac: &str) -> Cow<'_, str> {
    if mac.bytes().any(|b| b.is_ascii_uppercase() || b == b'-') {
        Cow::Owned(mac.to_ascii_lowercase().replace('-', ":"))
    } else {
        Cow::Borrowed(mac)
    }
}

fn macs_of(n: &Node) -> Vec<(Cow<'static, str>, &str)> {
    let mut v = Vec::with_capacity(2 + n.hsm_mac.len());
    v.push((Cow::Borrowed("mac"), n.mac.as_str()));
    v.push((Cow::Borrowed("bmc_mac"), n.bmc_mac.as_str()));
    for (i, m) in n.hsm_mac.iter().enumerate() {
        let field = if n.hsm_mac.len() == 1 {
            Cow::Borrowed("hsm_mac")
        } else {
            Cow::Owned(format!("hsm_mac[{i}]"))
        };
        v.push((field, m.as_str()));
    }
    v
}

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

/// `aa:bb:cc:dd:ee:ff` (either case; `-` separators accepted too).
pub fn is_mac(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 17
        && b.iter().enumerate().all(|(i, &c)| {
            if i % 3 == 2 {
                c == b':' || c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// FxHash (rustc's hasher): the keys are the lab's own names and addresses,
/// so flooding resistance is not needed and SipHash would cost more than the
/// rest of the validation.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().unwrap_or_default());
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}
