//! `calseg-server audit`: the audit log, from a time (`--since 1h`, `--since RFC3339`) or after
//! a sequence number (`--after-seq N`), and `--follow`, which polls for new entries until
//! Ctrl-C or until the reader of its output goes away.

use super::admin_cmd::{client, unix_time};
use super::output::{Format, table};
use crate::admin_client::AdminClient;
use anyhow::{Result, anyhow};
use calseg_api::admin::AuditListing;
use calseg_api::paths;
use calseg_api::text::printable;
use serde::Deserialize as _;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use time::OffsetDateTime;

/// The largest page the server gives.
const PAGE: usize = 10_000;
/// How often `--follow` asks for new entries.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(2);

/// What `audit` shows.
#[derive(Debug, Clone)]
pub struct AuditArgs {
    /// Entries at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Entries after this sequence number.
    pub after_seq: u64,
    pub limit: usize,
    pub follow: bool,
    pub format: Format,
}

/// Reads `--since`: a duration ago (`1h`, `30m`, `1h30m`) or an RFC 3339 time.
pub fn parse_since(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime> {
    if let Ok(ago) = calseg_api::duration::parse(text) {
        let ago = time::Duration::try_from(ago).map_err(|e| anyhow!("--since {text:?}: {e}"))?;
        return now
            .checked_sub(ago)
            .ok_or_else(|| anyhow!("--since {text:?} is too long ago"));
    }
    OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339).map_err(
        |_| {
            anyhow!(
                "--since {text:?} is neither a duration ago (e.g. 1h, 30m, 2d) nor an RFC 3339 \
                 time (e.g. 2027-03-03T14:00:00Z); for a sequence number use --after-seq"
            )
        },
    )
}

/// `audit`.
pub async fn audit(config: Option<&Path>, args: &AuditArgs) -> Result<ExitCode> {
    let client = client(config)?;
    let mut after = args.after_seq;
    let first = read(&client, &mut after, args.since, args.limit).await?;
    let mut out = Printer::new(args.format, args.follow);
    if !out.show(&first) {
        return Ok(ExitCode::SUCCESS);
    }
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(FOLLOW_EVERY) => {}
        }
        let entries = read(&client, &mut after, None, PAGE).await?;
        if !out.show(&entries) {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// Up to `limit` entries after `*after` (at or after `since`), paging through the log;
/// advances `*after` past what it read.
async fn read(
    client: &AdminClient,
    after: &mut u64,
    since: Option<OffsetDateTime>,
    limit: usize,
) -> Result<Vec<Listed>> {
    let since = since.map(OffsetDateTime::unix_timestamp);
    let mut found = Vec::new();
    while found.len() < limit {
        let page = page(client, *after, PAGE).await?;
        let Some(last) = page.last().map(|e| e.entry.seq) else {
            break;
        };
        let full = page.len() >= PAGE;
        for listed in page {
            if found.len() >= limit {
                break;
            }
            *after = listed.entry.seq.max(*after);
            if since.is_none_or(|t| listed.entry.at >= t) {
                found.push(listed);
            }
        }
        if !full || *after < last {
            break;
        }
    }
    Ok(found)
}

/// One audit entry: as the server sent it (what `-o json` prints) and typed (what is read).
pub(super) struct Listed {
    json: Value,
    pub entry: AuditListing,
}

/// One page of the log after `after` (at most `limit` entries), oldest first.
pub(super) async fn page(client: &AdminClient, after: u64, limit: usize) -> Result<Vec<Listed>> {
    let page: Vec<Value> = client
        .get(&format!(
            "{}?since={after}&limit={limit}",
            paths::ADMIN_AUDIT
        ))
        .await?;
    page.into_iter()
        .map(|json| {
            let entry = AuditListing::deserialize(&json).map_err(|e| {
                anyhow!("an audit entry from the server is not what this CLI reads: {e}")
            })?;
            Ok(Listed { json, entry })
        })
        .collect()
}

/// Prints batches of entries; says when its reader went away.
struct Printer {
    format: Format,
    follow: bool,
    header: bool,
}

impl Printer {
    fn new(format: Format, follow: bool) -> Self {
        Self {
            format,
            follow,
            header: true,
        }
    }

    /// Prints `entries`; false once stdout is closed (e.g. `| head`), which ends the command
    /// quietly.
    fn show(&mut self, entries: &[Listed]) -> bool {
        let text = match self.format {
            // Following, one JSON object a line (a stream); otherwise one array.
            Format::Json if self.follow => entries
                .iter()
                .map(|e| format!("{}\n", e.json))
                .collect::<String>(),
            Format::Json => {
                let json: Vec<&Value> = entries.iter().map(|e| &e.json).collect();
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&json).unwrap_or_default()
                )
            }
            Format::Text | Format::Wide => {
                if entries.is_empty() && !self.header {
                    return true;
                }
                let entries: Vec<&AuditListing> = entries.iter().map(|e| &e.entry).collect();
                let text = audit_table(&entries);
                let text = if self.header {
                    text
                } else {
                    text.split_once('\n')
                        .map_or(String::new(), |(_, rows)| rows.to_owned())
                };
                self.header = false;
                text
            }
        };
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .is_ok()
    }
}

/// Audit entries as a table (every column, in text and wide alike).
pub(super) fn audit_table(entries: &[&AuditListing]) -> String {
    let rows = entries
        .iter()
        .map(|entry| {
            vec![
                entry.seq.to_string(),
                unix_time(entry.at),
                printable(&entry.actor).into_owned(),
                printable(&entry.action).into_owned(),
                printable(&entry.subject).into_owned(),
                printable(&entry.outcome).into_owned(),
                printable(&entry.detail).into_owned(),
            ]
        })
        .collect();
    table(
        &[
            "SEQ", "AT", "ACTOR", "ACTION", "SUBJECT", "OUTCOME", "DETAIL",
        ],
        rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18, point 7: `--since` is a time (a duration ago or RFC 3339), not a sequence.
    #[test]
    fn issue_18_since_takes_a_duration_ago_or_an_rfc3339_time() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(
            parse_since("1h30m", now).unwrap().unix_timestamp(),
            1_800_000_000 - 5400
        );
        assert_eq!(
            parse_since("2027-01-15T07:00:00Z", now)
                .unwrap()
                .unix_timestamp(),
            1_799_996_400
        );
        let error = parse_since("12", now).unwrap_err().to_string();
        assert!(
            error.contains("--after-seq") && error.contains("\"12\""),
            "{error}"
        );
    }
}
