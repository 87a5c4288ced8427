//! Lab checks. Every problem is collected, not just the first, so an admin
//! fixes a config in one pass.

use crate::model::{IpType, LabConfig, Node};
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

pub(crate) fn validate(lab: &LabConfig) -> Vec<Problem> {
    let mut out = Vec::new();
    if lab.nodes.is_empty() {
        out.push(Problem {
            node: None,
            field: "nodes".into(),
            value: String::new(),
            message: "the lab has no nodes".into(),
        });
    }
    // value -> (index, name) of the first node that used it, per uniqueness
    // class. The index, not the name, tells "another node" from "this node":
    // two nodes may share a name (that is one of the problems).
    let mut names: HashMap<String, (usize, String)> = HashMap::new();
    let mut shorts: HashMap<String, (usize, String)> = HashMap::new();
    let mut macs: HashMap<String, (usize, String)> = HashMap::new();
    let mut ips: HashMap<String, (usize, String)> = HashMap::new();
    let mut bmc_ips: HashMap<String, (usize, String)> = HashMap::new();

    for (i, n) in lab.nodes.iter().enumerate() {
        let who = if n.node.is_empty() {
            format!("#{i}")
        } else {
            n.node.clone()
        };
        let mut p = |field: &str, value: &str, message: String| {
            out.push(Problem {
                node: Some(who.clone()),
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
        for (field, t, raw) in [
            ("ip_type", n.ip_type, raw_str(n, "ip_type")),
            ("bmc_ip_type", n.bmc_ip_type, raw_str(n, "bmc_ip_type")),
            ("hsm_ip_type", n.hsm_ip_type, raw_str(n, "hsm_ip_type")),
        ] {
            if t == IpType::Unknown {
                p(
                    field,
                    &raw,
                    "unknown address type (expected dynamic, static or unmanaged)".into(),
                );
            }
        }
        let dynamic_needs = [
            (
                "ip_type",
                n.ip_type,
                "mac",
                n.mac.is_empty(),
                "ip",
                n.ip.is_empty(),
            ),
            (
                "bmc_ip_type",
                n.bmc_ip_type,
                "bmc_mac",
                n.bmc_mac.is_empty(),
                "bmc_ip",
                n.bmc_ip.is_empty(),
            ),
            (
                "hsm_ip_type",
                n.hsm_ip_type,
                "hsm_mac",
                n.hsm_mac.is_empty(),
                "hsm_ip",
                n.hsm_ip.is_empty(),
            ),
        ];
        for (tf, t, mf, no_mac, ipf, no_ip) in dynamic_needs {
            if t == IpType::Dynamic {
                if no_mac {
                    p(mf, "", format!("required because {tf} is dynamic"));
                }
                if no_ip {
                    p(ipf, "", format!("required because {tf} is dynamic"));
                }
            }
        }

        let mut dup =
            |map: &mut HashMap<String, (usize, String)>, field: &str, key: String, shown: &str| {
                if key.is_empty() {
                    return;
                }
                match map.get(&key) {
                    Some((j, first)) if *j != i => out.push(Problem {
                        node: Some(who.clone()),
                        field: field.into(),
                        value: shown.into(),
                        message: format!("duplicate: already used by node [{first}]"),
                    }),
                    Some(_) => out.push(Problem {
                        node: Some(who.clone()),
                        field: field.into(),
                        value: shown.into(),
                        message: "duplicate: used twice by this node".into(),
                    }),
                    None => {
                        map.insert(key, (i, who.clone()));
                    }
                }
            };
        dup(&mut names, "node", n.node.clone(), &n.node);
        dup(
            &mut shorts,
            "node",
            n.short_name().to_owned(),
            n.short_name(),
        );
        for (field, mac) in macs_of(n) {
            dup(&mut macs, &field, mac.to_ascii_lowercase(), mac);
        }
        dup(&mut ips, "ip", n.ip.clone(), &n.ip);
        dup(&mut ips, "hsm_ip", n.hsm_ip.clone(), &n.hsm_ip);
        dup(&mut bmc_ips, "bmc_ip", n.bmc_ip.clone(), &n.bmc_ip);
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

fn macs_of(n: &Node) -> Vec<(String, &str)> {
    let mut v = vec![
        ("mac".to_owned(), n.mac.as_str()),
        ("bmc_mac".to_owned(), n.bmc_mac.as_str()),
    ];
    for (i, m) in n.hsm_mac.iter().enumerate() {
        let field = if n.hsm_mac.len() == 1 {
            "hsm_mac".to_owned()
        } else {
            format!("hsm_mac[{i}]")
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
    let parts: Vec<&str> = s.split([':', '-']).collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}
