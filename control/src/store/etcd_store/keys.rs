//! The key layout under the store prefix (see the table in the module above), built in one
//! place. Names are escaped so that no node name can reach into another key's range, and
//! numbers are zero-padded so that key order is numeric order.

use crate::store::StoreError;
use crate::store::kv::{Key, Space};

/// The keys of one store prefix.
#[derive(Clone, Debug)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    /// `prefix` must start and end with `/`, e.g. `/calseg/`.
    pub fn new(prefix: &str) -> Result<Self, StoreError> {
        if prefix.len() < 2 || !prefix.starts_with('/') || !prefix.ends_with('/') {
            return Err(StoreError::InvalidPrefix {
                prefix: prefix.to_owned(),
            });
        }
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of a single-valued space, or the prefix of every key of a space.
    pub fn space(&self, space: Space) -> String {
        format!("{}{}", self.prefix, relative(space))
    }

    /// The key of `key` in `space`.
    pub fn key(&self, space: Space, key: &Key) -> String {
        let mut out = self.space(space);
        match key {
            Key::One => {}
            Key::Name(name) => out.push_str(&escape(name)),
            Key::Num(n) => out.push_str(&format!("{n:020}")),
            Key::Pair(a, b) => out.push_str(&format!("{}/{}", escape(a), escape(b))),
        }
        out
    }

    /// The prefix of every key of `space`, or (`IssuedByNode`) of one node's keys.
    pub fn range(&self, space: Space, within: Option<&str>) -> String {
        match within {
            Some(within) => format!("{}{}/", self.space(space), escape(within)),
            None => self.space(space),
        }
    }

    /// The space a stored key belongs to; `None` for a key this code does not know.
    pub fn space_of(&self, key: &str) -> Option<Space> {
        let relative_key = key.strip_prefix(&self.prefix)?;
        SPACES.into_iter().find(|space| {
            let rel = relative(*space);
            if rel.ends_with('/') {
                relative_key.starts_with(rel)
            } else {
                relative_key == rel
            }
        })
    }

    /// The key a leading replica holds with a lease (`server/src/ha/election.rs`): who runs
    /// now, not state. An export of a live store (`calseg-server backup`) leaves it out.
    pub fn leader(&self) -> String {
        format!("{}leader", self.prefix)
    }

    /// Present only while an import runs, or after one failed half-way.
    pub fn import_marker(&self) -> String {
        format!("{}import_in_progress", self.prefix)
    }
}

const SPACES: [Space; 15] = [
    Space::Tokens,
    Space::Nodes,
    Space::Pending,
    Space::PendingGen,
    Space::Issued,
    Space::IssuedByNode,
    Space::Audit,
    Space::AuditSeq,
    Space::Leases,
    Space::LeasesGen,
    Space::PolicyRevisions,
    Space::PolicyHead,
    Space::PolicyTexts,
    Space::Rollout,
    Space::CaRotation,
];

/// Where each space lives under the prefix: a range (ending in `/`) or a single key. No entry
/// is a prefix of another.
fn relative(space: Space) -> &'static str {
    match space {
        Space::Tokens => "tokens/",
        Space::Nodes => "nodes/",
        // The index of pending nodes: what `[api] max_pending` counts and expiry scans.
        Space::Pending => "pending/",
        // The guard every new pending node compares and bumps, so that replicas counting the
        // `pending/` range at once cannot both add the last one below the cap.
        Space::PendingGen => "pending_gen",
        Space::Issued => "issued/",
        // `issued_by_node/<node>/<serial>`: all certificates of a node, in serial order.
        Space::IssuedByNode => "issued_by_node/",
        Space::Audit => "audit/",
        // The last audit seq handed out: the counter every append compares and bumps.
        Space::AuditSeq => "audit_seq",
        Space::Leases => "leases/",
        // The guard every lease operation compares and bumps: per-key compares do not see a
        // lease that another replica inserted into the range that was counted.
        Space::LeasesGen => "leases_gen",
        Space::PolicyRevisions => "policy/revisions/",
        // The latest policy revision: the counter `record_policy` compares and bumps.
        Space::PolicyHead => "policy/head",
        Space::PolicyTexts => "policy/texts/",
        Space::Rollout => "rollout",
        Space::CaRotation => "ca_rotation",
    }
}

/// Keeps `[A-Za-z0-9._-]` and writes every other byte as `%XX`, so a name never contains `/`.
pub(super) fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The end of the range of keys that start with `prefix` (its last byte plus one).
pub(super) fn range_end(prefix: &str) -> String {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0x7f {
            end.push(last + 1);
            break;
        }
    }
    String::from_utf8(end).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn name(space: Space, keys: &Keys, name: &str) -> String {
        keys.key(space, &Key::name(name))
    }

    #[test]
    fn prefixes_must_be_slash_delimited() {
        for bad in ["", "/", "calseg/", "/calseg", "calseg"] {
            assert_eq!(
                Keys::new(bad).unwrap_err().kind(),
                "invalid_prefix",
                "{bad:?}"
            );
        }
        let keys = Keys::new("/calseg/").unwrap();
        assert_eq!(name(Space::Nodes, &keys, "a"), "/calseg/nodes/a");
    }

    #[test]
    fn names_cannot_reach_into_other_keys() {
        let keys = Keys::new("/c/").unwrap();
        assert_eq!(name(Space::Nodes, &keys, "a/b"), "/c/nodes/a%2Fb");
        let by_node = |node| keys.range(Space::IssuedByNode, Some(node));
        assert_eq!(by_node("a/b"), "/c/issued_by_node/a%2Fb/");
        assert!(!by_node("a/b").starts_with(&by_node("a")));
        let pair = Key::Pair("a/b".into(), "0f".into());
        assert_eq!(
            keys.key(Space::IssuedByNode, &pair),
            "/c/issued_by_node/a%2Fb/0f"
        );
        assert_eq!(escape("%"), "%25");
        assert_eq!(escape("w-1.example_x"), "w-1.example_x");
    }

    #[test]
    fn ranges_and_numbers_sort_as_intended() {
        assert_eq!(range_end("/c/audit/"), "/c/audit0");
        let keys = Keys::new("/c/").unwrap();
        let entry = |seq| keys.key(Space::Audit, &Key::Num(seq));
        assert!(entry(9) < entry(10));
        assert_eq!(entry(7), "/c/audit/00000000000000000007");
        assert!(
            !keys
                .space(Space::AuditSeq)
                .starts_with(&keys.space(Space::Audit))
        );
        assert!(
            !keys
                .space(Space::LeasesGen)
                .starts_with(&keys.space(Space::Leases))
        );
        let by_node = keys.range(Space::IssuedByNode, Some("n"));
        assert!(!by_node.starts_with(&keys.space(Space::Issued)));
    }

    #[test]
    fn every_key_maps_back_to_its_space() {
        let keys = Keys::new("/c/").unwrap();
        for space in SPACES {
            for key in [
                Key::One,
                Key::name("a/b"),
                Key::Num(3),
                Key::Pair("n".into(), "s".into()),
            ] {
                let single = !relative(space).ends_with('/');
                if single != (key == Key::One) {
                    continue;
                }
                assert_eq!(
                    keys.space_of(&keys.key(space, &key)),
                    Some(space),
                    "{space:?}"
                );
            }
        }
        assert_eq!(keys.space_of("/c/import_in_progress"), None);
        assert_eq!(keys.space_of("/c/newer_kind/x"), None);
    }
}
