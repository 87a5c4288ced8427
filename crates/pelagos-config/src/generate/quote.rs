//! Quoting for the formats the generated files are written in. Each function
//! returns a complete literal (quotes included), so a value can never break
//! out of it.

/// A YAML double-quoted scalar: `"..."` with `\` `"` and control characters
/// escaped. Always quoted, so `yes`, `no`, `1e3`, `~` or `10:20` stay strings.
pub fn yaml_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A PostgreSQL string literal: `'...'` with `'` doubled. A value holding a
/// backslash becomes an `E'...'` literal with the backslash doubled, so the
/// script means the same whatever `standard_conforming_strings` says. `None`
/// is `NULL`. A NUL character cannot be stored in PostgreSQL text: `Err`.
pub fn sql_literal(s: Option<&str>) -> Result<String, &'static str> {
    let Some(s) = s else {
        return Ok("NULL".into());
    };
    if s.contains('\0') {
        return Err("a NUL character cannot be stored in PostgreSQL text");
    }
    let escaped = s.replace('\'', "''");
    Ok(if s.contains('\\') {
        format!("E'{}'", escaped.replace('\\', "\\\\"))
    } else {
        format!("'{escaped}'")
    })
}

/// A conman config string. conman has no escapes: a string is `"..."` or
/// `'...'` and cannot hold a newline, so a value with a newline or both quote
/// kinds cannot be written (`Err` with the reason).
pub fn conman_quote(s: &str) -> Result<String, &'static str> {
    if s.contains(['\n', '\r']) {
        Err("conman strings cannot contain a line break")
    } else if !s.contains('"') {
        Ok(format!("\"{s}\""))
    } else if !s.contains('\'') {
        Ok(format!("'{s}'"))
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
