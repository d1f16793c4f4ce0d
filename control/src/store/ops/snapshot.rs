//! Export and import of a whole [`StoreSnapshot`], for `migrate-store`: the records come from
//! (and go into) the backend in one piece ([`Kv::dump`], [`Kv::load_empty`]); their codecs
//! and the derived entries (indexes, counters) are here.

use serde::Serialize;

use crate::store::codec::{decode, encode};
use crate::store::kv::{Key, Kv, Space};
use crate::store::snapshot::{SNAPSHOT_FORMAT, SnapshotToken, StoreSnapshot};
use crate::store::tokens::TokenRecord;
use crate::store::{NodeState, StoreError};

use super::nodes::PendingEntry;

pub(super) fn export(store: &impl Kv) -> Result<StoreSnapshot, StoreError> {
    let mut out = StoreSnapshot {
        format: SNAPSHOT_FORMAT,
        ..StoreSnapshot::default()
    };
    for (space, stored) in store.dump()? {
        let (table, key, value) = (space.name(), stored.key.as_str(), stored.value.as_slice());
        match space {
            Space::Tokens => {
                let token: TokenRecord = decode(table, key, value)?;
                out.tokens.push(SnapshotToken::from(token));
            }
            Space::Nodes => out.nodes.push(decode(table, key, value)?),
            Space::Issued => out.issued.push(decode(table, key, value)?),
            Space::Audit => out.audit.push(decode(table, key, value)?),
            Space::Leases => out.leases.push(decode(table, key, value)?),
            Space::PolicyRevisions => out.policy_revisions.push(decode(table, key, value)?),
            Space::PolicyTexts => out.policy_texts.push(decode(table, key, value)?),
            Space::Rollout => out.rollout = Some(decode(table, key, value)?),
            Space::CaRotation => out.ca_rotation = Some(decode(table, key, value)?),
            // Derived from the records above.
            Space::Pending
            | Space::PendingGen
            | Space::IssuedByNode
            | Space::AuditSeq
            | Space::LeasesGen
            | Space::PolicyHead => {}
        }
    }
    out.sort();
    Ok(out)
}

pub(super) fn import(store: &impl Kv, snapshot: &StoreSnapshot) -> Result<(), StoreError> {
    snapshot.check()?;
    store.load_empty(records(snapshot)?)
}

/// Every entry the snapshot becomes, counters and indexes included.
fn records(s: &StoreSnapshot) -> Result<Vec<(Space, Key, Vec<u8>)>, StoreError> {
    let mut out = Records(Vec::new());
    for t in &s.tokens {
        out.add(Space::Tokens, Key::name(&t.id), &TokenRecord::from(t))?;
    }
    for n in &s.nodes {
        out.add(Space::Nodes, Key::name(&n.name), n)?;
        if n.state == NodeState::Pending {
            out.add(Space::Pending, Key::name(&n.name), &PendingEntry::of(n))?;
        }
    }
    for c in &s.issued {
        out.add(Space::Issued, Key::name(&c.serial), c)?;
        let copy = Key::Pair(c.node.clone(), c.serial.clone());
        out.add(Space::IssuedByNode, copy, c)?;
    }
    for e in &s.audit {
        out.add(Space::Audit, Key::Num(e.seq), e)?;
    }
    if let Some(last) = s.audit.last() {
        out.add(Space::AuditSeq, Key::One, &last.seq)?;
    }
    for l in &s.leases {
        out.add(Space::Leases, Key::name(&l.id), l)?;
    }
    for r in &s.policy_revisions {
        out.add(Space::PolicyRevisions, Key::Num(r.revision), r)?;
    }
    if let Some(head) = s.policy_revisions.last() {
        out.add(Space::PolicyHead, Key::One, head)?;
    }
    for t in &s.policy_texts {
        out.add(Space::PolicyTexts, Key::Num(t.revision), t)?;
    }
    if let Some(rollout) = &s.rollout {
        out.add(Space::Rollout, Key::One, rollout)?;
    }
    if let Some(rotation) = &s.ca_rotation {
        out.add(Space::CaRotation, Key::One, rotation)?;
    }
    Ok(out.0)
}

struct Records(Vec<(Space, Key, Vec<u8>)>);

impl Records {
    /// Encodes `value` and appends it at `key`.
    fn add<T: Serialize>(&mut self, space: Space, key: Key, value: &T) -> Result<(), StoreError> {
        let bytes = encode(space.name(), &key.to_string(), value)?;
        self.0.push((space, key, bytes));
        Ok(())
    }
}
