//! The admin commands: tokens, nodes and the audit log, through the running server's admin API.

use crate::admin_client::AdminClient;
use crate::config::{ServerConfig, parse_duration};
use anyhow::Result;
use calseg_api::admin::{TokenCreate, TokenCreated};
use calseg_api::paths;
use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;

fn client(config: Option<&Path>) -> Result<AdminClient> {
    AdminClient::from_config(&ServerConfig::load(config)?)
}

/// `token create`.
pub async fn token_create(
    config: Option<&Path>,
    node: Option<String>,
    glob: Option<String>,
    uses: Option<u32>,
    ttl: &str,
    json: bool,
) -> Result<ExitCode> {
    let ttl = parse_duration("--ttl", ttl)?;
    let request = TokenCreate {
        node,
        glob,
        uses,
        ttl_secs: ttl.as_secs(),
    };
    let created: TokenCreated = client(config)?.post(paths::ADMIN_TOKENS, &request).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&created)?);
    } else {
        // The token alone on stdout, so scripts can capture it; the rest on stderr.
        eprintln!(
            "token {} expires {}; it is shown only now",
            created.id, created.expires_at
        );
        println!("{}", created.token);
    }
    Ok(ExitCode::SUCCESS)
}

/// `token list`.
pub async fn token_list(config: Option<&Path>, json: bool) -> Result<ExitCode> {
    let tokens: Vec<Value> = client(config)?.get(paths::ADMIN_TOKENS).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&tokens)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<10} {:<32} {:<20} USES", "ID", "SCOPE", "EXPIRES");
    for token in tokens {
        println!(
            "{:<10} {:<32} {:<20} {}",
            token["id"].as_str().unwrap_or("?"),
            token["scope"].to_string(),
            unix_to_rfc3339(&token["expires_at"]),
            token["uses"].as_array().map_or(0, Vec::len)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `token delete ID`.
pub async fn token_delete(config: Option<&Path>, id: &str) -> Result<ExitCode> {
    let answer: Value = client(config)?
        .delete(&format!("{}/{id}", paths::ADMIN_TOKENS))
        .await?;
    if answer["deleted"].as_bool() == Some(true) {
        println!("token {id} deleted");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("no token {id}");
        Ok(ExitCode::FAILURE)
    }
}

/// `nodes list`.
pub async fn nodes_list(config: Option<&Path>, json: bool) -> Result<ExitCode> {
    let nodes: Vec<Value> = client(config)?.get(paths::ADMIN_NODES).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&nodes)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<32} {:<10} {:<24} LAST SEEN (unix)",
        "NODE", "STATE", "BY"
    );
    for node in nodes {
        println!(
            "{:<32} {:<10} {:<24} {}",
            node["name"].as_str().unwrap_or("?"),
            node["state"].as_str().unwrap_or("?"),
            node["state_changed_by"].as_str().unwrap_or("-"),
            node["last_seen"]
                .as_i64()
                .map_or("never".to_owned(), |t| t.to_string())
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `nodes approve|deny|revoke NAME`.
pub async fn nodes_action(config: Option<&Path>, action: &str, node: &str) -> Result<ExitCode> {
    let record: Value = client(config)?
        .post(
            &format!("{}/{node}/{action}", paths::ADMIN_NODES),
            &serde_json::json!({}),
        )
        .await?;
    println!("node {node}: {}", record["state"].as_str().unwrap_or("?"));
    Ok(ExitCode::SUCCESS)
}

/// `audit`.
pub async fn audit(
    config: Option<&Path>,
    since: u64,
    limit: usize,
    json: bool,
) -> Result<ExitCode> {
    let entries: Vec<Value> = client(config)?
        .get(&format!(
            "{}?since={since}&limit={limit}",
            paths::ADMIN_AUDIT
        ))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    for entry in entries {
        println!(
            "{:>6} {} {:<24} {:<12} {:<40} {:<7} {}",
            entry["seq"],
            unix_to_rfc3339(&entry["at"]),
            entry["actor"].as_str().unwrap_or("?"),
            entry["action"].as_str().unwrap_or("?"),
            entry["subject"].as_str().unwrap_or("?"),
            entry["outcome"].as_str().unwrap_or("?"),
            entry["detail"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Unix seconds (as the store keeps them) shown as RFC 3339 UTC.
fn unix_to_rfc3339(value: &Value) -> String {
    value
        .as_i64()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| value.to_string())
}
