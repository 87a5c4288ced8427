//! `cargo xtask <task>`: development chores in Rust instead of shell scripts.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Bench(args) => bench::run(args),
    }
}
