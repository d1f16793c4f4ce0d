//! The admin commands: tokens, nodes and the audit log, through the running server's admin
//! API.

use super::output::{Format, table};
use crate::admin_client::AdminClient;
use crate::config::ServerConfig;
use anyhow::Result;
use calseg_api::admin::{
    NodeFilter, NodeListing, TokenCreate, TokenCreated, TokenDeleted, TokenListing,
    TokenListingScope,
};
use calseg_api::paths;
use calseg_api::text::printable;
use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;

pub(super) fn client(config: Option<&Path>) -> Result<AdminClient> {
    AdminClient::from_config(&ServerConfig::load(config)?)
}

/// `token create`.
pub async fn token_create(
    config: Option<&Path>,
    node: Option<String>,
    glob: Option<String>,
    uses: Option<u32>,
    ttl: std::time::Duration,
    json: bool,
) -> Result<ExitCode> {
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
pub async fn token_list(config: Option<&Path>, format: Format) -> Result<ExitCode> {
    let answer: Vec<Value> = client(config)?.get(paths::ADMIN_TOKENS).await?;
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    let tokens: Vec<TokenListing> = serde_json::from_value(Value::Array(answer))
        .map_err(|e| anyhow::anyhow!("the server's token list is not what this CLI reads: {e}"))?;
    let wide = format == Format::Wide;
    let mut header = vec!["ID", "SCOPE", "EXPIRES", "USES"];
    if wide {
        header.extend(["CREATED", "CREATED BY"]);
    }
    let rows = tokens
        .iter()
        .map(|token| {
            let mut row = vec![
                printable(&token.id).into_owned(),
                printable(&scope_text(&token.scope)).into_owned(),
                unix_time(token.expires_at),
                uses_text(token),
            ];
            if wide {
                row.push(unix_time(token.created_at));
                row.push(printable(&token.created_by).into_owned());
            }
            row
        })
        .collect();
    print!("{}", table(&header, rows));
    Ok(ExitCode::SUCCESS)
}

/// A token's scope for people: `node NAME` or `match GLOB` (the JSON keeps the store's shape,
/// `{"node": NAME}` or `{"match": {"glob", "uses_max"}}`).
pub(super) fn scope_text(scope: &TokenListingScope) -> String {
    match scope {
        TokenListingScope::Node(node) => format!("node {node}"),
        TokenListingScope::Match { glob, .. } => format!("match {glob}"),
    }
}

/// How many of a token's uses are spent: `USED/MAX`.
pub(super) fn uses_text(token: &TokenListing) -> String {
    format!("{}/{}", token.uses.len(), token.uses_max())
}

/// `token delete ID`.
pub async fn token_delete(config: Option<&Path>, id: &str) -> Result<ExitCode> {
    let answer: TokenDeleted = client(config)?
        .delete(&format!("{}/{id}", paths::ADMIN_TOKENS))
        .await?;
    if answer.deleted {
        println!("token {id} deleted");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("no token {id}");
        Ok(ExitCode::FAILURE)
    }
}

/// The filters of `nodes list`, as typed (durations like "7d").
#[derive(Debug, Default)]
pub struct NodesFilter {
    pub expiring_within: Option<std::time::Duration>,
    pub failed: bool,
    pub not_seen_since: Option<std::time::Duration>,
}

impl NodesFilter {
    /// The admin API query string (the server filters).
    fn query(&self) -> Result<String> {
        let filter = NodeFilter {
            expiring_within_secs: self.expiring_within.map(|d| d.as_secs()),
            failed: self.failed,
            not_seen_since_secs: self.not_seen_since.map(|d| d.as_secs()),
        };
        Ok(filter.query())
    }
}

/// `nodes list`: the inventory, filtered by the server.
pub async fn nodes_list(
    config: Option<&Path>,
    filter: &NodesFilter,
    format: Format,
) -> Result<ExitCode> {
    let path = format!("{}{}", paths::ADMIN_NODES, filter.query()?);
    let nodes: Vec<Value> = client(config)?.get(&path).await?;
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&nodes)?);
        return Ok(ExitCode::SUCCESS);
    }
    let wide = format == Format::Wide;
    let mut header = vec![
        "NODE",
        "STATE",
        "LAST SEEN",
        "REVISION",
        "EXPIRES",
        "COMPONENTS",
        "UNITS",
        "DRIFT",
    ];
    if wide {
        header.insert(2, "FIRST SEEN");
    }
    // `-o json` printed the answer as sent; the table reads it typed.
    let listings: Vec<NodeListing> = serde_json::from_value(Value::Array(nodes))
        .map_err(|e| anyhow::anyhow!("the server's node list is not what this CLI reads: {e}"))?;
    let rows = listings.iter().map(|node| node_row(node, wide)).collect();
    print!("{}", table(&header, rows));
    super::pending_cmd::print_pending(&listings);
    Ok(ExitCode::SUCCESS)
}

/// One row of `nodes list`; `wide` adds the first-seen time and the whole revision.
fn node_row(node: &NodeListing, wide: bool) -> Vec<String> {
    let inv = &node.inventory;
    let components: Vec<String> = inv
        .certificates
        .iter()
        .map(|c| c.component.clone())
        .collect();
    let units = match (inv.units_reported, &inv.failed_units) {
        (0, _) => "-".to_owned(),
        (_, failed) if failed.is_empty() => "all active".to_owned(),
        (_, failed) => format!("failed: {}", failed.join(", ")),
    };
    let drift = [inv.errors.clone(), inv.unconverged.clone()].concat();
    let dash_or = |items: &[String], sep: &str| {
        if items.is_empty() {
            "-".to_owned()
        } else {
            printable(&items.join(sep)).into_owned()
        }
    };
    let mut row = vec![
        printable(&node.name).into_owned(),
        printable(&node.state).into_owned(),
        node.last_seen.map_or("never".to_owned(), unix_time),
        inv.revision.as_deref().map_or("-".to_owned(), |r| {
            let r = printable(r);
            if wide {
                r.into_owned()
            } else {
                r.chars().take(12).collect()
            }
        }),
        inv.certificates
            .first()
            .map_or("-".to_owned(), |c| unix_time(c.not_after)),
        dash_or(&components, ","),
        printable(&units).into_owned(),
        dash_or(&drift, "; "),
    ];
    if wide {
        row.insert(2, unix_time(node.enrolled_at));
    }
    row
}

/// Unix seconds as RFC 3339 (the number itself if out of range).
pub(super) fn unix_time(secs: i64) -> String {
    calseg_api::when::unix(secs).unwrap_or_else(|| secs.to_string())
}

/// `nodes deny|revoke NAME` (approve: `pending_cmd`).
pub async fn nodes_action(config: Option<&Path>, action: &str, node: &str) -> Result<ExitCode> {
    let record: NodeListing = client(config)?
        .post(
            &format!("{}/{node}/{action}", paths::ADMIN_NODES),
            &serde_json::json!({}),
        )
        .await?;
    println!("node {}: {}", printable(node), printable(&record.state));
    Ok(ExitCode::SUCCESS)
}
