//! `can-i`, `access` and `exposure`: what etcd users may do, from etcd's live roles. They reach
//! etcd as `plan --direct` does (server.toml's `[etcd]`, or the flags) and change nothing.

use super::EtcdTarget;
use super::rbac_cmd::{etcd_access, load_policy, policy_path};
use crate::access::{self, KeyInterval, Op};
use crate::config::ServerConfig;
use crate::policy::Policy;
use crate::rbac;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::Path;
use std::process::ExitCode;

/// How to reach etcd; each flag overrides server.toml.
#[derive(Debug, Clone, Args)]
pub struct EtcdFlags {
    #[command(flatten)]
    pub target: EtcdTarget,
    /// Answer even though etcd's auth is disabled (then etcd allows everything to everyone).
    #[arg(long)]
    pub allow_auth_disabled: bool,
    /// etcd requests in flight at once.
    #[arg(long, value_name = "N")]
    pub parallelism: Option<usize>,
}

/// The access asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OpArg {
    /// get, list, watch.
    Read,
    /// put, delete.
    Write,
}

#[derive(Debug, Clone, Args)]
pub struct CanIArgs {
    /// The etcd user (= certificate Common Name).
    pub user: String,
    /// The access asked about.
    #[arg(value_enum)]
    pub access: OpArg,
    /// The etcd key, e.g. /calico/resources/v3/projectcalico.org/nodes/worker-1.
    pub key: String,
    /// Ask about every key under KEY, [KEY, prefix_end(KEY)), as a list, watch or delete of
    /// the prefix needs.
    #[arg(long)]
    pub prefix: bool,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub etcd: EtcdFlags,
}

#[derive(Debug, Clone, Args)]
pub struct AccessArgs {
    /// The etcd user (= certificate Common Name).
    pub user: String,
    /// Print the ranges as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub etcd: EtcdFlags,
}

#[derive(Debug, Clone, Args)]
pub struct ExposureArgs {
    /// Only the identities of this component.
    #[arg(long, value_name = "C")]
    pub component: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub etcd: EtcdFlags,
}

/// `can-i USER read|write KEY [--prefix]`: exit 0 yes, 1 no.
pub async fn can_i(config: Option<&Path>, args: &CanIArgs) -> Result<ExitCode> {
    let (client, parallelism, _, endpoints) = open(config, &args.etcd).await?;
    let user = read_user(&client, &args.user, parallelism, &endpoints).await?;
    let query = if args.prefix {
        KeyInterval::prefix(args.key.as_bytes())
    } else {
        KeyInterval::point(args.key.as_bytes())
    };
    let op = match args.access {
        OpArg::Read => Op::Read,
        OpArg::Write => Op::Write,
    };
    let answer = user.check(op, &query);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", answer.render_text());
    }
    Ok(if answer.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `access USER`: the merged read and write ranges, with the roles they come from.
pub async fn access(config: Option<&Path>, args: &AccessArgs) -> Result<ExitCode> {
    let (client, parallelism, _, endpoints) = open(config, &args.etcd).await?;
    let user = read_user(&client, &args.user, parallelism, &endpoints).await?;
    let report = user.report();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render_text());
    }
    Ok(ExitCode::SUCCESS)
}

/// `exposure [--component C]`: other nodes' keys and shared keys each identity reaches.
pub async fn exposure(config: Option<&Path>, args: &ExposureArgs) -> Result<ExitCode> {
    let (client, parallelism, policy, endpoints) = open(config, &args.etcd).await?;
    if let Some(component) = &args.component
        && !policy.components.contains_key(component)
    {
        let known: Vec<&str> = policy.components.keys().map(String::as_str).collect();
        bail!(
            "--component {component}: the policy has no such component (it has: {})",
            known.join(", ")
        );
    }
    let identities = access::read_identities(&client, parallelism)
        .await
        .with_context(|| format!("read calseg's identities at {endpoints}"))?;
    let report = access::exposure(&policy, &identities, args.component.as_deref());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render_text());
    }
    Ok(ExitCode::SUCCESS)
}

async fn read_user(
    client: &etcd_client::Client,
    user: &str,
    parallelism: usize,
    endpoints: &str,
) -> Result<access::UserAccess> {
    match access::read_user(client, user, parallelism).await {
        // Said as is: the message names the user and what it means.
        Err(error @ access::AccessError::UserNotFound { .. }) => Err(error.into()),
        other => other.with_context(|| format!("read user {user:?} at {endpoints}")),
    }
}

/// Loads config and policy, connects as `plan --direct` does and runs the same pre-flight
/// checks; the client, the parallelism, the policy and the endpoints (for messages).
async fn open(
    config: Option<&Path>,
    flags: &EtcdFlags,
) -> Result<(etcd_client::Client, usize, Policy, String)> {
    let config = ServerConfig::load(config)?;
    let policy = load_policy(&policy_path(&config, flags.target.policy.as_deref()))?;
    let etcd = etcd_access(&config, &flags.target, &policy)?;
    let parallelism = flags
        .parallelism
        .or(config.etcd.parallelism)
        .unwrap_or(rbac::DEFAULT_PARALLELISM);
    let client = rbac::connect(&etcd).await?;
    let endpoints = etcd.endpoints.join(",");
    let allow = flags.allow_auth_disabled || config.etcd.allow_auth_disabled;
    if rbac::preflight(&client, &endpoints, allow).await? == rbac::AuthMode::DisabledAllowed {
        eprintln!(
            "warning: etcd auth is disabled at {endpoints}: every client may do everything; \
             the answers say what the roles grant once auth is enabled"
        );
    }
    Ok((client, parallelism, policy, endpoints))
}
