//! The access levels etcd v3 RBAC knows, as calseg names them on the wire and in policy files.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a role may do with a key range: the three permission types of etcd v3 RBAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
    #[serde(rename = "readwrite")]
    ReadWrite,
}

impl Access {
    /// The words a user may write, for error messages.
    pub const WORDS: &'static str = "\"read\", \"write\" or \"readwrite\"";

    /// Parses the policy's access word.
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            "readwrite" => Some(Self::ReadWrite),
            _ => None,
        }
    }

    /// The word as written in policy files and plans.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::ReadWrite => "readwrite",
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_through_parse_and_serde() {
        for access in [Access::Read, Access::Write, Access::ReadWrite] {
            assert_eq!(Access::parse(access.as_str()), Some(access));
            let json = serde_json::to_string(&access).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", access.as_str()));
        }
        assert_eq!(Access::parse("rw"), None);
    }
}
