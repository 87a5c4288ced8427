//! The summary table of `cargo xtask bench`: one row per measured figure
//! (figure, value, unit, the command that reproduces it). Pure formatting.

/// One measured figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub figure: String,
    pub value: String,
    pub unit: String,
    pub command: String,
}

impl Row {
    pub fn new(
        figure: impl Into<String>,
        value: impl Into<String>,
        unit: impl Into<String>,
        command: impl Into<String>,
    ) -> Self {
        Row {
            figure: figure.into(),
            value: value.into(),
            unit: unit.into(),
            command: command.into(),
        }
    }
}

/// The rows as a text table: a header, a rule, then one line per row;
/// figure and unit left-aligned, value right-aligned, command last and
/// unpadded. Every line ends with a newline, no line with trailing spaces.
pub fn render(rows: &[Row]) -> String {
    let header = Row::new("figure", "value", "unit", "command");
    let width = |f: fn(&Row) -> &str| {
        rows.iter()
            .chain([&header])
            .map(|r| f(r).chars().count())
            .max()
            .unwrap_or(0)
    };
    let (wf, wv, wu) = (
        width(|r| &r.figure),
        width(|r| &r.value),
        width(|r| &r.unit),
    );
    let line = |r: &Row| {
        let text = format!(
            "{:<wf$}  {:>wv$}  {:<wu$}  {}",
            r.figure, r.value, r.unit, r.command
        );
        format!("{}\n", text.trim_end())
    };
    let mut out = line(&header);
    out.push_str(&format!(
        "{}  {}  {}  {}\n",
        "-".repeat(wf),
        "-".repeat(wv),
        "-".repeat(wu),
        "-".repeat(width(|r| &r.command))
    ));
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_values_right_command_last() {
        let rows = [
            Row::new(
                "GET /nodes",
                "12345",
                "req/s",
                "cargo xtask bench --no-scale",
            ),
            Row::new("peak RSS", "3.5", "MiB", "cargo xtask bench-images"),
            Row::new("ipmi bench", "failed", "", "cargo bench -p x"),
        ];
        assert_eq!(
            render(&rows),
            "\
figure       value  unit   command
----------  ------  -----  ----------------------------
GET /nodes   12345  req/s  cargo xtask bench --no-scale
peak RSS       3.5  MiB    cargo xtask bench-images
ipmi bench  failed         cargo bench -p x
"
        );
    }

    #[test]
    fn no_rows_is_header_and_rule() {
        assert_eq!(
            render(&[]),
            "figure  value  unit  command\n------  -----  ----  -------\n"
        );
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let out = render(&[Row::new("poll", "0.12", "µs", "c")]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[2], "poll     0.12  µs    c");
        assert_eq!(lines[0], "figure  value  unit  command");
    }
}
