//! `network_nodes.conf`: a `dhcp-host` line per dynamic address, then a
//! `ptr-record` line for each (the order of `templates/dnsmasq.tera`).

use super::templates::Templates;
use super::{GenerateError, hint, push_mac};
use crate::model::{IpType, LabConfig};
use serde::Serialize;

/// The file and the template it came from.
pub(super) fn render(lab: &LabConfig, t: &Templates) -> Result<(String, String), GenerateError> {
    let contents = if t.is_override("dnsmasq") {
        t.render("dnsmasq", &context(lab), hint(lab, 200))?
    } else {
        write(lab)
    };
    Ok((contents, t.origin("dnsmasq")))
}

fn write(lab: &LabConfig) -> String {
    let mut out = String::with_capacity(hint(lab, 200));
    for_each_dynamic(lab, |macs, name, ip| {
        for part in ["dhcp-host=", macs, ",", name, ",", ip, "\n"] {
            out.push_str(part);
        }
    });
    for_each_dynamic(lab, |_, name, ip| {
        out.push_str("ptr-record=");
        push_reverse_name(&mut out, ip);
        out.push(',');
        push_fqdn(&mut out, name, &lab.domain);
        out.push('\n');
    });
    out
}

/// Each dynamic address of the lab: `f(macs, name, ip)`, in file order.
fn for_each_dynamic(lab: &LabConfig, mut f: impl FnMut(&str, &str, &str)) {
    let (mut macs, mut name) = (String::new(), String::new());
    for n in &lab.nodes {
        let addresses = [
            (n.ip_type, "", &n.ip, n.mac.as_slice()),
            (n.bmc_ip_type, "-bmc", &n.bmc_ip, n.bmc_mac.as_slice()),
            (n.hsm_ip_type, "-hsm", &n.hsm_ip, &n.hsm_mac[..]),
        ];
        for (ip_type, suffix, ip, nic_macs) in addresses {
            if ip_type != IpType::Dynamic {
                continue;
            }
            macs.clear();
            for (i, m) in nic_macs.iter().enumerate() {
                if i > 0 {
                    macs.push(',');
                }
                push_mac(&mut macs, m);
            }
            name.clear();
            name.push_str(n.short_name());
            name.push_str(suffix);
            f(&macs, &name, ip);
        }
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

/// `<name>.<domain>`, or just `<name>` without a domain.
fn push_fqdn(out: &mut String, name: &str, domain: &str) {
    out.push_str(name);
    if !domain.is_empty() {
        out.push('.');
        out.push_str(domain);
    }
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

/// The context of an override: `dhcp_hosts`, `ptr_records`, `domain`.
fn context(lab: &LabConfig) -> tera::Context {
    let mut hosts = Vec::with_capacity(2 * lab.nodes.len());
    for_each_dynamic(lab, |macs, name, ip| {
        hosts.push(tera::Value::from_serializable(&DhcpHost { macs, name, ip }));
    });
    let mut ptrs = Vec::with_capacity(hosts.len());
    let (mut reverse, mut fqdn) = (String::new(), String::new());
    for_each_dynamic(lab, |_, name, ip| {
        reverse.clear();
        push_reverse_name(&mut reverse, ip);
        fqdn.clear();
        push_fqdn(&mut fqdn, name, &lab.domain);
        ptrs.push(tera::Value::from_serializable(&PtrRecord {
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
