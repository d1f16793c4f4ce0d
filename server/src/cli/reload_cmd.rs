//! `calseg-server reload`: SIGHUP to the running server, then its verdict on the policy
//! (`crate::reload`). systemd's `ExecReload=` runs it with `$MAINPID`.

use crate::config::ServerConfig;
use clap::Args;
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// The server's process id (default: $MAINPID, which systemd sets for ExecReload=).
    #[arg(long, env = "MAINPID", value_name = "PID")]
    pub pid: i32,
    /// How long to wait for the server's answer, e.g. 60s.
    #[arg(
        long,
        default_value = "60s",
        value_name = "DURATION",
        value_parser = super::duration_flag
    )]
    pub timeout: std::time::Duration,
}

/// Signals the server and waits; an error (refused, no answer) exits 1 with the reason.
pub async fn reload(config: Option<&Path>, args: &ReloadArgs) -> anyhow::Result<ExitCode> {
    let config = ServerConfig::load(config)?;
    let status = crate::reload::request(args.pid, &config.state_dir(), args.timeout).await?;
    match status.revision {
        Some(revision) => println!(
            "policy reloaded (reload {}): revision {revision} in force",
            status.generation
        ),
        None => println!(
            "policy reloaded (reload {}); the store recorded no revision",
            status.generation
        ),
    }
    Ok(ExitCode::SUCCESS)
}
