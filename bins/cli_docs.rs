//! `cargo xtask dist`'s hook: with `PELAGOS_CLI_DOCS=<dir>` in its
//! environment the binary writes its shell completions (bash, zsh, fish)
//! and man pages (one per subcommand too) into `<dir>` and exits, before
//! any argument is parsed. Not an option: nothing in `--help` or the man
//! page shows it. Included by each of the three binaries (`#[path]`).

use std::path::Path;

/// The variable that names the output directory.
pub const ENV: &str = "PELAGOS_CLI_DOCS";

/// Writes `cmd`'s completions and man pages into `dir`.
pub fn write(cmd: clap::Command, dir: &Path) -> std::io::Result<()> {
    use clap_complete::Shell;
    std::fs::create_dir_all(dir)?;
    let name = cmd.get_name().to_owned();
    let mut completed = cmd.clone();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut completed, &name, dir)?;
    }
    // A page per subcommand, but none for `help` and its own subcommands.
    clap_mangen::generate_to(cmd.disable_help_subcommand(true), dir)
}
