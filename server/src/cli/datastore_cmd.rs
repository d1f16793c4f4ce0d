//! `datastore init`: create the Calico cluster-wide objects that are missing
//! ([`crate::datastore`]). It reaches etcd as `plan --direct` does: server.toml's `[etcd]`
//! identity (calseg's own, holding the root role), or the flags.

use super::EtcdTarget;
use super::rbac_cmd::{etcd_access, load_policy, policy_path};
use crate::config::ServerConfig;
use crate::datastore::{self, SystemRandom};
use crate::rbac;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum DatastoreCommand {
    /// Create the missing cluster-wide objects that per-node identities may not create.
    ///
    /// ClusterInformation, FelixConfiguration, the default IPv4 pool and IPAM's settings key
    /// /calico/ipam/v2/config (and BGPConfiguration from Calico 3.32, IPAMConfiguration from
    /// 3.33), as calico-node would create them at start, from the policy's [datastore] values, in one etcd transaction. Never overwrites:
    /// an object that exists is left as it is, and reported when its values differ. Exit
    /// status: 0 done (also when nothing was missing), 1 error (then nothing was written).
    Init(InitArgs),
}

#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Show what would be created; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON (its shape: `calseg_server::datastore::Report`).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: EtcdTarget,
}

/// Runs a `datastore` subcommand.
pub async fn run(config: Option<&Path>, command: &DatastoreCommand) -> Result<ExitCode> {
    match command {
        DatastoreCommand::Init(args) => init(config, args).await,
    }
}

async fn init(config: Option<&Path>, args: &InitArgs) -> Result<ExitCode> {
    let config = ServerConfig::load(config)?;
    let policy = load_policy(&policy_path(&config, args.target.policy.as_deref()))?;
    let access = etcd_access(&config, &args.target, &policy)?;
    let client = rbac::connect(&access).await?;
    let endpoints = access.endpoints.join(",");
    let mut random = SystemRandom(ring::rand::SystemRandom::new());
    let now = time::OffsetDateTime::now_utc();
    let report = datastore::init(&client, &policy, now, &mut random, args.dry_run)
        .await
        .with_context(|| format!("datastore init at {endpoints}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for warning in &report.warnings {
            eprintln!("warning: {warning}");
        }
        print!("{}", report.render_text());
    }
    Ok(ExitCode::SUCCESS)
}
