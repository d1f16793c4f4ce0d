//! The agent's report after each cycle: what it installed and how its units are. Typed end to
//! end: the agent builds it, the server checks and stores it as this type ([`LastReport`]), and
//! the inventory, the rollout's health gate and the CLI read its fields, not JSON keys.
//!
//! The JSON is the wire format and the stored format: a status is a lowercase string
//! (`"installed"`), and one this version does not know (from an older or newer agent) is kept
//! as [`IdentityStatus::Unknown`] with its text, never an error.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// One cycle's outcome on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The manifest revision the node converged to (or tried to).
    pub revision: String,
    pub identities: Vec<IdentityReport>,
    pub units: Vec<UnitReport>,
    /// Human-readable errors of this cycle; empty when it converged.
    #[serde(default)]
    pub errors: Vec<String>,
}

/// The installed state of one identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityReport {
    pub component: String,
    /// Hex serial of the installed certificate, if any.
    pub serial: Option<String>,
    /// RFC 3339 expiry of the installed certificate.
    pub not_after: Option<String>,
    pub status: IdentityStatus,
}

/// How one identity ended a cycle.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdentityStatus {
    /// A new certificate (or re-rendered config) is installed and its units are healthy.
    Installed,
    /// Nothing needed to change.
    Unchanged,
    /// etcd refused the new certificate; the old files were kept.
    VerifyFailed,
    /// A restarted unit did not stay healthy; the previous files are back.
    RolledBack,
    /// The server granted no restart lease in time; the new files were rolled back.
    LeaseDenied,
    /// Something else failed (the report's errors say what).
    Error,
    /// The manifest is outside the agent's local limits; nothing was touched.
    Refused,
    /// A status this version does not know (an older or newer agent), kept as sent.
    Unknown(String),
}

impl IdentityStatus {
    const KNOWN: [(Self, &'static str); 7] = [
        (Self::Installed, "installed"),
        (Self::Unchanged, "unchanged"),
        (Self::VerifyFailed, "verify_failed"),
        (Self::RolledBack, "rolled_back"),
        (Self::LeaseDenied, "lease_denied"),
        (Self::Error, "error"),
        (Self::Refused, "refused"),
    ];

    /// The wire form: `installed`, `verify_failed`, ... or the unknown text as sent.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Unknown(text) => text,
            known => Self::KNOWN
                .iter()
                .find(|(status, _)| status == known)
                .map_or("", |(_, text)| text),
        }
    }

    /// Whether the node holds what the manifest asked for (installed or unchanged). An unknown
    /// status is not converged: the inventory shows it rather than trusting it.
    pub fn is_converged(&self) -> bool {
        matches!(self, Self::Installed | Self::Unchanged)
    }
}

impl From<&str> for IdentityStatus {
    fn from(text: &str) -> Self {
        Self::KNOWN
            .iter()
            .find(|(_, known)| *known == text)
            .map_or_else(
                || Self::Unknown(text.to_owned()),
                |(status, _)| status.clone(),
            )
    }
}

impl From<String> for IdentityStatus {
    fn from(text: String) -> Self {
        Self::from(text.as_str())
    }
}

/// Compares with the wire form: `status == "refused"`.
impl PartialEq<&str> for IdentityStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for IdentityStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for IdentityStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for IdentityStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Self::from(text.as_str()))
    }
}

/// The state of one unit after the cycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitReport {
    pub unit: String,
    pub active_state: String,
    pub n_restarts: u32,
    /// Whether this cycle restarted it.
    pub restarted: bool,
}

/// A node's last report as the server stores and shows it: read into a [`Report`], or, when a
/// stored record holds one this version cannot read (written by another version, or damaged),
/// kept as found with the reason, so the node record still loads and the inventory shows the
/// node as failed rather than hiding it. Either way the JSON is what was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastReport {
    Read(Report),
    Unreadable {
        json: serde_json::Value,
        /// Why it is not a [`Report`], for the inventory's errors.
        error: String,
    },
}

impl LastReport {
    /// The report, if it could be read.
    pub fn report(&self) -> Option<&Report> {
        match self {
            Self::Read(report) => Some(report),
            Self::Unreadable { .. } => None,
        }
    }
}

impl From<Report> for LastReport {
    fn from(report: Report) -> Self {
        Self::Read(report)
    }
}

impl Serialize for LastReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Read(report) => report.serialize(serializer),
            Self::Unreadable { json, .. } => json.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for LastReport {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = serde_json::Value::deserialize(deserializer)?;
        Ok(match Report::deserialize(&json) {
            Ok(report) => Self::Read(report),
            Err(error) => Self::Unreadable {
                error: error.to_string(),
                json,
            },
        })
    }
}

#[cfg(test)]
mod tests;
