//! `nodes show`, `nodes approve --fingerprint` and `nodes delete`, and the pending requests
//! `nodes list` prints after its table: what an operator needs to approve exactly the key the
//! node's agent printed, and to clear requests nobody will approve.

use super::admin_cmd::{client, seen, unix_to_rfc3339};
use super::output::{Format, table};
use anyhow::Result;
use calseg_api::admin::NodeAction;
use calseg_api::paths;
use calseg_api::text::printable;
use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;

/// The pending requests among `nodes`, with their keys, after the inventory table.
pub(super) fn print_pending(nodes: &[Value]) {
    let pending: Vec<&Value> = nodes
        .iter()
        .filter(|n| n["state"].as_str() == Some("pending"))
        .collect();
    if pending.is_empty() {
        return;
    }
    println!();
    println!(
        "PENDING: approve only a key whose fingerprint the node's agent printed \
         (`calseg-server nodes approve NODE --fingerprint sha256:...`)"
    );
    let rows = pending
        .iter()
        .map(|node| {
            let key = &node["pending_key"];
            vec![
                printable(node["name"].as_str().unwrap_or("?")).into_owned(),
                printable(key["fingerprint"].as_str().unwrap_or("unknown")).into_owned(),
                printable(key["source"].as_str().unwrap_or("unknown")).into_owned(),
                unix_to_rfc3339(&node["enrolled_at"]),
                seen(&node["last_seen"]),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["NODE", "KEY FINGERPRINT", "FROM", "FIRST SEEN", "LAST SEEN"],
            rows
        )
    );
}

/// `nodes show NODE`.
pub async fn nodes_show(config: Option<&Path>, node: &str, format: Format) -> Result<ExitCode> {
    let record: Value = client(config)?
        .get(&format!("{}/{node}", paths::ADMIN_NODES))
        .await?;
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&record)?);
        return Ok(ExitCode::SUCCESS);
    }
    let text = |key: &str| printable(record[key].as_str().unwrap_or("-")).into_owned();
    let state = text("state");
    println!("node:        {}", text("name"));
    println!("state:       {state}");
    println!("first seen:  {}", unix_to_rfc3339(&record["enrolled_at"]));
    println!("last seen:   {}", seen(&record["last_seen"]));
    if let Some(by) = record["approved_by"].as_str() {
        println!("approved by: {}", printable(by));
    }
    let key = &record["pending_key"];
    if let Some(fingerprint) = key["fingerprint"].as_str() {
        println!("key:         {}", printable(fingerprint));
        println!(
            "from:        {}",
            printable(key["source"].as_str().unwrap_or("unknown"))
        );
    }
    let fleet = &record["fleet_cert"];
    if let Some(serial) = fleet["serial"].as_str() {
        println!(
            "fleet cert:  serial {}, expires {}",
            printable(serial),
            unix_to_rfc3339(&fleet["not_after"])
        );
    }
    if let Some(fingerprint) = key["fingerprint"].as_str().map(printable)
        && state == "pending"
    {
        println!(
            "\nIf the agent on {node} printed this same key fingerprint, approve it with:\n  \
             calseg-server nodes approve {node} --fingerprint {fingerprint}\nOtherwise: \
             calseg-server nodes delete {node}"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `nodes approve NODE --fingerprint sha256:...`. Without the fingerprint the server refuses
/// and names the key that waits.
pub async fn nodes_approve(
    config: Option<&Path>,
    node: &str,
    fingerprint: Option<String>,
) -> Result<ExitCode> {
    let body = NodeAction { fingerprint };
    let record: Value = client(config)?
        .post(&format!("{}/{node}/approve", paths::ADMIN_NODES), &body)
        .await?;
    println!(
        "node {node}: {} (key {})",
        printable(record["state"].as_str().unwrap_or("?")),
        printable(record["pending_key"]["fingerprint"].as_str().unwrap_or("?"))
    );
    Ok(ExitCode::SUCCESS)
}

/// `nodes delete NODE`: pending or denied nodes only.
pub async fn nodes_delete(config: Option<&Path>, node: &str) -> Result<ExitCode> {
    let answer: Value = client(config)?
        .delete(&format!("{}/{node}", paths::ADMIN_NODES))
        .await?;
    println!(
        "node {node} ({}) deleted",
        printable(answer["state"].as_str().unwrap_or("?"))
    );
    Ok(ExitCode::SUCCESS)
}
