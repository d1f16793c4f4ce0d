//! The key layout under the store prefix (see the table in the module above), built in one
//! place. Names are escaped so that no node name can reach into another key's range, and
//! numbers are zero-padded so that key order is numeric order.

use crate::store::StoreError;

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

    pub fn tokens(&self) -> String {
        format!("{}tokens/", self.prefix)
    }

    pub fn token(&self, id: &str) -> String {
        format!("{}{}", self.tokens(), escape(id))
    }

    pub fn nodes(&self) -> String {
        format!("{}nodes/", self.prefix)
    }

    pub fn node(&self, name: &str) -> String {
        format!("{}{}", self.nodes(), escape(name))
    }

    /// The index of pending nodes: what `[api] max_pending` counts and expiry scans.
    pub fn pending(&self) -> String {
        format!("{}pending/", self.prefix)
    }

    pub fn pending_entry(&self, name: &str) -> String {
        format!("{}{}", self.pending(), escape(name))
    }

    /// The guard every new pending node compares and bumps, so that replicas counting the
    /// `pending/` range at once cannot both add the last one below the cap.
    pub fn pending_gen(&self) -> String {
        format!("{}pending_gen", self.prefix)
    }

    pub fn issued(&self) -> String {
        format!("{}issued/", self.prefix)
    }

    pub fn cert(&self, serial: &str) -> String {
        format!("{}{}", self.issued(), escape(serial))
    }

    /// All certificates of `node`, in serial order.
    pub fn issued_by_node(&self, node: &str) -> String {
        format!("{}issued_by_node/{}/", self.prefix, escape(node))
    }

    pub fn node_cert(&self, node: &str, serial: &str) -> String {
        format!("{}{}", self.issued_by_node(node), escape(serial))
    }

    pub fn audit(&self) -> String {
        format!("{}audit/", self.prefix)
    }

    pub fn audit_entry(&self, seq: u64) -> String {
        format!("{}{seq:020}", self.audit())
    }

    /// The last audit seq handed out: the counter every append compares and bumps.
    pub fn audit_seq(&self) -> String {
        format!("{}audit_seq", self.prefix)
    }

    pub fn leases(&self) -> String {
        format!("{}leases/", self.prefix)
    }

    pub fn lease(&self, id: &str) -> String {
        format!("{}{}", self.leases(), escape(id))
    }

    /// The guard every lease operation compares and bumps: per-key compares do not see a lease
    /// that another replica inserted into the range that was counted.
    pub fn leases_gen(&self) -> String {
        format!("{}leases_gen", self.prefix)
    }

    pub fn policy_revisions(&self) -> String {
        format!("{}policy/revisions/", self.prefix)
    }

    pub fn policy_revision(&self, revision: u64) -> String {
        format!("{}{revision:020}", self.policy_revisions())
    }

    /// The latest policy revision: the counter [`record_policy`] compares and bumps.
    ///
    /// [`record_policy`]: crate::store::Store::record_policy
    pub fn policy_head(&self) -> String {
        format!("{}policy/head", self.prefix)
    }

    pub fn policy_texts(&self) -> String {
        format!("{}policy/texts/", self.prefix)
    }

    pub fn policy_text(&self, revision: u64) -> String {
        format!("{}{revision:020}", self.policy_texts())
    }

    pub fn rollout(&self) -> String {
        format!("{}rollout", self.prefix)
    }

    /// Present only while an import runs, or after one failed half-way.
    pub fn import_marker(&self) -> String {
        format!("{}import_in_progress", self.prefix)
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

    #[test]
    fn prefixes_must_be_slash_delimited() {
        for bad in ["", "/", "calseg/", "/calseg", "calseg"] {
            assert_eq!(
                Keys::new(bad).unwrap_err().kind(),
                "invalid_prefix",
                "{bad:?}"
            );
        }
        assert_eq!(Keys::new("/calseg/").unwrap().node("a"), "/calseg/nodes/a");
    }

    #[test]
    fn names_cannot_reach_into_other_keys() {
        let keys = Keys::new("/c/").unwrap();
        assert_eq!(keys.node("a/b"), "/c/nodes/a%2Fb");
        assert_eq!(keys.issued_by_node("a/b"), "/c/issued_by_node/a%2Fb/");
        assert!(
            !keys
                .issued_by_node("a/b")
                .starts_with(&keys.issued_by_node("a"))
        );
        assert_eq!(escape("%"), "%25");
        assert_eq!(escape("w-1.example_x"), "w-1.example_x");
    }

    #[test]
    fn ranges_and_numbers_sort_as_intended() {
        assert_eq!(range_end("/c/audit/"), "/c/audit0");
        let keys = Keys::new("/c/").unwrap();
        assert!(keys.audit_entry(9) < keys.audit_entry(10));
        assert!(!keys.audit_seq().starts_with(&keys.audit()));
        assert!(!keys.leases_gen().starts_with(&keys.leases()));
        assert!(!keys.issued_by_node("n").starts_with(&keys.issued()));
    }
}
