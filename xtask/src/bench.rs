//! Server benchmarks: throughput of the read routes under 8 concurrent
//! connections (wrk), POST /node/provision latency, and 10,000 concurrent
//! fast-simulated provisions (wall time, peak RSS). Figures are printed, not
//! asserted: timing goals live here, never in tests. Ends with one table of
//! every figure measured and the command that reproduces it; `--all` adds
//! the project's other benchmarks to it (see `bench_all`).

use crate::server::{self, Server};
use crate::table::{self, Row};
use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Nodes in the lab for the read benchmarks.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Concurrent provisions for the scale run.
    #[arg(long, default_value_t = 10_000)]
    scale: usize,
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Skip the scale run.
    #[arg(long)]
    no_scale: bool,
    /// Also run the other benchmarks (bench-images, every crate's `cargo
    /// bench` target, hyperfine of make-cfgs) and add them to the table.
    #[arg(long)]
    all: bool,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn lab_json(nodes: usize) -> String {
    let mut out = String::from(
        r#"{"ipmi_user": "admin", "ipmi_pass": "x", "target_node_password": "x",
"default_pxe_server": "127.0.0.1", "domain": "bench.lab", "sls_list": "", "nodes": ["#,
    );
    for i in 0..nodes {
        if i > 0 {
            out.push(',');
        }
        let (a, b) = (i / 250, i % 250);
        out.push_str(&format!(
            r#"{{"node": "b{i}.bench.lab", "mac": "52:54:{:02x}:{:02x}:{:02x}:01", "ip": "10.{}.{a}.{b}",
"ip_type": "dynamic", "bmc_mac": "52:54:{:02x}:{:02x}:{:02x}:02", "bmc_ip": "10.{}.{a}.{b}",
"bmc_ip_type": "dynamic", "t_machine_type": "bench", "comment": "bench node {i}"}}"#,
            i >> 16,
            (i >> 8) & 0xff,
            i & 0xff,
            100,
            i >> 16,
            (i >> 8) & 0xff,
            i & 0xff,
            101
        ));
    }
    out.push_str("]}");
    out
}

fn start_server(bin: &Path, dir: &Path, nodes: usize) -> Result<Server> {
    server::write_image_dir(dir, "bench-1.0")?;
    Server::start(bin, dir, &lab_json(nodes), "fast")
}

fn wrk(url: &str, secs: u64) -> Result<(f64, String)> {
    let out = Command::new("wrk")
        .args(["-t2", "-c8", &format!("-d{secs}s"), "--latency", url])
        .output()
        .context("run wrk (apt-get install wrk)")?;
    ensure!(
        out.status.success(),
        "wrk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .context("no Requests/sec in wrk output")?
        .trim()
        .parse()?;
    let transfer = text
        .lines()
        .find_map(|l| l.strip_prefix("Transfer/sec:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    if text.contains("Non-2xx") {
        bail!("wrk saw non-2xx answers for {url}:\n{text}");
    }
    Ok((rps, transfer))
}

/// `POST /node/provision` of `node` with `os`, which must be accepted; its
/// task id.
pub(crate) async fn provision(
    client: &reqwest::Client,
    base: &str,
    node: &str,
    os: &str,
) -> Result<String> {
    let resp = client
        .post(format!("{base}/node/provision"))
        .form(&[("node", node), ("os", os)])
        .send()
        .await?;
    ensure!(
        resp.status().as_u16() == 202,
        "POST /node/provision {node} answered {}",
        resp.status()
    );
    Ok(resp
        .headers()
        .get("TaskID")
        .context("no TaskID header")?
        .to_str()?
        .to_owned())
}

async fn wait_done(client: &reqwest::Client, base: &str, ids: &[String]) -> Result<()> {
    for id in ids {
        loop {
            let resp = client
                .get(format!("{base}/tasks/status/{id}"))
                .send()
                .await?;
            if resp.status().as_u16() != 202 {
                ensure!(
                    resp.status().is_success(),
                    "task {id} ended with {}",
                    resp.status()
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub fn run(args: Args) -> Result<()> {
    let bin = server::build_release()?;
    let mut rows = Vec::new();
    let mut read_cmd = String::from("cargo xtask bench --no-scale");
    if args.nodes != 1000 {
        read_cmd.push_str(&format!(" --nodes {}", args.nodes));
    }
    if args.duration != 5 {
        read_cmd.push_str(&format!(" --duration {}", args.duration));
    }
    let mut row = |figure: String, value: String, unit: &str| {
        rows.push(Row::new(figure, value, unit, &read_cmd));
    };
    let rt = tokio::runtime::Runtime::new()?;
    let client = reqwest::Client::new();

    println!(
        "== pelagos-server benchmarks ({} nodes, wrk -t2 -c8 -d{}s)",
        args.nodes, args.duration
    );
    let dir = tempfile::tempdir()?;
    let server = start_server(&bin, dir.path(), args.nodes)?;
    let base = server.base.clone();
    let nodes_body = rt.block_on(async {
        client
            .get(format!("{base}/nodes"))
            .send()
            .await?
            .bytes()
            .await
    })?;
    let (rps, xfer) = wrk(&format!("{base}/nodes"), args.duration)?;
    println!(
        "GET /nodes ({} nodes, {} KB body): {rps:.0} req/s ({xfer}/s)",
        args.nodes,
        nodes_body.len() / 1024
    );
    row(
        format!("GET /nodes ({} nodes)", args.nodes),
        format!("{rps:.0}"),
        "req/s",
    );

    // One provision per node, timed one at a time: POST latency.
    let mut latencies = Vec::with_capacity(args.nodes);
    let ids = rt.block_on(async {
        let mut ids = Vec::with_capacity(args.nodes);
        for i in 0..args.nodes {
            let t = Instant::now();
            ids.push(provision(&client, &base, &format!("b{i}.bench.lab"), "bench-1.0").await?);
            latencies.push(t.elapsed());
        }
        wait_done(&client, &base, &ids).await?;
        anyhow::Ok(ids)
    })?;
    latencies.sort();
    let (p50, p99, max) = (
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );
    println!(
        "POST /node/provision latency over {} requests: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
        latencies.len(),
    );
    for (name, v) in [("p50", p50), ("p99", p99), ("max", max)] {
        row(
            format!("POST /node/provision latency {name}"),
            format!("{v:.2}"),
            "ms",
        );
    }
    let statuses_body = rt.block_on(async {
        client
            .get(format!("{base}/tasks/statuses"))
            .send()
            .await?
            .bytes()
            .await
    })?;
    let (rps, xfer) = wrk(&format!("{base}/tasks/statuses"), args.duration)?;
    println!(
        "GET /tasks/statuses ({} finished tasks, {} KB body): {rps:.0} req/s ({xfer}/s)",
        ids.len(),
        statuses_body.len() / 1024
    );
    row(
        format!("GET /tasks/statuses ({} tasks)", ids.len()),
        format!("{rps:.0}"),
        "req/s",
    );
    let (rps, _) = wrk(
        &format!("{base}/tasks/status/{}", ids[ids.len() / 2]),
        args.duration,
    )?;
    println!("GET /tasks/status/<id>: {rps:.0} req/s");
    row(
        "GET /tasks/status/<id>".into(),
        format!("{rps:.0}"),
        "req/s",
    );
    drop(server);

    if !args.no_scale {
        rows.extend(scale(&bin, &rt, &client, args.scale)?);
    }
    if args.all {
        let target = bin
            .parent()
            .and_then(Path::parent)
            .context("the server binary is not in <target>/release")?;
        rows.extend(crate::bench_all::run(&workspace_root(), target));
    }
    println!("\n== every figure ({} rows)", rows.len());
    print!("{}", table::render(&rows));
    Ok(())
}

/// `scale` concurrent fast-simulated provisions: wall times and peak RSS.
fn scale(
    bin: &Path,
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    scale: usize,
) -> Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let server = start_server(bin, dir.path(), scale)?;
    let base = server.base.clone();
    let idle_kib = server.peak_rss_kib()?;
    let t = Instant::now();
    let ids = rt.block_on(async {
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
        let mut handles = Vec::with_capacity(scale);
        for i in 0..scale {
            let (client, base, sem) = (client.clone(), base.clone(), sem.clone());
            handles.push(tokio::spawn(async move {
                let _permit = sem.acquire_owned().await?;
                provision(&client, &base, &format!("b{i}.bench.lab"), "bench-1.0").await
            }));
        }
        let mut ids = Vec::with_capacity(scale);
        for h in handles {
            ids.push(h.await??);
        }
        anyhow::Ok(ids)
    })?;
    let submitted = t.elapsed();
    rt.block_on(wait_done(client, &base, &ids))?;
    let wall = t.elapsed();
    let peak_kib = server.peak_rss_kib()?;
    let (peak, idle) = (peak_kib as f64 / 1024.0, idle_kib as f64 / 1024.0);
    println!(
        "{} concurrent fast-simulated provisions: submitted in {:.2} s, all done in {:.2} s; \
         peak RSS {peak:.1} MB (idle {idle:.1} MB)",
        scale,
        submitted.as_secs_f64(),
        wall.as_secs_f64(),
    );
    let mut command = String::from("cargo xtask bench");
    if scale != 10_000 {
        command.push_str(&format!(" --scale {scale}"));
    }
    let row = |figure: &str, value: String, unit: &str| {
        Row::new(
            format!("{scale} concurrent provisions: {figure}"),
            value,
            unit,
            &command,
        )
    };
    Ok(vec![
        row(
            "submitted in",
            format!("{:.2}", submitted.as_secs_f64()),
            "s",
        ),
        row("all done in", format!("{:.2}", wall.as_secs_f64()), "s"),
        row("server peak RSS", format!("{peak:.1}"), "MB"),
        row("server idle RSS", format!("{idle:.1}"), "MB"),
    ])
}
