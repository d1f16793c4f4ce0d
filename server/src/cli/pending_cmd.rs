//! `nodes show`, `nodes approve --fingerprint` and `nodes delete`, and the pending requests
//! `nodes list` prints after its table: what an operator needs to approve exactly the key the
//! node's agent printed, and to clear requests nobody will approve.

use super::admin_cmd::{client, unix_time};
use super::output::{Format, table};
use crate::admin_client::AdminClient;
use anyhow::{Result, anyhow};
use calseg_api::admin::{AuditListing, NodeAction, NodeDeleted, NodeListing};
use calseg_api::paths;
use calseg_api::report::{LastReport, Report};
use calseg_api::text::printable;
use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;

/// The pending requests among `nodes`, with their keys, after the inventory table.
pub(super) fn print_pending(nodes: &[NodeListing]) {
    let pending: Vec<&NodeListing> = nodes.iter().filter(|n| n.state == "pending").collect();
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
            let key = node.pending_key.as_ref();
            vec![
                printable(&node.name).into_owned(),
                printable(key.map_or("unknown", |k| &k.fingerprint)).into_owned(),
                printable(key.map_or("unknown", |k| &k.source)).into_owned(),
                unix_time(node.enrolled_at),
                node.last_seen.map_or("never".to_owned(), unix_time),
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
    let json: Value = client
        .get(&format!("{}/{node}", paths::ADMIN_NODES))
        .await?;
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(ExitCode::SUCCESS);
    }
    let record: NodeListing = serde_json::from_value(json)
        .map_err(|e| anyhow!("the server's answer about {node} is not what this CLI reads: {e}"))?;
    println!("node:        {}", printable(&record.name));
    println!("state:       {}", printable(&record.state));
    println!("first seen:  {}", unix_time(record.enrolled_at));
    println!(
        "last seen:   {}",
        record.last_seen.map_or("never".to_owned(), unix_time)
    );
    if let Some(by) = &record.approved_by {
        println!("approved by: {}", printable(by));
    }
    if let Some(key) = &record.pending_key {
        println!("key:         {}", printable(&key.fingerprint));
        println!("from:        {}", printable(&key.source));
    }
    if let Some(fleet) = &record.fleet_cert {
        println!(
            "fleet cert:  serial {}, expires {}",
            printable(&fleet.serial),
            unix_time(fleet.not_after)
        );
        // The enrolled key, as its agent prints it (`calseg-agent status`).
        if let Some(fingerprint) = &fleet.key_fingerprint {
            println!("key:         {}", printable(fingerprint));
        }
    }
    print_enrolled(&record, node, &client).await?;
    if let Some(key) = &record.pending_key
        && record.state == "pending"
    {
        let fingerprint = printable(&key.fingerprint);
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
async fn print_enrolled(record: &NodeListing, node: &str, client: &AdminClient) -> Result<()> {
    let rows: Vec<Vec<String>> = record
        .identities
        .iter()
        .map(|i| {
            [
                &i.component,
                &i.etcd_user,
                &i.serial,
                &i.not_before,
                &i.not_after,
            ]
            .iter()
            .map(|text| printable(text).into_owned())
            .collect()
        })
        .collect();
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
    match &record.last_report {
        Some(LastReport::Read(report)) => print_report(report, record),
        Some(LastReport::Unreadable { error, .. }) => {
            println!("\nlast report: unreadable ({})", printable(error));
        }
        None => {}
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
    let record: NodeListing = client(config)?
        .post(&format!("{}/{node}/approve", paths::ADMIN_NODES), &body)
        .await?;
    println!(
        "node {node}: {} (key {})",
        printable(&record.state),
        printable(record.pending_key.as_ref().map_or("?", |k| &k.fingerprint))
    );
    Ok(ExitCode::SUCCESS)
}

/// `nodes delete NODE`: pending or denied nodes only.
pub async fn nodes_delete(config: Option<&Path>, node: &str) -> Result<ExitCode> {
    let answer: NodeDeleted = client(config)?
        .delete(&format!("{}/{node}", paths::ADMIN_NODES))
        .await?;
    println!("node {node} ({}) deleted", printable(&answer.state));
    Ok(ExitCode::SUCCESS)
}

/// The last report of `nodes show`: revision against the current policy's, errors, units.
fn print_report(report: &Report, record: &NodeListing) {
    println!(
        "\nlast report: revision {} (current policy: {})",
        printable(&report.revision),
        printable(record.current_revision.as_deref().unwrap_or("-"))
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
