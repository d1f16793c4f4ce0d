//! The JSON records kept in the state directory. None holds key material.

use crate::install::InstallReceipt;
use calseg_api::manifest::{IdentityFiles, Render};
use calseg_api::report::Report;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// What one identity has installed, as of the last install that stuck. Compared with the
/// manifest to decide whether the policy changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledIdentity {
    pub component: String,
    pub etcd_user: String,
    pub files: IdentityFiles,
    pub render: Render,
    pub endpoints: Vec<String>,
    /// SHA-256 (hex) of the CA bundle installed as the identity's CA file.
    pub ca_sha256: String,
    /// Serial (lowercase hex) of the installed certificate.
    pub serial: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// The fingerprint of the CA that signed the certificate, as the server said when it
    /// signed; absent for certificates from older servers (and records of older agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// Receipts of an install whose units are not confirmed yet. Written after installing and
/// before restarting; removed when the cycle ends. Found at start, it means the agent died
/// in between: the agent rolls the receipts back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// By component, in install order.
    pub receipts: BTreeMap<String, Vec<InstallReceipt>>,
}

/// How a cycle ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Everything was already as the manifest says; nothing was touched.
    Unchanged,
    /// Files were installed (and units restarted) and everything converged.
    Changed,
    /// At least one identity or unit failed; see the errors.
    Failed,
    /// The server could not be reached; the host kept its last good state.
    Unreachable,
    /// Stopped by a signal before installing anything.
    Interrupted,
    /// The manifest is outside agent.toml's limits: nothing was installed or restarted.
    Refused,
    /// An operator revoked this node: the server refuses it and its etcd identities are gone.
    Revoked,
}

impl Outcome {
    /// The exit status of `calseg-agent once` for this outcome.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Unchanged => 0,
            Self::Changed => 2,
            Self::Failed | Self::Interrupted | Self::Refused => crate::cli::EXIT_FAILED,
            Self::Unreachable => crate::cli::EXIT_UNREACHABLE,
            Self::Revoked => crate::cli::EXIT_REVOKED,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unchanged => "unchanged",
            Self::Changed => "changed",
            Self::Failed => "failed",
            Self::Unreachable => "unreachable",
            Self::Interrupted => "interrupted",
            Self::Refused => "refused",
            Self::Revoked => "revoked",
        }
    }
}

/// The last cycle, for `calseg-agent status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleRecord {
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    pub outcome: Outcome,
    /// What was (or would have been) reported to the server.
    pub report: Option<Report>,
    /// Errors of the cycle, including those that kept it from producing a report.
    pub errors: Vec<String>,
}

/// What the agent needs to do when the server revoked this node (`revoked.json`).
pub const REVOKED_WHAT_TO_DO: &str = "this node's etcd identities are gone; re-enroll it with a \
     new node token: on the server `calseg-server token create --node NODE`, here \
     `calseg-agent enroll --force --token ...`";

/// The server said this node was revoked (403 `node_revoked`). Kept until a new enrollment
/// (or an answer that is not a refusal) removes it, so the agent logs the revocation once, the
/// daemon stops asking, and `status` says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedRecord {
    /// When the agent first learned it.
    #[serde(with = "time::serde::rfc3339")]
    pub learned_at: OffsetDateTime,
    /// The server that said so.
    pub server: String,
    /// The server's message.
    pub message: String,
}
