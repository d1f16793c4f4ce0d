//! The blocking bridge to etcd: a private tokio runtime, requests retried on transient
//! failures, and etcd errors mapped to [`StoreError`]s that name the endpoints.
//!
//! Every request runs with `Runtime::block_on` on the store's own runtime, so the store works
//! from plain threads and from `spawn_blocking` threads of another runtime alike (never call it
//! on an async worker thread: that is a blocking call there, as for every store).

use std::time::Duration;

use etcd_client::{Client, GetOptions, KeyValue, KvClient, Txn, TxnResponse};
use tokio::runtime::Runtime;

use crate::rbac::is_transient;
use crate::store::StoreError;

/// Attempts per request, the first included, when etcd fails transiently: about 6.5 s in all,
/// long enough for the client to stop picking a member that went down (the first tries after
/// it stops can all land on it, under load).
const ATTEMPTS: u32 = 10;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Keys per page of a range read: small enough to stay far below gRPC message limits even
/// with large node reports.
const PAGE: i64 = 100;
/// The largest response we accept (tonic's default is 4 MiB).
const MAX_RESPONSE: usize = 64 << 20;
/// How often a paged read starts again when etcd compacted the revision it was reading at.
const RESCANS: u32 = 3;

/// An etcd client bound to the runtime that drives it.
pub(super) struct Etcd {
    /// Taken in `Drop` to shut it down without blocking (a store may be dropped anywhere).
    runtime: Option<Runtime>,
    client: Client,
    /// For error messages: `https://a:2379,https://b:2379`.
    pub endpoints: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Etcd {
    /// Starts the runtime and connects on it with the server's client certificate.
    pub fn connect(access: &crate::rbac::EtcdAccess) -> Result<Self, StoreError> {
        let endpoints = access.endpoints.join(",");
        let unavailable = |what: &str, reason: String| StoreError::Unavailable {
            endpoints: endpoints.clone(),
            what: what.to_owned(),
            reason,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("calseg-etcd-store")
            .enable_all()
            .build()
            .map_err(|e| unavailable("starting the store's runtime", e.to_string()))?;
        let client = runtime
            .block_on(crate::rbac::connect(access))
            .map_err(|e| unavailable("connecting", format!("{e:#}")))?;
        Ok(Self {
            runtime: Some(runtime),
            client,
            endpoints,
        })
    }

    fn kv(&self) -> KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_RESPONSE)
    }

    /// Runs `request` on the store's runtime, retrying transient failures with backoff.
    fn call<T, F>(&self, what: &str, mut request: F) -> Result<T, StoreError>
    where
        F: AsyncFnMut(KvClient) -> Result<T, etcd_client::Error>,
    {
        let Some(runtime) = &self.runtime else {
            return Err(self.failure(what, "the store is shutting down".into(), true));
        };
        runtime.block_on(async {
            let mut backoff = FIRST_BACKOFF;
            let mut tries = 1;
            loop {
                match request(self.kv()).await {
                    Ok(out) => return Ok(out),
                    Err(e) if tries < ATTEMPTS && is_transient(&e) => {
                        tokio::time::sleep(backoff + super::stm::jitter(backoff)).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        tries += 1;
                    }
                    Err(e) => return Err(self.failure(what, e.to_string(), is_transient(&e))),
                }
            }
        })
    }

    fn failure(&self, what: &str, reason: String, transient: bool) -> StoreError {
        let (endpoints, what) = (self.endpoints.clone(), what.to_owned());
        if transient {
            StoreError::Unavailable {
                endpoints,
                what,
                reason,
            }
        } else {
            StoreError::EtcdRefused {
                endpoints,
                what,
                reason,
            }
        }
    }

    /// The key's current value, if any.
    pub fn get(&self, what: &str, key: &str) -> Result<Option<KeyValue>, StoreError> {
        let mut response = self.call(what, async |mut kv| kv.get(key, None).await)?;
        Ok(response.take_kvs().into_iter().next())
    }

    /// The last `limit` keys under `prefix`, newest (greatest) first.
    pub fn last(
        &self,
        what: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        use etcd_client::{SortOrder, SortTarget};
        if limit == 0 {
            return Ok(Vec::new());
        }
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Descend)
            .with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        let mut response = self.call(what, async |mut kv| {
            kv.get(prefix, Some(options.clone())).await
        })?;
        Ok(response.take_kvs())
    }

    /// Every key under `prefix`, in key order, read at one revision (one consistent view).
    pub fn scan(&self, what: &str, prefix: &str) -> Result<Vec<KeyValue>, StoreError> {
        self.range(what, prefix, &super::keys::range_end(prefix), usize::MAX)
    }

    /// Up to `limit` keys of `[from, end)` in key order, read page by page at one revision.
    pub fn range(
        &self,
        what: &str,
        from: &str,
        end: &str,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let mut last_error = None;
        for _ in 0..RESCANS {
            match self.range_once(what, from, end, limit) {
                Err(e) if is_compacted(&e) => last_error = Some(e),
                outcome => return outcome,
            }
        }
        Err(last_error.unwrap_or_else(|| self.failure(what, "no attempt".into(), true)))
    }

    fn range_once(
        &self,
        what: &str,
        from: &str,
        end: &str,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let mut out: Vec<KeyValue> = Vec::new();
        let mut from = from.as_bytes().to_vec();
        let mut revision = 0;
        while out.len() < limit {
            let page = i64::try_from(limit - out.len()).map_or(PAGE, |left| left.min(PAGE));
            let options = GetOptions::new()
                .with_range(end)
                .with_limit(page)
                .with_revision(revision);
            let mut response = self.call(what, async |mut kv| {
                kv.get(from.clone(), Some(options.clone())).await
            })?;
            if revision == 0 {
                revision = response.header().map_or(0, |h| h.revision());
            }
            let more = response.more();
            out.extend(response.take_kvs());
            match out.last() {
                Some(last) if more => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// Whether any key exists under `prefix`, and how many.
    pub fn count(&self, what: &str, prefix: &str) -> Result<i64, StoreError> {
        let options = GetOptions::new().with_prefix().with_count_only();
        let response = self.call(what, async |mut kv| {
            kv.get(prefix, Some(options.clone())).await
        })?;
        Ok(response.count())
    }

    /// Deletes every key under `prefix`.
    pub fn delete_prefix(&self, what: &str, prefix: &str) -> Result<(), StoreError> {
        let options = etcd_client::DeleteOptions::new().with_prefix();
        self.call(what, async |mut kv| {
            kv.delete(prefix, Some(options.clone())).await
        })?;
        Ok(())
    }

    /// Sends one transaction.
    pub fn txn(&self, what: &str, txn: Txn) -> Result<TxnResponse, StoreError> {
        self.call(what, async |mut kv| kv.txn(txn.clone()).await)
    }
}

/// etcd compacted away the revision a paged read was pinned to: read again at the latest.
fn is_compacted(error: &StoreError) -> bool {
    matches!(error, StoreError::EtcdRefused { reason, .. } if reason.contains("compacted"))
}
