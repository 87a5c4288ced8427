//! `cargo xtask sim --nodes N`: provision a whole simulated lab at once
//! through the REST API, with a seeded fraction of nodes per failure class
//! carrying the matching `sim` injection, and check every node ends as its
//! injection says. Prints done and failed by class, wall time, the engine's
//! overhead beyond the simulated hardware's own time (p50/p99) and the
//! server's peak RSS. Figures are printed, not asserted; a node that ends
//! other than its injection says is an error exit.

use crate::server;
use anyhow::{Context, Result, bail, ensure};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Nodes in the lab; all are provisioned at once.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Fraction of nodes per failure class (classes left out: none).
    #[arg(
        long,
        default_value = "bmc=0.01,stall=0.01,never_ready=0.01,wrong_os=0.01,salt=0.01"
    )]
    fail_rate: String,
    /// Simulation speed of the server.
    #[arg(long, default_value = "fast", value_parser = ["fast", "medium"])]
    mode: String,
    /// Seed choosing which nodes carry which injection.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// POST /node/provision requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Interval between GET /tasks/statuses polls, in milliseconds.
    #[arg(long, default_value_t = 100)]
    poll_ms: u64,
}

/// A node's injection, and so how its provision must end.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Class {
    Ok,
    Bmc,
    Stall,
    NeverReady,
    WrongOs,
    Salt,
}

const CLASSES: [Class; 6] = [
    Class::Ok,
    Class::Bmc,
    Class::Stall,
    Class::NeverReady,
    Class::WrongOs,
    Class::Salt,
];

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Ok => "none",
            Class::Bmc => "bmc",
            Class::Stall => "stall",
            Class::NeverReady => "never_ready",
            Class::WrongOs => "wrong_os",
            Class::Salt => "salt",
        }
    }

    /// The node's `sim` block.
    fn sim_json(self) -> &'static str {
        match self {
            Class::Ok => "",
            Class::Bmc => r#", "sim": {"bmc_error": true}"#,
            Class::Stall => r#", "sim": {"console_stall": true}"#,
            Class::NeverReady => r#", "sim": {"never_ready": true}"#,
            Class::WrongOs => r#", "sim": {"wrong_os": true}"#,
            Class::Salt => r#", "sim": {"salt_error": true}"#,
        }
    }

    /// What the task's result says (docs/REST.md: a finished provision's
    /// result).
    fn expected(self) -> &'static str {
        match self {
            Class::Ok => "done",
            Class::Bmc => "502 BMCException",
            Class::Stall => "502 CannotBoot",
            Class::NeverReady => "504 Timeout",
            Class::WrongOs => "502 wrong OS",
            Class::Salt => "500 salt state failed",
        }
    }

    /// The class a finished task's `rv` shows; `None` when unrecognised.
    fn of_result(rv: &serde_json::Value) -> Option<Class> {
        if rv.get("status").and_then(|s| s.as_str()) == Some("done") {
            return Some(Class::Ok);
        }
        let text = rv.to_string();
        [
            ("BMCException", Class::Bmc),
            ("CannotBootException", Class::Stall),
            ("TimeoutException", Class::NeverReady),
            ("instead of the requested image", Class::WrongOs),
            ("Salt execution failed", Class::Salt),
        ]
        .into_iter()
        .find(|(needle, _)| text.contains(needle))
        .map(|(_, c)| c)
    }
}

/// The simulated timing the server runs with for a mode: mirrors
/// `SimMode::boot_time`, `SimMode::timing` and `SimMode::salt_time` in
/// crates/pelagos-provision/src/sim.rs, with the lab's `max_cold_restart`.
struct SimTiming {
    boot: Duration,
    ready_timeout: Duration,
    line_max_age: Duration,
    cold_restart_delay: Duration,
    salt: Duration,
    max_cold_restart: u32,
}

/// Written into the lab so the expected stall time is known.
const MAX_COLD_RESTART: u32 = 3;
/// Salt states in the lab's `sls_list` (one, so `salt_error` has a state to fail).
const SALT_STATES: u32 = 1;
/// Console lines a stalled boot prints before going silent (sim.rs: `i >= 3`).
const LINES_BEFORE_STALL: u32 = 3;
/// Boot lines the simulated console prints over the boot time (sim.rs `BOOT_LINES`).
const BOOT_LINES: u32 = 10;

impl SimTiming {
    fn of(mode: &str) -> SimTiming {
        let ms = Duration::from_millis;
        match mode {
            "medium" => SimTiming {
                boot: ms(15_000),
                ready_timeout: ms(60_000),
                line_max_age: ms(6_000),
                cold_restart_delay: ms(2_000),
                salt: ms(700),
                max_cold_restart: MAX_COLD_RESTART,
            },
            _ => SimTiming {
                boot: ms(1_000),
                ready_timeout: ms(6_000),
                line_max_age: ms(400),
                cold_restart_delay: ms(50),
                salt: ms(50),
                max_cold_restart: MAX_COLD_RESTART,
            },
        }
    }

    /// The least time a provision of a node of `class` needs: the
    /// simulated hardware's own time plus the waits the lab's timing
    /// prescribes. Everything beyond it (poll and probe quantisation,
    /// scheduling, the REST round trips) is the engine's overhead.
    fn expected(&self, class: Class) -> Duration {
        let step = self.boot / BOOT_LINES;
        match class {
            // SSH answers `boot` after power-on; then each salt state.
            Class::Ok | Class::Salt => self.boot + self.salt * SALT_STATES,
            // SSH answers `boot` after power-on; the OS check fails then.
            Class::WrongOs => self.boot,
            // The first BMC command fails at once.
            Class::Bmc => Duration::ZERO,
            // The console's first line ends the wait for the new boot; SSH
            // is then waited for `wait_node_ready_timeout`.
            Class::NeverReady => step + self.ready_timeout,
            // Each boot prints 3 lines and goes silent: a stall is seen
            // `conman_line_max_age` after the last line; each of the
            // `max_cold_restart` restarts waits `cold_restart_delay`; the
            // stall after the last restart is CannotBoot.
            Class::Stall => {
                (step * LINES_BEFORE_STALL + self.line_max_age) * (self.max_cold_restart + 1)
                    + self.cold_restart_delay * self.max_cold_restart
            }
        }
    }
}

/// `bmc=0.01,stall=0.01,...` as fractions per class.
fn parse_rates(text: &str) -> Result<HashMap<Class, f64>> {
    let mut rates = HashMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .with_context(|| format!("--fail-rate: \"{part}\" is not class=fraction"))?;
        let class = match key.trim() {
            "bmc" => Class::Bmc,
            "stall" => Class::Stall,
            "never_ready" => Class::NeverReady,
            "wrong_os" => Class::WrongOs,
            "salt" => Class::Salt,
            other => {
                bail!(
                    "--fail-rate: unknown class \"{other}\" (bmc, stall, never_ready, wrong_os, salt)"
                )
            }
        };
        let rate: f64 = value
            .trim()
            .parse()
            .with_context(|| format!("--fail-rate: \"{value}\" is not a number"))?;
        ensure!(
            (0.0..=1.0).contains(&rate),
            "--fail-rate: {key}={rate} is not within 0..1"
        );
        ensure!(
            rates.insert(class, rate).is_none(),
            "--fail-rate: {key} given twice"
        );
    }
    ensure!(
        rates.values().sum::<f64>() <= 1.0,
        "--fail-rate: the fractions add up to more than 1"
    );
    Ok(rates)
}

/// splitmix64: a small seeded generator, enough to pick nodes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Each node's class: round(rate * nodes) nodes per failure class, chosen by
/// a seeded shuffle; the rest carry no injection.
fn assign(nodes: usize, rates: &HashMap<Class, f64>, seed: u64) -> Vec<Class> {
    let mut order: Vec<usize> = (0..nodes).collect();
    let mut rng = Rng(seed);
    for i in (1..nodes).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let mut classes = vec![Class::Ok; nodes];
    let mut next = order.into_iter();
    for class in &CLASSES[1..] {
        let count = (rates.get(class).copied().unwrap_or(0.0) * nodes as f64).round() as usize;
        for i in next.by_ref().take(count) {
            classes[i] = *class;
        }
    }
    classes
}

fn node_name(i: usize) -> String {
    format!("s{i}.sim.lab")
}

fn lab_json(classes: &[Class]) -> String {
    let mut out = format!(
        r#"{{"ipmi_user": "admin", "ipmi_pass": "x", "target_node_password": "x",
"default_pxe_server": "127.0.0.1", "domain": "sim.lab", "sls_list": "sim.base",
"max_cold_restart": {MAX_COLD_RESTART}, "nodes": ["#
    );
    for (i, class) in classes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let (a, b) = (i / 250, i % 250);
        let mac = format!("{:02x}:{:02x}:{:02x}", i >> 16, (i >> 8) & 0xff, i & 0xff);
        out.push_str(&format!(
            r#"{{"node": "{}", "mac": "52:54:{mac}:01", "ip": "10.100.{a}.{b}",
"ip_type": "dynamic", "bmc_mac": "52:54:{mac}:02", "bmc_ip": "10.101.{a}.{b}",
"bmc_ip_type": "dynamic", "t_machine_type": "sim", "comment": "sim node {i}"{}}}"#,
            node_name(i),
            class.sim_json()
        ));
    }
    out.push_str("]}");
    out
}

/// What the client saw of one node's provision.
#[derive(Clone, Default)]
struct Seen {
    /// When its POST was sent.
    sent: Option<Instant>,
    /// The TaskID the POST answered.
    id: Option<String>,
    /// When a /tasks/statuses answer first showed it finished, the task id
    /// there and its class by result.
    finished: Option<(Instant, String, Option<Class>)>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A manifest recording the image's OS identity, so the server checks it
/// (and `wrong_os` nodes fail that check).
fn write_image_identity(dir: &std::path::Path, id: &str) -> Result<()> {
    let (name, version) = id.split_once('-').context("image id is <name>-<version>")?;
    let manifest = serde_json::json!({
        "name": name, "version": version, "kernel": "pxeboot.kernel",
        "initrd": "pxeboot.initrd.xz", "image": format!("{name}.xz"), "files": [],
        "installed": "2026-01-01T00:00:00Z",
        "os": {"id": name, "version_id": version, "image_id": id},
    });
    std::fs::write(
        dir.join("tftp").join(id).join("image.json"),
        manifest.to_string(),
    )?;
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    ensure!(args.nodes > 0, "--nodes must be at least 1");
    ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    let rates = parse_rates(&args.fail_rate)?;
    let classes = assign(args.nodes, &rates, args.seed);
    let timing = SimTiming::of(&args.mode);
    let bin = server::build_release()?;
    let dir = tempfile::tempdir()?;
    server::write_image_dir(dir.path(), "sim-1.0")?;
    write_image_identity(dir.path(), "sim-1.0")?;
    let server = server::Server::start(&bin, dir.path(), &lab_json(&classes), &args.mode)?;
    let base = server.base.clone();
    let idle_kib = server.peak_rss_kib()?;
    println!(
        "== cargo xtask sim: {} nodes, {} simulation, seed {}, fail rates {}",
        args.nodes, args.mode, args.seed, args.fail_rate
    );

    let rt = tokio::runtime::Runtime::new()?;
    let client = reqwest::Client::new();
    let seen = Arc::new(Mutex::new(vec![Seen::default(); args.nodes]));
    // Longest expected provision plus a generous margin.
    let limit = CLASSES
        .iter()
        .map(|c| timing.expected(*c))
        .max()
        .unwrap_or_default()
        + Duration::from_secs(120 + args.nodes as u64 / 50);
    let start = Instant::now();
    let (submitted, polls, longest_cycle) = rt.block_on(async {
        let mut submitted = None;
        let mut submit = {
            let (client, base, seen) = (client.clone(), base.clone(), seen.clone());
            let sem = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
            let nodes = args.nodes;
            tokio::spawn(async move {
                let mut handles = Vec::with_capacity(nodes);
                for i in 0..nodes {
                    let (client, base, seen, sem) =
                        (client.clone(), base.clone(), seen.clone(), sem.clone());
                    handles.push(tokio::spawn(async move {
                        let _permit = sem.acquire_owned().await?;
                        seen.lock().unwrap()[i].sent = Some(Instant::now());
                        let id = crate::bench::provision(&client, &base, &node_name(i), "sim-1.0")
                            .await?;
                        seen.lock().unwrap()[i].id = Some(id);
                        anyhow::Ok(())
                    }));
                }
                for h in handles {
                    h.await??;
                }
                anyhow::Ok(start.elapsed())
            })
        };
        let index: HashMap<String, usize> = (0..args.nodes).map(|i| (node_name(i), i)).collect();
        let mut finished = 0;
        let mut polls = 0u64;
        let (mut last_poll, mut longest_cycle) = (start, Duration::ZERO);
        while finished < args.nodes {
            ensure!(
                start.elapsed() < limit,
                "{} of {} provisions not finished after {:.0} s",
                args.nodes - finished,
                args.nodes,
                limit.as_secs_f64()
            );
            // A failed submission ends the run at once, not at the limit.
            if submitted.is_none() && submit.is_finished() {
                submitted = Some((&mut submit).await??);
            }
            tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
            let body = client
                .get(format!("{base}/tasks/statuses"))
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            let at = Instant::now();
            polls += 1;
            longest_cycle = longest_cycle.max(at - last_poll);
            last_poll = at;
            let statuses: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&body).context("parse /tasks/statuses")?;
            let mut seen = seen.lock().unwrap();
            for (id, entry) in &statuses {
                if entry.get("end_time").and_then(|t| t.as_i64()).unwrap_or(-1) == -1 {
                    continue;
                }
                let Some(&i) = entry
                    .get("node")
                    .and_then(|n| n.as_str())
                    .and_then(|n| index.get(n))
                else {
                    continue;
                };
                if seen[i].finished.is_none() {
                    let class = entry.get("rv").and_then(Class::of_result);
                    seen[i].finished = Some((at, id.clone(), class));
                    finished += 1;
                }
            }
        }
        let submitted = match submitted {
            Some(t) => t,
            None => submit.await??,
        };
        anyhow::Ok((submitted, polls, longest_cycle))
    })?;
    let wall = start.elapsed();
    let peak_kib = server.peak_rss_kib()?;
    drop(server);

    // By class: injected, done, failed as expected, mismatched.
    let seen = seen.lock().unwrap();
    let mut rows: HashMap<Class, [usize; 4]> = HashMap::new();
    let mut mismatches = Vec::new();
    let mut overheads = Vec::with_capacity(args.nodes);
    for (i, (class, s)) in classes.iter().zip(seen.iter()).enumerate() {
        let row = rows.entry(*class).or_default();
        row[0] += 1;
        let (at, id, got) = s.finished.clone().context("a task not seen finished")?;
        ensure!(
            s.id.as_deref() == Some(id.as_str()),
            "{}: /tasks/statuses shows task {id}, the POST answered {:?}",
            node_name(i),
            s.id
        );
        match got {
            Some(Class::Ok) => row[1] += 1,
            _ => row[2] += 1,
        }
        if got != Some(*class) {
            row[3] += 1;
            mismatches.push(format!(
                "{} (injected {}): expected {}, got {}",
                node_name(i),
                class.name(),
                class.expected(),
                got.map_or("an unrecognised result", |c| c.expected())
            ));
        }
        let sent = s.sent.context("a task never sent")?;
        overheads.push((at - sent).as_secs_f64() - timing.expected(*class).as_secs_f64());
    }
    overheads.sort_by(f64::total_cmp);

    println!(
        "{:<12} {:>8} {:>8} {:>8} {:>9}  expected result (simulated time)",
        "injected", "nodes", "done", "failed", "mismatch"
    );
    for class in CLASSES {
        let [n, done, failed, bad] = rows.get(&class).copied().unwrap_or_default();
        println!(
            "{:<12} {n:>8} {done:>8} {failed:>8} {bad:>9}  {} ({:.2} s)",
            class.name(),
            class.expected(),
            timing.expected(class).as_secs_f64()
        );
    }
    println!(
        "wall time: {:.2} s (all {} POSTs answered after {:.2} s, {} concurrent; {} polls of \
         /tasks/statuses, {} ms apart plus each one's round trip and parse: longest cycle {:.2} s)",
        wall.as_secs_f64(),
        args.nodes,
        submitted.as_secs_f64(),
        args.concurrency,
        polls,
        args.poll_ms,
        longest_cycle.as_secs_f64()
    );
    println!(
        "overhead beyond the simulated hardware's time: p50 {:.3} s, p99 {:.3} s, max {:.3} s \
         (goal: p99 under 1 s at N = 10,000)",
        percentile(&overheads, 0.5),
        percentile(&overheads, 0.99),
        overheads.last().copied().unwrap_or_default()
    );
    println!(
        "  method: the server's start_time/end_time are whole Unix seconds, so each task is timed \
         client-side: from sending its POST to receiving the first /tasks/statuses answer that shows \
         it finished, minus the least time the simulated hardware and the lab's timing need for its \
         class (the column above, from the server's {} timing). It includes the POST round trip \
         (at most {} in flight; the clock starts when a request is sent), up to one poll cycle \
         of detection delay (longest above), and the engine's own poll and probe quantisation.",
        args.mode, args.concurrency
    );
    println!(
        "server peak RSS (VmHWM): {:.1} MB (idle {:.1} MB)",
        peak_kib as f64 / 1024.0,
        idle_kib as f64 / 1024.0
    );
    if !mismatches.is_empty() {
        for m in mismatches.iter().take(20) {
            eprintln!("mismatch: {m}");
        }
        bail!(
            "{} of {} nodes did not end as their injection says",
            mismatches.len(),
            args.nodes
        );
    }
    Ok(())
}
