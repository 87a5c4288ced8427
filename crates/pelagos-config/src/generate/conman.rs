//! `conman.conf`: conmand's configuration with one CONSOLE line per node
//! that has a BMC address or a `console_dev`. It holds the BMC password.

use super::quote::{conman_quote, conman_quote_char, push_conman_quote};
use super::templates::{CONSOLES_PLACEHOLDER, Templates};
use super::{GenerateError, Kind, hint};
use crate::model::{LabConfig, Node};
use crate::secret::MASK;
use serde::Serialize;
use std::fmt::Write as _;

/// The file and the template it came from: the CONSOLE lines inside the
/// legacy `conman.conf.tmpl`, or inside `conman.tera` (embedded or not).
pub(super) fn render(lab: &LabConfig, t: &Templates) -> Result<(String, String), GenerateError> {
    credentials_fit(lab)?;
    let lines = if t.is_override("conman-consoles") {
        t.render("conman-consoles", &context(lab)?, hint(lab, 100))?
    } else {
        let mut out = String::with_capacity(hint(lab, 100));
        for_each_console(lab, |c| {
            push_console_line(&mut out, c).map_err(|message| GenerateError::Template {
                template: t.origin("conman-consoles"),
                message: message.into(),
            })
        })?;
        out
    };
    if let Some((text, path)) = &t.legacy_conman {
        let block = lines.strip_suffix('\n').unwrap_or(&lines);
        return Ok((
            text.replace(CONSOLES_PLACEHOLDER, block),
            path.display().to_string(),
        ));
    }
    // The embedded frame does not use the consoles list: built only for an
    // override.
    let mut ctx = if t.is_override("conman") {
        context(lab)?
    } else {
        frame_context(lab)
    };
    ctx.insert("console_lines", &lines);
    Ok((
        t.render("conman", &ctx, lines.len() + 1024)?,
        t.origin("conman"),
    ))
}

fn unrepresentable(node: Option<&Node>, field: &str, value: &str, message: &str) -> GenerateError {
    GenerateError::Unrepresentable {
        kind: Kind::Conman,
        node: node.map(|n| n.node.clone()),
        field: field.into(),
        value: value.into(),
        message: message.into(),
    }
}

/// User and password go into every `IPMIOPTS`, a comma-separated list inside
/// one conman string. The password is never shown.
fn credentials_fit(lab: &LabConfig) -> Result<(), GenerateError> {
    const COMMA: &str = "IPMIOPTS values cannot contain a comma";
    let (user, pass) = (&lab.ipmi_user, lab.ipmi_pass.expose());
    if pass.contains(',') {
        return Err(unrepresentable(None, "ipmi_pass", MASK, COMMA));
    }
    if let Err(e) = conman_quote(pass) {
        return Err(unrepresentable(None, "ipmi_pass", MASK, e));
    }
    if user.contains(',') {
        return Err(unrepresentable(None, "ipmi_user", user, COMMA));
    }
    // Together in one string, they must be quotable together.
    if let Err(e) = conman_quote(&format!("{user}{pass}")) {
        return Err(unrepresentable(None, "ipmi_user and ipmi_pass", MASK, e));
    }
    Ok(())
}

#[derive(Serialize)]
struct Console<'a> {
    name: &'a str,
    dev: &'a str,
    ipmiopts: &'a str,
}

/// Each console of the lab, in file order; nodes with neither a `bmc_ip`
/// nor a `console_dev` have none.
fn for_each_console(
    lab: &LabConfig,
    mut f: impl FnMut(&Console) -> Result<(), GenerateError>,
) -> Result<(), GenerateError> {
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
        if let Err(e) = conman_quote_char(&dev) {
            return Err(unrepresentable(Some(n), "console_dev", &dev, e));
        }
        ipmiopts.clear();
        if dev.starts_with("ipmi:") {
            let (user, pass) = (&lab.ipmi_user, lab.ipmi_pass.expose());
            let _ = write!(ipmiopts, "U:{user},P:{pass}");
            if let Some(cs) = n.cipher_suite {
                let _ = write!(ipmiopts, ",C:{cs}");
            }
        }
        f(&Console {
            name: n.short_name(),
            dev: &dev,
            ipmiopts: &ipmiopts,
        })?;
    }
    Ok(())
}

/// `CONSOLE name=".." [IPMIOPTS=".."] dev=".."`, as `conman-consoles.tera`.
fn push_console_line(out: &mut String, c: &Console) -> Result<(), &'static str> {
    out.push_str("CONSOLE name=");
    push_conman_quote(out, c.name)?;
    if !c.ipmiopts.is_empty() {
        out.push_str(" IPMIOPTS=");
        push_conman_quote(out, c.ipmiopts)?;
    }
    out.push_str(" dev=");
    push_conman_quote(out, c.dev)?;
    out.push('\n');
    Ok(())
}

/// What the embedded `conman.tera` reads besides `console_lines`.
fn frame_context(lab: &LabConfig) -> tera::Context {
    let mut ctx = tera::Context::new();
    ctx.insert("conman_log_dir", &lab.conman_log_dir);
    ctx
}

/// The context of an override: `consoles`, `conman_log_dir`.
fn context(lab: &LabConfig) -> Result<tera::Context, GenerateError> {
    let mut consoles = Vec::with_capacity(lab.nodes.len());
    for_each_console(lab, |c| {
        consoles.push(tera::Value::from_serializable(c));
        Ok(())
    })?;
    let mut ctx = frame_context(lab);
    ctx.insert_value("consoles", tera::Value::from(consoles));
    Ok(ctx)
}
