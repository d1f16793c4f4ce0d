//! `calseg-docs DIR`: writes the man pages and shell completions of `calseg-server` and
//! `calseg-agent` into DIR, generated from their clap command lines, so the packaged docs never
//! drift from the binaries. `packaging/build.sh` runs it before building the packages.
//!
//! # Layout
//! - `DIR/man/`: `calseg-server.1`, `calseg-server-<subcommand>.1`, ... (clap_mangen, roff).
//! - `DIR/completions/{bash,zsh,fish}/`: one completion script per binary (clap_complete).

use anyhow::{Context, Result, bail};
use clap::{Command, CommandFactory};
use clap_complete::Shell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("calseg-docs: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        bail!("usage: calseg-docs OUT_DIR (writes OUT_DIR/man and OUT_DIR/completions)");
    };
    let out = PathBuf::from(out);
    for command in commands() {
        write_docs(command, &out)?;
    }
    Ok(())
}

/// The documented command lines, named as their binaries are installed.
fn commands() -> [Command; 2] {
    [
        calseg_server::cli::Cli::command().name("calseg-server"),
        calseg_agent::cli::Cli::command().name("calseg-agent"),
    ]
}

/// Man pages (one per command and subcommand) and completions for one binary.
fn write_docs(mut command: Command, out: &Path) -> Result<()> {
    let name = command.get_name().to_owned();
    let man = out.join("man");
    create_dir(&man)?;
    clap_mangen::generate_to(command.clone(), &man)
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
mod tests {
    use super::*;

    #[test]
    fn writes_man_pages_for_subcommands_and_three_completions_per_binary() {
        let dir = tempfile_dir();
        for command in commands() {
            write_docs(command, &dir).unwrap();
        }
        for name in ["calseg-server", "calseg-agent"] {
            assert!(dir.join(format!("man/{name}.1")).is_file(), "{name}.1");
            assert!(dir.join(format!("completions/bash/{name}.bash")).is_file());
            assert!(dir.join(format!("completions/zsh/_{name}")).is_file());
            assert!(dir.join(format!("completions/fish/{name}.fish")).is_file());
        }
        assert!(dir.join("man/calseg-server-init.1").is_file());
        assert!(dir.join("man/calseg-agent-enroll.1").is_file());
        let page = std::fs::read_to_string(dir.join("man/calseg-server-init.1")).unwrap();
        assert!(page.contains("\\-\\-san"), "init's page documents --san");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("calseg-docs-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }
}
