//! Costs of following console logs. Figures are printed, not asserted.
//!
//! `cargo bench -p pelagos-conman --bench tail`
#![allow(clippy::print_stdout)]

use pelagos_conman::{ConsoleLog, meaningful_line};
use std::fs::OpenOptions;
use std::io::Write;
use std::time::{Duration, Instant};

fn line(i: usize) -> String {
    format!("2026-11-24 16:40:07 ^[[0m[  OK  ] Started unit number {i} of the boot.\r\n")
}

fn per(d: Duration, n: usize) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6 / n as f64)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();

    // meaningful_line throughput on sanitized, timestamped lines.
    let lines: Vec<String> = (0..200_000).map(line).collect();
    let t = Instant::now();
    let mut kept = 0;
    for l in &lines {
        kept += usize::from(meaningful_line(l).is_some());
    }
    let d = t.elapsed();
    println!(
        "meaningful_line: {} lines in {:?} ({} per line, {:.0} MB/s)",
        kept,
        d,
        per(d, lines.len()),
        lines.iter().map(String::len).sum::<usize>() as f64 / d.as_secs_f64() / 1e6
    );

    // Opening a large log: only its end is read.
    let big = dir.path().join("console.big");
    {
        let mut f = std::fs::File::create(&big).unwrap();
        for _ in 0..10 {
            for l in &lines {
                f.write_all(l.as_bytes()).unwrap();
            }
        }
    }
    let size = std::fs::metadata(&big).unwrap().len();
    let t = Instant::now();
    let mut log = ConsoleLog::open(&big).unwrap();
    println!(
        "open {:.0} MB log: {:?}, {} bytes read, last line {:?}",
        size as f64 / 1e6,
        t.elapsed(),
        log.bytes_read(),
        log.last_line().unwrap_or("")
    );

    // Polls with nothing new (the common case, once a second per node).
    let n = 100_000;
    let t = Instant::now();
    for _ in 0..n {
        log.poll().unwrap();
    }
    println!("poll, nothing new: {}", per(t.elapsed(), n));

    // Polls with one new line each.
    let mut f = OpenOptions::new().append(true).open(&big).unwrap();
    let n = 20_000;
    let t = Instant::now();
    for l in lines.iter().take(n) {
        f.write_all(l.as_bytes()).unwrap();
        log.poll().unwrap();
    }
    println!("append one line + poll: {}", per(t.elapsed(), n));

    // A lab provisioning 1000 nodes at once: one poll round over all logs.
    let mut logs: Vec<ConsoleLog> = (0..1000)
        .map(|i| {
            let p = dir.path().join(format!("console.n{i}"));
            std::fs::write(&p, lines[..100].concat()).unwrap();
            ConsoleLog::open(&p).unwrap()
        })
        .collect();
    let rounds = 20;
    let t = Instant::now();
    for _ in 0..rounds {
        for log in &mut logs {
            log.poll().unwrap();
        }
    }
    println!(
        "poll round over 1000 logs: {:.2} ms",
        t.elapsed().as_secs_f64() * 1e3 / rounds as f64
    );
}
