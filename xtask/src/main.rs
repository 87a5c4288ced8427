//! `cargo xtask <task>`: development chores in Rust instead of shell scripts.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod bench_all;
mod bench_images;
mod dist;
mod e2e;
mod server;
mod sim;
mod table;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Pelagos development tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Benchmark pelagos-server (release build, fast simulation) and print figures.
    Bench(bench::Args),
    /// Fetch a 1 GiB image from pelagos-server's image route over loopback; print MB/s.
    BenchImages(bench_images::Args),
    /// Provision a whole simulated lab with injected failures; print outcomes by class.
    Sim(sim::Args),
    /// Reimage QEMU VMs through every real part (root: network namespace, taps); print per-stage timings.
    E2e(e2e::Args),
    /// Build the binaries and write their shell completions and man pages to target/dist/.
    Dist(dist::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Bench(args) => bench::run(args),
        Task::BenchImages(args) => bench_images::run(args),
        Task::Sim(args) => sim::run(args),
        Task::E2e(args) => e2e::run(args),
        Task::Dist(args) => dist::run(args),
    }
}
