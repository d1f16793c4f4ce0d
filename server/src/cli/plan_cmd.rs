//! `plan`: the fleet plan of the policy in force or of a candidate file (`--policy FILE`),
//! through the running server (which knows the enrolled nodes and what each is served), or
//! straight against etcd with `--direct` (the RBAC diff only). One JSON shape for both:
//! [`calseg_api::plan::FleetPlan`].

use super::ReconcileArgs;
use super::plan_text::render;
use super::rbac_cmd::{compute_plan, policy_path};
use crate::config::ServerConfig;
use crate::fleet_plan::rbac_diff;
use anyhow::{Context, Result, bail};
use calseg_api::paths::{ADMIN_PLAN, MAX_BODY_BYTES};
use calseg_api::plan::{CandidatePolicy, FleetPlan, PlanRequest, PlanSource};
use clap::Args;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

/// Exit status of `plan` when something would change.
const EXIT_CHANGES: u8 = 2;

/// `plan`'s flags: those of `apply`, and how much to list.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub reconcile: ReconcileArgs,
    /// Also list the nodes that do not change, and each changed node's files.
    #[arg(long)]
    pub all: bool,
}

/// Prints the plan; exit 0 when nothing would change, 2 when something would.
pub async fn plan(config: Option<&Path>, args: &PlanArgs) -> Result<ExitCode> {
    let loaded = ServerConfig::load(config)?;
    let flags = &args.reconcile;
    let plan = if loaded.admin.server.is_some() && !flags.direct {
        through_server(&loaded, flags).await?
    } else {
        direct(config, &loaded, flags).await?
    };
    for line in plan.policy_warnings.iter().chain(&plan.etcd_warnings) {
        eprintln!("{line}");
    }
    if flags.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", render(&plan, args.all));
    }
    Ok(if plan.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CHANGES)
    })
}

/// Asks the running server; a candidate file is sent in the body, within its size limit.
async fn through_server(config: &ServerConfig, flags: &ReconcileArgs) -> Result<FleetPlan> {
    let candidate = match &flags.target.policy {
        Some(path) => Some(CandidatePolicy {
            name: path.display().to_string(),
            text: read_bounded(path)?,
        }),
        None => None,
    };
    let request = PlanRequest { candidate };
    if serde_json::to_vec(&request)?.len() > MAX_BODY_BYTES {
        bail!(
            "{}: too large to send to the server (the admin API takes requests of at most \
             {MAX_BODY_BYTES} bytes): plan it with --direct (etcd's RBAC only)",
            flags
                .target
                .policy
                .as_deref()
                .unwrap_or(Path::new("-"))
                .display()
        );
    }
    let client = crate::admin_client::AdminClient::from_config(config)?;
    client
        .post(&format!("{ADMIN_PLAN}?adopt={}", flags.adopt), &request)
        .await
}

/// Reads at most one byte more than the admin API takes, so a huge file is not read whole.
fn read_bounded(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("read the candidate policy {}", path.display()))?;
    let mut text = String::new();
    file.take(u64::try_from(MAX_BODY_BYTES).unwrap_or(u64::MAX) + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("read the candidate policy {} (UTF-8 text)", path.display()))?;
    Ok(text)
}

/// Straight against etcd: the RBAC diff of the policy on the nodes it names.
async fn direct(
    config: Option<&Path>,
    loaded: &ServerConfig,
    flags: &ReconcileArgs,
) -> Result<FleetPlan> {
    let (plan, _, _) = compute_plan(config, flags, false).await?;
    let policy = policy_path(loaded, flags.target.policy.as_deref());
    Ok(FleetPlan {
        source: PlanSource::Direct,
        policy: policy.display().to_string(),
        rbac: rbac_diff(&plan),
        nodes_known: false,
        nodes: Vec::new(),
        unchanged: Vec::new(),
        // Both printed as they were found.
        policy_warnings: Vec::new(),
        etcd_warnings: Vec::new(),
    })
}
