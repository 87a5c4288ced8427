//! `cargo xtask dist`: what a package of Pelagos installs besides the
//! systemd unit, in `target/dist/`:
//!
//! - `bin/`: `pelagos-server`, `make-cfgs`, `add-image` (release build);
//! - `completions/`: `<bin>.bash`, `_<bin>` (zsh), `<bin>.fish`;
//! - `man/man1/`: `<bin>.1`, and `<bin>-<subcommand>.1` for add-image's
//!   subcommands.
//!
//! The completions and man pages come from each binary's own clap
//! `Command` (clap_complete, clap_mangen): the binary writes them when
//! started with `PELAGOS_CLI_DOCS=<dir>` (its `cli_docs.rs`), so they
//! cannot drift from the options it parses. Then every file is checked:
//! each long option the binary's `--help` lists (and each subcommand's)
//! must appear in its completions and its man page.

use anyhow::{Context, Result, ensure};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The binaries, as `cargo build -p` and their file names know them.
pub const BINARIES: [&str; 3] = ["pelagos-server", "make-cfgs", "add-image"];

/// The variable the binaries read (`bins/*/src/cli_docs.rs`).
const ENV: &str = "PELAGOS_CLI_DOCS";

#[derive(clap::Args)]
pub struct Args {
    /// Cargo profile the binaries are built with.
    #[arg(long, default_value = "release")]
    profile: String,
    /// Output directory [default: the target dir's `dist`].
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent dir")?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let out = args.out.unwrap_or_else(|| target.join("dist"));

    let mut build = Command::new(env!("CARGO"));
    build
        .args(["build", "--quiet", "--bins", "--profile", &args.profile])
        .current_dir(root);
    for b in BINARIES {
        build.args(["-p", b]);
    }
    ensure!(build.status()?.success(), "build of the binaries failed");
    let profile_dir = target.join(match args.profile.as_str() {
        "dev" | "test" => "debug",
        "bench" => "release",
        p => p,
    });

    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("cannot empty {}", out.display()))?;
    }
    let (bin_dir, comp_dir, man_dir) = (
        out.join("bin"),
        out.join("completions"),
        out.join("man/man1"),
    );
    for d in [&bin_dir, &comp_dir, &man_dir] {
        std::fs::create_dir_all(d)?;
    }
    let raw = tempfile::tempdir()?;
    for name in BINARIES {
        let bin = profile_dir.join(name);
        std::fs::copy(&bin, bin_dir.join(name))
            .with_context(|| format!("cannot copy {}", bin.display()))?;
        let status = Command::new(&bin)
            .env(ENV, raw.path())
            .status()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        ensure!(status.success(), "{name} did not write its CLI docs");
    }
    for entry in std::fs::read_dir(raw.path())? {
        let path = entry?.path();
        let file = path.file_name().context("no file name")?;
        let dest = if path.extension().is_some_and(|e| e == "1") {
            &man_dir
        } else {
            &comp_dir
        };
        std::fs::rename(&path, dest.join(file))?;
    }
    for name in BINARIES {
        check(&profile_dir.join(name), name, &comp_dir, &man_dir)?;
    }
    println!("{}", out.display());
    for d in [&bin_dir, &comp_dir, &man_dir] {
        let mut files: Vec<_> = std::fs::read_dir(d)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        files.sort();
        println!(
            "  {}/: {}",
            d.strip_prefix(&out)?.display(),
            files.join(" ")
        );
    }
    Ok(())
}

/// Every long option of `name --help` (and of each subcommand's help) is
/// in its bash, zsh and fish completions and its man pages.
fn check(bin: &Path, name: &str, comp_dir: &Path, man_dir: &Path) -> Result<()> {
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p).with_context(|| format!("{} missing", p.display()))
    };
    let completions = [
        read(comp_dir.join(format!("{name}.bash")))?,
        read(comp_dir.join(format!("_{name}")))?,
        read(comp_dir.join(format!("{name}.fish")))?,
    ];
    let top_help = help(bin, &[])?;
    let mut pages = vec![(
        vec![],
        top_help.clone(),
        read(man_dir.join(format!("{name}.1")))?,
    )];
    for sub in subcommands(&top_help) {
        let h = help(bin, &[&sub])?;
        let page = read(man_dir.join(format!("{name}-{sub}.1")))?;
        pages.push((vec![sub], h, page));
    }
    for (path, help, page) in &pages {
        let options = long_options(help);
        ensure!(!options.is_empty(), "{name} {path:?}: no options in --help");
        for opt in &options {
            // clap_mangen escapes dashes for roff (`\-\-config`).
            let roff = opt.replace('-', "\\-");
            ensure!(
                page.contains(&roff),
                "{name} {path:?}: {opt} not in its man page"
            );
            for (shell, text) in ["bash", "zsh", "fish"].iter().zip(&completions) {
                // fish lists long options without their dashes (`-l config`).
                let bare = opt.trim_start_matches('-');
                let found = if *shell == "fish" {
                    text.contains(&format!("-l {bare}"))
                } else {
                    text.contains(opt.as_str())
                };
                ensure!(
                    found,
                    "{name} {path:?}: {opt} not in the {shell} completions"
                );
            }
        }
    }
    Ok(())
}

fn help(bin: &Path, sub: &[&str]) -> Result<String> {
    let out = Command::new(bin).args(sub).arg("--help").output()?;
    ensure!(
        out.status.success(),
        "{} {sub:?} --help failed",
        bin.display()
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// The long options a clap `--help` lists (`  -c, --config <FILE>`,
/// `      --lint`), `--help` and `--version` included.
fn long_options(help: &str) -> Vec<String> {
    help.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix('-').map_or(l, |rest| {
                // `-c, --config`: skip the short form.
                rest.split_once(", ").map_or(l, |(_, long)| long)
            });
            let opt = l.split([' ', '=', '[', '<']).next()?;
            (opt.starts_with("--") && opt.len() > 2).then(|| opt.to_owned())
        })
        .collect()
}

/// The subcommands a clap `--help` lists under `Commands:` (not `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|s| *s != "help")
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP: &str = "\
Install an OS image

Usage: add-image [OPTIONS] <COMMAND>

Commands:
  install  Install a kiwi build
  list     List the images
  help     Print this message or the help of the given subcommand(s)

Options:
  -t, --tftpdir <DIR>  TFTP root
      --quiet          No progress bar
  -h, --help           Print help
  -V, --version        Print version
";

    #[test]
    fn reads_clap_help() {
        assert_eq!(
            long_options(HELP),
            ["--tftpdir", "--quiet", "--help", "--version"]
        );
        assert_eq!(subcommands(HELP), ["install", "list"]);
    }
}
