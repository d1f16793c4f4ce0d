//! [`ControlError`]: why the domain refused or failed an operation, in terms that carry no
//! transport. Each error has a [`Class`] (what kind of answer the caller gets), a stable `kind`
//! string (what scripts and agents branch on) and a message for people. The server maps the
//! class to an HTTP status in one place; background tasks log it.

use crate::pki::CsrError;
use crate::store::StoreError;
use std::fmt;
use std::time::Duration;

/// When an enrollment refused because too many nodes wait for approval may try again.
const PENDING_RETRY: Duration = Duration::from_secs(60);

/// What kind of answer a refusal or failure is, independent of how it travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The request itself is wrong (bad name, malformed value).
    Invalid,
    /// The caller may not do this, or the credential it showed does not allow it.
    Forbidden,
    /// The thing asked about does not exist.
    NotFound,
    /// The request conflicts with the current state (a checked transition, a duplicate).
    Conflict,
    /// The request is larger than the domain accepts.
    TooLarge,
    /// Refused for now because of a limit; see [`ControlError::retry_after`].
    Busy,
    /// A dependency (the store, etcd) is out of reach; another replica may do better.
    Unavailable,
    /// A dependency (etcd) answered, but refused or failed the operation it was asked.
    Upstream,
    /// calseg's own failure.
    Internal,
}

impl Class {
    /// True when the caller's request or standing is the reason (an HTTP 4xx), not calseg's
    /// own failure or an unreachable dependency.
    pub fn is_callers(self) -> bool {
        !matches!(self, Self::Unavailable | Self::Upstream | Self::Internal)
    }
}

/// Why a node's call (enrollment, a certificate, renewal) gave nothing.
#[derive(Debug)]
pub enum CallFailure {
    /// A decision about the caller: counted as a denial, and audited where the call audits.
    Refused(ControlError),
    /// Not a decision about the caller: a malformed request, or the store failing after the
    /// decision.
    Failed(ControlError),
}

/// A refused or failed domain operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlError {
    pub class: Class,
    /// Stable, snake_case: what agents, scripts and the audit log branch on.
    pub kind: String,
    pub message: String,
    /// When a refused caller may try again.
    pub retry_after: Option<Duration>,
}

impl ControlError {
    pub fn new(class: Class, kind: &str, message: &str) -> Self {
        Self {
            class,
            kind: kind.to_owned(),
            message: message.to_owned(),
            retry_after: None,
        }
    }

    pub fn invalid(kind: &str, message: &str) -> Self {
        Self::new(Class::Invalid, kind, message)
    }

    pub fn forbidden(kind: &str, message: &str) -> Self {
        Self::new(Class::Forbidden, kind, message)
    }

    pub fn not_found(kind: &str, message: &str) -> Self {
        Self::new(Class::NotFound, kind, message)
    }

    pub fn conflict(kind: &str, message: &str) -> Self {
        Self::new(Class::Conflict, kind, message)
    }

    pub fn unavailable(kind: &str, message: &str) -> Self {
        Self::new(Class::Unavailable, kind, message)
    }

    pub fn internal(message: &str) -> Self {
        Self::new(Class::Internal, "internal", message)
    }

    /// An internal error of `what` (e.g. "writing the new CA"), for `map_err`.
    pub fn internal_at<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> Self + '_ {
        move |error| Self::internal(&format!("{what}: {error}"))
    }

    /// The same error, telling the caller when to try again.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind)
    }
}

impl std::error::Error for ControlError {}

impl From<StoreError> for ControlError {
    fn from(error: StoreError) -> Self {
        let class = match error.kind() {
            "malformed_token" | "invalid_scope" | "invalid_ttl" | "invalid_serial" => {
                Class::Invalid
            }
            "unknown_token"
            | "bad_secret"
            | "token_expired"
            | "token_exhausted"
            | "node_not_allowed"
            | "token_already_used_by_node"
            | "node_known"
            | "node_refused"
            | "lease_not_held" => Class::Forbidden,
            "unknown_node" | "unknown_lease" => Class::NotFound,
            "lease_life_exceeded"
            | "invalid_transition"
            | "duplicate_serial"
            | "store_not_empty"
            | "pending_key_mismatch"
            | "fingerprint_mismatch"
            | "node_not_deletable" => Class::Conflict,
            // Too many nodes wait for approval: refused for now, not for good.
            "too_many_pending" => Class::Unavailable,
            "restart_budget_full" => Class::Busy,
            // etcd out of reach or too busy from this replica: another replica may do better,
            // and agents fail over.
            "store_unavailable" | "store_contention" => Class::Unavailable,
            _ => Class::Internal,
        };
        let mut failure = Self::new(class, error.kind(), &error.to_string());
        match error {
            StoreError::BudgetFull {
                retry_after_hint, ..
            } => failure.retry_after = Some(retry_after_hint),
            StoreError::TooManyPending { .. } => failure.retry_after = Some(PENDING_RETRY),
            _ => {}
        }
        failure
    }
}

impl From<CsrError> for ControlError {
    fn from(error: CsrError) -> Self {
        let class = match &error {
            CsrError::WrongCommonName { .. } => Class::Forbidden,
            CsrError::TooLarge { .. } => Class::TooLarge,
            e if e.is_client_error() => Class::Invalid,
            _ => Class::Internal,
        };
        Self::new(class, error.kind(), &error.to_string())
    }
}

impl From<tokio::task::JoinError> for ControlError {
    fn from(_: tokio::task::JoinError) -> Self {
        Self::internal("a store operation was interrupted")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_keep_their_kind_and_a_full_budget_says_when_to_retry() {
        let full = StoreError::BudgetFull {
            scope: "the fleet".into(),
            held: 1,
            limit: 1,
            retry_after_hint: Duration::from_secs(7),
        };
        let error = ControlError::from(full);
        assert_eq!(
            (error.class, error.kind.as_str()),
            (Class::Busy, "restart_budget_full")
        );
        assert_eq!(error.retry_after, Some(Duration::from_secs(7)));
        let gone = ControlError::from(StoreError::UnknownNode { node: "w-9".into() });
        assert_eq!(
            (gone.class, gone.kind.as_str()),
            (Class::NotFound, "unknown_node")
        );
    }

    #[test]
    fn refusals_about_pending_nodes_are_conflicts_and_a_full_queue_is_for_now() {
        let full = ControlError::from(StoreError::TooManyPending { max: 100 });
        assert_eq!(full.class, Class::Unavailable);
        assert_eq!(full.retry_after, Some(PENDING_RETRY));
        let gone = ControlError::from(StoreError::NotDeletable {
            node: "w-1".into(),
            state: crate::store::NodeState::Approved,
        });
        assert_eq!(gone.class, Class::Conflict);
    }
}
