//! Quoting for the formats the generated files are written in. Each function
//! returns a complete literal (quotes included), so a value can never break
//! out of it.

/// A YAML double-quoted scalar: `"..."` with `\` `"` and control characters
/// escaped. Always quoted, so `yes`, `no`, `1e3`, `~` or `10:20` stay strings.
pub fn yaml_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_yaml_quote(&mut out, s);
    out
}

/// [`yaml_quote`] appended to `out`.
pub(crate) fn push_yaml_quote(out: &mut String, s: &str) {
    out.push('"');
    if !s
        .bytes()
        .any(|b| b == b'"' || b == b'\\' || b.is_ascii_control() || b >= 0x80)
    {
        out.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => {
                    use std::fmt::Write;
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

/// A PostgreSQL string literal: `'...'` with `'` doubled. A value holding a
/// backslash becomes an `E'...'` literal with the backslash doubled, so the
/// script means the same whatever `standard_conforming_strings` says. `None`
/// is `NULL`. A NUL character cannot be stored in PostgreSQL text: `Err`.
pub fn sql_literal(s: Option<&str>) -> Result<String, &'static str> {
    let mut out = String::with_capacity(s.map_or(4, |s| s.len() + 3));
    push_sql_literal(&mut out, s)?;
    Ok(out)
}

/// [`sql_literal`] appended to `out` (nothing appended on `Err`).
pub(crate) fn push_sql_literal(out: &mut String, s: Option<&str>) -> Result<(), &'static str> {
    let Some(s) = s else {
        out.push_str("NULL");
        return Ok(());
    };
    if s.contains('\0') {
        return Err("a NUL character cannot be stored in PostgreSQL text");
    }
    let backslash = s.contains('\\');
    if backslash {
        out.push('E');
    }
    out.push('\'');
    if !backslash && !s.contains('\'') {
        out.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '\'' => out.push_str("''"),
                '\\' => out.push_str("\\\\"),
                c => out.push(c),
            }
        }
    }
    out.push('\'');
    Ok(())
}

/// A conman config string. conman has no escapes: a string is `"..."` or
/// `'...'` and cannot hold a newline, so a value with a newline or both quote
/// kinds cannot be written (`Err` with the reason).
pub fn conman_quote(s: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(s.len() + 2);
    push_conman_quote(&mut out, s)?;
    Ok(out)
}

/// [`conman_quote`] appended to `out` (nothing appended on `Err`).
pub(crate) fn push_conman_quote(out: &mut String, s: &str) -> Result<(), &'static str> {
    let quote = conman_quote_char(s)?;
    out.push(quote);
    out.push_str(s);
    out.push(quote);
    Ok(())
}

/// The quote [`conman_quote`] puts around `s`, or why it cannot.
pub(crate) fn conman_quote_char(s: &str) -> Result<char, &'static str> {
    if s.contains(['\n', '\r']) {
        Err("conman strings cannot contain a line break")
    } else if !s.contains('"') {
        Ok('"')
    } else if !s.contains('\'') {
        Ok('\'')
    } else {
        Err("conman strings cannot contain both ' and \"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml() {
        assert_eq!(yaml_quote("yes"), r#""yes""#);
        assert_eq!(yaml_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(yaml_quote("a\nb\u{1}"), r#""a\nb\u0001""#);
    }

    #[test]
    fn sql() {
        assert_eq!(sql_literal(None).unwrap(), "NULL");
        assert_eq!(sql_literal(Some("it's")).unwrap(), "'it''s'");
        assert_eq!(sql_literal(Some(r"a\'b")).unwrap(), r"E'a\\''b'");
        assert!(sql_literal(Some("a\0")).is_err());
    }

    #[test]
    fn conman() {
        assert_eq!(conman_quote("ab").unwrap(), "\"ab\"");
        assert_eq!(conman_quote("a\"b").unwrap(), "'a\"b'");
        assert!(conman_quote("a\"b'").is_err());
        assert!(conman_quote("a\nb").is_err());
    }
}
