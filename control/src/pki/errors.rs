//! The errors of the PKI module: [`PkiError`] for creating, importing and saving CAs, and
//! [`CsrError`] for refusing a certificate signing request. Each has a `kind()` that is stable
//! enough to label a metric or an audit line.

use std::path::PathBuf;

use time::OffsetDateTime;

use super::CaKind;

/// Why a CA could not be created, imported, saved or loaded, or a server certificate issued.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot generate {what}: {reason}")]
    Generate { what: &'static str, reason: String },
    #[error("the CA certificate is not usable: {0}")]
    InvalidCert(String),
    #[error("the CA key is not usable: {0}")]
    InvalidKey(String),
    #[error(
        "the certificate is not a CA ({0}): give the CA certificate itself, not a leaf or an \
         intermediate without basicConstraints CA:TRUE and keyUsage keyCertSign"
    )]
    NotACa(String),
    #[error(
        "the CA key does not belong to the CA certificate: pass the key file made together \
         with that certificate"
    )]
    KeyMismatch,
    #[error("the CA certificate expired at {}: make or import a new CA", calseg_api::when::rfc3339(.not_after))]
    Expired { not_after: OffsetDateTime },
    #[error("the CA certificate is valid only from {}: check this host's clock", calseg_api::when::rfc3339(.not_before))]
    NotYetValid { not_before: OffsetDateTime },
    #[error(
        "this is calseg's {found}, but the {expected} was expected: the two CAs are never \
         interchangeable; check which files are configured for which CA"
    )]
    WrongKind { expected: CaKind, found: CaKind },
    #[error(
        "the CA subject {subject:?} cannot be reproduced exactly in issued certificates (e.g. \
         repeated or multi-valued attributes), so clients could not chain them to the CA: use a \
         CA whose subject names each attribute once"
    )]
    UnsupportedSubject { subject: String },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{path} already exists: pass --force to replace it (the old key is then lost)")]
    Exists { path: PathBuf },
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CA files {cert} and {key}: {source}")]
    Files {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: Box<PkiError>,
    },
}

impl PkiError {
    /// A short stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Generate { .. } => "generate_failed",
            Self::InvalidCert(_) => "invalid_certificate",
            Self::InvalidKey(_) => "invalid_key",
            Self::NotACa(_) => "not_a_ca",
            Self::KeyMismatch => "key_mismatch",
            Self::Expired { .. } => "ca_expired",
            Self::NotYetValid { .. } => "ca_not_yet_valid",
            Self::WrongKind { .. } => "wrong_ca_kind",
            Self::UnsupportedSubject { .. } => "unsupported_ca_subject",
            Self::InvalidRequest(_) => "invalid_request",
            Self::Exists { .. } => "exists",
            Self::Io { .. } => "io",
            Self::Files { source, .. } => source.kind(),
        }
    }

    pub(crate) fn generate(what: &'static str, reason: impl ToString) -> Self {
        Self::Generate {
            what,
            reason: reason.to_string(),
        }
    }
}

/// Why a CSR was refused. Messages go back to the agent: they say what was wrong and what to do,
/// and quote untrusted input only escaped and truncated.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    #[error("the CSR is {size} bytes, more than the {max} allowed: send one small PEM CSR")]
    TooLarge { size: usize, max: usize },
    #[error("the CSR is malformed: {0}; send one PEM block labelled CERTIFICATE REQUEST")]
    Malformed(String),
    #[error("the request holds {count} PEM blocks: send exactly one CERTIFICATE REQUEST")]
    Multiple { count: usize },
    #[error(
        "the CSR's self-signature does not verify: it was altered after signing or signed with \
         another key; make the CSR again with the key it names"
    )]
    BadSignature,
    #[error(
        "the CSR is signed with {found}, which calseg does not verify: sign it with one of \
         {supported} (e.g. `openssl req -sha256`)"
    )]
    UnsupportedSignature { found: String, supported: String },
    #[error("the CSR's key is {found}, which is not allowed: make a new key of type {allowed}")]
    KeyTypeNotAllowed { found: String, allowed: String },
    #[error(
        "the CSR asks for Common Name {asked:?}, but this identity is {allowed:?}: make the CSR \
         with exactly that Common Name (it is the etcd user)"
    )]
    WrongCommonName { asked: String, allowed: String },
    #[error("the CSR's subject has no Common Name: set it to {allowed:?}")]
    MissingCommonName { allowed: String },
    #[error(
        "the policy gives this identity the name {cn:?}, which cannot be a certificate Common \
         Name ({reason}): fix the identity name template in the policy"
    )]
    InvalidCommonName { cn: String, reason: &'static str },
    #[error("the {actual} may not sign {purpose} certificates: this is a bug in the caller")]
    WrongAuthority {
        actual: CaKind,
        purpose: &'static str,
    },
    #[error("the {ca} expired at {}: renew or replace the CA (`calseg-server init`)", calseg_api::when::rfc3339(.not_after))]
    CaExpired {
        ca: CaKind,
        not_after: OffsetDateTime,
    },
    #[error("cannot sign the certificate: {0}")]
    Internal(String),
}

impl CsrError {
    /// A short stable name for metrics and the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Malformed(_) => "malformed",
            Self::Multiple { .. } => "multiple",
            Self::BadSignature => "bad_signature",
            Self::UnsupportedSignature { .. } => "unsupported_signature_algorithm",
            Self::KeyTypeNotAllowed { .. } => "key_type_not_allowed",
            Self::WrongCommonName { .. } => "wrong_common_name",
            Self::MissingCommonName { .. } => "missing_common_name",
            Self::InvalidCommonName { .. } => "invalid_common_name",
            Self::WrongAuthority { .. } => "wrong_authority",
            Self::CaExpired { .. } => "ca_expired",
            Self::Internal(_) => "internal",
        }
    }

    /// Whether the requester is at fault (a 4xx), as opposed to the server or its policy.
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            Self::InvalidCommonName { .. }
                | Self::WrongAuthority { .. }
                | Self::CaExpired { .. }
                | Self::Internal(_)
        )
    }
}

/// Untrusted text as it may appear in an error: at most 128 characters.
pub(crate) fn quoted(text: &str) -> String {
    const MAX: usize = 128;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
