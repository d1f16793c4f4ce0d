//! Leader election on etcd: the leader is the replica whose etcd lease holds the key
//! `{prefix}leader`. A replica creates the key only when it is absent (one transaction), keeps
//! its lease alive while it leads, and gives up leading by itself when it could not renew for
//! two thirds of the lease's time, before etcd can hand the key to another replica. When the
//! leader stops cleanly it revokes its lease, so another takes over at once; when it dies, the
//! lease runs out after `ttl`.

use crate::rbac::with_retry;
use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How the election runs.
#[derive(Debug, Clone)]
pub struct ElectionSettings {
    /// The store prefix; the leader key is `{prefix}leader`.
    pub prefix: String,
    /// This replica's name, the value of the leader key.
    pub replica: String,
    /// The leader's etcd lease time.
    pub ttl: Duration,
}

/// Runs the election for one replica and publishes whether it leads.
pub struct Election {
    client: Client,
    settings: ElectionSettings,
    leading: watch::Sender<bool>,
}

impl Election {
    /// An election not yet running (leading: false).
    pub fn new(client: Client, settings: ElectionSettings) -> (Self, watch::Receiver<bool>) {
        let (leading, receiver) = watch::channel(false);
        (
            Self {
                client,
                settings,
                leading,
            },
            receiver,
        )
    }

    fn key(&self) -> String {
        format!("{}leader", self.settings.prefix)
    }

    fn ttl_secs(&self) -> i64 {
        i64::try_from(self.settings.ttl.as_secs().max(2)).unwrap_or(i64::MAX)
    }

    /// How often the follower looks for a free key and the leader renews.
    fn beat(&self) -> Duration {
        (self.settings.ttl / 3).max(Duration::from_millis(300))
    }

    /// Campaigns, leads and campaigns again, until `stop` resolves; then gives the lead up
    /// (revokes the lease) so another replica takes over at once.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut held: Option<i64> = None;
        loop {
            tokio::select! {
                () = &mut stop => break,
                outcome = self.term(&mut held) => {
                    if let Err(error) = outcome {
                        tracing::warn!(replica = %self.settings.replica, "leader election: {error:#}");
                    }
                }
            }
            self.step_down("lost the lead");
            held = None;
            tokio::time::sleep(self.beat()).await;
        }
        if let Some(lease) = held.take() {
            self.step_down("stopping");
            let revoke = self.client.lease_revoke(lease);
            if tokio::time::timeout(Duration::from_secs(2), revoke)
                .await
                .is_err()
            {
                tracing::warn!(
                    "could not revoke the leader lease; another replica leads after it expires"
                );
            }
        }
    }

    fn step_down(&self, why: &str) {
        if self.leading.send_replace(false) {
            tracing::warn!(replica = %self.settings.replica, "this replica no longer leads: {why}");
        }
    }

    /// One term: waits until the key is free, takes it, and leads until a renewal fails.
    /// `held` is the lease while this replica holds the key.
    async fn term(&mut self, held: &mut Option<i64>) -> anyhow::Result<()> {
        let key = self.key();
        let beat = self.beat();
        // Every call retries transient failures (a stopped member, a leader change): the
        // client then reaches another member instead of giving the term up.
        let client = self.client.clone();
        let lease = loop {
            let free = with_retry(|| {
                let (mut c, k) = (client.clone(), key.clone());
                async move { c.get(k, None).await }
            })
            .await?
            .kvs()
            .is_empty();
            if free {
                let ttl = self.ttl_secs();
                let lease = with_retry(|| {
                    let mut c = client.clone();
                    async move { c.lease_grant(ttl, None).await }
                })
                .await?
                .id();
                let take = Txn::new()
                    .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(
                        key.as_str(),
                        self.settings.replica.as_str(),
                        Some(PutOptions::new().with_lease(lease)),
                    )]);
                let taken = with_retry(|| {
                    let (mut c, t) = (client.clone(), take.clone());
                    async move { c.txn(t).await }
                })
                .await?
                .succeeded();
                if taken {
                    break lease;
                }
                // Another replica was faster: drop the unused lease.
                let _ = self.client.lease_revoke(lease).await;
            }
            tokio::time::sleep(beat).await;
        };
        *held = Some(lease);
        self.leading.send_replace(true);
        tracing::info!(replica = %self.settings.replica, "this replica leads: it runs the RBAC reconciler and the rollout controller");
        let open_stream = || {
            let mut c = client.clone();
            async move { c.lease_keep_alive(lease).await }
        };
        let (mut keeper, mut responses) = with_retry(open_stream).await?;
        let give_up_after = self.settings.ttl * 2 / 3;
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(beat).await;
            let renewal = async {
                keeper.keep_alive().await?;
                responses.message().await
            };
            match tokio::time::timeout(beat, renewal).await {
                Ok(Ok(Some(answer))) if answer.ttl() > 0 => renewed = Instant::now(),
                Ok(Ok(Some(_))) => anyhow::bail!("etcd says the leader lease expired"),
                failed => {
                    let why = match failed {
                        Err(_) => format!("no answer within {beat:?}"),
                        Ok(Err(error)) => error.to_string(),
                        Ok(Ok(_)) => "the keep-alive stream ended".to_owned(),
                    };
                    tracing::warn!(
                        "renewing the leader lease failed ({why}); reopening the keep-alive stream"
                    );
                    // The stream may have gone to a member that stopped: open a new one.
                    if let Ok(Ok(stream)) = tokio::time::timeout(beat, open_stream()).await {
                        (keeper, responses) = stream;
                    }
                }
            }
            if renewed.elapsed() >= give_up_after {
                anyhow::bail!(
                    "the leader lease could not be renewed for {:?}; giving up the lead before it expires",
                    renewed.elapsed()
                );
            }
        }
    }
}
