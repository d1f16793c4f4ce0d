//! `nodes revoke NAME`: says "revoked" only once the node's etcd users are gone; otherwise
//! names each user still there and why, and exits 1.

use super::admin_cmd::client;
use anyhow::Result;
use calseg_api::admin::NodeRevoked;
use calseg_api::paths;
use calseg_api::text::printable;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// `nodes revoke NAME [--wait DURATION]`.
pub async fn nodes_revoke(config: Option<&Path>, node: &str, wait: Duration) -> Result<ExitCode> {
    let answer: NodeRevoked = client(config)?
        .post(
            &format!(
                "{}/{node}/revoke?wait_secs={}",
                paths::ADMIN_NODES,
                wait.as_secs()
            ),
            &serde_json::json!({}),
        )
        .await?;
    let pending = answer.etcd_users_pending;
    if pending.is_empty() {
        println!("node {node}: revoked (its etcd users are gone)");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "node {node}: marked revoked (the server refuses it), but {} etcd user(s) of it still \
         exist after {}s, so certificates for them still work in etcd:",
        pending.len(),
        wait.as_secs()
    );
    for user in &pending {
        eprintln!("  {}: {}", printable(&user.user), printable(&user.reason));
    }
    eprintln!(
        "run `calseg-server nodes revoke {node}` again to check; the metric \
         calseg_revocations_pending counts such nodes"
    );
    Ok(ExitCode::FAILURE)
}
