//! add-image: install kiwi OEM PXE builds into the Pelagos TFTP root and
//! manage the installed versions. The work is done by
//! [`pelagos_pxe::install`]; this binary parses arguments and draws progress.
#![allow(clippy::print_stdout)]

// One file shared by the three binaries (`cargo xtask dist`).
#[path = "../../cli_docs.rs"]
mod cli_docs;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pelagos_pxe::Catalog;
use pelagos_pxe::install::{self, InstallOptions, Progress};
use std::cell::RefCell;
use std::ops::ControlFlow;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    version,
    about = "Install kiwi OEM PXE images into the Pelagos TFTP root"
)]
struct Cli {
    /// TFTP root holding the image dirs and boot records.
    #[arg(
        long,
        global = true,
        env = "PELAGOS_TFTP_ROOT",
        default_value = "/srv/tftpboot"
    )]
    tftp_root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify and install a kiwi build (its output dir or `<name>.install.tar`).
    Install {
        source: PathBuf,
        /// Catalog name (default: kiwi's image name).
        #[arg(long)]
        name: Option<String>,
        /// Version (default: kiwi's image version).
        #[arg(long)]
        version: Option<String>,
        /// Another name teuthology may ask for (repeatable).
        #[arg(long = "alias")]
        aliases: Vec<String>,
        /// Make it the current version of its name.
        #[arg(long)]
        set_current: bool,
        /// The image's os-release file, for its ID and VERSION_ID (default:
        /// the one in kiwi's `<source>/build/image-root`; an install tar
        /// carries none). Provisions check that the node runs this OS.
        #[arg(long, value_name = "FILE")]
        os_release: Option<PathBuf>,
        /// kiwi's image id (`<image id="...">`, the image's /etc/ImageID;
        /// default: read from kiwi's image root).
        #[arg(long, value_name = "ID")]
        image_id: Option<String>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Installed images: name, version, current, size, install time.
    List {
        /// As JSON (the manifests plus `id` and `current`).
        #[arg(long)]
        json: bool,
    },
    /// Remove an installed version `<name>-<version>`.
    Remove {
        id: String,
        /// Also when it is the current version (the symlink moves to the newest left).
        #[arg(long)]
        force: bool,
    },
    /// Keep the newest N versions of every name (and the current one).
    Prune {
        #[arg(long)]
        keep: usize,
    },
    /// Point `<name>` at an installed version.
    SetCurrent { id: String },
    /// Remove staging dirs left by killed installs (of processes that are gone).
    Clean,
}

/// indicatif bar per file.
struct Bar {
    bar: RefCell<Option<ProgressBar>>,
    quiet: bool,
}

impl Progress for Bar {
    fn start(&self, file: &str, bytes: u64) {
        if self.quiet {
            return;
        }
        let pb = ProgressBar::new(bytes);
        pb.set_style(
            ProgressStyle::with_template(
                "{msg:40!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_message(file.to_owned());
        *self.bar.borrow_mut() = Some(pb);
    }
    fn advance(&self, bytes: u64) -> ControlFlow<()> {
        if let Some(pb) = self.bar.borrow().as_ref() {
            pb.inc(bytes);
        }
        ControlFlow::Continue(())
    }
    fn finish(&self) {
        if let Some(pb) = self.bar.borrow_mut().take() {
            pb.finish();
        }
    }
}

fn human(bytes: u64) -> String {
    let mut v = bytes as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if v < 1024.0 {
            return format!("{v:.1} {unit}");
        }
        v /= 1024.0;
    }
    format!("{v:.1} TiB")
}

fn main() -> anyhow::Result<()> {
    if let Some(dir) = std::env::var_os(cli_docs::ENV) {
        return cli_docs::write(<Cli as clap::CommandFactory>::command(), dir.as_ref())
            .context("cannot write the CLI docs");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "add_image=info,pelagos_pxe=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let root = &cli.tftp_root;
    match cli.command {
        Command::Install {
            source,
            name,
            version,
            aliases,
            set_current,
            os_release,
            image_id,
            quiet,
        } => {
            let opts = InstallOptions {
                name,
                version,
                aliases,
                set_current,
                os_release,
                image_id,
            };
            let bar = Bar {
                bar: RefCell::new(None),
                quiet,
            };
            let m = install::install(root, &source, &opts, &bar).with_context(|| {
                format!("installing {} into {}", source.display(), root.display())
            })?;
            let current =
                Catalog::new(root).symlink_target(&m.name).as_deref() == Some(m.id().as_str());
            println!(
                "installed {} ({}){}",
                m.id(),
                human(m.size()),
                if current { ", current" } else { "" }
            );
            match &m.os {
                Some(os) => println!("os: {os}"),
                None => println!("os: unknown (no os-release; provisions cannot verify it)"),
            }
        }
        Command::List { json } => {
            let images = Catalog::new(root)
                .images()
                .with_context(|| format!("listing {}", root.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&images)?);
            } else {
                println!(
                    "{:<30} {:<20} {:<7} {:>10}  INSTALLED",
                    "NAME", "VERSION", "CURRENT", "SIZE"
                );
                for e in images {
                    println!(
                        "{:<30} {:<20} {:<7} {:>10}  {}",
                        e.manifest.name,
                        e.manifest.version,
                        if e.current { "*" } else { "" },
                        human(e.manifest.size()),
                        e.manifest.installed
                    );
                }
            }
        }
        Command::Remove { id, force } => {
            install::remove(root, &id, force).with_context(|| format!("removing {id}"))?;
            println!("removed {id}");
        }
        Command::Prune { keep } => {
            for id in install::prune(root, keep).context("pruning")? {
                println!("removed {id}");
            }
        }
        Command::SetCurrent { id } => {
            install::set_current(root, &id).with_context(|| format!("setting {id} current"))?;
            println!("current: {id}");
        }
        Command::Clean => {
            let n = install::clean_staging(root).context("cleaning staging dirs")?;
            println!("removed {n} staging dir(s)");
        }
    }
    Ok(())
}
