//! Generating the files of a 10,000-node lab: prints milliseconds per parse,
//! per render (validation included) and per full write (render + 5 atomic
//! writes), for two lab shapes:
//! - `dynamic`: every node has mac, ip, bmc_mac, bmc_ip, both dynamic
//!   (`pelagos_testkit::labs::big_lab_json`);
//! - `full`: the same plus t_exclude and a longer comment, about 2.6 MB
//!   (`pelagos_testkit::labs::full_lab_json`), the shape of the make-cfgs timing below.
//!
//! Goal for the whole `make-cfgs -c full.json -d out` run (process start,
//! parse, validate, render, five fsynced writes): under 50 ms wall (the
//! Python original takes about 1.3 s).
//!
//! `FULL_JSON=<path> cargo bench -p pelagos-config --bench generate` writes
//! the full lab to `<path>` and exits, for timing the binary:
//! `hyperfine -N -w 3 -r 10 'target/release/make-cfgs -c <path> -d out'`.
//! `PERF_ONLY=<kind>` only renders that kind of the full lab, 100 times, for a
//! profiler (`perf record`).
#![allow(clippy::print_stdout)]

use pelagos_testkit::labs as common;

use pelagos_config::LabConfig;
use pelagos_config::generate::{self, Options};
use std::time::{Duration, Instant};

const NODES: usize = 10_000;

/// CPU time of this process, all threads (utime + stime from /proc, in
/// clock ticks of 10 ms: read over many rounds), so the figures stay
/// meaningful on a machine busy with other work.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    let ticks = field(11) + field(12);
    Duration::from_millis(ticks * 10)
}

/// Best wall time, mean wall time and mean CPU time of `rounds` runs.
fn time<T>(rounds: u32, mut f: impl FnMut() -> T) -> (Duration, Duration, Duration) {
    let mut best = Duration::MAX;
    let mut total = Duration::ZERO;
    let cpu0 = cpu_time();
    for _ in 0..rounds {
        let t = Instant::now();
        std::hint::black_box(f());
        let d = t.elapsed();
        best = best.min(d);
        total += d;
    }
    (best, total / rounds, (cpu_time() - cpu0) / rounds)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn line(what: &str, best: Duration, mean: Duration, cpu: Duration) {
    println!(
        "{what:32} best {:7.2} ms  mean {:7.2} ms  cpu {:7.2} ms",
        ms(best),
        ms(mean),
        ms(cpu)
    );
}

fn main() {
    if let Ok(path) = std::env::var("FULL_JSON") {
        std::fs::write(&path, common::full_lab_json(NODES)).unwrap();
        return;
    }
    if let Ok(k) = std::env::var("PERF_ONLY") {
        let lab = LabConfig::parse(&common::full_lab_json(NODES)).unwrap();
        let one = Options {
            kinds: vec![k.parse().unwrap()],
            sql_upsert: true,
        };
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..100 {
            std::hint::black_box(generate::render_all(&lab, &one, dir.path()).unwrap());
        }
        return;
    }
    shape("dynamic", &common::big_lab_json(NODES));
    println!();
    shape("full", &common::full_lab_json(NODES));
}

fn shape(name: &str, text: &str) {
    println!(
        "{NODES}-node lab, {name} shape ({} bytes); wall-clock best and mean, and mean CPU time (all threads):",
        text.len()
    );
    let (best, mean, cpu) = time(10, || LabConfig::parse(text).unwrap());
    line("parse (strict JSON)", best, mean, cpu);
    let (best, mean, cpu) = time(10, || {
        serde_json::from_str::<serde_json::Value>(text).unwrap()
    });
    line("  serde_json::Value alone", best, mean, cpu);

    let lab = LabConfig::parse(text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        sql_upsert: true,
        ..Options::default()
    };
    let (best, mean, cpu) = time(20, || {
        generate::render_all(&lab, &opts, dir.path()).unwrap()
    });
    line("render_all: validate + 5 files", best, mean, cpu);

    let (best, mean, cpu) = time(20, || {
        let out = generate::render_all(&lab, &opts, dir.path()).unwrap();
        generate::write_all(&out, dir.path()).unwrap()
    });
    line("render_all + write_all (fsync)", best, mean, cpu);

    let (best, mean, cpu) = time(20, || lab.validate());
    line("  validate alone", best, mean, cpu);
    for kind in generate::Kind::ALL {
        let one = Options {
            kinds: vec![kind],
            ..opts.clone()
        };
        let (best, mean, cpu) = time(20, || generate::render_all(&lab, &one, dir.path()).unwrap());
        line(&format!("  validate + {kind}"), best, mean, cpu);
    }

    let out = generate::render_all(&lab, &opts, dir.path()).unwrap();
    let bytes: usize = out.iter().map(|o| o.contents.len()).sum();
    println!("output: {} files, {} bytes", out.len(), bytes);
}
