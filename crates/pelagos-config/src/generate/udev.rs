//! `70-persistent-net.rules`: a persistent name per NIC, management NIC
//! `eth0`, high-speed NICs `eth2`, `eth3`, ... (as the original).

use super::templates::Templates;
use super::{GenerateError, hint, push_mac};
use crate::mac::MacAddr;
use crate::model::{LabConfig, Node};
use serde::Serialize;
use std::fmt::Write as _;

/// The first high-speed NIC number (the management NIC is `eth0`).
const HSM_START: usize = 2;

/// The file and the template it came from.
pub(super) fn render(lab: &LabConfig, t: &Templates) -> Result<(String, String), GenerateError> {
    let contents = if t.is_override("udev") {
        t.render("udev", &context(lab), hint(lab, 200))?
    } else {
        write(lab)
    };
    Ok((contents, t.origin("udev")))
}

/// Each NIC of `n`: `f(mac, number)`, the management NIC first.
fn for_each_nic<'n>(n: &'n Node, mut f: impl FnMut(&'n MacAddr, usize)) {
    if let Some(mac) = &n.mac {
        f(mac, 0);
    }
    for (i, m) in n.hsm_mac.iter().enumerate() {
        f(m, HSM_START + i);
    }
}

/// Nodes with at least one NIC (the others get no rules, not even a comment).
fn has_nics(n: &&Node) -> bool {
    n.mac.is_some() || !n.hsm_mac.is_empty()
}

fn write(lab: &LabConfig) -> String {
    let mut out = String::with_capacity(hint(lab, 200));
    for n in lab.nodes.iter().filter(has_nics) {
        out.push_str("#predefined rules for node  '");
        out.push_str(&n.node);
        out.push_str("'\n");
        for_each_nic(n, |mac, number| {
            out.push_str(r#"SUBSYSTEM=="net", ACTION=="add", DRIVERS=="?*", ATTR{address}==""#);
            push_mac(&mut out, mac);
            let _ = writeln!(out, r#"", KERNEL=="eth*", NAME="eth{number}""#);
        });
    }
    out
}

#[derive(Serialize)]
struct UdevNode<'a> {
    name: &'a str,
    rules: Vec<UdevRule>,
}

#[derive(Serialize)]
struct UdevRule {
    mac: String,
    ifname: String,
}

/// The context of an override: `nodes`, each with its `rules`.
fn context(lab: &LabConfig) -> tera::Context {
    let nodes: Vec<UdevNode> = lab
        .nodes
        .iter()
        .filter(has_nics)
        .map(|n| {
            let mut rules = Vec::new();
            for_each_nic(n, |mac, number| {
                rules.push(UdevRule {
                    mac: mac.to_string(),
                    ifname: format!("eth{number}"),
                })
            });
            UdevNode {
                name: &n.node,
                rules,
            }
        })
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("nodes", &nodes);
    ctx
}
