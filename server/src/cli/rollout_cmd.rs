//! The `rollout` commands: status (convergence, the waves of the latest rollout, recent policy
//! revisions), watch, and the operator's pause, resume, abort and rollback.

use super::admin_cmd::{client, unix_time};
use super::output::Format;
use anyhow::{Result, bail};
use calseg_api::paths;
use calseg_api::rollout::{RolloutState, RolloutStatus};
use calseg_api::text::printable;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// `rollout status`.
pub async fn rollout_status(config: Option<&Path>, format: Format) -> Result<ExitCode> {
    let status: RolloutStatus = client(config)?.get(paths::ADMIN_ROLLOUT).await?;
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print_status(&status, false)?;
    }
    Ok(ExitCode::from(state_exit(
        status.waves.as_ref().map(|w| w.state),
    )))
}

/// The exit status for a rollout in `state` (the shared table, calseg_api::exit): 0 none,
/// running or done; 2 paused or aborted (an operator must resume, roll back or abort); 1 rolled
/// back (the new policy did not land).
pub fn state_exit(state: Option<RolloutState>) -> u8 {
    use calseg_api::exit;
    match state {
        None | Some(RolloutState::Running | RolloutState::Done) => exit::OK,
        Some(RolloutState::Paused | RolloutState::Aborted) => exit::ATTENTION,
        Some(RolloutState::RolledBack) => exit::FAILED,
    }
}

/// The status for people, or as one line of JSON.
fn print_status(status: &RolloutStatus, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(status)?);
        return Ok(());
    }
    match status.policy_revision {
        Some(revision) => println!("policy revision {revision}"),
        None => println!("policy revision unknown (the server could not record it)"),
    }
    println!(
        "approved nodes: {}  converged: {}  pending: {}  failed: {}  without components: {}",
        status.approved, status.converged, status.pending, status.failed, status.unassigned
    );
    if let Some(etcd) = &status.etcd {
        println!("{}", printable(etcd));
    }
    if !status.failed_nodes.is_empty() {
        println!("failed: {}", printable(&status.failed_nodes.join(" ")));
    }
    if !status.pending_nodes.is_empty() {
        println!("pending: {}", printable(&status.pending_nodes.join(" ")));
    }
    if let Some(waves) = &status.waves {
        println!(
            "rollout {} -> {}: {}, waves opened {}/{}",
            waves.from_revision,
            waves.to_revision,
            waves.state,
            waves.opened_waves,
            waves.total_waves
        );
        for (i, wave) in waves.waves.iter().enumerate() {
            let opened = wave.opened_at.map_or_else(
                || "closed".to_owned(),
                |t| format!("opened {}", unix_time(t)),
            );
            println!(
                "  wave {:>3}  {:>5} nodes  healthy {:>5}  pending {:>5}  failed {:>5}  {opened}",
                i + 1,
                wave.size,
                wave.healthy,
                wave.pending,
                wave.failed
            );
            if !wave.failed_nodes.is_empty() {
                println!(
                    "            failed: {}",
                    printable(&wave.failed_nodes.join(" "))
                );
            }
        }
    }
    for revision in &status.history {
        println!(
            "  revision {:>4}  since {}  sha256 {}",
            revision.revision,
            unix_time(revision.first_seen),
            revision.hash
        );
    }
    Ok(())
}

/// `rollout watch`: the status every second until the rollout stops changing on its own (done,
/// paused, aborted, rolled back); exits as [`state_exit`] says, 1 on error or timeout.
pub async fn rollout_watch(
    config: Option<&Path>,
    timeout: Duration,
    json: bool,
) -> Result<ExitCode> {
    let client = client(config)?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let status: RolloutStatus = client.get(paths::ADMIN_ROLLOUT).await?;
        print_status(&status, json)?;
        let state = status.waves.as_ref().map(|w| w.state);
        match state {
            None => {
                println!("no rollout in waves");
                return Ok(ExitCode::SUCCESS);
            }
            Some(RolloutState::Running) => {}
            Some(_) => return Ok(ExitCode::from(state_exit(state))),
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the rollout is still running after {}s (--timeout)",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `rollout pause|resume|abort|rollback`.
pub async fn rollout_action(config: Option<&Path>, action: &str) -> Result<ExitCode> {
    let status: RolloutStatus = client(config)?
        .post(&paths::admin_rollout_action(action), &serde_json::json!({}))
        .await?;
    match &status.waves {
        Some(waves) => println!(
            "rollout {} -> {}: {}, waves opened {}/{}",
            waves.from_revision,
            waves.to_revision,
            waves.state,
            waves.opened_waves,
            waves.total_waves
        ),
        None => println!("no rollout in waves"),
    }
    Ok(ExitCode::SUCCESS)
}
