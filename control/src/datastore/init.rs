//! `datastore init`: read every object (and the IP pools) in one read-only transaction, then
//! create all missing ones in one write transaction guarded by `CreateRevision(key) == 0` for
//! each, so a refusal writes nothing and nothing that exists is ever overwritten. When a guard
//! fails (another client created one meanwhile), read again and retry, a bounded number of
//! times. libcalico-go's own Create is the same guarded put, one key at a time
//! (`lib/backend/etcdv3/etcdv3.go`).

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};
use serde_json::Value;
use time::OffsetDateTime;

use super::compare::{calico_node_updates, differences};
use super::objects::{self, IPPOOLS_PREFIX, Kind, Object, RandomFailed, RandomSource};
use super::report::{Outcome, Report, State};
use crate::policy::Policy;
use crate::rbac::with_retry;

/// Reads (and write attempts) before giving up on objects that keep appearing.
pub const MAX_ATTEMPTS: u32 = 5;

/// Why `datastore init` stopped.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "etcd refused to read {}: {message}. calseg's etcd identity needs read on them (etcd's \
         root role has it)",
        .keys.join(", ")
    )]
    Read {
        keys: Vec<String>,
        /// etcd's own message, e.g. `etcdserver: permission denied`.
        message: String,
        error: etcd_client::Error,
    },
    #[error(
        "etcd refused the transaction creating {}: {message}. Nothing was written: the objects \
         are created in one transaction, all or none. calseg's etcd identity needs write on \
         these keys (etcd's root role has it)",
        .keys.join(", ")
    )]
    Write {
        keys: Vec<String>,
        message: String,
        error: etcd_client::Error,
    },
    #[error(
        "other clients kept creating these objects while datastore init ran ({attempts} \
         attempts, nothing written); run it again to see what exists"
    )]
    Contended { attempts: u32 },
    #[error(transparent)]
    Random(#[from] RandomFailed),
}

/// Creates the objects `policy` calls for that are missing (with `dry_run`, only says which).
pub async fn init(
    client: &Client,
    policy: &Policy,
    now: OffsetDateTime,
    random: &mut dyn RandomSource,
    dry_run: bool,
) -> Result<Report, InitError> {
    let desired = objects::desired(policy.calico_version, &policy.datastore, now, random)?;
    for attempt in 1..=MAX_ATTEMPTS {
        let snapshot = read(client, &desired).await?;
        let mut report = classify(policy, &desired, &snapshot, dry_run, attempt);
        let creates: Vec<&Object> = desired
            .iter()
            .zip(&report.objects)
            .filter(|(_, outcome)| outcome.state == State::Create)
            .map(|(object, _)| object)
            .collect();
        if dry_run || creates.is_empty() {
            return Ok(report);
        }
        if let Some(revision) = create(client, &creates, snapshot.revision).await? {
            report.written = true;
            report.revision = revision;
            for outcome in &mut report.objects {
                if outcome.state == State::Create {
                    outcome.mod_revision = Some(revision);
                }
            }
            return Ok(report);
        }
        tracing::info!(attempt, "an object appeared meanwhile; reading again");
    }
    Err(InitError::Contended {
        attempts: MAX_ATTEMPTS,
    })
}

/// What one read found.
pub(super) struct Snapshot {
    pub revision: i64,
    /// Per desired object: its stored bytes and mod revision.
    pub stored: Vec<Option<(Vec<u8>, i64)>>,
    /// Every IP pool: name and whether its CIDR is IPv6.
    pub pools: Vec<(String, bool)>,
}

async fn read(client: &Client, desired: &[Object]) -> Result<Snapshot, InitError> {
    let mut ops: Vec<TxnOp> = desired
        .iter()
        .map(|o| TxnOp::get(o.key.clone(), None))
        .collect();
    ops.push(TxnOp::get(
        IPPOOLS_PREFIX,
        Some(GetOptions::new().with_prefix()),
    ));
    let txn = Txn::new().and_then(ops);
    let response = with_retry(|| {
        let (mut c, txn) = (client.clone(), txn.clone());
        async move { c.txn(txn).await }
    })
    .await
    .map_err(|error| InitError::Read {
        keys: desired
            .iter()
            .map(|o| o.key.clone())
            .chain([format!("{IPPOOLS_PREFIX} (prefix)")])
            .collect(),
        message: etcd_message(&error),
        error,
    })?;
    let revision = response.header().map_or(0, |h| h.revision());
    let mut responses = response.op_responses();
    let pools = match responses.pop() {
        Some(TxnOpResponse::Get(get)) => get.kvs().iter().map(pool).collect(),
        _ => Vec::new(),
    };
    let mut gets = responses.into_iter().map(|r| match r {
        TxnOpResponse::Get(get) => get
            .kvs()
            .first()
            .map(|kv| (kv.value().to_vec(), kv.mod_revision())),
        _ => None,
    });
    let stored = desired.iter().map(|_| gets.next().flatten()).collect();
    Ok(Snapshot {
        revision,
        stored,
        pools,
    })
}

/// A stored pool's name and whether its CIDR is IPv6 (what node start-up checks).
fn pool(kv: &etcd_client::KeyValue) -> (String, bool) {
    let key = String::from_utf8_lossy(kv.key());
    let name = key.strip_prefix(IPPOOLS_PREFIX).unwrap_or(&key).to_string();
    let value: Value = serde_json::from_slice(kv.value()).unwrap_or(Value::Null);
    let ipv6 = value["spec"]["cidr"]
        .as_str()
        .is_some_and(|cidr| cidr.contains(':'));
    (name, ipv6)
}

/// The guarded creation; `Some(revision)` when it went through, `None` when a guard failed.
async fn create(
    client: &Client,
    creates: &[&Object],
    read_revision: i64,
) -> Result<Option<i64>, InitError> {
    let mut guards: Vec<Compare> = creates
        .iter()
        .map(|o| Compare::create_revision(o.key.clone(), CompareOp::Equal, 0))
        .collect();
    if creates.iter().any(|o| o.kind == Kind::IpPool) {
        // No pool appeared or changed since the read: the default pool is still wanted.
        guards.push(
            Compare::mod_revision(IPPOOLS_PREFIX, CompareOp::Less, read_revision + 1).with_prefix(),
        );
    }
    let puts: Vec<TxnOp> = creates
        .iter()
        .map(|o| TxnOp::put(o.key.clone(), o.value.clone(), None))
        .collect();
    let txn = Txn::new().when(guards).and_then(puts);
    let response = with_retry(|| {
        let (mut c, txn) = (client.clone(), txn.clone());
        async move { c.txn(txn).await }
    })
    .await
    .map_err(|error| InitError::Write {
        keys: creates.iter().map(|o| o.key.clone()).collect(),
        message: etcd_message(&error),
        error,
    })?;
    Ok(response
        .succeeded()
        .then(|| response.header().map_or(0, |h| h.revision())))
}

/// Each object's state in `snapshot`, with the warnings that go with them.
pub(super) fn classify(
    policy: &Policy,
    desired: &[Object],
    snapshot: &Snapshot,
    dry_run: bool,
    attempts: u32,
) -> Report {
    let settings = &policy.datastore;
    let ipv4_pools: Vec<String> = snapshot
        .pools
        .iter()
        .filter(|(_, ipv6)| !ipv6)
        .map(|(name, _)| name.clone())
        .collect();
    let mut warnings = Vec::new();
    let mut outcomes = Vec::new();
    for (object, stored) in desired.iter().zip(&snapshot.stored) {
        let mut outcome = Outcome {
            key: object.key.clone(),
            kind: object.kind,
            name: object.name.to_string(),
            state: State::Create,
            mod_revision: None,
            value: None,
            differences: Vec::new(),
            ipv4_pools: Vec::new(),
        };
        match stored {
            Some((value, mod_revision)) => {
                outcome.mod_revision = Some(*mod_revision);
                outcome.differences = differences(object, value);
                outcome.state = if outcome.differences.is_empty() {
                    State::Exists
                } else {
                    State::ExistsDiffers
                };
                let why = calico_node_updates(object.kind, value, settings);
                if !why.is_empty() {
                    warnings.push(format!(
                        "calico-node will update {} at start ({}), which a per-node identity \
                         may not: update it with an administrator identity (datastore init \
                         never overwrites)",
                        object.key,
                        why.join("; ")
                    ));
                }
            }
            None if object.kind == Kind::IpPool && !ipv4_pools.is_empty() => {
                outcome.state = State::NotNeeded;
                outcome.ipv4_pools = ipv4_pools.clone();
            }
            None => outcome.value = serde_json::from_str(&object.value).ok(),
        }
        if object.kind == Kind::ClusterInformation
            && outcome.state == State::Create
            && settings.calico_release.is_none()
        {
            warnings.push(
                "calico_release is not set under [datastore]: ClusterInformation default gets \
                 no calicoVersion, and calico-node will set it at start, which a per-node \
                 identity may not. Set calico_release to the version calico-node reports \
                 (e.g. \"v3.29.3\")"
                    .to_string(),
            );
        }
        outcomes.push(outcome);
    }
    if !settings.default_pool && ipv4_pools.is_empty() {
        warnings.push(
            "default_pool = false and etcd has no IPv4 pool: calico-node creates \
             default-ipv4-ippool at start unless its environment has CALICO_IPV4POOL_CIDR=none \
             or NO_DEFAULT_POOLS=true, and a per-node identity may not"
                .to_string(),
        );
    }
    if !snapshot.pools.iter().any(|(_, ipv6)| *ipv6) {
        warnings.push(
            "etcd has no IPv6 pool: on a host with IPv6, calico-node creates \
             default-ipv6-ippool at start unless its environment has CALICO_IPV6POOL_CIDR=none, \
             FELIX_IPV6SUPPORT=false or NO_DEFAULT_POOLS=true, and a per-node identity may not"
                .to_string(),
        );
    }
    Report {
        dry_run,
        calico_version: policy.calico_version,
        written: false,
        revision: snapshot.revision,
        attempts,
        objects: outcomes,
        warnings,
    }
}

/// etcd's own words: the gRPC status message (`etcdserver: permission denied`).
fn etcd_message(error: &etcd_client::Error) -> String {
    match error {
        etcd_client::Error::GRpcStatus(status) => status.message().to_string(),
        other => other.to_string(),
    }
}
