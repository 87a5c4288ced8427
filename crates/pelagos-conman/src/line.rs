//! What counts as a "meaningful" console line.
//!
//! conmand writes what the node's serial port sends, with its own notices
//! (`<ConMan> Console [x] log opened at ...`) in between. With the
//! `timestamp` log option every line starts with `YYYY-MM-DD HH:MM:SS `; with
//! `sanitize` control characters are written in caret notation (`^[` for ESC,
//! `^G`, `^H`, `^I` ...), otherwise they appear raw. Line ends are CRLF.

/// The text a console line shows, or `None` when it is not meaningful.
///
/// Not meaningful: empty or whitespace-only lines, conman's own `<ConMan> ...`
/// lines, and lines that are only a timestamp. Otherwise the result is the
/// line without its line end, its `YYYY-MM-DD HH:MM:SS ` prefix and terminal
/// control sequences (raw `ESC[...` or sanitized `^[[...`), trimmed. Cursor
/// movements become a space, so a BIOS screen painted with
/// `^[[19;1HSATA^[[19;6HPort` reads `SATA Port`.
///
/// Caret notation is only taken for a control character when the character
/// after `^` is one a sanitizing conmand writes (`@`, `A`-`Z`, `[`, `\`, `]`,
/// `^`, `_`, `?`); other carets stay text.
///
/// ```
/// use pelagos_conman::meaningful_line;
/// assert_eq!(meaningful_line("2026-11-24 16:40:07 boot line 0\r\n").as_deref(), Some("boot line 0"));
/// assert_eq!(meaningful_line("2026-11-24 16:40:09 ^[[19;1HSATA^[[19;6HPort A\r").as_deref(),
///            Some("SATA Port A"));
/// assert_eq!(meaningful_line("<ConMan> Console [n1] log opened at 2026-11-24 16:40:07 UTC."), None);
/// assert_eq!(meaningful_line("2026-11-24 16:40:07 \r\n"), None);
/// assert_eq!(meaningful_line("   \r\n"), None);
/// ```
pub fn meaningful_line(raw: &str) -> Option<String> {
    let line = raw.trim_end_matches(['\r', '\n']);
    if line.starts_with("<ConMan>") {
        return None;
    }
    let body = strip_timestamp(line);
    let text = strip_controls(body);
    let text = text.trim();
    if text.is_empty() {
        None
    } else {
        Some(text.to_owned())
    }
}

/// `line` without a leading `YYYY-MM-DD HH:MM:SS` and the space after it.
fn strip_timestamp(line: &str) -> &str {
    const PATTERN: &[u8; 19] = b"dddd-dd-dd dd:dd:dd";
    let b = line.as_bytes();
    if b.len() < PATTERN.len() {
        return line;
    }
    let matches = PATTERN.iter().zip(b).all(|(p, c)| match p {
        b'd' => c.is_ascii_digit(),
        _ => p == c,
    });
    if !matches {
        return line;
    }
    match b.get(19) {
        None => "",
        Some(b' ') => &line[20..],
        // Something glued to the time is not conman's prefix.
        Some(_) => line,
    }
}

/// One control character, raw or from caret notation.
fn caret_control(next: Option<char>) -> Option<char> {
    match next? {
        c @ ('@'..='_') => Some(char::from(c as u8 - b'@')),
        '?' => Some('\x7f'),
        _ => None,
    }
}

/// The visible text of a line: escape sequences removed (cursor movements
/// become a space), tabs become spaces, backspace erases, other control
/// characters vanish, and a carriage return inside the line keeps only the
/// last non-blank stretch (what a terminal would show over it).
fn strip_controls(s: &str) -> String {
    // Decode caret notation first so raw and sanitized logs take one path.
    let mut chars: Vec<char> = Vec::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '^'
            && let Some(ctl) = caret_control(it.peek().copied())
        {
            it.next();
            chars.push(ctl);
        } else {
            chars.push(c);
        }
    }

    let mut out = String::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\x1b' => {
                let (consumed, moves_cursor) = escape_sequence(&chars[i..]);
                i += consumed;
                if moves_cursor {
                    push_space(&mut out);
                }
            }
            '\t' => push_space(&mut out),
            '\x08' => {
                out.pop();
            }
            '\r' => {
                if !out.trim().is_empty() && chars[i..].iter().any(|c| !c.is_whitespace()) {
                    out.clear();
                }
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn push_space(out: &mut String) {
    if !out.is_empty() && !out.ends_with(' ') {
        out.push(' ');
    }
}

/// Length of the escape sequence after an ESC in `rest`, and whether it moves
/// the cursor (so the text around it is separate words on screen).
fn escape_sequence(rest: &[char]) -> (usize, bool) {
    match rest.first() {
        None => (0, false),
        // CSI: parameters 0x30-0x3F, intermediates 0x20-0x2F, final 0x40-0x7E.
        Some('[') => {
            let mut n = 1;
            while let Some(&c) = rest.get(n) {
                n += 1;
                if ('\x40'..='\x7e').contains(&c) {
                    return (
                        n,
                        matches!(c, 'H' | 'f' | 'C' | 'G' | 'd' | 'E' | 'F' | '`' | 'a'),
                    );
                }
                if !('\x20'..='\x3f').contains(&c) {
                    // Broken sequence: stop before the stranger.
                    return (n - 1, false);
                }
            }
            (n, false)
        }
        // OSC/DCS/PM/APC strings: up to BEL or ST (ESC \).
        Some(']' | 'P' | '^' | '_') => {
            let mut n = 1;
            while let Some(&c) = rest.get(n) {
                n += 1;
                if c == '\x07' {
                    return (n, false);
                }
                if c == '\x1b' && rest.get(n) == Some(&'\\') {
                    return (n + 1, false);
                }
            }
            (n, false)
        }
        // Other escapes: intermediates 0x20-0x2F then one final byte.
        Some(_) => {
            let mut n = 0;
            while let Some(&c) = rest.get(n) {
                n += 1;
                if !('\x20'..='\x2f').contains(&c) {
                    return (n, false);
                }
            }
            (n, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::meaningful_line;

    fn m(s: &str) -> Option<String> {
        meaningful_line(s)
    }

    #[test]
    fn timestamps_are_stripped_and_alone_are_not_meaningful() {
        assert_eq!(
            m("2020-01-29 21:20:31 Welcome to Leap\r\n").as_deref(),
            Some("Welcome to Leap")
        );
        assert_eq!(m("2020-01-29 21:20:31 \r\n"), None);
        assert_eq!(m("2020-01-29 21:20:31"), None);
        assert_eq!(m("2020-01-29 21:20:31   \t "), None);
        // Not conman's prefix: kept as text.
        assert_eq!(
            m("2020-01-29 21:20:31x").as_deref(),
            Some("2020-01-29 21:20:31x")
        );
        assert_eq!(m("2020-01-29 21:20").as_deref(), Some("2020-01-29 21:20"));
        // Only the prefix is conman's; a date later in the line is the node's.
        assert_eq!(
            m("2020-01-29 21:20:31 Clock: 2020-01-29 21:20:31").as_deref(),
            Some("Clock: 2020-01-29 21:20:31")
        );
    }

    #[test]
    fn conman_lines_and_blank_lines_are_not_meaningful() {
        assert_eq!(
            m("<ConMan> Console [tn] log opened at 2026-11-25 21:05:06 UTC.\r\n"),
            None
        );
        assert_eq!(
            m("<ConMan> Console [teuthida-2] log at 2020-01-29 16:59:59 CET."),
            None
        );
        assert_eq!(m(""), None);
        assert_eq!(m("\r\n"), None);
        assert_eq!(m("  \t \r"), None);
        assert_eq!(m("^I^I"), None);
    }

    #[test]
    fn sanitized_escapes_are_stripped() {
        assert_eq!(
            m("2026-11-25 21:05:06 ^[[19;1HSATA^[[19;6HPort A^M").as_deref(),
            Some("SATA Port A")
        );
        assert_eq!(
            m("2026-11-25 21:05:06 ^[[0mcolor^[[1;32m green^[[0m").as_deref(),
            Some("color green")
        );
        assert_eq!(
            m("2026-11-25 21:05:06 bell^G bs^Hx tab^Ihere").as_deref(),
            Some("bell bx tab here")
        );
        assert_eq!(
            m("2026-11-25 21:05:06 ^[]0;title^Gosc").as_deref(),
            Some("osc")
        );
        assert_eq!(
            m("2026-11-25 21:05:06 ^[(Bcharset").as_deref(),
            Some("charset")
        );
        assert_eq!(m("2026-11-25 21:05:06 ^[[24;1H^[[?25h"), None);
        // A caret that is not a control character stays.
        assert_eq!(m("x^2 + y^2").as_deref(), Some("x^2 + y^2"));
    }

    #[test]
    fn raw_escapes_are_stripped() {
        assert_eq!(
            m("\x1b[19;1HSATA\x1b[19;6HPort A\r\n").as_deref(),
            Some("SATA Port A")
        );
        assert_eq!(
            m("\x1b[0m\x1b[1;32mOK\x1b[0m  Started\r\n").as_deref(),
            Some("OK  Started")
        );
        assert_eq!(m("\x1b]0;title\x1b\\osc").as_deref(), Some("osc"));
        assert_eq!(m("\x1b[2J\x1b[H"), None);
        assert_eq!(
            m("trailing escape \x1b").as_deref(),
            Some("trailing escape")
        );
        assert_eq!(
            m("broken \x1b[12\u{e9}x").as_deref(),
            Some("broken \u{e9}x")
        );
    }

    #[test]
    fn carriage_return_inside_a_line_keeps_the_last_stretch() {
        assert_eq!(m("progress 10%\r50%\r90%\r\n").as_deref(), Some("90%"));
        assert_eq!(m("done\r   \r\n").as_deref(), Some("done"));
    }

    #[test]
    fn recorded_bios_screen_reads_as_words() {
        let line = include_str!("../tests/fixtures/console.bios")
            .lines()
            .nth(4)
            .unwrap();
        let got = m(line).unwrap();
        assert!(
            got.starts_with("SATA Port A device not found. SATA Port B device not found."),
            "{got}"
        );
        assert!(got.ends_with("SATA Port E device not found."), "{got}");
    }
}
