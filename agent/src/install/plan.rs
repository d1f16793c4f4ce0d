//! The dry-run answer for one target: would installing change it, and how.

use super::FileSpec;
use super::fsops::{Existing, Ids, sha256_hex};
use serde::Serialize;
use std::path::PathBuf;

/// What installing one file would do to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Nothing is there yet.
    Create,
    /// Something is there and differs in at least one of these.
    Update {
        contents: bool,
        mode: bool,
        owner: bool,
    },
    /// Already exactly as specified.
    Unchanged,
}

/// The plan for one manifest path. Hashes, never contents, so plans can be logged and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedChange {
    /// The manifest path (absolute, without the root prefix).
    pub path: PathBuf,
    pub change: Change,
    /// SHA-256 (hex) of what is installed now, if anything.
    pub old_sha256: Option<String>,
    /// SHA-256 (hex) of what would be installed.
    pub new_sha256: String,
}

impl PlannedChange {
    /// Whether installing would touch this file.
    pub fn changes(&self) -> bool {
        self.change != Change::Unchanged
    }
}

/// Compares what is installed (`existing`) with `spec` (whose owner resolved to `ids`).
pub(crate) fn compare(spec: &FileSpec, ids: Ids, existing: Option<&Existing>) -> PlannedChange {
    let new_sha256 = sha256_hex(&spec.contents);
    let Some(existing) = existing else {
        return PlannedChange {
            path: spec.path.clone(),
            change: Change::Create,
            old_sha256: None,
            new_sha256,
        };
    };
    let old_sha256 = sha256_hex(&existing.contents);
    let contents = old_sha256 != new_sha256;
    let mode = existing.mode != spec.mode;
    let owner = existing.ids != ids;
    let change = if contents || mode || owner {
        Change::Update {
            contents,
            mode,
            owner,
        }
    } else {
        Change::Unchanged
    };
    PlannedChange {
        path: spec.path.clone(),
        change,
        old_sha256: Some(old_sha256),
        new_sha256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(contents: &str, mode: u32) -> FileSpec {
        FileSpec {
            path: "/etc/calico/calico.env".into(),
            contents: contents.into(),
            owner: "root".into(),
            group: "root".into(),
            mode,
        }
    }

    #[test]
    fn compares_contents_mode_and_owner() {
        let ids = Ids { uid: 0, gid: 0 };
        let existing = Existing {
            contents: b"a".to_vec(),
            mode: 0o644,
            ids,
        };
        assert_eq!(compare(&spec("a", 0o644), ids, None).change, Change::Create);
        let same = compare(&spec("a", 0o644), ids, Some(&existing));
        assert!(!same.changes());
        let other = Ids { uid: 0, gid: 5 };
        let diff = compare(&spec("b", 0o640), other, Some(&existing));
        let all = Change::Update {
            contents: true,
            mode: true,
            owner: true,
        };
        assert_eq!(diff.change, all);
        assert_ne!(diff.old_sha256, Some(diff.new_sha256));
    }
}
