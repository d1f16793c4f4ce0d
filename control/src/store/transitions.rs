//! The node state machine, as pure functions every [`Store`](super::Store) backend applies inside
//! its own write transaction.
//!
//! ```text
//!            ask (no token)            admin approve
//!   (none) ──────────────► Pending ───────────────────► Approved ──revoke──► Revoked
//!     │                       │ admin deny                 ▲  ▲                │
//!     │                       ▼        admin approve       │  │                │
//!     │                    Denied ─────────────────────────┘  │                │
//!     └──────── any token ─────────────────────────────────────┤◄── node token ─┘
//! ```
//!
//! Decisions:
//! - Setting the state a node already has is a no-op, so admin commands can be retried.
//! - Revoked is final for the admin and approval flows. Only a token scoped to exactly this node
//!   (`token create --node`) brings it back: someone deliberately named it.
//! - A `--match` token enrolls new or pending nodes only: a fleet-wide token must not let its
//!   holder take over a name the server already knows (approved, denied or revoked).
//! - Nothing goes back to Pending, and a known node never asks again: an unauthenticated request
//!   must not knock an enrolled node out of Approved.
//! - A pending request binds one key: another key asking for the same name is refused, never
//!   swapped in, and approval names the key by its fingerprint (`approve_key`).
//! - Only nodes that hold no certificate (pending, denied) are deleted; deletion forgets them.

use time::OffsetDateTime;

use super::StoreError;
use super::records::{NodeRecord, NodeState, PendingAsk};
use super::tokens::TokenScope;

fn fresh(node: &str, state: NodeState, by: &str, now: OffsetDateTime) -> NodeRecord {
    NodeRecord {
        state_changed_by: by.to_owned(),
        last_seen: Some(now),
        ..NodeRecord::new(node, state, now)
    }
}

/// A request to enroll without a token: creates the node as Pending (`pending_count` is how
/// many are pending already, asked only then), or records another contact of the key already
/// pending. Another key is refused: the pending request is never replaced.
pub(crate) fn ask(
    existing: Option<NodeRecord>,
    node: &str,
    ask: &PendingAsk,
    pending_count: impl FnOnce() -> Result<usize, StoreError>,
    now: OffsetDateTime,
) -> Result<NodeRecord, StoreError> {
    let mut rec = match existing {
        None => {
            if pending_count()? >= ask.max_pending {
                return Err(StoreError::TooManyPending {
                    max: ask.max_pending,
                });
            }
            let mut rec = fresh(node, NodeState::Pending, node, now);
            rec.pending_csr = Some(ask.csr_pem.clone());
            rec.pending_key = Some(ask.key.clone());
            rec
        }
        Some(rec) if rec.state == NodeState::Pending => {
            let same = match &rec.pending_key {
                Some(key) => key.fingerprint == ask.key.fingerprint,
                // Recorded before keys were: the agent sends its saved CSR again, byte for byte.
                None => rec.pending_csr.as_deref() == Some(ask.csr_pem.as_str()),
            };
            if !same {
                return Err(StoreError::PendingKeyMismatch {
                    node: rec.name,
                    pending: rec
                        .pending_key
                        .map_or_else(|| "unknown".to_owned(), |k| k.fingerprint),
                    offered: ask.key.fingerprint.clone(),
                });
            }
            let mut rec = rec;
            rec.pending_key.get_or_insert_with(|| ask.key.clone());
            rec
        }
        Some(rec) => {
            let hint = match rec.state {
                NodeState::Denied => {
                    "an admin denied it; `calseg-server nodes approve` it if that was a mistake"
                }
                NodeState::Revoked => {
                    "re-enroll it with a token for this node: `calseg-server token create --node`"
                }
                _ => {
                    "it is already enrolled; to re-enroll it with a new key, use a token for this \
                     node: `calseg-server token create --node`"
                }
            };
            return Err(StoreError::NodeRefused {
                node: rec.name,
                state: rec.state,
                hint,
            });
        }
    };
    rec.last_seen = rec.last_seen.max(Some(now));
    Ok(rec)
}

/// An admin approves the key waiting for `rec` (pending or denied), named by its fingerprint.
/// Approving the same key again is a no-op until its fleet certificate is recorded.
pub(crate) fn approve_key(
    rec: NodeRecord,
    fingerprint: &str,
    by: &str,
    now: OffsetDateTime,
) -> Result<NodeRecord, StoreError> {
    let waiting = rec.pending_key.as_ref().map(|k| k.fingerprint.clone());
    if waiting.as_deref() != Some(fingerprint) || rec.state == NodeState::Revoked {
        return Err(StoreError::FingerprintMismatch {
            node: rec.name,
            state: rec.state,
            given: fingerprint.to_owned(),
            pending: waiting,
        });
    }
    set_state(rec, NodeState::Approved, by, now)
}

/// Checks `rec` may be deleted: it holds no certificate (pending or denied).
pub(crate) fn deletable(rec: &NodeRecord) -> Result<(), StoreError> {
    match rec.state {
        NodeState::Pending | NodeState::Denied => Ok(()),
        state => Err(StoreError::NotDeletable {
            node: rec.name.clone(),
            state,
        }),
    }
}

/// Whether `rec` is a pending request first seen `ttl` or longer before `now`.
pub(crate) fn pending_expired(rec: &NodeRecord, now: OffsetDateTime, ttl: time::Duration) -> bool {
    rec.state == NodeState::Pending && rec.enrolled_at + ttl <= now
}

/// An admin (or an auto-approval rule) changes a node's state. Returns the record as it is now.
pub(crate) fn set_state(
    mut rec: NodeRecord,
    to: NodeState,
    by: &str,
    now: OffsetDateTime,
) -> Result<NodeRecord, StoreError> {
    use NodeState::*;
    let from = rec.state;
    let refuse = |hint| {
        let node = rec.name.clone();
        Err(StoreError::InvalidTransition {
            node,
            from,
            to,
            hint,
        })
    };
    match (from, to) {
        _ if from == to => return Ok(rec),
        (Pending | Denied, Approved) => rec.approved_by = Some(by.to_owned()),
        (Pending, Denied) => rec.pending_csr = None,
        (Approved, Revoked) => {
            rec.pending_csr = None;
            // Its etcd users get new names if it ever comes back: old certificates stay dead.
            rec.generation = rec.generation.saturating_add(1);
            rec.pending_key = None;
        }
        (Revoked, _) => {
            return refuse(
                "revocation is final; re-enroll it with a token for this node: \
                 `calseg-server token create --node`",
            );
        }
        (_, Pending) => return refuse("a node becomes pending only by asking to enroll"),
        (Approved, Denied) => return refuse("it is enrolled; revoke it instead"),
        (Pending | Denied, Revoked) => {
            return refuse("it holds no certificate; deny it instead");
        }
        (Approved, Approved) | (Denied, Denied) => return Ok(rec),
    }
    rec.state = to;
    rec.state_changed_at = now;
    rec.state_changed_by = by.to_owned();
    Ok(rec)
}

/// A valid token redemption enrolls the node: new, or re-enrolled when the scope allows it.
/// Returns the approved record and the state the node had before, if any.
pub(crate) fn enroll_by_token(
    existing: Option<NodeRecord>,
    scope: &TokenScope,
    token_id: &str,
    node: &str,
    now: OffsetDateTime,
) -> Result<(NodeRecord, Option<NodeState>), StoreError> {
    let by = format!("token:{token_id}");
    let (mut rec, previous) = match existing {
        None => (fresh(node, NodeState::Approved, &by, now), None),
        Some(rec) => {
            let known = rec.state != NodeState::Pending;
            if known && matches!(scope, TokenScope::Match { .. }) {
                return Err(StoreError::NodeKnown {
                    node: rec.name,
                    state: rec.state,
                });
            }
            let previous = rec.state;
            (rec, Some(previous))
        }
    };
    rec.state = NodeState::Approved;
    rec.enrolled_at = now;
    rec.approved_by = Some(by.clone());
    rec.state_changed_at = now;
    rec.state_changed_by = by;
    rec.pending_csr = None;
    rec.pending_key = None;
    rec.last_seen = Some(now);
    Ok((rec, previous))
}
