//! Figures, not pass/fail: add-image throughput on a synthetic kiwi build,
//! boot record writes per second, and OS resolution time in a catalog of
//! 100 images. `cargo bench -p pelagos-pxe --bench install`
//! (PELAGOS_BENCH_MIB sets the raw disk size, default 256).
#![allow(clippy::print_stdout)]

use md5::{Digest, Md5};
use pelagos_config::LabConfig;
use pelagos_pxe::BootRecords;
use pelagos_pxe::install::{InstallOptions, NoProgress, install};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

fn kiwi_dir(dir: &Path, base: &str, raw: &[u8]) -> u64 {
    std::fs::create_dir_all(dir).unwrap();
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 0);
    enc.write_all(raw).unwrap();
    let xz = enc.finish().unwrap();
    let sum: String = Md5::digest(raw)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let w = |n: String, c: &[u8]| std::fs::write(dir.join(n), c).unwrap();
    w(format!("{base}.xz"), &xz);
    w(
        format!("{base}.md5"),
        format!("{sum} {} 512\n", raw.len() / 512).as_bytes(),
    );
    w(format!("pxeboot.{base}.kernel"), &vec![1u8; 8 << 20]);
    w(format!("pxeboot.{base}.initrd.xz"), &vec![2u8; 32 << 20]);
    w(format!("{base}.initrd"), &vec![3u8; 32 << 20]);
    xz.len() as u64
}

fn raw_disk(len: usize) -> Vec<u8> {
    // A disk is mostly zeros and file data: 3/4 zero blocks, 1/4 noise.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|i| {
            if (i / 65536) % 4 != 0 {
                return 0;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn main() {
    let mib: usize = std::env::var("PELAGOS_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let src = tempfile::tempdir().unwrap();
    let tftp = tempfile::tempdir().unwrap();
    let raw = raw_disk(mib << 20);
    let base = "bench.x86_64-1.0.0";
    let xz_len = kiwi_dir(&src.path().join("out"), base, &raw);
    drop(raw);

    let t = Instant::now();
    install(
        tftp.path(),
        &src.path().join("out"),
        &InstallOptions::default(),
        &NoProgress,
    )
    .unwrap();
    let s = t.elapsed().as_secs_f64();
    println!(
        "add-image install: {mib} MiB raw disk ({:.1} MiB xz) + 72 MiB kernel/initrds in {s:.2} s: \
         {:.0} MB/s of raw disk verified (xz decode + md5), {:.0} MB/s copied (sha256 + fsync)",
        xz_len as f64 / 1048576.0,
        (mib << 20) as f64 / s / 1e6,
        (xz_len + (72 << 20)) as f64 / s / 1e6
    );

    // Boot records.
    let mut nodes = String::new();
    for i in 0..200 {
        nodes.push_str(&format!(
            r#"{{"node":"n{i}","mac":"52:54:00:00:{:02x}:{:02x}","uefi":{}}},"#,
            i / 256,
            i % 256,
            i % 2 == 0
        ));
    }
    let lab = LabConfig::parse(&format!(
        r#"{{"default_pxe_server":"10.0.0.1","nodes":[{}]}}"#,
        nodes.trim_end_matches(',')
    ))
    .unwrap();
    let r = BootRecords::new(tftp.path(), &lab);
    let os = r.resolve_os("bench").unwrap();
    let t = Instant::now();
    for n in &lab.nodes {
        r.write(n, &os).unwrap();
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "boot records: 200 nodes (half UEFI: 3 files each) in {:.1} ms, {:.0} µs per node (fsync'd)",
        s * 1e3,
        s * 1e6 / 200.0
    );

    // Resolution in a catalog of 100 image dirs with manifests.
    let man = std::fs::read_to_string(tftp.path().join("bench-1.0.0/image.json")).unwrap();
    for i in 0..100 {
        let id = format!("img{}-15.{i}.0", i % 10);
        std::fs::create_dir(tftp.path().join(&id)).unwrap();
        let m = man
            .replace("\"bench\"", &format!("\"img{}\"", i % 10))
            .replace("\"1.0.0\"", &format!("\"15.{i}.0\""));
        std::fs::write(tftp.path().join(&id).join("image.json"), m).unwrap();
    }
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        assert_eq!(r.resolve_os("img3-15.93").unwrap(), "img3-15.93.0");
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "resolve_os teuthology form in a 101-image catalog: {:.2} ms per lookup (scans the manifests)",
        s * 1e3 / n as f64
    );
}
