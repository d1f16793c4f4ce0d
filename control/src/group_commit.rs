//! Group commit of issued certificates: the signings in flight share one store transaction and
//! one fsync ([`Store::record_issued_batch`]) instead of queueing for the single writer one by
//! one.
//!
//! Invariants:
//! - A caller's [`GroupCommit::record`] returns only after the transaction holding its
//!   certificate and audit entry committed (or failed): a node never receives a certificate
//!   that is not on record.
//! - At most one batch is being written at a time; requests that arrive meanwhile wait and
//!   form the next batch. The writer is a task of its own, so a caller that goes away (a
//!   dropped request) never stalls the others.

use crate::ControlError;
use crate::store::{IssuedRecord, NewAuditEntry, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The most certificates written in one transaction.
const MAX_BATCH: usize = 256;

type Answer = oneshot::Sender<Result<u64, ControlError>>;

#[derive(Default)]
struct Queue {
    waiting: Vec<((IssuedRecord, NewAuditEntry), Answer)>,
    /// Whether a writer task is running (it takes every batch until the queue is empty).
    writing: bool,
}

/// Issued certificates waiting to be written together into `store`.
pub struct GroupCommit {
    store: Arc<dyn Store>,
    queue: Mutex<Queue>,
    /// Transactions written so far.
    commits: AtomicU64,
}

impl GroupCommit {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            queue: Mutex::default(),
            commits: AtomicU64::new(0),
        }
    }

    /// Records `cert` with its audit entry in the next batch; returns the entry's sequence
    /// number once that batch committed.
    pub async fn record(
        self: &Arc<Self>,
        cert: IssuedRecord,
        audit: NewAuditEntry,
    ) -> Result<u64, ControlError> {
        let (answer, answered) = oneshot::channel();
        let start_writer = {
            let mut queue = self.lock();
            queue.waiting.push(((cert, audit), answer));
            !std::mem::replace(&mut queue.writing, true)
        };
        if start_writer {
            let this = Arc::clone(self);
            tokio::spawn(async move { this.write_until_empty().await });
        }
        answered
            .await
            .map_err(|_| ControlError::internal("the certificate's commit was dropped"))?
    }

    /// Writes batches until none waits, then lets the next caller start a writer.
    async fn write_until_empty(self: Arc<Self>) {
        loop {
            let batch = {
                let mut queue = self.lock();
                if queue.waiting.is_empty() {
                    queue.writing = false;
                    return;
                }
                let take = queue.waiting.len().min(MAX_BATCH);
                queue.waiting.drain(..take).collect::<Vec<_>>()
            };
            let (items, answers): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let store = Arc::clone(&self.store);
            let written =
                tokio::task::spawn_blocking(move || store.record_issued_batch(&items)).await;
            self.commits.fetch_add(1, Ordering::Relaxed);
            match written {
                Ok(Ok(results)) => {
                    for (answer, result) in answers.into_iter().zip(results) {
                        let _ = answer.send(result.map_err(ControlError::from));
                    }
                }
                Ok(Err(failed)) => answer_all(answers, &failed.into()),
                Err(panicked) => answer_all(answers, &ControlError::from(panicked)),
            }
        }
    }

    /// How many transactions carried the certificates recorded so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn answer_all(answers: Vec<Answer>, error: &ControlError) {
    for answer in answers {
        let _ = answer.send(Err(error.clone()));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::{AuditAction, AuditOutcome, RedbStore, TokenScope};
    use time::OffsetDateTime;

    fn cert(serial: &str, node: &str) -> (IssuedRecord, NewAuditEntry) {
        let now = OffsetDateTime::now_utc();
        let cert = IssuedRecord {
            serial: serial.to_owned(),
            cn: format!("calico-node.{node}"),
            node: node.to_owned(),
            component: "calico-node".to_owned(),
            not_before: now,
            not_after: now + time::Duration::days(1),
            issued_at: now,
            issuer: None,
        };
        let audit = NewAuditEntry {
            at: now,
            actor: node.to_owned(),
            action: AuditAction::Issue,
            subject: cert.cn.clone(),
            outcome: AuditOutcome::Ok,
            detail: format!("serial {serial}"),
        };
        (cert, audit)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_signings_share_commits_and_each_gets_its_own_answer() {
        let dir = tempfile::tempdir().unwrap();
        let redb = RedbStore::open(&dir.path().join("state.redb")).unwrap();
        let now = OffsetDateTime::now_utc();
        let token = redb
            .create_token(
                TokenScope::Node("n1".into()),
                time::Duration::hours(1),
                now,
                "t",
            )
            .unwrap();
        redb.redeem_token(&token.token, "n1", now).unwrap();
        let store: Arc<dyn Store> = Arc::new(redb);
        let group = Arc::new(GroupCommit::new(Arc::clone(&store)));
        let calls = (0..64u32).map(|i| {
            let group = Arc::clone(&group);
            // Every eighth certificate is for a node that does not exist: refused alone.
            let node = if i % 8 == 7 { "nobody" } else { "n1" };
            let (cert, audit) = cert(&format!("{:04x}", i + 1), node);
            tokio::spawn(async move { group.record(cert, audit).await })
        });
        let mut answers = Vec::new();
        for call in calls.collect::<Vec<_>>() {
            answers.push(call.await.unwrap());
        }
        let refused = answers.iter().filter(|a| a.is_err()).count();
        assert_eq!(refused, 8);
        assert!(
            answers
                .iter()
                .filter_map(|a| a.as_ref().err())
                .all(|e| e.kind == "unknown_node"),
            "{answers:?}"
        );
        let mut seqs: Vec<u64> = answers
            .iter()
            .filter_map(|a| a.as_ref().ok().copied())
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs.len(), 56, "one audit entry per recorded certificate");
        assert_eq!(store.issued_for_node("n1").unwrap().len(), 56);
        assert_eq!(store.audit(0, 1000).unwrap().len(), 56);
        let commits = group.commits();
        assert!(
            commits < 32,
            "64 concurrent signings took {commits} commits: they did not share them"
        );
        // The writer stopped with the queue empty; a later signing starts a new one.
        let (cert, audit) = cert("ffff", "n1");
        group.record(cert, audit).await.unwrap();
        assert_eq!(group.commits(), commits + 1);
    }
}
