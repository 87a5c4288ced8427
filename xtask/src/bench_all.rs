//! `cargo xtask bench --all`: the project's other benchmarks, as table rows.
//! Runs `cargo xtask bench-images` (in process), every crate's `cargo bench`
//! target (their own printed lines are echoed, then parsed into figures; a
//! line no parser knows becomes a row of its own) and `hyperfine` of the
//! release make-cfgs on the full 10,000-node lab.

use crate::bench_images;
use crate::table::Row;
use anyhow::{Context, Result, ensure};
use clap::Parser;
use std::path::Path;
use std::process::{Command, Stdio};

/// The crates' bench targets (`[[bench]]`, `harness = false`: each prints
/// its own lines; none is criterion).
const CRATE_BENCHES: [(&str, &str); 4] = [
    ("pelagos-config", "generate"),
    ("pelagos-conman", "tail"),
    ("pelagos-pxe", "install"),
    ("pelagos-ipmi", "bmc"),
];

const HYPERFINE: &str = "hyperfine -N -w 3 -r 20";

#[derive(Parser)]
struct Images {
    #[command(flatten)]
    args: bench_images::Args,
}

/// Every other benchmark's figures; a benchmark that fails gives one
/// `failed` row (with its error printed) instead of stopping the rest.
pub fn run(root: &Path, target: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    let images = Images::parse_from(["bench-images"]).args;
    match bench_images::measure(images) {
        Ok(r) => rows.extend(r),
        Err(e) => {
            eprintln!("bench-images failed: {e:#}");
            rows.push(failed("bench-images", "cargo xtask bench-images"));
        }
    }
    for (krate, bench) in CRATE_BENCHES {
        let command = format!("cargo bench -p {krate} --bench {bench}");
        println!("== {command}");
        match cargo_bench(root, krate, bench) {
            Ok(out) => {
                print!("{out}");
                rows.extend(parse_bench(bench, &out, &command));
            }
            Err(e) => {
                eprintln!("{command} failed: {e:#}");
                rows.push(failed(&format!("{krate} {bench}"), &command));
            }
        }
    }
    rows.push(make_cfgs_end_to_end(root, target));
    rows
}

fn failed(figure: &str, command: &str) -> Row {
    Row::new(figure, "failed", "", command)
}

fn cargo_bench(root: &Path, krate: &str, bench: &str) -> Result<String> {
    let out = Command::new(env!("CARGO"))
        .args(["bench", "--quiet", "-p", krate, "--bench", bench])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()?;
    ensure!(out.status.success(), "exit {}", out.status);
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `hyperfine -N -w 3 -r 20` of the release make-cfgs on the full lab that
/// the generate bench writes with `FULL_JSON=<path>`: mean ± σ in ms.
fn make_cfgs_end_to_end(root: &Path, target: &Path) -> Row {
    let figure = "make-cfgs end to end, full 10,000-node lab (mean ± σ)";
    let command = format!(
        "FULL_JSON=full.json cargo bench -p pelagos-config --bench generate; \
         {HYPERFINE} 'target/release/make-cfgs -c full.json -d out'"
    );
    if Command::new("hyperfine")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        return Row::new(
            figure,
            "-",
            "",
            format!("hyperfine not installed (apt-get install hyperfine): {command}"),
        );
    }
    match hyperfine_make_cfgs(root, target) {
        Ok((mean, sd)) => Row::new(figure, format!("{mean:.1} ± {sd:.1}"), "ms", command),
        Err(e) => {
            eprintln!("make-cfgs hyperfine failed: {e:#}");
            failed(figure, &command)
        }
    }
}

fn hyperfine_make_cfgs(root: &Path, target: &Path) -> Result<(f64, f64)> {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "make-cfgs"])
        .current_dir(root)
        .status()?;
    ensure!(status.success(), "release build of make-cfgs failed");
    let dir = tempfile::tempdir()?;
    let lab = dir.path().join("full.json");
    let status = Command::new(env!("CARGO"))
        .args([
            "bench",
            "--quiet",
            "-p",
            "pelagos-config",
            "--bench",
            "generate",
        ])
        .env("FULL_JSON", &lab)
        .current_dir(root)
        .status()?;
    ensure!(status.success(), "FULL_JSON generate bench failed");
    let json = dir.path().join("hyperfine.json");
    let bin = target.join("release/make-cfgs");
    let run = format!(
        "{} -c {} -d {}",
        bin.display(),
        lab.display(),
        dir.path().join("out").display()
    );
    println!("== {HYPERFINE} '{run}'");
    let status = Command::new("hyperfine")
        .args(HYPERFINE.split(' ').skip(1))
        .arg("--export-json")
        .arg(&json)
        .arg(&run)
        .status()?;
    ensure!(status.success(), "hyperfine failed");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    let r = &v["results"][0];
    let mean = r["mean"].as_f64().context("no mean in hyperfine JSON")?;
    let sd = r["stddev"].as_f64().unwrap_or(0.0);
    Ok((mean * 1e3, sd * 1e3))
}

/// The figures of one bench target's output: the lines each bench prints
/// (see its source) as rows; a line none of the patterns fits becomes a row
/// with the whole line as its figure. Heading lines (ending in `:`, or
/// empty) only give context: the generate bench's lab shape.
pub fn parse_bench(bench: &str, out: &str, command: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut context = String::new();
    for line in out.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        if line.ends_with(':') {
            if let Some(shape) = line
                .split_once(" shape")
                .and_then(|(a, _)| a.rsplit(", ").next())
            {
                context = format!("{shape} lab: ");
            }
            continue;
        }
        let row = |figure: String, value: &str, unit: &str| {
            Row::new(format!("{bench}: {figure}"), value, unit, command)
        };
        // generate: "<what>  best X ms  mean Y ms  cpu Z ms"
        if let (Some((what, rest)), true) = (line.split_once(" best "), line.contains(" cpu ")) {
            let best = number_before(rest, "ms");
            let cpu = line
                .rsplit_once(" cpu ")
                .map(|(_, c)| number_before(c, "ms"));
            if let (Some(best), Some(Some(cpu))) = (best, cpu) {
                let what = format!("{context}{}", what.trim());
                rows.push(row(format!("{what}, best wall"), best, "ms"));
                rows.push(row(format!("{what}, mean cpu"), cpu, "ms"));
                continue;
            }
        }
        // bmc: "<label>  mean X ms   median Y ms   max Z ms   (N runs)"
        if let (Some((what, rest)), true) = (line.split_once(" mean "), line.contains(" median "))
            && let Some(mean) = number_before(rest, "ms")
        {
            rows.push(row(format!("{}, mean", what.trim()), mean, "ms"));
            continue;
        }
        if let Some(parsed) = parse_label_line(line) {
            for (figure, value, unit) in parsed {
                rows.push(row(figure, value, &unit));
            }
            continue;
        }
        rows.push(Row::new(format!("{bench}: {line}"), "", "", command));
    }
    rows
}

/// `"<label>: ... <n> <unit> ..."` lines (tail, install, bmc's first line,
/// generate's `output:`): every number followed by a time or rate unit, the
/// label naming which one when a line has several.
fn parse_label_line(line: &str) -> Option<Vec<(String, &str, String)>> {
    let (label, rest) = line.split_once(": ")?;
    let mut out = Vec::new();
    let words: Vec<&str> = rest
        .split(|c: char| c.is_whitespace() || ",:()".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    for (i, w) in words.iter().enumerate() {
        // Debug-printed Durations glue the unit on: "1.234567ms".
        let (num, unit, next) = match split_unit(w) {
            Some((n, u)) => (n, u.to_owned(), i + 1),
            None => match (w.parse::<f64>(), words.get(i + 1)) {
                (Ok(_), Some(u)) if UNITS.contains(u) => (*w, (*u).to_owned(), i + 2),
                _ => continue,
            },
        };
        let after: Vec<&str> = words.iter().skip(next).take(3).copied().collect();
        let what = match after.as_slice() {
            ["per", x, ..] => format!("{label}, per {x}"),
            ["of", "raw", ..] => format!("{label}, raw disk verified"),
            ["copied", ..] => format!("{label}, copied"),
            _ if unit == "MB/s" => format!("{label}, rate"),
            _ => format!("{label}, time"),
        };
        out.push((what, num, unit));
    }
    if out.len() == 1 && !out[0].0.contains(", per ") {
        // One figure: the label alone says what it is.
        out[0].0 = label.to_owned();
    }
    (!out.is_empty()).then_some(out)
}

const UNITS: [&str; 5] = ["ns", "µs", "ms", "s", "MB/s"];

fn split_unit(w: &str) -> Option<(&str, &'static str)> {
    ["ns", "µs", "ms", "s"].into_iter().find_map(|u| {
        let n = w.strip_suffix(u)?;
        // "ms" also ends in "s": only a pure number before the unit counts.
        n.parse::<f64>().is_ok().then_some((n, u))
    })
}

/// The number just before the first `unit` word in `s`, as printed.
fn number_before<'a>(s: &'a str, unit: &str) -> Option<&'a str> {
    let words: Vec<&str> = s.split_whitespace().collect();
    let i = words.iter().position(|w| *w == unit)?;
    let n = *words.get(i.checked_sub(1)?)?;
    n.parse::<f64>().is_ok().then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(bench: &str, out: &str) -> Vec<(String, String, String)> {
        parse_bench(bench, out, "c")
            .into_iter()
            .map(|r| (r.figure, r.value, r.unit))
            .collect()
    }

    fn f(a: &str, b: &str, c: &str) -> (String, String, String) {
        (a.into(), b.into(), c.into())
    }

    #[test]
    fn generate_lines() {
        let out = "10000-node lab, full shape (2600000 bytes); wall-clock best and mean, and mean CPU time (all threads):
parse (strict JSON)              best   12.34 ms  mean   13.00 ms  cpu   14.00 ms
output: 5 files, 123 bytes
";
        assert_eq!(
            figures("generate", out),
            [
                f(
                    "generate: full lab: parse (strict JSON), best wall",
                    "12.34",
                    "ms"
                ),
                f(
                    "generate: full lab: parse (strict JSON), mean cpu",
                    "14.00",
                    "ms"
                ),
                f("generate: output: 5 files, 123 bytes", "", ""),
            ]
        );
    }

    #[test]
    fn tail_install_bmc_lines() {
        let out = "meaningful_line: 200000 lines in 10.5ms (0.05 µs per line, 1500 MB/s)
poll, nothing new: 0.12 µs
add-image install: 256 MiB raw disk (1.0 MiB xz) + 72 MiB kernel/initrds in 2.50 s: 107 MB/s of raw disk verified (xz decode + md5), 30 MB/s copied (sha256 + fsync)
power status                             mean    25.1 ms   median    24.0 ms   max    30.2 ms   (30 runs)
";
        assert_eq!(
            figures("b", out),
            [
                f("b: meaningful_line, time", "10.5", "ms"),
                f("b: meaningful_line, per line", "0.05", "µs"),
                f("b: meaningful_line, rate", "1500", "MB/s"),
                f("b: poll, nothing new", "0.12", "µs"),
                f("b: add-image install, time", "2.50", "s"),
                f("b: add-image install, raw disk verified", "107", "MB/s"),
                f("b: add-image install, copied", "30", "MB/s"),
                f("b: power status, mean", "25.1", "ms"),
            ]
        );
    }

    #[test]
    fn debug_durations_and_several_figures_per_line() {
        let out = r#"open 149 MB log: 437.249µs, 65537 bytes read, last line "[  OK  ] Started unit 9 of the boot."
boot records: 200 nodes (half UEFI: 3 files each) in 2398.5 ms, 11992 µs per node (fsync'd)
resolve_os teuthology form in a 101-image catalog: 1.16 ms per lookup (scans the manifests)
"#;
        assert_eq!(
            figures("b", out),
            [
                f("b: open 149 MB log", "437.249", "µs"),
                f("b: boot records, time", "2398.5", "ms"),
                f("b: boot records, per node", "11992", "µs"),
                f(
                    "b: resolve_os teuthology form in a 101-image catalog, per lookup",
                    "1.16",
                    "ms"
                ),
            ]
        );
    }
}
