//! Where a provision's time goes: while a provision runs, the console log,
//! dnsmasq's log, the BMC's op log and the server's log are polled every
//! 100 ms, and the first time each stage's evidence shows is noted.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One stage and the evidence that it was reached.
#[derive(Debug, Clone, Copy)]
pub struct Stage {
    pub name: &'static str,
    pub source: Source,
    /// Any of these substrings, in text that appeared after the start.
    pub any_of: &'static [&'static str],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Bmc,
    Console,
    Dnsmasq,
    Server,
}

/// The stages of a reimage in the order they happen. `{mac}` (dashed),
/// `{colon_mac}`, `{ip}` and `{node}` are filled in per node; `a && b`
/// needs both in one line.
pub const STAGES: &[Stage] = &[
    Stage {
        name: "power",
        source: Source::Bmc,
        any_of: &["\"op\": \"cycle\"", "\"op\": \"on\""],
    },
    Stage {
        name: "first console line",
        source: Source::Console,
        any_of: &[""],
    },
    Stage {
        name: "DHCP",
        source: Source::Dnsmasq,
        any_of: &["DHCPACK && {colon_mac}"],
    },
    Stage {
        name: "boot record read",
        source: Source::Dnsmasq,
        any_of: &["01-{mac}"],
    },
    Stage {
        name: "kernel fetched",
        source: Source::Dnsmasq,
        any_of: &["pxeboot.kernel && to {ip}"],
    },
    Stage {
        name: "kernel",
        source: Source::Console,
        any_of: &["Linux version", "pelagos-e2e installer"],
    },
    Stage {
        name: "image downloaded",
        source: Source::Console,
        any_of: &["checksum ok"],
    },
    Stage {
        name: "OS up",
        source: Source::Console,
        any_of: &["ready: ssh"],
    },
    Stage {
        name: "SSH",
        source: Source::Server,
        any_of: &["Connected to node [{node}]"],
    },
    Stage {
        name: "OS verified",
        source: Source::Server,
        any_of: &["Node [{node}] runs ["],
    },
    Stage {
        name: "salt",
        source: Source::Server,
        any_of: &["Salt state [e2e] applied"],
    },
];

/// One line of a provision's timing table: when the stage was first seen,
/// in seconds since the power command, and since the stage before.
#[derive(Debug, Clone)]
pub struct Row {
    pub stage: String,
    pub at: Option<f64>,
    pub delta: Option<f64>,
}

/// Files to poll and where each was at the start.
pub struct Watch {
    files: Vec<(Source, PathBuf, u64)>,
    mac: String,
    colon_mac: String,
    ip: String,
    node: String,
    start: Instant,
    /// Per stage (same order as [`STAGES`]): when it was first seen.
    pub seen: Vec<Option<Duration>>,
}

impl Watch {
    pub fn new(
        bmc: PathBuf,
        console: PathBuf,
        dnsmasq: PathBuf,
        server: PathBuf,
        mac: &str,
        ip: &str,
        node: &str,
    ) -> Watch {
        let len = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let files = [
            (Source::Bmc, bmc),
            (Source::Console, console),
            (Source::Dnsmasq, dnsmasq),
            (Source::Server, server),
        ]
        .into_iter()
        .map(|(s, p)| {
            let at = len(&p);
            (s, p, at)
        })
        .collect();
        Watch {
            files,
            mac: mac.replace(':', "-"),
            colon_mac: mac.to_owned(),
            ip: ip.to_owned(),
            node: node.to_owned(),
            start: Instant::now(),
            seen: vec![None; STAGES.len()],
        }
    }

    /// Text that appeared in `source` since the start (complete lines).
    pub fn new_text(&self, source: Source) -> String {
        let Some((_, path, from)) = self.files.iter().find(|f| f.0 == source) else {
            return String::new();
        };
        let bytes = std::fs::read(path).unwrap_or_default();
        let from = (*from as usize).min(bytes.len());
        let text = String::from_utf8_lossy(&bytes[from..]).into_owned();
        match text.rfind('\n') {
            Some(i) => text[..=i].to_owned(),
            None => String::new(),
        }
    }

    /// Look at every source once.
    pub fn poll(&mut self) {
        let now = self.start.elapsed();
        let texts: Vec<(Source, String)> = [
            Source::Bmc,
            Source::Console,
            Source::Dnsmasq,
            Source::Server,
        ]
        .into_iter()
        .map(|s| (s, self.new_text(s)))
        .collect();
        for (i, stage) in STAGES.iter().enumerate() {
            if self.seen[i].is_some() {
                continue;
            }
            let text = &texts
                .iter()
                .find(|t| t.0 == stage.source)
                .expect("source")
                .1;
            let hit = stage.any_of.iter().any(|p| {
                if p.is_empty() {
                    // Any meaningful console line (not conmand's own notices).
                    text.lines()
                        .any(|l| !l.contains("<ConMan>") && l.trim().len() > 20)
                } else {
                    let p = p
                        .replace("{mac}", &self.mac)
                        .replace("{colon_mac}", &self.colon_mac)
                        .replace("{ip}", &self.ip)
                        .replace("{node}", &self.node);
                    let parts: Vec<&str> = p.split(" && ").collect();
                    text.lines()
                        .any(|l| parts.iter().all(|part| l.contains(part)))
                }
            });
            if hit {
                self.seen[i] = Some(now);
            }
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// `stage: +t s (Δ s)` lines from power on, then `done`.
    pub fn table(&self, done: Duration) -> Vec<Row> {
        let power = self.seen[0].unwrap_or_default();
        let mut rows = Vec::new();
        let mut prev = power;
        for (stage, seen) in STAGES.iter().zip(&self.seen) {
            match seen {
                Some(t) => {
                    let at = t.saturating_sub(power).as_secs_f64();
                    let delta = t.saturating_sub(prev).as_secs_f64();
                    rows.push(Row {
                        stage: stage.name.to_owned(),
                        at: Some(at),
                        delta: Some(delta),
                    });
                    prev = (*t).max(prev);
                }
                None => rows.push(Row {
                    stage: stage.name.to_owned(),
                    at: None,
                    delta: None,
                }),
            }
        }
        rows.push(Row {
            stage: "done".to_owned(),
            at: Some(done.saturating_sub(power).as_secs_f64()),
            delta: Some(done.saturating_sub(prev).as_secs_f64()),
        });
        rows
    }
}
