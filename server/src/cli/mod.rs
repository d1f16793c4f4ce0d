//! The `calseg-server` command line: argument parsing and the output people and scripts see.
//! Commands call into the library; this module only wires flags to it and picks exit codes.

mod access_cmd;
mod admin_cert_cmd;
mod admin_cmd;
mod audit_cmd;
mod backup_cmd;
mod ca_cmd;
mod datastore_cmd;
mod k8s_cmd;
pub(crate) mod output;
mod pending_cmd;
mod plan_cmd;
mod plan_text;
mod rbac_cmd;
mod reload_cmd;
mod restore_cmd;
mod revoke_cmd;
mod rollout_cmd;
mod store_cmd;
#[cfg(test)]
mod tests;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// calseg's control plane: segmentation policy, etcd RBAC and component certificates.
#[derive(Debug, Parser)]
#[command(
    name = "calseg-server",
    version,
    about,
    after_help = "Exit status (one table with calseg-agent): 0 ok / no changes, 1 failed (can-i: denied; rollout status/watch: rolled back), 2 needs attention (plan: changes; apply: conflicts left alone; rollout status/watch: paused or aborted), 64 usage error, 69 the running server cannot be reached. See calseg-server(1)."
)]
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
        /// The policy file (default: server.toml's `policy`, else /etc/calseg/policy.toml).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Show what the policy (or the candidate --policy FILE) would change: the etcd RBAC diff,
    /// then each node's files, units to restart and rollout wave. Exit status: 0 no changes,
    /// 2 changes, 1 error, 64 usage.
    ///
    /// Goes through the running server when server.toml has an [admin] section (the server knows
    /// the enrolled nodes, also those that enrolled by glob, and what each is served; it plans a
    /// candidate without adopting it); straight to etcd with --direct (the RBAC diff only, for the
    /// nodes the policy names).
    Plan(plan_cmd::PlanArgs),
    /// Make etcd's calseg users and roles match the policy (through the running server when
    /// server.toml has an [admin] section; straight to etcd with --policy or --direct).
    /// A user the policy names that calseg does not own is a conflict: left alone (and never
    /// signed for) while everything else is applied. Exit status: 0 done, 2 done but conflicts
    /// left alone, 1 error.
    Apply(ReconcileArgs),
    /// Whether USER may read or write KEY (--prefix: every key under it), from etcd's live
    /// roles. Exit status: 0 yes, 1 no (or an error, e.g. no such user).
    CanI(access_cmd::CanIArgs),
    /// USER's effective read and write ranges in etcd, merged across its roles, with the roles
    /// each comes from.
    Access(access_cmd::AccessArgs),
    /// For each calseg identity: which other nodes' keys it can read or write, and which keys
    /// shared by design (with the reason), from etcd's live roles.
    Exposure(access_cmd::ExposureArgs),
    /// Run the server: the HTTPS API for agents and administrators, and the RBAC reconciler.
    Serve {
        /// The policy file (default: server.toml's `policy`, else /etc/calseg/policy.toml).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Ask the running server to reload its policy (SIGHUP) and wait for the result. Exit
    /// status: 0 the new policy is in force, 1 the server refused it (it keeps the old one,
    /// and this prints why) or did not answer. calseg-server.service's ExecReload= runs it, so
    /// `systemctl reload calseg-server` fails on a refused policy.
    Reload(reload_cmd::ReloadArgs),
    /// First-time setup: CAs, TLS and admin certificates, server.toml.
    Init(InitArgs),
    /// Enrollment tokens (through the running server).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Enrolled nodes (through the running server).
    #[command(subcommand)]
    Nodes(NodesCommand),
    /// Rollouts of policy changes (through the running server).
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// The CAs, and rotating the etcd client CA in waves (through the running server).
    #[command(subcommand)]
    Ca(ca_cmd::CaCommand),
    /// Calico's cluster-wide objects in etcd (directly, with calseg's own etcd identity).
    #[command(subcommand)]
    Datastore(datastore_cmd::DatastoreCommand),
    /// Copy the server's state between the embedded store and etcd, then compare the copy with
    /// the source record by record. Stop every server first; the target must be empty.
    MigrateStore {
        /// The store to copy from.
        #[arg(long, value_enum)]
        from: store_cmd::StoreKind,
        /// The store to copy into (must be empty).
        #[arg(long, value_enum)]
        to: store_cmd::StoreKind,
        /// The embedded store file (default: state.redb in server.toml's state_dir).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Write a signed backup of the server's state: the store (read from the running server
    /// when server.toml has [admin]), the CA files and the TLS files. On the server host.
    Backup(backup_cmd::BackupArgs),
    /// Bring an empty machine to a backup's state (server stopped); checks the pin, the
    /// signature and the versions before writing anything.
    Restore(restore_cmd::RestoreArgs),
    /// Administrator certificates (on the server host, with the fleet CA key).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Calico in Kubernetes (its hosted manifest): Secrets of component-wide identities,
    /// through the running server.
    #[command(subcommand)]
    K8s(K8sCommand),
    /// The audit log (through the running server), oldest first.
    Audit {
        /// Show entries from this time on: a duration ago (1h, 30m, 2d) or an RFC 3339 time
        /// (2027-03-03T14:00:00Z).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Show entries after this sequence number (the SEQ column).
        #[arg(long, default_value_t = 0, value_name = "N")]
        after_seq: u64,
        /// Keep printing new entries as they come (every 2s) until Ctrl-C; with -o json, one
        /// JSON object a line.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Show at most this many entries (the server caps it at 10000).
        #[arg(long, default_value_t = 1000, value_name = "N")]
        limit: usize,
        #[command(flatten)]
        out: output::OutputArgs,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory of server.toml and the admin and etcd client certificates.
    #[arg(long, default_value = "/etc/calseg", value_name = "DIR")]
    pub config_dir: PathBuf,
    /// Directory of the store, the CAs and the TLS files.
    #[arg(long, default_value = "/var/lib/calseg", value_name = "DIR")]
    pub state_dir: PathBuf,
    /// DNS name or IP address agents use to reach the server (repeat for several).
    #[arg(long = "san", value_name = "NAME", required = true)]
    pub sans: Vec<String>,
    /// Address and port the server listens on for agents and administrators.
    #[arg(long, default_value = "0.0.0.0:8443", value_name = "ADDR")]
    pub listen: String,
    /// Import this etcd client CA certificate instead of generating one (with --etcd-ca-key).
    #[arg(long, value_name = "FILE", requires = "etcd_ca_key")]
    pub etcd_ca_cert: Option<PathBuf>,
    /// The key of --etcd-ca-cert (unencrypted PKCS#8 PEM).
    #[arg(long, value_name = "FILE", requires = "etcd_ca_cert")]
    pub etcd_ca_key: Option<PathBuf>,
    /// etcd endpoints calseg itself uses (default: the policy's).
    #[arg(long = "etcd-endpoint", value_name = "URL")]
    pub etcd_endpoints: Vec<String>,
    /// The CA that signed etcd's server certificate (default: the etcd client CA).
    #[arg(long, value_name = "FILE")]
    pub etcd_server_ca: Option<PathBuf>,
    /// Mint calseg's own etcd client certificate with this CN (an etcd user holding root).
    #[arg(long, value_name = "USER")]
    pub etcd_user: Option<String>,
    /// Name in the administrator certificate (CN admin:NAME).
    #[arg(long, default_value = "root", value_name = "NAME")]
    pub admin_name: String,
    /// Replace existing keys and the settings init wrote before (server.toml.d/50-init.toml, or
    /// a server.toml init wrote). A server.toml init did not write is never replaced.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token: for one node (--node) or for N nodes matching a glob (--match, --uses).
    Create {
        /// The one node this token enrolls (its name, as in the node's agent.toml).
        #[arg(
            long,
            value_name = "NODE",
            conflicts_with = "glob",
            required_unless_present = "glob"
        )]
        node: Option<String>,
        /// Enroll nodes whose names match this glob, e.g. 'worker-*' (quote it for the shell).
        #[arg(long = "match", value_name = "GLOB")]
        glob: Option<String>,
        /// How many nodes a --match token enrolls (default 1); not with --node.
        // `requires` alone does not bite: clap drops a requirement whose target (--match)
        // conflicts with an argument present (--node), so the conflict is stated as well.
        #[arg(long, value_name = "N", requires = "glob", conflicts_with = "node")]
        uses: Option<u32>,
        /// How long the token stays valid, e.g. 30m, 1h30m, 2d.
        #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = duration_flag)]
        ttl: Duration,
        /// Print the token (with its secret) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        out: output::OutputArgs,
    },
    /// Delete a token by id. Exit status 1 when there is no such token.
    Delete {
        /// The token's id (the part before the dot; `token list` shows it).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// The node inventory: state, last seen, revision, certificate expiry, unit health, drift.
    /// Filters combine: a node is listed when it passes every one given.
    List {
        #[command(flatten)]
        out: output::OutputArgs,
        /// Only nodes with an installed certificate expiring within this time, e.g. 7d.
        #[arg(long, value_name = "DURATION", value_parser = duration_flag)]
        expiring_within: Option<Duration>,
        /// Only nodes whose last report has errors or units that are not active.
        #[arg(long)]
        failed: bool,
        /// Only nodes not seen for longer than this, or never, e.g. 1h.
        #[arg(long, value_name = "DURATION", value_parser = duration_flag)]
        not_seen_since: Option<Duration>,
    },
    /// One node: state, first and last seen; while it waits for approval, its key's
    /// fingerprint and the address it asked from; once enrolled, its fleet certificate, the
    /// identities issued to it (component, etcd user, serial, notBefore, notAfter), its last
    /// report (revision, errors, units) and the last 10 audit entries about it.
    Show {
        /// The node's name.
        node: String,
        #[command(flatten)]
        out: output::OutputArgs,
    },
    /// Approve a pending (or denied) node: exactly the key with this fingerprint gets a fleet
    /// certificate. Compare it with the fingerprint the node's agent printed while it waits
    /// (`nodes show NODE` shows the key waiting); without --fingerprint, or with another one,
    /// nothing is approved and the error names the key waiting.
    Approve {
        /// The pending or denied node's name.
        node: String,
        /// `sha256:<64 hex>`: SHA-256 of the key's SubjectPublicKeyInfo, as the agent prints it.
        #[arg(long, value_name = "sha256:HEX")]
        fingerprint: Option<String>,
    },
    /// Deny a pending node.
    Deny {
        /// The pending node's name.
        node: String,
    },
    /// Delete a pending or denied node (it holds no certificate), e.g. a request nobody will
    /// approve; its name may ask again. Enrolled nodes are revoked instead (`nodes revoke`).
    Delete {
        /// The pending or denied node's name.
        node: String,
    },
    /// Revoke an enrolled node: every call refused at once, its etcd users removed. Says
    /// "revoked" only once they are gone; otherwise names those still there, and exits 1.
    Revoke {
        /// The enrolled node's name.
        node: String,
        /// How long to wait for the node's etcd users to be deleted (at most 25s).
        #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = duration_flag)]
        wait: Duration,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Issue a short-lived administrator certificate (CN admin:NAME). Without --out it
    /// replaces the one server.toml's [admin] names (renewal). The server accepts at most
    /// 31 days.
    Issue {
        /// Name in the certificate (CN admin:NAME), as the audit log records it.
        #[arg(long, default_value = "root", value_name = "NAME")]
        name: String,
        /// How long the certificate is valid, e.g. 8h, 7d, 1d12h (at most 31d).
        #[arg(long, default_value = "7d", value_name = "DURATION", value_parser = duration_flag)]
        lifetime: Duration,
        /// Write admin.pem and admin-key.pem into this directory (created 0700; existing files
        /// are not replaced).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum K8sCommand {
    /// Write a Secret for COMPONENT's component-wide identity (keys etcd-key, etcd-cert,
    /// etcd-ca, as Calico's hosted manifest mounts them at /calico-secrets), and print the
    /// volume and volumeMount its pods need. The key is made here; only its CSR goes to the
    /// server. --renew: the same Secret with a new key and certificate.
    Secrets(k8s_cmd::SecretsArgs),
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// The current policy revision and how many approved nodes report its manifest (converged),
    /// an older one or none yet (pending), or errors (failed). Exit status: 0 no rollout in
    /// waves, running or done; 2 paused or aborted (an operator must act); 1 rolled back.
    Status {
        #[command(flatten)]
        out: output::OutputArgs,
    },
    /// Print the status every second until the rollout in waves is done (exit 0), paused or
    /// aborted (exit 2), rolled back (exit 1), or --timeout passes (exit 1).
    Watch {
        /// Give up after this long (e.g. 30s, 10m).
        #[arg(long, default_value = "1h", value_parser = duration_flag)]
        timeout: Duration,
        /// Print each status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop opening waves until `resume`.
    Pause,
    /// Go on with a paused rollout (a failure that paused it pauses it again).
    Resume,
    /// Stop opening waves for good; nodes keep the policy they have.
    Abort,
    /// Send every node back to the previous policy.
    Rollback,
}

/// Which policy and how calseg reaches etcd directly: the flags of every command that talks
/// to etcd itself (`plan`, `apply`, `datastore init`, `can-i`, `access`, `exposure`); each
/// overrides server.toml.
#[derive(Debug, Clone, Default, Args)]
pub struct EtcdTarget {
    /// The policy file (default: server.toml's `policy`, else /etc/calseg/policy.toml).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
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
}

/// Flags shared by `plan` and `apply`; each overrides server.toml.
#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub target: EtcdTarget,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Proceed even though etcd's auth is disabled.
    #[arg(long)]
    pub allow_auth_disabled: bool,
    /// Take over users the policy names that exist in etcd but calseg did not create.
    #[arg(long)]
    pub adopt: bool,
    /// etcd requests in flight at once (auth changes: at most this many).
    #[arg(long, value_name = "N")]
    pub parallelism: Option<usize>,
    /// Fraction of etcd's apply time the auth changes may take, in (0, 1]; overrides
    /// [etcd] auth_change_duty.
    #[arg(long, value_name = "FRACTION")]
    pub auth_change_duty: Option<f64>,
    /// Talk to etcd directly even when server.toml names a running server under [admin]. The
    /// direct path knows only the nodes the policy names, not nodes that enrolled by glob.
    #[arg(long)]
    pub direct: bool,
}

/// Exit status of a usage error (sysexits EX_USAGE): clap's own 2 would read as "changes".
pub const EXIT_USAGE: u8 = calseg_api::exit::USAGE;

/// Parses the command line, runs the command, and returns the process exit code.
/// The most threads of tokio's blocking pool (its default is 512). Store operations run there;
/// the embedded store has one writer at a time, so a burst of enrollments only made more
/// threads wait for it (515 threads were live in the fleet benchmark at 10,000 agents), each
/// with its own stack. Beyond this many, operations queue for a thread.
const MAX_BLOCKING_THREADS: usize = 64;

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(parse_error_exit(&error));
        }
    };
    calseg_service::pipe::exit_quietly_on_closed_stdout();
    calseg_service::log::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
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
            Command::Plan(args) => plan_cmd::plan(cli.config.as_deref(), args).await,
            Command::Apply(args) => rbac_cmd::apply(cli.config.as_deref(), args).await,
            Command::CanI(args) => access_cmd::can_i(cli.config.as_deref(), args).await,
            Command::Access(args) => access_cmd::access(cli.config.as_deref(), args).await,
            Command::Exposure(args) => access_cmd::exposure(cli.config.as_deref(), args).await,
            Command::Serve { policy } => serve(cli.config.as_deref(), policy.as_deref()).await,
            Command::Reload(args) => reload_cmd::reload(cli.config.as_deref(), args).await,
            Command::Init(args) => init(args),
            Command::Token(TokenCommand::Create {
                node,
                glob,
                uses,
                ttl,
                json,
            }) => {
                admin_cmd::token_create(
                    cli.config.as_deref(),
                    node.clone(),
                    glob.clone(),
                    *uses,
                    *ttl,
                    *json,
                )
                .await
            }
            Command::Token(TokenCommand::List { out }) => {
                admin_cmd::token_list(cli.config.as_deref(), out.format()).await
            }
            Command::Token(TokenCommand::Delete { id }) => {
                admin_cmd::token_delete(cli.config.as_deref(), id).await
            }
            Command::Nodes(NodesCommand::List {
                out,
                expiring_within,
                failed,
                not_seen_since,
            }) => {
                let filter = admin_cmd::NodesFilter {
                    expiring_within: *expiring_within,
                    failed: *failed,
                    not_seen_since: *not_seen_since,
                };
                admin_cmd::nodes_list(cli.config.as_deref(), &filter, out.format()).await
            }
            Command::Nodes(NodesCommand::Show { node, out }) => {
                pending_cmd::nodes_show(cli.config.as_deref(), node, out.format()).await
            }
            Command::Nodes(NodesCommand::Approve { node, fingerprint }) => {
                pending_cmd::nodes_approve(cli.config.as_deref(), node, fingerprint.clone()).await
            }
            Command::Nodes(NodesCommand::Delete { node }) => {
                pending_cmd::nodes_delete(cli.config.as_deref(), node).await
            }
            Command::Nodes(NodesCommand::Deny { node }) => {
                admin_cmd::nodes_action(cli.config.as_deref(), "deny", node).await
            }
            Command::Nodes(NodesCommand::Revoke { node, wait }) => {
                revoke_cmd::nodes_revoke(cli.config.as_deref(), node, *wait).await
            }
            Command::Rollout(RolloutCommand::Status { out }) => {
                rollout_cmd::rollout_status(cli.config.as_deref(), out.format()).await
            }
            Command::Rollout(RolloutCommand::Watch { timeout, json }) => {
                rollout_cmd::rollout_watch(cli.config.as_deref(), *timeout, *json).await
            }
            Command::Rollout(RolloutCommand::Pause) => {
                rollout_cmd::rollout_action(cli.config.as_deref(), "pause").await
            }
            Command::Rollout(RolloutCommand::Resume) => {
                rollout_cmd::rollout_action(cli.config.as_deref(), "resume").await
            }
            Command::Rollout(RolloutCommand::Abort) => {
                rollout_cmd::rollout_action(cli.config.as_deref(), "abort").await
            }
            Command::Rollout(RolloutCommand::Rollback) => {
                rollout_cmd::rollout_action(cli.config.as_deref(), "rollback").await
            }
            Command::Datastore(command) => datastore_cmd::run(cli.config.as_deref(), command).await,
            Command::Ca(command) => ca_cmd::run(cli.config.as_deref(), command).await,
            Command::MigrateStore { from, to, file } => {
                store_cmd::migrate(cli.config.as_deref(), *from, *to, file.clone()).await
            }
            Command::Backup(args) => backup_cmd::backup(cli.config.as_deref(), args).await,
            Command::Restore(args) => restore_cmd::restore(cli.config.as_deref(), args).await,
            Command::K8s(K8sCommand::Secrets(args)) => {
                k8s_cmd::secrets(cli.config.as_deref(), args).await
            }
            Command::Admin(AdminCommand::Issue {
                name,
                lifetime,
                out,
            }) => admin_cert_cmd::issue(cli.config.as_deref(), name, *lifetime, out.as_deref()),
            Command::Audit {
                since,
                after_seq,
                follow,
                limit,
                out,
            } => {
                let since = since
                    .as_deref()
                    .map(|s| audit_cmd::parse_since(s, time::OffsetDateTime::now_utc()))
                    .transpose();
                match since {
                    Ok(since) => {
                        let args = audit_cmd::AuditArgs {
                            since,
                            after_seq: *after_seq,
                            limit: *limit,
                            follow: *follow,
                            format: out.format(),
                        };
                        audit_cmd::audit(cli.config.as_deref(), &args).await
                    }
                    Err(error) => Err(error),
                }
            }
        }
    });
    match outcome {
        Ok(code) => code,
        Err(error) => {
            // The message may carry a node's or etcd's text: no terminal control gets through.
            let message = format!("{error:#}");
            let printable = calseg_api::text::printable_lines(&message);
            eprintln!("{}", calseg_service::log::error_line(&printable));
            ExitCode::from(error_exit(&error))
        }
    }
}

/// The exit status of a command that failed with `error`: 69 when the running server could
/// not be reached at all (nothing was done; retrying may help), else 1.
pub fn error_exit(error: &anyhow::Error) -> u8 {
    let unreachable = error
        .chain()
        .any(|e| e.is::<crate::admin_client::ServerUnreachable>());
    if unreachable {
        calseg_api::exit::UNREACHABLE
    } else {
        calseg_api::exit::FAILED
    }
}

/// clap's parser of every duration flag, one grammar with the configuration files
/// ([`calseg_api::duration`]): clap names the flag, and a bad value is a usage error (64).
pub fn duration_flag(text: &str) -> Result<Duration, String> {
    calseg_api::duration::parse(text)
}

/// The exit status for a command line clap refused: [`EXIT_USAGE`], or 0 for `--help` and
/// `--version` (which clap reports as errors printed on stdout).
fn parse_error_exit(error: &clap::Error) -> u8 {
    if error.use_stderr() { EXIT_USAGE } else { 0 }
}

/// `serve`: runs until SIGTERM or SIGINT.
async fn serve(
    config: Option<&std::path::Path>,
    policy: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let config = crate::config::ServerConfig::load(config)?;
    let policy = rbac_cmd::policy_path(&config, policy);
    let server = crate::serve::build(&config, &policy).await?;
    crate::serve::run(server, shutdown_signal()).await?;
    tracing::info!("calseg-server stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping: draining connections");
}

/// `init`.
fn init(args: &InitArgs) -> anyhow::Result<ExitCode> {
    let options = crate::init::InitOptions {
        config_dir: args.config_dir.clone(),
        state_dir: args.state_dir.clone(),
        sans: args.sans.clone(),
        listen: args.listen.clone(),
        etcd_ca: args.etcd_ca_cert.clone().zip(args.etcd_ca_key.clone()),
        etcd_endpoints: args.etcd_endpoints.clone(),
        etcd_server_ca: args.etcd_server_ca.clone(),
        etcd_user: args.etcd_user.clone(),
        admin_name: args.admin_name.clone(),
        force: args.force,
    };
    let report = crate::init::init(&options, time::OffsetDateTime::now_utc())?;
    for file in &report.files {
        eprintln!("wrote {}", file.display());
    }
    if report.config_path.ends_with(crate::init::INIT_DROP_IN) {
        eprintln!(
            "settings: {} (server.toml itself is left as it is; both are read)",
            report.config_path.display()
        );
    }
    if let Some(owner) = report.service_account {
        eprintln!(
            "the server's files belong to uid {} (the owner of {}); no chown is needed",
            owner.uid,
            args.state_dir.display()
        );
    }
    eprintln!(
        "next: write the policy ({}), make etcd trust {}/ca/etcd-client.pem, then `calseg-server serve`",
        args.config_dir.join("policy.toml").display(),
        args.state_dir.display()
    );
    eprintln!(
        "agents enroll with: calseg-agent enroll --server https://{}:PORT --ca-hash {} --token <token>",
        args.sans.first().map(String::as_str).unwrap_or("SERVER"),
        report.fleet_ca_hash
    );
    println!("{}", report.fleet_ca_hash);
    Ok(ExitCode::SUCCESS)
}
