//! A lab's files generated and one node provisioned through the libraries
//! alone, no server: `cargo run -p pelagos-provision --example provision-sim`
//! (`[[example]]` of pelagos-provision; `cargo test` runs it too).
//!
//! 1. pelagos-config loads `examples/lab.json` (the demo lab) and renders
//!    what make-cfgs writes (dnsmasq host records, conman.conf, the salt
//!    roster, teuthology's SQL, udev rules) into a temp dir.
//! 2. pelagos-pxe lays out a TFTP root with one OS image dir.
//! 3. pelagos-provision's `Engine` runs on the simulated lab (`sim`: BMC,
//!    console, SSH and salt in process, fast timing) with an in-memory task
//!    store, provisions one node with that image and waits for the result.
//!
//! It prints the files, the task's result and its log, and fails (panics)
//! if the provision does not succeed.
#![allow(clippy::print_stdout)]

use pelagos_config::LabConfig;
use pelagos_config::generate::{self, Options};
use pelagos_provision::sim::{SimLab, SimMode};
use pelagos_provision::{BootRecords, Engine, ProvisionRequest, SqliteStore, TaskLogs};
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

/// The demo lab of `pelagos-server --demo`.
const LAB: &str = include_str!("lab.json");
/// The image the node is provisioned with: `<name>-<version>` in the TFTP
/// root (the simulated lab boots a bare dir; production would want the
/// kernel, initrd and disk image `add-image` installs).
const IMAGE: &str = "opensuse-15.6";

fn main() -> Result<(), Box<dyn Error>> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<(), Box<dyn Error>> {
    // Each event inside a provision's span goes to that task's log.
    let logs = TaskLogs::new();
    {
        use tracing_subscriber::layer::SubscriberExt;
        // Another test of the same process may have set one already.
        let _ = tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(logs.layer()),
        );
    }
    let dir = tempfile::tempdir()?;

    // 1. The lab and make-cfgs' files.
    let lab = Arc::new(LabConfig::parse(LAB)?);
    let problems = lab.validate();
    assert!(
        problems.is_empty(),
        "the demo lab has problems: {problems:?}"
    );
    let cfgs = dir.path().join("cfgs");
    let outputs = generate::render_all(&lab, &Options::default(), &cfgs)?;
    println!("make-cfgs' files for {} nodes:", lab.nodes.len());
    for path in generate::write_all(&outputs, &cfgs)? {
        println!(
            "  {} ({} bytes)",
            path.display(),
            std::fs::metadata(&path)?.len()
        );
    }

    // 2. The TFTP root: one image dir with stand-ins for the kernel,
    // install initrd and disk image the boot record names (add-image would
    // install kiwi's and an image.json recording the OS identity; without
    // one the task log warns that the OS check is skipped).
    let tftp = dir.path().join("tftp");
    let image = tftp.join(IMAGE);
    std::fs::create_dir_all(&image)?;
    std::fs::write(image.join("pxeboot.kernel"), "kernel")?;
    std::fs::write(image.join("pxeboot.initrd.xz"), "initrd")?;
    std::fs::write(image.join(format!("{IMAGE}.xz")), "disk image")?;

    // 3. The engine on simulated hardware.
    let timing = SimMode::Fast.timing(&lab.timing);
    let records = Arc::new(BootRecords::new(&tftp, &lab));
    let sim = SimLab::new(SimMode::Fast, timing.clone(), dir.path().join("console"));
    let drivers = sim.drivers(records.clone());
    let store = Arc::new(SqliteStore::in_memory().await?);
    let engine = Engine::start(lab.clone(), timing, drivers, store, logs).await?;

    let node = lab.nodes[0].node.clone();
    let id = engine
        .provision(ProvisionRequest {
            node: node.clone(),
            os: IMAGE.into(),
            ..Default::default()
        })
        .await?;
    println!("provisioning {node} with {IMAGE}: task {id}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let task = loop {
        let task = engine.status(&id).ok_or("the task vanished")?;
        if task.end.is_some() {
            break task;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still running after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let result = task.result().ok_or("no result")?;
    println!(
        "result: {} {}",
        result.code,
        String::from_utf8_lossy(&result.body)
    );
    println!("task log:\n{}", engine.log(&id).await?);
    let n = lab.node(&node).ok_or("node gone")?;
    println!("boot record now: {}", records.configured_os(n));
    assert_eq!(result.code, 200, "the provision failed");
    assert_eq!(records.configured_os(n), "local");
    engine.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    /// `cargo test` runs the example (`test = true` in its `[[example]]`).
    #[test]
    fn provisions_a_simulated_node() {
        super::main().unwrap();
    }
}
