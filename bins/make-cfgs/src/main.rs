//! `make-cfgs`: render the lab's service files (dnsmasq host records,
//! conman.conf, salt roster, teuthology SQL, udev rules) from a Pelagos lab
//! config into a target directory, as the original `bin/make_cfgs.py` did.
//!
//! `--check` writes nothing: it prints a unified diff of every file that
//! differs from what would be written and exits 1 (0 when all are current).
//! `--lint` reads the lab only: it prints every problem, each naming node,
//! field and value and whether it refuses the whole lab or disables its
//! node in pelagos-server, and exits 1 when there is any (0 when none).
//! Errors exit 2. Templates and outputs: see `pelagos_config::generate`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

/// A big lab is tens of thousands of small allocations made once and never
/// freed (the process exits): mimalloc serves them with fewer page faults
/// than glibc's malloc (figures in docs/ARCHITECTURE.md, make-cfgs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One file shared by the three binaries (`cargo xtask dist`).
#[path = "../../cli_docs.rs"]
mod cli_docs;

use anyhow::{Context, Result};
use clap::Parser;
use pelagos_config::generate::{self, Kind, Options, Output};
use pelagos_config::{LabConfig, Scope, Secret};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Generate dnsmasq, conman, salt roster, teuthology SQL and udev files from a Pelagos lab config",
    after_help = AFTER_HELP
)]
struct Args {
    /// The lab config (JSON/Hjson).
    #[arg(short = 'c', value_name = "LAB_CONFIG")]
    config: PathBuf,
    /// Target directory; override templates are read from its `templates/` dir.
    #[arg(
        short = 'd',
        value_name = "TARGET_DIR",
        required_unless_present = "lint"
    )]
    target_dir: Option<PathBuf>,
    /// Write nothing; print a unified diff and exit 1 when files on disk differ.
    #[arg(long)]
    check: bool,
    /// Write nothing, read no target dir: list every problem of the lab
    /// config (lab-wide ones, which refuse the lab everywhere, and those of
    /// single nodes, which pelagos-server disables) and exit 1 if any.
    #[arg(long, conflicts_with_all = ["check", "only", "sql_upsert"])]
    lint: bool,
    /// Only these outputs (comma-separated): dnsmasq,conman,roster,sql,udev.
    #[arg(long, value_name = "KINDS", value_delimiter = ',', value_parser = parse_kind)]
    only: Option<Vec<Kind>>,
    /// The SQL script updates existing nodes (ON CONFLICT (name) DO UPDATE).
    #[arg(long)]
    sql_upsert: bool,
}

const AFTER_HELP: &str = "\
Files written under the target dir (each replaced atomically):
  dnsmasq  states/etc/dnsmasq/dnsmasq.d/network_nodes.conf
  conman   states/etc/conman.conf   (mode 0600: it holds the BMC password)
  roster   deploy.roster
  sql      sql/nodes.sql            (nodes whose t_exclude is not yes)
  udev     udev/70-persistent-net.rules
Templates: <dir>/templates/<kind>.tera overrides the built-in one; for conman,
<dir>/states/etc/conman.conf.tmpl with @@CONSOLES@@ is used when present.
make-cfgs refuses a lab with any problem (the files it writes must be accepted
by dnsmasq and conmand); pelagos-server refuses only lab-wide ones and disables
a node with problems of its own. --lint lists both kinds.
Exit status: 0 done (or --check: up to date; --lint: no problem), 1 --check
found differences or --lint found problems, 2 error.";

fn parse_kind(s: &str) -> Result<Kind, String> {
    s.parse()
        .map_err(|e: generate::GenerateError| e.to_string())
}

fn main() -> ExitCode {
    if let Some(dir) = std::env::var_os(cli_docs::ENV) {
        return match cli_docs::write(<Args as clap::CommandFactory>::command(), dir.as_ref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("make-cfgs: error: cannot write the CLI docs: {e}");
                ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("make-cfgs: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `--lint`: every problem, one a line, and exit 1 if any.
fn lint(args: &Args) -> Result<ExitCode> {
    let lab = LabConfig::read(&args.config)?;
    let problems = lab.validate();
    for p in &problems {
        let what = match p.scope {
            Scope::Lab => "lab-wide",
            Scope::Node => "disables its node",
        };
        println!("{what}: {p}");
    }
    if problems.is_empty() {
        println!("{}: no problems", args.config.display());
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "make-cfgs: {} problem(s) in {}",
        problems.len(),
        args.config.display()
    );
    Ok(ExitCode::from(1))
}

fn run(args: &Args) -> Result<ExitCode> {
    if args.lint {
        return lint(args);
    }
    let Some(target_dir) = &args.target_dir else {
        anyhow::bail!("-d <TARGET_DIR> is required");
    };
    // render_all validates (every problem at once, naming the file through
    // the context below); validating here too would do it twice.
    let lab = LabConfig::read(&args.config)?;
    let mut opts = match &args.only {
        Some(kinds) => Options::only(kinds.iter().copied()),
        None => Options::default(),
    };
    opts.sql_upsert = args.sql_upsert;
    let outputs = generate::render_all(&lab, &opts, target_dir)
        .with_context(|| format!("generating from {}", args.config.display()))?;
    if args.check {
        let mut differ = 0;
        for o in &outputs {
            if let Some(diff) = diff_against_disk(o, target_dir, &lab.ipmi_pass)? {
                print!("{diff}");
                differ += 1;
            }
        }
        if differ == 0 {
            println!("all {} file(s) up to date", outputs.len());
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("make-cfgs: {differ} file(s) differ from the lab config");
        return Ok(ExitCode::from(1));
    }
    for path in generate::write_all(&outputs, target_dir)? {
        println!("wrote {}", path.display());
    }
    // The process ends next: freeing a big lab and its outputs node by node
    // would be a tenth of the run for nothing.
    std::mem::forget(outputs);
    std::mem::forget(lab);
    Ok(ExitCode::SUCCESS)
}

/// The unified diff from the file on disk to `o`, or `None` when equal. The
/// BMC password is masked in the diff (conman.conf holds it).
fn diff_against_disk(o: &Output, target_dir: &Path, secret: &Secret) -> Result<Option<String>> {
    let path = target_dir.join(&o.rel_path);
    let old = match std::fs::read_to_string(&path) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if old.as_deref() == Some(o.contents.as_str()) {
        // Same text; a private file (conman.conf) that others can read differs too.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .permissions()
            .mode()
            & 0o777;
        if o.mode & 0o077 == 0 && mode & 0o077 != 0 {
            return Ok(Some(format!(
                "{}: mode {mode:o}, expected {:o}\n",
                o.rel_path.display(),
                o.mode
            )));
        }
        return Ok(None);
    }
    let old_text = secret.redact(old.as_deref().unwrap_or(""));
    let new_text = secret.redact(&o.contents);
    let old_name = match old {
        Some(_) => format!("a/{}", o.rel_path.display()),
        None => "/dev/null".to_owned(),
    };
    let diff = similar::TextDiff::from_lines(&old_text, &new_text)
        .unified_diff()
        .header(&old_name, &format!("b/{}", o.rel_path.display()))
        .to_string();
    Ok(Some(diff))
}
