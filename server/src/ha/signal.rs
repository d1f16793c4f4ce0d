//! "Nodes changed": a replica that enrolled, approved or revoked a node writes the key
//! `{prefix}signals/nodes`; the leader looks at its revision every second and reconciles etcd
//! RBAC when it moved, so a node enrolled through any replica gets its etcd user within
//! seconds, not at the next reconcile interval.

use etcd_client::Client;
use std::sync::atomic::{AtomicI64, Ordering};

/// The "nodes changed" signal of one replica.
pub struct NodesChanged {
    client: Client,
    key: String,
    /// The key's mod revision the leader last acted on.
    seen: AtomicI64,
}

impl NodesChanged {
    pub fn new(client: Client, prefix: &str) -> Self {
        Self {
            client,
            key: format!("{prefix}signals/nodes"),
            seen: AtomicI64::new(-1),
        }
    }

    /// Tells the leader (whichever replica it is) that nodes changed. Does not wait; a failure
    /// is logged: the leader still reconciles at its interval.
    pub fn raise(&self, by: &str) {
        let mut client = self.client.clone();
        let key = self.key.clone();
        let by = by.to_owned();
        tokio::spawn(async move {
            if let Err(error) = client.put(key, by, None).await {
                tracing::warn!("could not tell the leader that nodes changed: {error}");
            }
        });
    }

    /// Whether the signal was raised since the last call (the first call says true, so a new
    /// leader reconciles at once).
    pub async fn take(&self) -> Result<bool, etcd_client::Error> {
        let mut client = self.client.clone();
        let answer = client.get(self.key.as_str(), None).await?;
        let revision = answer.kvs().first().map_or(0, |kv| kv.mod_revision());
        Ok(self.seen.swap(revision, Ordering::Relaxed) != revision)
    }
}
