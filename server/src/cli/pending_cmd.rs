//! `nodes show`, `nodes approve --fingerprint` and `nodes delete`, and the pending requests
//! `nodes list` prints after its table: what an operator needs to approve exactly the key the
//! node's agent printed, and to clear requests nobody will approve.

use super::admin_cmd::{client, seen, unix_to_rfc3339};
use super::output::{Format, table};
use crate::admin_client::AdminClient;
use anyhow::Result;
use calseg_api::admin::AuditListing;
use calseg_api::admin::NodeAction;
use calseg_api::paths;
use calseg_api::report::{LastReport, Report};
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
    let client = client(config)?;
    let record: Value = client
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
        // The enrolled key, as its agent prints it (`calseg-agent status`).
        if let Some(fingerprint) = fleet["key_fingerprint"].as_str() {
            println!("key:         {}", printable(fingerprint));
        }
    }
    print_enrolled(&record, node, &client).await?;
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

/// How many audit entries about the node `nodes show` prints.
const AUDIT_TAIL: usize = 10;

/// What `nodes show` prints about an enrolled node beyond its record: the identities issued
/// to it, its last report (revision, errors, units) and the tail of the audit log about it.
async fn print_enrolled(record: &Value, node: &str, client: &AdminClient) -> Result<()> {
    let rows: Vec<Vec<String>> = record["identities"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .map(|i| {
                    [
                        "component",
                        "etcd_user",
                        "serial",
                        "not_before",
                        "not_after",
                    ]
                    .iter()
                    .map(|k| printable(i[*k].as_str().unwrap_or("-")).into_owned())
                    .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    if !rows.is_empty() {
        println!("\nidentities:");
        let header = [
            "COMPONENT",
            "ETCD USER",
            "SERIAL",
            "NOT BEFORE",
            "NOT AFTER",
        ];
        print!("{}", table(&header, rows));
    }
    // The report is read typed, as the server stored it (an unreadable one says why).
    match serde_json::from_value::<Option<LastReport>>(record["last_report"].clone()) {
        Ok(Some(LastReport::Read(report))) => print_report(&report, record),
        Ok(Some(LastReport::Unreadable { error, .. })) => {
            println!("\nlast report: unreadable ({})", printable(&error));
        }
        Ok(None) | Err(_) => {}
    }
    let tail = audit_tail(client, node).await?;
    if !tail.is_empty() {
        println!("\naudit (last {AUDIT_TAIL} about {}):", printable(node));
        let tail: Vec<&AuditListing> = tail.iter().collect();
        print!("{}", super::audit_cmd::audit_table(&tail));
    }
    Ok(())
}

/// The last [`AUDIT_TAIL`] audit entries about `node` (its name, or one of its etcd users
/// `COMPONENT.NODE` / `COMPONENT.NODE~gN`), reading the log page by page.
async fn audit_tail(client: &AdminClient, node: &str) -> Result<Vec<AuditListing>> {
    let about = |subject: &str| {
        subject == node
            || subject.ends_with(&format!(".{node}"))
            || subject.contains(&format!(".{node}~"))
    };
    let mut tail = std::collections::VecDeque::new();
    let mut after = 0;
    loop {
        let page = super::audit_cmd::page(client, after, 10_000).await?;
        let Some(last) = page.last().map(|e| e.entry.seq) else {
            break;
        };
        let full = page.len() >= 10_000;
        for listed in page {
            if about(&listed.entry.subject) {
                tail.push_back(listed.entry);
                if tail.len() > AUDIT_TAIL {
                    tail.pop_front();
                }
            }
        }
        if !full || last <= after {
            break;
        }
        after = last;
    }
    Ok(tail.into())
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

/// The last report of `nodes show`: revision against the current policy's, errors, units.
fn print_report(report: &Report, record: &Value) {
    println!(
        "\nlast report: revision {} (current policy: {})",
        printable(&report.revision),
        printable(record["current_revision"].as_str().unwrap_or("-"))
    );
    for error in &report.errors {
        println!("  error: {}", printable(error));
    }
    let units: Vec<Vec<String>> = report
        .units
        .iter()
        .map(|u| {
            vec![
                printable(&u.unit).into_owned(),
                printable(&u.active_state).into_owned(),
                u.n_restarts.to_string(),
                if u.restarted { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    if !units.is_empty() {
        print!(
            "{}",
            table(
                &["UNIT", "STATE", "RESTARTS", "RESTARTED LAST CYCLE"],
                units
            )
        );
    }
}
