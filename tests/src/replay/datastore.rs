//! The etcd operations, exactly as libcalico-go's etcdv3 backend (`lib/backend/etcdv3/etcdv3.go`)
//! issues them: Get, prefix List, Create = `Txn If Version(key)==0 Then Put Else Get`, Update =
//! `Txn If ModRevision(key)==rev Then Put Else Get`, plain Put, Watch, and leases. etcd checks
//! read on every compared key and every op in both branches, whichever runs, so a Create needs
//! write even when the key exists. Every failure names the operation and the key.

use super::error::{ErrorKind, ReplayError};
use super::settings::Settings;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity,
    LeaseKeepAliveStream, LeaseKeeper, PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse,
    WatchOptions,
};
use std::future::Future;
use std::time::Duration;

/// Calico's etcd client timeout (`clientTimeout` in etcdv3.go), for every request.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new watch may take to be confirmed (created) or refused (cancelled).
const WATCH_CONFIRM: Duration = Duration::from_secs(3);

/// A stored key: its value and the revision an Update must compare against.
#[derive(Clone, Debug)]
pub struct Stored {
    pub value: serde_json::Value,
    pub mod_revision: i64,
}

/// What a Create did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    /// The key was missing and is now written.
    New,
    /// The key existed (the Else branch ran); nothing was written, yet write was checked.
    Existed,
}

/// How many operations of each sort the replay performed, for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub reads: usize,
    pub writes: usize,
    pub watches: usize,
    pub leases: usize,
}

/// One operation performed, with the access etcd checked for it: the raw material of a grant
/// profile (`calico-replay once --trace` prints them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Performed {
    /// `read`, `write`, `read+write` (a transaction: compare and Else-Get read, Put writes) or
    /// `lease` (etcd 3.4 checks no key permission for lease grants and keep-alives).
    pub access: &'static str,
    pub operation: &'static str,
    pub key: String,
}

/// A connection to etcd as the identity in the settings.
pub struct Datastore {
    client: Client,
    /// Every operation so far, in order (while `recording`).
    pub performed: Vec<Performed>,
    /// Off in `run` mode's endless refresh, so memory stays bounded.
    recording: bool,
}

async fn bounded<T>(
    operation: &'static str,
    key: &str,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, ReplayError> {
    match tokio::time::timeout(TIMEOUT, call).await {
        Ok(result) => result.map_err(|e| ReplayError::etcd(operation, key, &e)),
        Err(_) => Err(ReplayError::datastore(
            operation,
            key,
            format!("no answer in {TIMEOUT:?}"),
        )),
    }
}

fn parse(
    operation: &'static str,
    key: &str,
    bytes: &[u8],
) -> Result<serde_json::Value, ReplayError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ReplayError::datastore(operation, key, format!("stored value is not JSON: {e}"))
    })
}

impl Datastore {
    /// How many operations of each sort were performed.
    pub fn counts(&self) -> Counts {
        let count =
            |wanted: fn(&Performed) -> bool| self.performed.iter().filter(|p| wanted(p)).count();
        Counts {
            reads: count(|p| p.access == "read" && p.operation != "watch"),
            writes: count(|p| p.access.contains("write")),
            watches: count(|p| p.operation == "watch"),
            leases: count(|p| p.access == "lease"),
        }
    }

    /// Stops adding to [`Datastore::performed`] (the refresh loop would grow it forever).
    pub fn stop_recording(&mut self) {
        self.recording = false;
    }

    fn record(&mut self, access: &'static str, operation: &'static str, key: &str) {
        if !self.recording {
            return;
        }
        self.performed.push(Performed {
            access,
            operation,
            key: key.to_owned(),
        });
    }

    /// Connects with the certificate, key and CA the settings name (read once, as Calico does).
    pub async fn connect(settings: &Settings) -> Result<Self, ReplayError> {
        let endpoints = settings.endpoints.join(",");
        let read = |path: &std::path::Path| {
            std::fs::read_to_string(path).map_err(|e| {
                ReplayError::datastore(
                    "connect",
                    &endpoints,
                    format!("read {}: {e}", path.display()),
                )
            })
        };
        let tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(read(&settings.ca_file)?))
            .identity(Identity::from_pem(
                read(&settings.cert_file)?,
                read(&settings.key_file)?,
            ));
        let options = ConnectOptions::new()
            .with_tls(tls)
            .with_connect_timeout(TIMEOUT);
        let client = bounded(
            "connect",
            &endpoints,
            Client::connect(&settings.endpoints, Some(options)),
        )
        .await?;
        Ok(Self {
            client,
            performed: Vec::new(),
            recording: true,
        })
    }

    /// Get of one key.
    pub async fn get(&mut self, key: &str) -> Result<Option<Stored>, ReplayError> {
        self.record("read", "get", key);
        let response = bounded("get", key, self.client.get(key, None)).await?;
        match response.kvs().first() {
            Some(kv) => Ok(Some(Stored {
                value: parse("get", key, kv.value())?,
                mod_revision: kv.mod_revision(),
            })),
            None => Ok(None),
        }
    }

    /// List of a prefix: the values and the revision a watch continues from.
    pub async fn list(
        &mut self,
        prefix: &str,
    ) -> Result<(Vec<serde_json::Value>, i64), ReplayError> {
        self.record("read", "list", prefix);
        let options = GetOptions::new().with_prefix();
        let response = bounded("list", prefix, self.client.get(prefix, Some(options))).await?;
        let values = response
            .kvs()
            .iter()
            .map(|kv| parse("list", prefix, kv.value()))
            .collect::<Result<_, _>>()?;
        Ok((values, response.header().map_or(0, |h| h.revision())))
    }

    /// Calico's Create: `If Version(key)==0 Then Put(value, lease) Else Get(key)`.
    pub async fn create(
        &mut self,
        key: &str,
        value: &serde_json::Value,
        lease: Option<i64>,
    ) -> Result<Created, ReplayError> {
        self.record("read+write", "txn-create", key);
        let put = lease.map(|id| PutOptions::new().with_lease(id));
        let txn = Txn::new()
            .when([Compare::version(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.to_string(), put)])
            .or_else([TxnOp::get(key, None)]);
        let response = bounded("txn-create", key, self.client.txn(txn)).await?;
        Ok(if response.succeeded() {
            Created::New
        } else {
            Created::Existed
        })
    }

    /// Calico's Update: `If ModRevision(key)==rev Then Put(value) Else Get(key)`.
    pub async fn update(
        &mut self,
        key: &str,
        value: &serde_json::Value,
        mod_revision: i64,
    ) -> Result<(), ReplayError> {
        self.record("read+write", "txn-update", key);
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, mod_revision)])
            .and_then([TxnOp::put(key, value.to_string(), None)])
            .or_else([TxnOp::get(key, None)]);
        let response = bounded("txn-update", key, self.client.txn(txn)).await?;
        if response.succeeded() {
            return Ok(());
        }
        let missing = response
            .op_responses()
            .iter()
            .any(|r| matches!(r, TxnOpResponse::Get(g) if g.kvs().is_empty()));
        let detail = if missing {
            "the key no longer exists"
        } else {
            "the key changed since it was read"
        };
        Err(ReplayError {
            kind: ErrorKind::Conflict,
            operation: "txn-update",
            key: key.to_owned(),
            detail: detail.into(),
        })
    }

    /// A plain Put, as Felix writes its status (libcalico-go's Apply).
    pub async fn put(
        &mut self,
        key: &str,
        value: &serde_json::Value,
        lease: Option<i64>,
    ) -> Result<(), ReplayError> {
        self.record("write", "put", key);
        let options = lease.map(|id| PutOptions::new().with_lease(id));
        bounded("put", key, self.client.put(key, value.to_string(), options)).await?;
        Ok(())
    }

    /// Opens a prefix watch from `revision` and waits for etcd's answer: created, or cancelled
    /// (how etcd refuses a watch the identity may not read). The watch is then closed: etcd
    /// authorizes a watch only when it is created, so holding it open would prove nothing more.
    pub async fn watch(&mut self, prefix: &str, revision: i64) -> Result<(), ReplayError> {
        self.record("read", "watch", prefix);
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision);
        let mut stream = bounded("watch", prefix, self.client.watch(prefix, Some(options))).await?;
        let answer = tokio::time::timeout(WATCH_CONFIRM, stream.message()).await;
        match answer {
            Ok(Ok(Some(response))) if response.canceled() => {
                let reason = match response.cancel_reason() {
                    "" => "etcd cancelled the watch".to_owned(),
                    reason => format!("watch cancelled: {reason}"),
                };
                Err(ReplayError::from_detail("watch", prefix, reason))
            }
            Ok(Ok(Some(response))) if response.created() => Ok(()),
            Ok(Ok(Some(_))) => Err(ReplayError::datastore(
                "watch",
                prefix,
                "first answer was neither created nor cancelled",
            )),
            Ok(Ok(None)) => Err(ReplayError::datastore(
                "watch",
                prefix,
                "etcd closed the watch stream",
            )),
            Ok(Err(error)) => Err(ReplayError::etcd("watch", prefix, &error)),
            Err(_) => Err(ReplayError::datastore(
                "watch",
                prefix,
                format!("no created or cancel answer in {WATCH_CONFIRM:?}"),
            )),
        }
    }

    /// A new lease of `ttl` seconds, for `key` (only named in errors).
    pub async fn lease_grant(&mut self, ttl: i64, key: &str) -> Result<i64, ReplayError> {
        self.record("lease", "lease-grant", key);
        Ok(
            bounded("lease-grant", key, self.client.lease_grant(ttl, None))
                .await?
                .id(),
        )
    }

    /// Starts keeping lease `id` alive (Felix's status key is written with it).
    pub async fn keep_lease(&mut self, id: i64, key: &str) -> Result<KeptLease, ReplayError> {
        self.record("lease", "lease-keep-alive", key);
        let (keeper, stream) =
            bounded("lease-keep-alive", key, self.client.lease_keep_alive(id)).await?;
        Ok(KeptLease {
            keeper,
            stream,
            key: key.to_owned(),
        })
    }
}

/// A lease being kept alive over one keep-alive stream.
pub struct KeptLease {
    keeper: LeaseKeeper,
    stream: LeaseKeepAliveStream,
    /// The key written with the lease, named in errors.
    key: String,
}

impl KeptLease {
    pub fn id(&self) -> i64 {
        self.keeper.id()
    }

    /// One keep-alive: the TTL etcd granted, 0 when it no longer knows the lease.
    pub async fn refresh(&mut self) -> Result<i64, ReplayError> {
        let key = self.key.clone();
        bounded("lease-keep-alive", &key, self.keeper.keep_alive()).await?;
        match bounded("lease-keep-alive", &key, self.stream.message()).await? {
            Some(response) => Ok(response.ttl()),
            None => Err(ReplayError::datastore(
                "lease-keep-alive",
                &key,
                "etcd closed the keep-alive stream",
            )),
        }
    }
}
