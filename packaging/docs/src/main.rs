//! `calseg-docs --out DIR`: writes the man pages and shell completions of `calseg-server` and
//! `calseg-agent` into DIR, generated from their clap command lines, so the packaged docs never
//! drift from the binaries. `packaging/build.sh` runs it before building the packages.
//!
//! # Layout
//! - [`man`]: man pages, clap_mangen's sections plus EXIT STATUS, FILES, EXAMPLES, SEE ALSO.
//! - [`pages`]: those extra sections' text for each binary.
//! - [`config_pages`]: section-5 pages of server.toml, policy.toml and agent.toml, read from
//!   the commented examples the packages install.
//!
//! Output: `DIR/man/calseg-server.1`, `calseg-server-<subcommand>.1`, ..., `server.toml.5`,
//! `policy.toml.5`, `agent.toml.5` (roff) and
//! `DIR/completions/{bash,zsh,fish}/`, one completion script per binary (clap_complete).

mod config_pages;
mod man;
mod pages;

use anyhow::{Context, Result};
use clap::{Command, CommandFactory, Parser};
use clap_complete::Shell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Writes calseg's man pages and shell completions, generated from the command lines.
#[derive(Debug, Parser)]
#[command(name = "calseg-docs", version, about)]
struct Args {
    /// Directory to write into (created if missing): DIR/man/*.1, DIR/man/*.5 and
    /// DIR/completions/{bash,zsh,fish}/.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

fn main() -> ExitCode {
    // --help and --version print and exit 0; anything else unknown is a usage error (2).
    let args = Args::parse();
    match run(&args.out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("calseg-docs: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(out: &Path) -> Result<()> {
    for (command, extra) in commands() {
        write_docs(command, &extra, out)?;
    }
    let man = out.join("man");
    config_pages::write_pages(&man)
        .with_context(|| format!("write the configuration pages into {}", man.display()))
}

/// The documented command lines, named as their binaries are installed, with their pages'
/// extra sections.
fn commands() -> [(Command, man::Extra); 2] {
    [
        (
            calseg_server::cli::Cli::command().name("calseg-server"),
            pages::SERVER,
        ),
        (
            calseg_agent::cli::Cli::command().name("calseg-agent"),
            pages::AGENT,
        ),
    ]
}

/// Man pages (one per command and subcommand) and completions for one binary.
fn write_docs(mut command: Command, extra: &man::Extra, out: &Path) -> Result<()> {
    let name = command.get_name().to_owned();
    let man = out.join("man");
    create_dir(&man)?;
    man::write_pages(command.clone(), extra, &man)
        .with_context(|| format!("write the man pages of {name} into {}", man.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let dir = out.join("completions").join(shell.to_string());
        create_dir(&dir)?;
        clap_complete::generate_to(shell, &mut command, &name, &dir)
            .with_context(|| format!("write the {shell} completion of {name}"))?;
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))
}

#[cfg(test)]
mod tests;
