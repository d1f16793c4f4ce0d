//! What can stop the replay, always naming the etcd operation and the key it was for. The kind
//! is what callers branch on: a permission error is the finding (the identity is too narrow);
//! anything else means the replay could not judge.

use std::fmt;

/// Why an operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// etcd refused the operation: `etcdserver: permission denied`, or a watch cancelled for it.
    PermissionDenied,
    /// An Update lost a race (the key's ModRevision moved); Calico would retry.
    Conflict,
    /// Anything else: unreachable etcd, TLS, a timeout, an unreadable stored value.
    Datastore,
}

/// A failed etcd operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayError {
    pub kind: ErrorKind,
    /// The operation as Calico performs it: `get`, `list`, `watch`, `txn-create`, `txn-update`,
    /// `put`, `lease-grant`, `lease-keep-alive`, `connect`.
    pub operation: &'static str,
    /// The key or prefix.
    pub key: String,
    /// etcd's or the client's own words.
    pub detail: String,
}

impl ReplayError {
    /// A failure of `operation` on `key` described by `detail`; "permission denied" in the
    /// text (how etcd's gRPC status reads, `etcdserver: permission denied`) makes it a
    /// permission error.
    pub fn from_detail(operation: &'static str, key: &str, detail: String) -> Self {
        let kind = if detail.contains("permission denied") {
            ErrorKind::PermissionDenied
        } else {
            ErrorKind::Datastore
        };
        Self {
            kind,
            operation,
            key: key.to_owned(),
            detail,
        }
    }

    /// A failure from the etcd client; for etcd's own refusals, just etcd's message
    /// (`etcdserver: permission denied`).
    pub fn etcd(operation: &'static str, key: &str, error: &etcd_client::Error) -> Self {
        let detail = match error {
            etcd_client::Error::GRpcStatus(status) if !status.message().is_empty() => {
                status.message().to_owned()
            }
            other => other.to_string(),
        };
        Self::from_detail(operation, key, detail)
    }

    /// A failure that is not etcd's answer (bad stored JSON, a timeout, a closed stream).
    pub fn datastore(operation: &'static str, key: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Datastore,
            operation,
            key: key.to_owned(),
            detail: detail.into(),
        }
    }

    pub fn is_permission_denied(&self) -> bool {
        self.kind == ErrorKind::PermissionDenied
    }
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::Conflict => "update conflict",
            ErrorKind::Datastore => "failed",
        };
        write!(
            f,
            "{what}: {} {}: {}",
            self.operation, self.key, self.detail
        )
    }
}

impl std::error::Error for ReplayError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcds_permission_text_is_a_permission_error_naming_operation_and_key() {
        let e = ReplayError::from_detail("put", "/k", "etcdserver: permission denied".into());
        assert!(e.is_permission_denied());
        assert_eq!(
            e.to_string(),
            "permission denied: put /k: etcdserver: permission denied"
        );
        let other = ReplayError::from_detail("get", "/k", "transport error".into());
        assert_eq!(other.kind, ErrorKind::Datastore);
    }
}
