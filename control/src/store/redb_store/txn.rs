//! The [`Txn`] of redb: each [`Space`] on the table that has always held it (see `tables`).
//!
//! The spaces that only etcd stores are derived here: `audit_seq` and `policy/head` are the last
//! entries of their tables, the `pending` index is read from the nodes' states, and the guards
//! are not needed (one writer at a time): their writes are ignored, as are those of the
//! `pending` index. `issued_by_node` holds serials only; its records are read from `issued`.

use redb::{ReadTransaction, ReadableMultimapTable, ReadableTable, WriteTransaction};
use serde::Deserialize;
use time::OffsetDateTime;

use super::tables::{
    AUDIT, CA_ROTATION, ISSUED, ISSUED_BY_NODE, JsonTable, LEASES, NODES, NumTable,
    POLICY_REVISIONS, POLICY_TEXTS, ROLLOUT, TOKENS,
};
use crate::store::codec::{decode, encode};
use crate::store::kv::{Key, Space, Stored, Txn};
use crate::store::ops::PendingEntry;
use crate::store::records::unix_ts;
use crate::store::snapshot::PolicyText;
use crate::store::{NodeState, StoreError};

/// The key of the one rollout record (and of the one CA rotation record).
const ROLLOUT_KEY: &str = "current";

/// A read or a write transaction.
pub(super) enum Tx<'a> {
    Read(&'a ReadTransaction),
    Write(&'a WriteTransaction),
}

/// Opens `$def` in either kind of transaction as `$t` and evaluates `$body` with it.
macro_rules! with_table {
    ($tx:expr, $open:ident($def:expr), |$t:ident| $body:expr) => {
        match $tx {
            Tx::Read(tx) => {
                let $t = tx.$open($def)?;
                $body
            }
            Tx::Write(tx) => {
                let $t = tx.$open($def)?;
                $body
            }
        }
    };
}

/// The tables keyed by name.
fn named(space: Space) -> Option<JsonTable> {
    match space {
        Space::Tokens => Some(TOKENS),
        Space::Nodes => Some(NODES),
        Space::Issued => Some(ISSUED),
        Space::Leases => Some(LEASES),
        _ => None,
    }
}

/// The tables keyed by number, with JSON values.
fn numbered(space: Space) -> Option<NumTable> {
    match space {
        Space::Audit => Some(AUDIT),
        Space::PolicyRevisions => Some(POLICY_REVISIONS),
        _ => None,
    }
}

fn stored(key: impl ToString, value: &[u8]) -> Stored {
    Stored {
        key: key.to_string(),
        value: value.to_vec(),
    }
}

/// A policy text as the other spaces' values are: JSON.
fn text_value(revision: u64, text: &str) -> Result<Stored, StoreError> {
    let key = revision.to_string();
    let text = PolicyText {
        revision,
        text: text.to_owned(),
    };
    let value = encode("policy_texts", &key, &text)?;
    Ok(Stored { key, value })
}

/// An operation asked for a key this table does not have: a bug in the operations.
fn unsupported(space: Space, key: &Key) -> StoreError {
    StoreError::Encode {
        table: space.name(),
        key: key.to_string(),
        source: serde::ser::Error::custom("no such key in the embedded store's tables"),
    }
}

/// What the `pending` index needs of a node record.
#[derive(Deserialize)]
struct NodeProbe {
    name: String,
    state: NodeState,
    #[serde(with = "unix_ts")]
    enrolled_at: OffsetDateTime,
}

impl Tx<'_> {
    fn write_tx(&self, space: Space, key: &Key) -> Result<&WriteTransaction, StoreError> {
        match self {
            Tx::Write(tx) => Ok(tx),
            Tx::Read(_) => Err(unsupported(space, key)),
        }
    }

    /// The `pending` index, derived from the nodes' states.
    fn pending(&self) -> Result<Vec<Stored>, StoreError> {
        let mut out = Vec::new();
        with_table!(self, open_table(NODES), |t| {
            for row in t.iter()? {
                let (k, v) = row?;
                let node: NodeProbe = decode("nodes", k.value(), v.value())?;
                if node.state == NodeState::Pending {
                    let entry = PendingEntry {
                        name: node.name,
                        first_seen: node.enrolled_at.unix_timestamp(),
                    };
                    let value = encode("pending", k.value(), &entry)?;
                    out.push(Stored {
                        key: k.value().to_owned(),
                        value,
                    });
                }
            }
        });
        Ok(out)
    }

    /// A node's certificates, through the index of its serials.
    fn issued_by(&self, node: &str) -> Result<Vec<Stored>, StoreError> {
        let serials: Vec<String> = with_table!(self, open_multimap_table(ISSUED_BY_NODE), |t| {
            let mut serials = Vec::new();
            for serial in t.get(node)? {
                serials.push(serial?.value().to_owned());
            }
            serials
        });
        let mut out = Vec::new();
        with_table!(self, open_table(ISSUED), |t| {
            for serial in serials {
                // The index and the table are written in one transaction: a miss is corruption.
                let Some(v) = t.get(serial.as_str())? else {
                    return Err(StoreError::Corrupt {
                        table: "issued_by_node",
                        key: format!("{node}/{serial}"),
                        source: serde::de::Error::custom(
                            "the index names a serial that is not stored",
                        ),
                    });
                };
                out.push(stored(&serial, v.value()));
            }
        });
        Ok(out)
    }
}

impl Txn for Tx<'_> {
    fn get(&mut self, space: Space, key: &Key) -> Result<Option<Stored>, StoreError> {
        if let (Some(def), Key::Name(name)) = (named(space), key) {
            return with_table!(self, open_table(def), |t| {
                Ok(t.get(name.as_str())?.map(|v| stored(name, v.value())))
            });
        }
        if let (Some(def), Key::Num(n)) = (numbered(space), key) {
            return with_table!(self, open_table(def), |t| {
                Ok(t.get(*n)?.map(|v| stored(n, v.value())))
            });
        }
        match (space, key) {
            (Space::Rollout, Key::One) => with_table!(self, open_table(ROLLOUT), |t| {
                Ok(t.get(ROLLOUT_KEY)?.map(|v| stored(ROLLOUT_KEY, v.value())))
            }),
            (Space::CaRotation, Key::One) => with_table!(self, open_table(CA_ROTATION), |t| {
                Ok(t.get(ROLLOUT_KEY)?.map(|v| stored(ROLLOUT_KEY, v.value())))
            }),
            (Space::PolicyTexts, Key::Num(n)) => {
                with_table!(self, open_table(POLICY_TEXTS), |t| {
                    t.get(*n)?.map(|v| text_value(*n, v.value())).transpose()
                })
            }
            (Space::AuditSeq, Key::One) => with_table!(self, open_table(AUDIT), |t| {
                let last = t.last()?.map(|(k, _)| k.value());
                last.map(|n| Ok(stored(n, &encode("audit_seq", "last", &n)?)))
                    .transpose()
            }),
            (Space::PolicyHead, Key::One) => {
                with_table!(self, open_table(POLICY_REVISIONS), |t| {
                    Ok(t.last()?.map(|(k, v)| stored(k.value(), v.value())))
                })
            }
            (Space::PendingGen | Space::LeasesGen, Key::One) => Ok(None),
            _ => Err(unsupported(space, key)),
        }
    }

    fn exists_unguarded(&mut self, space: Space, key: &Key) -> Result<bool, StoreError> {
        Ok(self.get(space, key)?.is_some())
    }

    fn scan(&mut self, space: Space, within: Option<&str>) -> Result<Vec<Stored>, StoreError> {
        let mut out = Vec::new();
        if let Some(def) = named(space) {
            with_table!(self, open_table(def), |t| {
                for row in t.iter()? {
                    let (k, v) = row?;
                    out.push(stored(k.value(), v.value()));
                }
            });
            return Ok(out);
        }
        if numbered(space).is_some() {
            return self.range(space, 0, usize::MAX);
        }
        match (space, within) {
            (Space::IssuedByNode, Some(node)) => self.issued_by(node),
            (Space::Pending, None) => self.pending(),
            (Space::PolicyTexts, None) => {
                with_table!(self, open_table(POLICY_TEXTS), |t| {
                    for row in t.iter()? {
                        let (k, v) = row?;
                        out.push(text_value(k.value(), v.value())?);
                    }
                });
                Ok(out)
            }
            (Space::Rollout | Space::CaRotation, None) => {
                Ok(self.get(space, &Key::One)?.into_iter().collect())
            }
            _ => Err(unsupported(space, &Key::One)),
        }
    }

    fn range(&mut self, space: Space, from: u64, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let def = numbered(space).ok_or_else(|| unsupported(space, &Key::Num(from)))?;
        let mut out = Vec::new();
        with_table!(self, open_table(def), |t| {
            for row in t.range(from..)?.take(limit) {
                let (k, v) = row?;
                out.push(stored(k.value(), v.value()));
            }
        });
        Ok(out)
    }

    fn newest(&mut self, space: Space, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let def = numbered(space).ok_or_else(|| unsupported(space, &Key::One))?;
        let mut out = Vec::new();
        with_table!(self, open_table(def), |t| {
            for row in t.iter()?.rev().take(limit) {
                let (k, v) = row?;
                out.push(stored(k.value(), v.value()));
            }
        });
        Ok(out)
    }

    fn put(&mut self, space: Space, key: Key, value: Vec<u8>) -> Result<(), StoreError> {
        let tx = self.write_tx(space, &key)?;
        if let (Some(def), Key::Name(name)) = (named(space), &key) {
            tx.open_table(def)?
                .insert(name.as_str(), value.as_slice())?;
            return Ok(());
        }
        if let (Some(def), Key::Num(n)) = (numbered(space), &key) {
            tx.open_table(def)?.insert(*n, value.as_slice())?;
            return Ok(());
        }
        match (space, &key) {
            (Space::Rollout, Key::One) => {
                tx.open_table(ROLLOUT)?
                    .insert(ROLLOUT_KEY, value.as_slice())?;
            }
            (Space::CaRotation, Key::One) => {
                tx.open_table(CA_ROTATION)?
                    .insert(ROLLOUT_KEY, value.as_slice())?;
            }
            (Space::PolicyTexts, Key::Num(n)) => {
                let text: PolicyText = decode("policy_texts", &key.to_string(), &value)?;
                tx.open_table(POLICY_TEXTS)?
                    .insert(*n, text.text.as_str())?;
            }
            (Space::IssuedByNode, Key::Pair(node, serial)) => {
                tx.open_multimap_table(ISSUED_BY_NODE)?
                    .insert(node.as_str(), serial.as_str())?;
            }
            // Derived from the tables above, or not needed with one writer at a time.
            (Space::Pending, Key::Name(_))
            | (Space::PendingGen | Space::LeasesGen | Space::AuditSeq | Space::PolicyHead, _) => {}
            _ => return Err(unsupported(space, &key)),
        }
        Ok(())
    }

    fn delete(&mut self, space: Space, key: Key) -> Result<(), StoreError> {
        let tx = self.write_tx(space, &key)?;
        match (named(space), &key) {
            (Some(def), Key::Name(name)) => {
                tx.open_table(def)?.remove(name.as_str())?;
                Ok(())
            }
            (None, Key::Name(_)) if space == Space::Pending => Ok(()),
            _ => Err(unsupported(space, &key)),
        }
    }
}
