//! The tera side of generation: override templates from the target
//! directory, the embedded `conman.tera`, the original's `conman.conf.tmpl`,
//! and the quoting filters.

use super::quote::{push_conman_quote, push_sql_literal, push_yaml_quote};
use super::{GenerateError, Kind};
use std::path::{Path, PathBuf};

/// The override path of template `name` (`conman-consoles` or a [`Kind`] name).
pub fn override_path(target_dir: &Path, name: &str) -> PathBuf {
    target_dir.join("templates").join(format!("{name}.tera"))
}

/// The original's conman template, used when `templates/conman.tera` is absent.
pub const LEGACY_CONMAN_TEMPLATE: &str = "states/etc/conman.conf.tmpl";
pub(super) const CONSOLES_PLACEHOLDER: &str = "@@CONSOLES@@";

/// The embedded `conman.tera`: the frame of conman.conf around its CONSOLE
/// lines, rendered by tera unless overridden. The other embedded templates
/// (what the writers of each kind produce) are only documentation and the
/// starting point of an override.
const EMBEDDED_CONMAN: &str = include_str!("templates/conman.tera");

/// The templates of one generation run, each parsed once.
pub(super) struct Templates {
    tera: tera::Tera,
    /// Template name -> override file, for each override found.
    overrides: Vec<(String, String)>,
    /// The legacy `conman.conf.tmpl` text and path, when it is used.
    pub(super) legacy_conman: Option<(String, PathBuf)>,
}

impl Templates {
    /// The override templates of `kinds` found in `target_dir`, parsed.
    pub(super) fn load(target_dir: &Path, kinds: &[Kind]) -> Result<Self, GenerateError> {
        let mut t = Templates {
            tera: tera::Tera::new(),
            overrides: Vec::new(),
            legacy_conman: None,
        };
        t.tera.autoescape_on(Vec::<&str>::new());
        register_filters(&mut t.tera);
        for &kind in kinds {
            if kind == Kind::Conman {
                t.add_override(target_dir, "conman-consoles")?;
                if !t.add_override(target_dir, "conman")? {
                    t.legacy_conman = read_legacy_conman(target_dir)?;
                    if t.legacy_conman.is_none() {
                        t.add("conman", EMBEDDED_CONMAN, origin_embedded("conman"))?;
                    }
                }
                continue;
            }
            t.add_override(target_dir, kind.name())?;
        }
        Ok(t)
    }

    /// Parse `templates/<name>.tera` if it exists; whether it does.
    fn add_override(&mut self, target_dir: &Path, name: &str) -> Result<bool, GenerateError> {
        let path = override_path(target_dir, name);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let origin = path.display().to_string();
                self.add(name, &text, origin.clone())?;
                self.overrides.push((name.to_owned(), origin));
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(GenerateError::ReadTemplate { path, source }),
        }
    }

    fn add(&mut self, name: &str, text: &str, origin: String) -> Result<(), GenerateError> {
        self.tera
            .add_raw_template(name, text)
            .map_err(|e| GenerateError::Template {
                template: origin,
                message: e.to_string(),
            })
    }

    /// Whether the target directory overrides template `name`.
    pub(super) fn is_override(&self, name: &str) -> bool {
        self.overrides.iter().any(|(n, _)| n == name)
    }

    /// Where template `name` comes from: the override's path or
    /// `embedded <name>.tera`.
    pub(super) fn origin(&self, name: &str) -> String {
        self.overrides
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, o)| o.clone())
            .unwrap_or_else(|| origin_embedded(name))
    }

    /// Render `name`; `size_hint` (bytes) sizes the output buffer up front.
    pub(super) fn render(
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

fn origin_embedded(name: &str) -> String {
    format!("embedded {name}.tera")
}

/// The original's `states/etc/conman.conf.tmpl`, if the target dir has one.
fn read_legacy_conman(target_dir: &Path) -> Result<Option<(String, PathBuf)>, GenerateError> {
    let legacy = target_dir.join(LEGACY_CONMAN_TEMPLATE);
    let text = match std::fs::read_to_string(&legacy) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(GenerateError::ReadTemplate {
                path: legacy,
                source,
            });
        }
    };
    if !text.contains(CONSOLES_PLACEHOLDER) {
        tracing::warn!(template = %legacy.display(), "conman template has no @@CONSOLES@@ placeholder: no consoles written");
    }
    if !text.contains("console.%N") {
        tracing::warn!(template = %legacy.display(), "conman template does not name logs console.%N: the console watcher will not find them");
    }
    Ok(Some((text, legacy)))
}

/// `yaml`, `sql` and `conman_quote`: the quoting of the writers, as filters.
fn register_filters(tera: &mut tera::Tera) {
    tera.register_filter("yaml", |v: &str, _: tera::Kwargs, _: &tera::State| {
        with_buf(|b| {
            push_yaml_quote(b, v);
            Ok(())
        })
    });
    tera.register_filter(
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
    tera.register_filter(
        "conman_quote",
        |v: &str, _: tera::Kwargs, _: &tera::State| -> tera::TeraResult<tera::Value> {
            // The value is not echoed: it may hold the BMC password.
            with_buf(|b| push_conman_quote(b, v))
        },
    );
}

/// Run a quoting function on a new buffer; the result as a tera value.
fn with_buf(
    f: impl FnOnce(&mut String) -> Result<(), &'static str>,
) -> tera::TeraResult<tera::Value> {
    let mut b = String::new();
    f(&mut b).map_err(tera::Error::message)?;
    Ok(tera::Value::from(b))
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
