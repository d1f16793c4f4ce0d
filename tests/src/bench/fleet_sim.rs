//! One simulated agent: long-polls its manifest (`?wait=55`, If-None-Match) and reports every
//! new one healthy as soon as it has it, as a real agent does once converged; and the record of
//! when each agent first received each policy revision.

use crate::api_client::{TestNode, report_at};
use calseg_api::paths;
use reqwest::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// When each agent first received each policy revision.
#[derive(Default)]
pub struct Receipts {
    by_revision: HashMap<u64, Vec<Instant>>,
}

impl Receipts {
    fn count(&self, revision: u64) -> usize {
        self.by_revision.get(&revision).map_or(0, Vec::len)
    }

    /// The receipts of `revision`, in no particular order.
    pub fn of(&self, revision: u64) -> Vec<Instant> {
        self.by_revision.get(&revision).cloned().unwrap_or_default()
    }
}

/// Locks the receipts; a panicked agent task leaves them usable.
pub fn lock(receipts: &Mutex<Receipts>) -> std::sync::MutexGuard<'_, Receipts> {
    receipts.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits until `receipts` counts `n` for `revision`; the instant of the last one.
pub async fn all_received(receipts: &Mutex<Receipts>, revision: u64, n: usize) -> Instant {
    loop {
        {
            let receipts = lock(receipts);
            if receipts.count(revision) >= n
                && let Some(last) = receipts.of(revision).into_iter().max()
            {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs one simulated agent until aborted.
pub async fn agent(node: TestNode, receipts: Arc<Mutex<Receipts>>) {
    let Ok(client) = node.client() else { return };
    let url = format!("{}{}", node.base, paths::MANIFEST);
    let report_url = format!("{}{}", node.base, paths::REPORT);
    let (mut etag, mut last_policy) = (None::<String>, 0);
    loop {
        let mut request = match &etag {
            Some(etag) => client
                .get(format!("{url}?wait=55"))
                .header("if-none-match", etag),
            None => client.get(&url),
        };
        request = request.timeout(Duration::from_secs(75));
        let response = match request.send().await {
            Ok(response) => response,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            continue;
        }
        if status != StatusCode::OK {
            let retry = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(retry)).await;
            continue;
        }
        let received = Instant::now();
        etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let Ok(body) = response.json::<serde_json::Value>().await else {
            etag = None;
            continue;
        };
        let policy = body["policy_revision"].as_u64().unwrap_or(0);
        if policy != last_policy {
            last_policy = policy;
            lock(&receipts)
                .by_revision
                .entry(policy)
                .or_default()
                .push(received);
        }
        // Report until the server takes it, as a real agent does (a refused report under load
        // would otherwise leave the node unconverged for good): bounded, backing off to 5 s.
        // Over the same client, so the same kept-alive connection, as the real agent's one
        // `ApiClient` does.
        let report = report_at(body["revision"].as_str().unwrap_or_default(), &[]);
        let mut pause = Duration::from_millis(200);
        for _ in 0..60 {
            let sent = client.post(&report_url).json(&report).send().await;
            if sent.is_ok_and(|answer| answer.status().is_success()) {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
}
