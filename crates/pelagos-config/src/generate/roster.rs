//! `deploy.roster`: the salt-ssh roster, every value YAML-quoted.

use super::quote::push_yaml_quote;
use super::templates::Templates;
use super::{GenerateError, hint};
use crate::model::{LabConfig, Node};
use serde::Serialize;
use std::fmt::Write as _;

/// Who salt-ssh logs in as.
const USER: &str = "root";

/// The file and the template it came from.
pub(super) fn render(lab: &LabConfig, t: &Templates) -> Result<(String, String), GenerateError> {
    let contents = if t.is_override("roster") {
        t.render("roster", &context(lab), hint(lab, 80))?
    } else {
        write(lab)
    };
    Ok((contents, t.origin("roster")))
}

/// Nodes with an address to reach them at.
fn hosts(lab: &LabConfig) -> impl Iterator<Item = &Node> {
    lab.nodes.iter().filter(|n| !n.provision_ip().is_empty())
}

fn write(lab: &LabConfig) -> String {
    let mut out = String::with_capacity(hint(lab, 80));
    for n in hosts(lab) {
        push_yaml_quote(&mut out, &n.node);
        out.push_str(":\n  host: ");
        push_yaml_quote(&mut out, n.provision_ip());
        if n.ssh_port != 22 {
            let _ = write!(out, "\n  port: {}", n.ssh_port);
        }
        out.push_str("\n  user: ");
        push_yaml_quote(&mut out, USER);
        out.push('\n');
    }
    out
}

#[derive(Serialize)]
struct RosterHost<'a> {
    name: &'a str,
    host: &'a str,
    port: u16,
}

/// The context of an override: `hosts`, `user`.
fn context(lab: &LabConfig) -> tera::Context {
    let hosts: Vec<RosterHost> = hosts(lab)
        .map(|n| RosterHost {
            name: &n.node,
            host: n.provision_ip(),
            port: n.ssh_port,
        })
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("hosts", &hosts);
    ctx.insert("user", USER);
    ctx
}
