//! [`StoreError`]: every way a store operation can fail, with a stable [`StoreError::kind`] for
//! metrics, logs and the HTTP error mapping. Messages say what was wrong and what to do.
//!
//! No variant ever carries a token secret or its hash: only the public token id.

use std::path::PathBuf;

use time::OffsetDateTime;

use super::records::NodeState;

/// An error from a [`Store`](super::Store) operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The presented string is not of the form `<id>.<secret>` (8 + 64 hex digits).
    #[error(
        "malformed enrollment token: expected `<8 hex id>.<64 hex secret>`; copy the whole token \
         printed by `calseg-server token create`"
    )]
    MalformedToken,
    /// No token with this id exists (never created, deleted, or another server's).
    #[error(
        "unknown enrollment token {id}: it was deleted or never existed; create one with \
         `calseg-server token create`"
    )]
    UnknownToken { id: String },
    /// The id exists but the secret does not match.
    #[error("enrollment token {id}: wrong secret; copy the whole token printed at creation")]
    BadSecret { id: String },
    /// The token's lifetime is over.
    #[error(
        "enrollment token {id} expired at {}; create a new one with \
         `calseg-server token create`", calseg_api::when::rfc3339(.expired_at)
    )]
    Expired {
        id: String,
        expired_at: OffsetDateTime,
    },
    /// The token has been used as many times as it allows (once for a node-scoped token).
    #[error(
        "enrollment token {id} is used up ({uses} of {uses_max} uses); create a new one with \
         `calseg-server token create`"
    )]
    Exhausted {
        id: String,
        uses: usize,
        uses_max: u32,
    },
    /// The token's scope does not cover this node name.
    #[error(
        "node {node:?} may not enroll with this token (it is scoped to {scope}); create a token \
         for it with `calseg-server token create --node {node}`"
    )]
    NodeNotAllowed { node: String, scope: String },
    /// A match-scope token was already used by this node; each node may use it once.
    #[error(
        "node {node:?} already enrolled with token {id}, which each node may use once; to \
         re-enroll it, create a token for it with `calseg-server token create --node {node}`"
    )]
    AlreadyUsedByNode { id: String, node: String },
    /// A match-scope token may only enroll nodes the server does not know as enrolled, denied or
    /// revoked: a fleet-wide token must not take over an existing node's identity.
    #[error(
        "node {node:?} is already known ({state}); a --match token cannot take it over; use \
         `calseg-server token create --node {node}` to re-enroll it deliberately"
    )]
    NodeKnown { node: String, state: NodeState },
    /// The token scope given at creation is unusable (bad glob, zero uses, empty name).
    #[error("invalid token scope: {reason}")]
    InvalidScope { reason: String },
    /// The token lifetime is not positive or overflows the calendar.
    #[error("invalid token lifetime: {reason}")]
    InvalidTtl { reason: String },
    /// No node with this name is known.
    #[error("unknown node {node:?}; list nodes with `calseg-server nodes list`")]
    UnknownNode { node: String },
    /// The approval flow refuses a node in this state (denied, revoked, or already enrolled).
    #[error("node {node:?} is {state}: {hint}")]
    NodeRefused {
        node: String,
        state: NodeState,
        hint: &'static str,
    },
    /// A pending node was asked for by another key: a request never replaces the pending one.
    #[error(
        "node {node:?} already has a pending enrollment request for another key ({pending}); \
         this request's key {offered} was refused. A request never replaces a pending one: if \
         this is the real node (its agent prints its key's fingerprint), delete the other \
         request with `calseg-server nodes delete {node}` and let the agent ask again"
    )]
    PendingKeyMismatch {
        node: String,
        pending: String,
        offered: String,
    },
    /// `[api] max_pending` pending requests are waiting already.
    #[error(
        "{max} enrollment requests are already waiting for approval ([api] max_pending); \
         approve, deny or delete some (`calseg-server nodes list`), or enroll with a token"
    )]
    TooManyPending { max: usize },
    /// Approval names a key that is not the one waiting (or none is waiting).
    #[error(
        "node {node:?} ({state}): {}",
        match pending {
            Some(pending) => format!(
                "the key waiting for approval is {pending}, not {given:?}; check the \
                 fingerprint the agent on {node} printed, then `calseg-server nodes approve \
                 {node} --fingerprint {pending}`"
            ),
            None => "no key is waiting for approval; the node's agent must ask to enroll first \
                     (`calseg-agent enroll` without a token)".to_owned(),
        }
    )]
    FingerprintMismatch {
        node: String,
        state: NodeState,
        given: String,
        pending: Option<String>,
    },
    /// Only nodes that hold no certificate (pending, denied) are deleted.
    #[error(
        "node {node:?} is {state}: only pending or denied nodes are deleted; to take an \
         enrolled node's identities away use `calseg-server nodes revoke {node}`"
    )]
    NotDeletable { node: String, state: NodeState },
    /// A state change that the node state machine does not allow.
    #[error("node {node:?} cannot go from {from} to {to}: {hint}")]
    InvalidTransition {
        node: String,
        from: NodeState,
        to: NodeState,
        hint: &'static str,
    },
    /// A certificate serial that is already recorded: serials must never repeat.
    #[error(
        "certificate serial {serial} is already recorded (for node {node:?}); serials must be \
         unique: this is a bug in serial generation, report it"
    )]
    DuplicateSerial { serial: String, node: String },
    /// A serial that is not a non-empty string of hex digits.
    #[error("certificate serial {serial:?} is not hexadecimal")]
    InvalidSerial { serial: String },
    /// Another process (or another store in this process) holds the state file.
    #[error(
        "state file {} is already open by another calseg-server; stop the other server, or give \
         this one its own state file", path.display()
    )]
    AlreadyOpen { path: PathBuf },
    /// The state file could not be created or opened.
    #[error("cannot open state file {}: {source}; check that its directory exists and is \
             writable by the calseg user", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The state file was written by a newer calseg with a schema this one does not know.
    #[error(
        "state file schema version {found} is newer than this calseg-server supports \
         ({supported}); upgrade calseg-server"
    )]
    SchemaTooNew { found: u64, supported: u64 },
    /// A stored record does not decode: the file was edited or corrupted.
    #[error(
        "corrupt record {key:?} in table {table}: {source}; restore the state file from backup"
    )]
    Corrupt {
        table: &'static str,
        key: String,
        source: serde_json::Error,
    },
    /// The restart budget is in use: no lease until one is released or expires.
    #[error(
        "restart budget of {scope} is full ({held} of {limit} leases live); retry in about \
         {}s", retry_after_hint.as_secs()
    )]
    BudgetFull {
        /// `the fleet` or `host group hosts[<index>]`.
        scope: String,
        held: u32,
        limit: u32,
        /// When the earliest live lease that would free a slot expires (at least 1 s).
        retry_after_hint: std::time::Duration,
    },
    /// No live lease with this id: never granted, released, or expired.
    #[error("no live restart lease {id}: it was released or expired; ask for a new lease")]
    UnknownLease { id: String },
    /// The lease has lived its longest: it ends at its cap and is not renewed.
    #[error(
        "restart lease {id} of node {node:?} may live at most {max_life_secs}s from its grant \
         ([rollout] max_lease_life) and ends at {}: it is not renewed again; \
         finish the restart and release it, so other nodes get their turn",
        calseg_api::when::unix(*.ends_at).unwrap_or_else(|| format!("unix time {}", .ends_at))
    )]
    LeaseLifeExceeded {
        id: String,
        node: String,
        max_life_secs: u64,
        ends_at: i64,
    },
    /// The lease belongs to another node.
    #[error("restart lease {id} is not held by node {node:?}; only its holder may change it")]
    LeaseNotHeld { id: String, node: String },
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed; check that /dev/urandom is readable")]
    Random,
    /// A record could not be encoded as JSON (a bug: records are plain data).
    #[error("cannot encode record {key:?} for table {table}: {source}; this is a bug, report it")]
    Encode {
        table: &'static str,
        key: String,
        source: serde_json::Error,
    },
    /// The storage engine failed (I/O error, full disk, corruption).
    #[error("state store: {0}; check disk space and the state file's health")]
    Backend(#[from] redb::Error),
    /// etcd did not answer (unreachable, no quorum, timed out) even after retries. The
    /// operation may or may not have been applied when this happens on its final write.
    #[error(
        "etcd store at {endpoints}: {what} failed: {reason}; check that a quorum of etcd members \
         is up and reachable from this server"
    )]
    Unavailable {
        endpoints: String,
        what: String,
        reason: String,
    },
    /// etcd answered with a refusal that a retry does not change (permission denied, request
    /// too large, bad TLS files).
    #[error(
        "etcd store at {endpoints}: {what} was refused: {reason}; check the server's etcd \
         certificate, its role's grants on the store prefix, and etcd's request size limit"
    )]
    EtcdRefused {
        endpoints: String,
        what: String,
        reason: String,
    },
    /// Other replicas changed the same records every time this one tried to commit.
    #[error(
        "etcd store: {what} gave up after {attempts} attempts because other servers kept \
         changing the same records; retry the request"
    )]
    Contention { what: String, attempts: u32 },
    /// The etcd store prefix is not of the form `/name/`.
    #[error(
        "etcd store prefix {prefix:?} must start and end with '/', e.g. \"/calseg/\"; fix \
         the store prefix in server.toml"
    )]
    InvalidPrefix { prefix: String },
    /// An import found records in the target store: it only writes into an empty store.
    #[error(
        "cannot import into {store}: it already holds {holds}; import only into an empty store \
         (a new file, or an etcd prefix with no keys)"
    )]
    NotEmpty { store: String, holds: String },
    /// A snapshot to import is inconsistent (duplicate keys, unknown format).
    #[error("invalid store snapshot: {reason}")]
    InvalidSnapshot { reason: String },
    /// An import into etcd started and did not finish: the prefix holds a partial copy.
    #[error(
        "etcd store {store} holds an unfinished import (marker key {marker}); delete the prefix \
         (`etcdctl del --prefix {store}`) and run the import again"
    )]
    ImportIncomplete { store: String, marker: String },
}

impl StoreError {
    /// A short stable label: use it in metrics, log fields and the HTTP error mapping.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MalformedToken => "malformed_token",
            Self::UnknownToken { .. } => "unknown_token",
            Self::BadSecret { .. } => "bad_secret",
            Self::Expired { .. } => "token_expired",
            Self::Exhausted { .. } => "token_exhausted",
            Self::NodeNotAllowed { .. } => "node_not_allowed",
            Self::AlreadyUsedByNode { .. } => "token_already_used_by_node",
            Self::NodeKnown { .. } => "node_known",
            Self::InvalidScope { .. } => "invalid_scope",
            Self::InvalidTtl { .. } => "invalid_ttl",
            Self::UnknownNode { .. } => "unknown_node",
            Self::NodeRefused { .. } => "node_refused",
            Self::InvalidTransition { .. } => "invalid_transition",
            Self::PendingKeyMismatch { .. } => "pending_key_mismatch",
            Self::TooManyPending { .. } => "too_many_pending",
            Self::FingerprintMismatch { .. } => "fingerprint_mismatch",
            Self::NotDeletable { .. } => "node_not_deletable",
            Self::DuplicateSerial { .. } => "duplicate_serial",
            Self::InvalidSerial { .. } => "invalid_serial",
            Self::AlreadyOpen { .. } => "already_open",
            Self::Open { .. } => "open_failed",
            Self::SchemaTooNew { .. } => "schema_too_new",
            Self::Corrupt { .. } => "corrupt_record",
            Self::Encode { .. } => "encode",
            Self::BudgetFull { .. } => "restart_budget_full",
            Self::UnknownLease { .. } => "unknown_lease",
            Self::LeaseNotHeld { .. } => "lease_not_held",
            Self::LeaseLifeExceeded { .. } => "lease_life_exceeded",
            Self::Random => "random",
            Self::Backend(_) => "backend",
            Self::Unavailable { .. } => "store_unavailable",
            Self::EtcdRefused { .. } => "store_refused",
            Self::Contention { .. } => "store_contention",
            Self::InvalidPrefix { .. } => "invalid_prefix",
            Self::NotEmpty { .. } => "store_not_empty",
            Self::InvalidSnapshot { .. } => "invalid_snapshot",
            Self::ImportIncomplete { .. } => "import_incomplete",
        }
    }
}

/// redb's per-operation errors all convert into its umbrella [`redb::Error`].
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self::Backend(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
