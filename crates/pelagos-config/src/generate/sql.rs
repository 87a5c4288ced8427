//! `sql/nodes.sql`: the teuthology (paddles) `nodes` rows of every node
//! whose `t_exclude` is not yes, in one transaction.

use super::quote::push_sql_literal;
use super::templates::Templates;
use super::{GenerateError, Kind, hint};
use crate::model::{LabConfig, Node};
use serde::Serialize;
use std::borrow::Cow;

const INSERT: &str = "INSERT INTO nodes (name, machine_type, mac_address, is_vm, locked, arch, description) VALUES (";
/// With `sql_upsert`: an existing row gets the new values but never a new
/// `locked` or `is_vm` (those are paddles' own state).
const UPSERT: &str = "\n    ON CONFLICT (name) DO UPDATE SET machine_type = EXCLUDED.machine_type, mac_address = EXCLUDED.mac_address, arch = EXCLUDED.arch, description = EXCLUDED.description";

/// paddles column widths (`varchar(n)`): a longer value would fail the load.
const SQL_WIDTHS: [(&str, usize); 4] = [
    ("node", 256),
    ("t_machine_type", 32),
    ("t_arch", 16),
    ("mac", 17),
];

/// The file and the template it came from.
pub(super) fn render(
    lab: &LabConfig,
    upsert: bool,
    t: &Templates,
) -> Result<(String, String), GenerateError> {
    for n in rows(lab) {
        storable(n)?;
    }
    let per_node = if upsert { 400 } else { 200 };
    let contents = if t.is_override("sql") {
        t.render("sql", &context(lab, upsert), hint(lab, per_node))?
    } else {
        let mut out = String::with_capacity(hint(lab, per_node));
        write(&mut out, lab, upsert).map_err(|message| GenerateError::Template {
            template: t.origin("sql"),
            message: message.into(),
        })?;
        out
    };
    Ok((contents, t.origin("sql")))
}

/// The nodes teuthology gets.
fn rows(lab: &LabConfig) -> impl Iterator<Item = &Node> {
    lab.nodes.iter().filter(|n| !n.t_exclude)
}

/// Whether PostgreSQL can store the node's row: no value wider than its
/// column, no NUL character.
fn storable(n: &Node) -> Result<(), GenerateError> {
    let refuse = |field: &str, value: &str, message: String| GenerateError::Unrepresentable {
        kind: Kind::Sql,
        node: Some(n.node.clone()),
        field: field.into(),
        value: value.into(),
        message,
    };
    let mac = n.mac.map(|m| m.to_string()).unwrap_or_default();
    for (field, width) in SQL_WIDTHS {
        let value = match field {
            "node" => &n.node,
            "t_machine_type" => &n.t_machine_type,
            "t_arch" => &n.t_arch,
            _ => &mac,
        };
        if value.chars().count() > width {
            let message = format!("longer than the paddles column ({width} characters)");
            return Err(refuse(field, value, message));
        }
        if value.contains('\0') || n.comment.contains('\0') {
            let message = "a NUL character cannot be stored in PostgreSQL text".into();
            return Err(refuse("comment", &n.comment, message));
        }
    }
    Ok(())
}

fn write(out: &mut String, lab: &LabConfig, upsert: bool) -> Result<(), &'static str> {
    out.push_str("BEGIN;\n");
    for n in rows(lab) {
        out.push_str(INSERT);
        push_sql_literal(out, Some(&n.node))?;
        out.push_str(", ");
        push_sql_literal(out, Some(&n.t_machine_type))?;
        out.push_str(", ");
        push_sql_literal(out, mac_address(n).as_deref())?;
        out.push_str(", false, false, ");
        push_sql_literal(out, Some(&n.t_arch))?;
        out.push_str(", ");
        push_sql_literal(out, Some(&n.comment))?;
        out.push(')');
        if upsert {
            out.push_str(UPSERT);
        }
        out.push_str(";\n");
    }
    out.push_str("COMMIT;\n");
    Ok(())
}

/// `mac_address`: the MAC as every output writes it, `NULL` without one.
fn mac_address(n: &Node) -> Option<Cow<'_, str>> {
    n.mac.map(|m| Cow::Owned(m.to_string()))
}

#[derive(Serialize)]
struct SqlRow<'a> {
    name: &'a str,
    machine_type: &'a str,
    mac_address: Option<Cow<'a, str>>,
    arch: &'a str,
    description: &'a str,
}

/// The context of an override: `rows`, `upsert`.
fn context(lab: &LabConfig, upsert: bool) -> tera::Context {
    let rows: Vec<SqlRow> = rows(lab)
        .map(|n| SqlRow {
            name: &n.node,
            machine_type: &n.t_machine_type,
            mac_address: mac_address(n),
            arch: &n.t_arch,
            description: &n.comment,
        })
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("rows", &rows);
    ctx.insert("upsert", &upsert);
    ctx
}
