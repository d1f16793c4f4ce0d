//! The command line: `enroll`, `run`, `once`, `renew`, `status`, `plan`, `sidecar`.
//!
//! Exit status (the table both binaries share, calseg_api::exit): 0 success (for `once`:
//! converged, nothing to do), 2 needs attention (`once` changed something and converged,
//! `status`: a certificate inside its renewal window), 1 failure (`status`: a certificate
//! expired), 3 `enroll` still pending approval, 64 bad usage, 69 (`once`) no server reachable,
//! 77 (`once`, `status`) the server revoked this node.

mod status;

use crate::config::{self, Settings, parse_duration};
use crate::daemon::{self, LazySystemd};
use crate::enroll::{self, EnrollOptions, EnrollOutcome, Token};
use crate::plan;
use crate::state::StateDir;
use anyhow::{Context, Result, bail};
use calseg_api::text::printable_lines;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

// The exit statuses: the one table both binaries share (calseg_api::exit), by this binary's
// names for them.
/// Exit status of a successful command (and of `once` with nothing to do).
pub const EXIT_OK: u8 = calseg_api::exit::OK;
/// Any failure (and `status`: a certificate expired).
pub const EXIT_FAILED: u8 = calseg_api::exit::FAILED;
/// `once`: files changed (and units restarted) and everything converged; `plan`: something
/// would change; `status`: a certificate is inside its renewal window.
pub const EXIT_CHANGED: u8 = calseg_api::exit::ATTENTION;
/// `enroll`: still waiting for approval.
pub const EXIT_PENDING: u8 = calseg_api::exit::PENDING;
/// Bad arguments (sysexits EX_USAGE; clap's own 2 would read as "changed").
pub const EXIT_USAGE: u8 = calseg_api::exit::USAGE;
/// `once`: no server could be reached; nothing was changed and the installed identities keep
/// working until they expire (sysexits EX_UNAVAILABLE: retrying later may help, unlike 1).
pub const EXIT_UNREACHABLE: u8 = calseg_api::exit::UNREACHABLE;
/// `once`, `status`: an operator revoked this node; re-enroll with a new token (sysexits
/// EX_NOPERM: not "failed", not "unreachable", and retrying will not help).
pub const EXIT_REVOKED: u8 = calseg_api::exit::REVOKED;

/// calseg's node agent: installs this host's Calico etcd identities and restarts Calico units.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    after_help = "Exit status (one table with calseg-server): 0 ok / nothing to do, 1 failed (status: a certificate expired), 2 needs attention (once: changed and converged; plan: would change; status: a certificate inside its renewal window), 3 enrollment pending, 64 usage error, 69 no server reachable (once: nothing changed, try again later), 77 this node was revoked (once, status: re-enroll with a new token, `enroll --force --token ...`). See calseg-agent(1)."
)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = config::DEFAULT_PATH,
        env = "CALSEG_AGENT_CONFIG"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enroll this host with calseg-server (once), pinning the server by its fleet CA hash.
    Enroll(EnrollArgs),
    /// Run as a daemon: a cycle at start, then every interval (plus jitter).
    Run,
    /// Run one cycle. Exit 0 = nothing to do, 2 = changed and converged, 1 = failed,
    /// 69 = no server reachable (nothing changed), 77 = this node was revoked.
    Once {
        /// Print the cycle's report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Renew this node's certificates now, due or not: a new key and CSR per identity, signed,
    /// verified, installed and its units restarted, as a scheduled renewal. Exit as `once`:
    /// 2 = renewed and converged, 1 = failed, 69 = no server reachable, 77 = revoked.
    Renew {
        /// Renew only this component's identity (default: every identity of this node).
        #[arg(long, value_name = "COMPONENT")]
        component: Option<String>,
        /// Print the cycle's report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show identities, expiries, units, the last cycle and its errors (no network).
    /// Exit 0 = healthy, 2 = a certificate is inside its renewal window, 1 = a certificate
    /// expired, the last cycle failed or the host is not enrolled, 77 = revoked.
    Status {
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Dry run: which files would change (by hash) and which units would restart.
    /// Fetches the manifest but never signs, installs or restarts. Exit 0 = nothing would
    /// change, 2 = something would, 1 = errors.
    Plan {
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        /// Plan this manifest (JSON) instead of fetching one: opens no socket.
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
    },
    /// The side car next to calico-node in Calico's hosted Kubernetes manifest: no systemd;
    /// installs one component's identity as etcd-ca, etcd-cert, etcd-key in the output
    /// directory. The node name comes from CALSEG_NODE_NAME (downward API, spec.nodeName).
    /// With --init: one pass, exit 0 once the files are there (3 pending approval, 69 no
    /// server reachable, 1 failed).
    Sidecar(SidecarArgs),
}

#[derive(Debug, clap::Args)]
pub struct SidecarArgs {
    /// The init-container form: enroll if needed, one pass, exit 0 once the files exist.
    #[arg(long)]
    pub init: bool,
    /// The component whose identity is installed.
    #[arg(long, value_name = "COMPONENT", default_value = crate::sidecar::DEFAULT_COMPONENT)]
    pub component: String,
    /// Where etcd-ca, etcd-cert and etcd-key are written (an emptyDir shared with calico-node).
    #[arg(long, value_name = "DIR", default_value = crate::sidecar::DEFAULT_OUTPUT_DIR)]
    pub output_dir: PathBuf,
    /// The state directory (a hostPath, so a restarted pod stays enrolled); default:
    /// `state_dir` from the config.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Server URL(s) to enroll with (default: `servers` from the config).
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    pub server: Vec<String>,
    /// The fleet CA pin, `sha256:<hex>`; needed only when not enrolled yet.
    #[arg(long, value_name = "sha256:HEX")]
    pub ca_hash: Option<String>,
    /// Read a bootstrap (glob) token from this file, e.g. a mounted Secret; without it the
    /// node waits for approval.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// How long to wait for approval.
    #[arg(long, default_value = "10m", value_parser = parse_duration, conflicts_with = "no_wait")]
    pub wait: std::time::Duration,
    /// Return at once (exit 3) if enrollment is pending approval.
    #[arg(long)]
    pub no_wait: bool,
    /// Renew the certificate in the first pass, due or not.
    #[arg(long)]
    pub renew: bool,
    /// After a new identity is installed, under a restart lease, send SIGTERM to the process
    /// with this command name (e.g. calico-node) in the pod's shared PID namespace
    /// (`shareProcessNamespace: true`) so the kubelet restarts its container. Not with --init.
    #[arg(long, value_name = "COMMAND", conflicts_with = "init")]
    pub signal: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct EnrollArgs {
    /// Server URL, https://host:port; repeat it (or separate with commas) for the replicas of
    /// one service, tried in order when one fails (default: `servers` from the config).
    #[arg(long, value_name = "URL", value_delimiter = ',')]
    pub server: Vec<String>,
    /// SHA-256 of the fleet CA certificate's DER, `sha256:<hex>`, as calseg-server prints it.
    #[arg(long, value_name = "sha256:HEX")]
    pub ca_hash: String,
    /// Bootstrap token `<id>.<secret>`; without a token the node waits for approval.
    #[arg(
        long,
        env = "CALSEG_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// Read the bootstrap token from this file.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// How long to wait for approval.
    #[arg(long, default_value = "10m", value_parser = parse_duration, conflicts_with = "no_wait")]
    pub wait: std::time::Duration,
    /// Return at once (exit 3) if enrollment is pending approval.
    #[arg(long)]
    pub no_wait: bool,
    /// Enroll again even though fleet credentials exist.
    #[arg(long)]
    pub force: bool,
}

/// Parses the process arguments, runs the command and returns its exit status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    calseg_service::pipe::exit_quietly_on_closed_stdout();
    calseg_service::log::init();
    // One thread: a pass is one sequence of waits on the network, systemd and the disk, with
    // nothing to run in parallel; worker threads would only add wake-ups between threads.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // The message may carry the server's text: no terminal control gets through.
            let message = format!("{e:#}");
            let printable = printable_lines(&message);
            eprintln!("{}", calseg_service::log::error_line(&printable));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// The settings: the config file, or the defaults when the default file does not exist.
pub fn load_settings(path: &std::path::Path) -> Result<Settings> {
    if path == std::path::Path::new(config::DEFAULT_PATH) && !path.exists() {
        return Ok(Settings::defaults()?);
    }
    Ok(Settings::load(path)?)
}

/// Runs a parsed command; returns its exit status.
pub async fn execute(cli: Cli) -> Result<u8> {
    let settings = load_settings(&cli.config)?;
    let state = StateDir::new(&settings.state_dir);
    match cli.command {
        Command::Enroll(args) => enroll_cmd(&settings, &state, args).await,
        Command::Run => {
            daemon::run(settings, daemon::signals()).await?;
            Ok(EXIT_OK)
        }
        Command::Once { json } => one_pass(&settings, crate::decide::Renew::AsDue, json).await,
        Command::Renew { component, json } => {
            let renew =
                component.map_or(crate::decide::Renew::All, crate::decide::Renew::Component);
            one_pass(&settings, renew, json).await
        }
        Command::Status { json } => status::show(&settings, &state, json),
        Command::Plan { json, manifest } => plan_cmd(&settings, &state, json, manifest).await,
        Command::Sidecar(args) => sidecar_cmd(settings, args).await,
    }
}

/// `sidecar`: the node name from the environment, then [`crate::sidecar::run::run`].
async fn sidecar_cmd(mut settings: Settings, args: SidecarArgs) -> Result<u8> {
    use crate::sidecar::{self, run};
    settings.node = sidecar::node_from_env(std::env::var_os(sidecar::NODE_ENV))?;
    if let Some(dir) = args.state_dir {
        settings.state_dir = dir;
    }
    let token = match &args.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("read --token-file {}", path.display()))?;
            if text.trim().is_empty() {
                bail!("--token-file {} is empty", path.display());
            }
            Some(Token::new(&text))
        }
        None => None,
    };
    let opts = run::Options {
        target: sidecar::Target::new(&args.output_dir, &args.component)?,
        enrollment: run::Enrollment {
            servers: args.server,
            ca_hash: args.ca_hash,
            token,
            wait: (!args.no_wait).then_some(args.wait),
        },
        init: args.init,
        renew: args.renew,
        signal: args
            .signal
            .as_deref()
            .map(sidecar::signal::Signaller::new)
            .transpose()
            .map_err(anyhow::Error::msg)
            .context("--signal")?,
    };
    run::run(&settings, &opts, daemon::signals()).await
}

/// `once` and `renew`: one pass; the exit status says how it ended.
async fn one_pass(settings: &Settings, renew: crate::decide::Renew, json: bool) -> Result<u8> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut restarter = LazySystemd::new(settings.systemd_bus.clone());
    let result = daemon::pass_renewing(settings, &mut restarter, stop, renew).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result.report)?);
    }
    for error in &result.errors {
        eprintln!("error: {}", printable_lines(&error.to_string()));
    }
    eprintln!("cycle {}", result.outcome.as_str());
    Ok(result.outcome.exit_code())
}

async fn enroll_cmd(settings: &Settings, state: &StateDir, args: EnrollArgs) -> Result<u8> {
    let servers = if args.server.is_empty() {
        settings.servers.clone()
    } else {
        config::check_servers(&args.server)
            .map_err(|(_, message)| anyhow::Error::msg(message))
            .context("--server")?
    };
    if servers.is_empty() {
        bail!("no server: pass --server https://host:port or set `servers` in the config");
    }
    // An explicit --token-file wins over CALSEG_TOKEN from the environment.
    let token = match (&args.token_file, &args.token) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("read --token-file {}", path.display()))?;
            Some(Token::new(&text))
        }
        (None, Some(token)) => Some(Token::new(token)),
        (None, None) => None,
    };
    let opts = EnrollOptions {
        servers,
        ca_hash: args.ca_hash,
        node: settings.node.clone(),
        token,
        wait: (!args.no_wait).then_some(args.wait),
    };
    match enroll::enroll(state, &opts, args.force).await? {
        EnrollOutcome::Enrolled { not_after } => {
            eprintln!(
                "enrolled as {}; fleet certificate valid until {}",
                opts.node,
                calseg_api::when::rfc3339(&not_after)
            );
            Ok(EXIT_OK)
        }
        EnrollOutcome::Pending { fingerprint } => {
            eprintln!(
                "enrollment of {node} is pending approval of key {fingerprint}: on the server, check \
                 that `calseg-server nodes show {node}` shows this key, run `calseg-server nodes \
                 approve {node} --fingerprint {fingerprint}`, then `calseg-agent enroll` again",
                node = opts.node
            );
            Ok(EXIT_PENDING)
        }
    }
}

async fn plan_cmd(
    settings: &Settings,
    state: &StateDir,
    json: bool,
    manifest: Option<PathBuf>,
) -> Result<u8> {
    let manifest = match manifest {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a manifest", path.display()))?
        }
        None => match daemon::server_client(settings, state)?
            .manifest(None)
            .await?
        {
            crate::client::ManifestFetch::Fresh { manifest, .. } => manifest,
            crate::client::ManifestFetch::NotModified => {
                bail!("server answered 304 to an unconditional request")
            }
        },
    };
    let installer = crate::cycle::real::FsInstaller {
        root: crate::install::Root::new(&settings.root),
    };
    let violations = settings.limits.check_manifest(&installer.root, &manifest);
    if !violations.is_empty() {
        for v in &violations {
            eprintln!("{}", printable_lines(&v.to_string()));
        }
        eprintln!("nothing of this manifest would be installed or restarted");
        return Ok(EXIT_FAILED);
    }
    let installed = state.installed()?;
    let plan = plan::plan(
        &manifest,
        &installed,
        &installer,
        time::OffsetDateTime::now_utc(),
    );
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", printable_lines(&plan::to_text(&plan)));
    }
    Ok(if !plan.errors.is_empty() {
        EXIT_FAILED
    } else if plan.changes() {
        EXIT_CHANGED
    } else {
        EXIT_OK
    })
}

#[cfg(test)]
mod tests;
