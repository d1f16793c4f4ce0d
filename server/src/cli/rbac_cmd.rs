//! `check` and `apply`, and the direct RBAC diff `plan --direct` shares: the policy and etcd
//! RBAC commands. `plan` itself is in `plan_cmd`.

use super::{EtcdTarget, ReconcileArgs};
use crate::config::ServerConfig;
use crate::etcd_release;
use crate::policy::{self, Policy};
use crate::rbac::{self, EtcdAccess, Plan};
use anyhow::{Context, Result, anyhow};
use calseg_api::admin::{PlanConflicts, RbacApplied};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const DEFAULT_POLICY: &str = "/etc/calseg/policy.toml";
/// Exit status of `plan` when etcd differs from the policy.
const EXIT_CHANGES: u8 = 2;
/// Show a progress line for plans at least this large.
const PROGRESS_THRESHOLD: usize = 50;

/// `check`: validate the policy and print its warnings.
pub fn check(config: Option<&Path>, policy: Option<&Path>) -> Result<ExitCode> {
    let config = ServerConfig::load(config)?;
    let path = policy_path(&config, policy);
    let policy = load_policy(&path)?;
    // calseg's own etcd user, when server.toml names its certificate (a public file).
    if let Some(cert) = &config.etcd.cert_file {
        match crate::ha::access::etcd_user_of(cert) {
            Ok(user) => refuse_reserved(&policy, &path, &user)?,
            Err(error) => eprintln!(
                "note: calseg's own etcd user is not checked against the template: {error:#}"
            ),
        }
    }
    println!(
        "{}: valid: {} components, {} named nodes, Calico {} tables",
        path.display(),
        policy.components.len(),
        policy.nodes().len(),
        policy.calico_version
    );
    Ok(ExitCode::SUCCESS)
}

/// Whether `apply` goes through the running server: it knows the enrolled nodes as well.
fn through_server(config: &ServerConfig, args: &ReconcileArgs) -> bool {
    config.admin.server.is_some() && !args.direct && args.target.policy.is_none()
}

/// `apply` through the running server's admin API.
async fn via_server(config: &ServerConfig, args: &ReconcileArgs) -> Result<ExitCode> {
    let client = crate::admin_client::AdminClient::from_config(config)?;
    let path = format!("{}?adopt={}", calseg_api::paths::ADMIN_APPLY, args.adopt);
    let json: serde_json::Value = client.post(&path, &serde_json::json!({})).await?;
    let answer: RbacApplied<PlanConflicts> = serde_json::from_value(json.clone())
        .map_err(|e| anyhow!("the server's apply answer is not what this CLI reads: {e}"))?;
    // The server's latest check of etcd's releases.
    for line in &answer.etcd_warnings {
        eprintln!("{line}");
    }
    if args.json {
        // As the server sent it.
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", answer.text);
        println!("Applied {} changes.", answer.applied);
    }
    Ok(applied_exit(answer.plan.conflicts.len()))
}

/// `apply`'s exit status: 0, or 2 (with a line on stderr) when conflicts were left alone.
fn applied_exit(conflicts: usize) -> ExitCode {
    if conflicts == 0 {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "{conflicts} conflict(s) left alone (the lines marked !): each holds back only its own \
         user, everything else was applied; calseg signs no certificate for those users"
    );
    ExitCode::from(EXIT_CHANGES)
}

/// `apply`: make etcd match the policy and say what was done.
pub async fn apply(config: Option<&Path>, args: &ReconcileArgs) -> Result<ExitCode> {
    let loaded = ServerConfig::load(config)?;
    if through_server(&loaded, args) {
        return via_server(&loaded, args).await;
    }
    let pacing = loaded
        .etcd
        .pacing(args.parallelism, args.auth_change_duty)?;
    let (plan, client, _) = compute_plan(config, args, true).await?;
    if plan.is_empty() && plan.conflicts.is_empty() {
        println!("No changes: etcd's users and roles match the policy.");
        return Ok(ExitCode::SUCCESS);
    }
    if !args.json {
        print!("{}", plan.render_text());
    }
    let show_progress = std::io::stderr().is_terminal() && plan.changes.len() >= PROGRESS_THRESHOLD;
    let progress = move |done: usize, total: usize| {
        if show_progress && (done.is_multiple_of(25) || done == total) {
            let mut err = std::io::stderr();
            let _ = write!(err, "\rapplying: {done}/{total} changes");
            if done == total {
                let _ = writeln!(err);
            }
        }
    };
    let started = std::time::Instant::now();
    let report = rbac::apply(&client, &plan, pacing, &progress).await?;
    tracing::info!(changes = report.applied, "etcd RBAC applied");
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "applied": report.applied, "plan": plan })
        );
    } else {
        println!(
            "Applied {} changes in {:.1}s.",
            report.applied,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(applied_exit(report.conflicts))
}

/// Loads config and policy, checks etcd's releases (warnings; for `apply` with
/// `refuse_known_bypasses`, a refusal before anything is read or changed), connects, runs the
/// pre-flight checks, reads etcd and diffs.
pub(super) async fn compute_plan(
    config: Option<&Path>,
    args: &ReconcileArgs,
    apply: bool,
) -> Result<(Plan, etcd_client::Client, usize)> {
    let config = ServerConfig::load(config)?;
    let policy_file = policy_path(&config, args.target.policy.as_deref());
    let policy = load_policy(&policy_file)?;
    let access = etcd_access(&config, &args.target, &policy)?;
    let own_user = crate::ha::access::etcd_user_of(&access.cert_file)?;
    refuse_reserved(&policy, &policy_file, &own_user)?;
    let release = etcd_release::check(&access).await;
    for line in etcd_release::cli_lines(&release) {
        eprintln!("{line}");
    }
    if apply && config.etcd.refuse_known_bypasses {
        release.refuse_known_bypasses()?;
    }
    let parallelism = args
        .parallelism
        .or(config.etcd.parallelism)
        .unwrap_or(rbac::DEFAULT_PARALLELISM);
    let client = rbac::connect(&access).await?;
    let endpoints = access.endpoints.join(",");
    let allow = args.allow_auth_disabled || config.etcd.allow_auth_disabled;
    if rbac::preflight(&client, &endpoints, allow).await? == rbac::AuthMode::DisabledAllowed {
        tracing::warn!(%endpoints, "etcd auth is disabled: the roles calseg writes restrict nothing until it is enabled");
    }
    let live = rbac::read_live(&client, parallelism)
        .await
        .with_context(|| format!("read etcd's users and roles at {endpoints}"))?;
    let desired = rbac::desired_state(&policy, &live_generations(&policy, &live));
    Ok((rbac::diff(&desired, &live, args.adopt), client, parallelism))
}

/// The policy's named nodes, each at the newest enrollment generation of its users calseg owns
/// in etcd: without the server's store, that is what says a node came back after a revocation
/// (so a direct apply never recreates a user of an older generation).
fn live_generations(policy: &Policy, live: &rbac::LiveAuth) -> rbac::NodeGenerations {
    let mut nodes = rbac::first_generation(policy.nodes());
    for user in live.owned.users.keys() {
        if let Some(owner) = policy.owner_of(user)
            && let Some(generation) = nodes.get_mut(&owner.node)
        {
            *generation = (*generation).max(owner.generation);
        }
    }
    nodes
}

pub(super) fn policy_path(config: &ServerConfig, flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| config.policy.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_POLICY))
}

/// Loads and validates the policy, printing its warnings to stderr.
pub(super) fn load_policy(path: &Path) -> Result<Policy> {
    let policy = policy::load(path).map_err(|errors| {
        anyhow!(
            "{errors}\nthe policy has {} error(s); nothing was changed",
            errors.0.len()
        )
    })?;
    for warning in &policy.warnings {
        eprintln!("{warning}");
    }
    Ok(policy)
}

/// Refuses a policy whose template can render calseg's own etcd user `own_user`.
fn refuse_reserved(policy: &Policy, path: &Path, own_user: &str) -> Result<()> {
    policy
        .check_reserved_users(&[own_user.to_owned()])
        .map_err(|e| {
            anyhow!(
                "{}: {e}\nthe policy has errors; nothing was changed",
                path.display()
            )
        })
}

pub(super) fn etcd_access(
    config: &ServerConfig,
    args: &EtcdTarget,
    policy: &Policy,
) -> Result<EtcdAccess> {
    let endpoints = if !args.etcd_endpoints.is_empty() {
        args.etcd_endpoints.clone()
    } else {
        config
            .etcd
            .endpoints
            .clone()
            .unwrap_or_else(|| policy.etcd.endpoints.clone())
    };
    let pick = |flag: &Option<PathBuf>, file: &Option<PathBuf>, name: &str, key: &str| {
        flag.clone().or_else(|| file.clone()).ok_or_else(|| {
            let setting = key.trim_start_matches("etcd-");
            anyhow!("no etcd {name} for calseg: pass --{key} or set `{setting}_file` under [etcd] in server.toml")
        })
    };
    Ok(EtcdAccess {
        endpoints,
        ca_file: pick(
            &args.etcd_ca,
            &config.etcd.ca_file,
            "CA certificate",
            "etcd-ca",
        )?,
        cert_file: pick(
            &args.etcd_cert,
            &config.etcd.cert_file,
            "client certificate",
            "etcd-cert",
        )?,
        key_file: pick(
            &args.etcd_key,
            &config.etcd.key_file,
            "client key",
            "etcd-key",
        )?,
    })
}
