//! `cargo xtask bench-images`: a 1 GiB image fetched over loopback from
//! pelagos-server's image route (release build), as kiwi's install initrd
//! fetches it: one GET, streamed. Prints MB/s per run, the server's peak RSS
//! (the file is streamed, not buffered) and a 4-way ranged fetch. Figures
//! are printed, not asserted.

use crate::server;
use crate::table::Row;
use anyhow::{Result, ensure};
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Image size in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Sequential full fetches.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Write real (pseudo-random) bytes instead of a sparse file, so the
    /// page cache holds data pages rather than the zero page.
    #[arg(long)]
    dense: bool,
}

fn write_image(path: &Path, bytes: u64, dense: bool) -> Result<()> {
    let f = std::fs::File::create(path)?;
    if !dense {
        f.set_len(bytes)?;
        return Ok(());
    }
    use std::io::Write;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut block = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        for c in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        w.write_all(&block[..n])?;
        left -= n as u64;
    }
    w.flush()?;
    Ok(())
}

/// GET `url` (optionally a byte range), counting the streamed bytes.
async fn fetch(client: &reqwest::Client, url: &str, range: Option<(u64, u64)>) -> Result<u64> {
    let mut req = client.get(url);
    if let Some((a, b)) = range {
        req = req.header("range", format!("bytes={a}-{b}"));
    }
    let mut resp = req.send().await?;
    ensure!(resp.status().is_success(), "GET {url}: {}", resp.status());
    let mut n = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        n += chunk.len() as u64;
    }
    Ok(n)
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

pub fn run(args: Args) -> Result<()> {
    measure(args).map(drop)
}

/// Runs the benchmark, printing its lines; returns its figures as table rows.
pub fn measure(args: Args) -> Result<Vec<Row>> {
    let mut command = String::from("cargo xtask bench-images");
    if args.size_mib != 1024 {
        command.push_str(&format!(" --size-mib {}", args.size_mib));
    }
    if args.dense {
        command.push_str(" --dense");
    }
    let kind = if args.dense { "dense" } else { "sparse" };
    let row = |figure: &str, value: f64, unit: &str| {
        Row::new(
            format!("image route, {} MiB {kind}: {figure}", args.size_mib),
            format!("{value:.1}"),
            unit,
            &command,
        )
    };
    let mut rows = Vec::new();
    let bin = server::build_release()?;
    let dir = tempfile::tempdir()?;
    let image_dir = dir.path().join("tftp/bench-1.0");
    std::fs::create_dir_all(&image_dir)?;
    let bytes = args.size_mib << 20;
    let image = image_dir.join("bench.x86_64-1.0.xz");
    let t = Instant::now();
    write_image(&image, bytes, args.dense)?;
    println!(
        "== image route: {} MiB {kind} file (written in {:.1} s), loopback, release build",
        args.size_mib,
        t.elapsed().as_secs_f64()
    );
    let server = server::Server::start(
        &bin,
        dir.path(),
        r#"{"default_pxe_server": "127.0.0.1", "nodes": [
             {"node": "n1.bench.lab", "mac": "52:54:00:00:00:01", "ip": "10.0.0.1"}]}"#,
        "fast",
    )?;
    let base = server.base.clone();
    let url = format!("{base}/images/bench-1.0/bench.x86_64-1.0.xz");
    let rt = tokio::runtime::Runtime::new()?;
    let client = reqwest::Client::new();

    // Warm the page cache (and the connection) once, untimed.
    let n = rt.block_on(fetch(&client, &url, None))?;
    ensure!(n == bytes, "served {n} bytes, file has {bytes}");
    let mut rates = Vec::new();
    for i in 1..=args.runs {
        let t = Instant::now();
        let n = rt.block_on(fetch(&client, &url, None))?;
        let d = t.elapsed();
        ensure!(n == bytes, "served {n} bytes, file has {bytes}");
        let r = mbps(n, d);
        println!(
            "single GET  run {i}: {:>7.1} MB/s ({:.2} s)",
            r,
            d.as_secs_f64()
        );
        rates.push(r);
    }
    rates.sort_by(f64::total_cmp);
    let (median, best) = (rates[rates.len() / 2], rates[rates.len() - 1]);
    println!("single GET  median: {median:.1} MB/s, best {best:.1} MB/s");
    rows.push(row(
        &format!("single GET, median of {}", args.runs),
        median,
        "MB/s",
    ));
    rows.push(row(
        &format!("single GET, best of {}", args.runs),
        best,
        "MB/s",
    ));

    let parts = 4u64;
    let t = Instant::now();
    let total: u64 = rt.block_on(async {
        let step = bytes / parts;
        let tasks: Vec<_> = (0..parts)
            .map(|i| {
                let (c, u) = (client.clone(), url.clone());
                let end = if i == parts - 1 {
                    bytes - 1
                } else {
                    (i + 1) * step - 1
                };
                tokio::spawn(async move { fetch(&c, &u, Some((i * step, end))).await })
            })
            .collect();
        let mut sum = 0;
        for t in tasks {
            sum += t.await??;
        }
        anyhow::Ok(sum)
    })?;
    let d = t.elapsed();
    ensure!(
        total == bytes,
        "ranges served {total} bytes, file has {bytes}"
    );
    println!(
        "{parts} ranged GETs in parallel: {:.1} MB/s ({:.2} s)",
        mbps(total, d),
        d.as_secs_f64()
    );
    rows.push(row(
        &format!("{parts} ranged GETs in parallel"),
        mbps(total, d),
        "MB/s",
    ));
    let peak = server.peak_rss_kib()? as f64 / 1024.0;
    println!("server peak RSS: {peak:.1} MiB");
    rows.push(row("server peak RSS", peak, "MiB"));
    Ok(rows)
}
