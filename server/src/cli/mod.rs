//! The `calseg-server` command line: argument parsing and the output people and scripts see.
//! Commands call into the library; this module only wires flags to it and picks exit codes.

mod rbac_cmd;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// calseg's control plane: segmentation policy, etcd RBAC and component certificates.
#[derive(Debug, Parser)]
#[command(name = "calseg-server", version, about)]
pub struct Cli {
    /// Server configuration file.
    #[arg(long, global = true, value_name = "FILE", env = "CALSEG_SERVER_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the policy file; touches nothing and opens no sockets.
    Check {
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Show the etcd RBAC changes the policy needs. Exit status: 0 no changes, 2 changes, 1 error.
    Plan(ReconcileArgs),
    /// Make etcd's calseg users and roles match the policy.
    Apply(ReconcileArgs),
}

/// Flags shared by `plan` and `apply`; each overrides server.toml.
#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    /// The policy file (default: server.toml's `policy`, else /etc/calseg/policy.toml).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// etcd endpoint for calseg itself (repeat for several; default: the policy's endpoints).
    #[arg(long = "etcd-endpoint", value_name = "URL")]
    pub etcd_endpoints: Vec<String>,
    /// CA that signed etcd's server certificate.
    #[arg(long, value_name = "FILE")]
    pub etcd_ca: Option<PathBuf>,
    /// calseg's etcd client certificate (its CN must hold etcd's root role).
    #[arg(long, value_name = "FILE")]
    pub etcd_cert: Option<PathBuf>,
    /// The key of --etcd-cert.
    #[arg(long, value_name = "FILE")]
    pub etcd_key: Option<PathBuf>,
    /// Proceed even though etcd's auth is disabled.
    #[arg(long)]
    pub allow_auth_disabled: bool,
    /// Take over users the policy names that exist in etcd but calseg did not create.
    #[arg(long)]
    pub adopt: bool,
    /// etcd requests in flight at once.
    #[arg(long, value_name = "N")]
    pub parallelism: Option<usize>,
}

/// Parses the command line, runs the command, and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match &cli.command {
            Command::Check { policy } => rbac_cmd::check(cli.config.as_deref(), policy.as_deref()),
            Command::Plan(args) => rbac_cmd::plan(cli.config.as_deref(), args).await,
            Command::Apply(args) => rbac_cmd::apply(cli.config.as_deref(), args).await,
        }
    });
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr: plain text without colour when not on a terminal (journald), `RUST_LOG`
/// filters, info by default.
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
