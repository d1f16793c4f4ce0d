//! [`verify_client_chain`]: does a presented client certificate come from this CA, is it
//! current, and is it for client authentication? The TLS handshake uses rustls's verifier; this
//! is the second look (defense in depth) and what tests use.

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::CertificateAuthority;
use super::import::validity_of;

/// Who a verified client certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub common_name: String,
    /// Lowercase hex, as in [`IssuedCert::serial_hex`](super::IssuedCert::serial_hex).
    pub serial_hex: String,
    pub not_after: OffsetDateTime,
}

/// Why a client certificate was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the client certificate is malformed: {0}")]
    Malformed(String),
    #[error("the client certificate was not issued by the {0}")]
    WrongIssuer(super::CaKind),
    #[error("the client certificate's signature does not verify with the {0}")]
    BadSignature(super::CaKind),
    #[error("the client certificate is not valid before {}: check the clocks", calseg_api::when::rfc3339(.0))]
    NotYetValid(OffsetDateTime),
    #[error("the client certificate expired at {}: renew it", calseg_api::when::rfc3339(.0))]
    Expired(OffsetDateTime),
    #[error("the client certificate is not for client authentication (no clientAuth EKU)")]
    NotClientAuth,
    #[error("the client certificate is a CA certificate")]
    IsCa,
    #[error("the client certificate does not name exactly one Common Name")]
    NoCommonName,
}

impl VerifyError {
    /// A short stable name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::WrongIssuer(_) => "wrong_issuer",
            Self::BadSignature(_) => "bad_signature",
            Self::NotYetValid(_) => "not_yet_valid",
            Self::Expired(_) => "expired",
            Self::NotClientAuth => "not_client_auth",
            Self::IsCa => "is_ca",
            Self::NoCommonName => "no_common_name",
        }
    }
}

/// Checks `cert_der` was signed by `ca`, is valid at `now`, is not a CA and carries the
/// clientAuth EKU; returns its Common Name and serial.
pub fn verify_client_chain(
    cert_der: &[u8],
    ca: &CertificateAuthority,
    now: OffsetDateTime,
) -> Result<ClientIdentity, VerifyError> {
    let malformed = |e: &dyn std::fmt::Display| VerifyError::Malformed(e.to_string());
    let cert = match X509Certificate::from_der(cert_der) {
        Ok(([], cert)) => cert,
        Ok(_) => return Err(malformed(&"trailing bytes after the DER")),
        Err(e) => return Err(malformed(&e)),
    };
    let (_, ca_cert) = X509Certificate::from_der(&ca.cert_der).map_err(|e| malformed(&e))?;
    if cert.issuer().as_raw() != ca_cert.subject().as_raw() {
        return Err(VerifyError::WrongIssuer(ca.kind));
    }
    cert.verify_signature(Some(ca_cert.public_key()))
        .map_err(|_| VerifyError::BadSignature(ca.kind))?;
    let (not_before, not_after) = validity_of(&cert).map_err(|e| malformed(&e))?;
    if now < not_before {
        return Err(VerifyError::NotYetValid(not_before));
    }
    if now > not_after {
        return Err(VerifyError::Expired(not_after));
    }
    if cert.is_ca() {
        return Err(VerifyError::IsCa);
    }
    let eku = cert.extended_key_usage().map_err(|e| malformed(&e))?;
    if !eku.is_some_and(|eku| eku.value.client_auth) {
        return Err(VerifyError::NotClientAuth);
    }
    let names: Vec<_> = cert.subject().iter_common_name().collect();
    let [name] = names.as_slice() else {
        return Err(VerifyError::NoCommonName);
    };
    let common_name = name.as_str().map_err(|_| VerifyError::NoCommonName)?;
    Ok(ClientIdentity {
        common_name: common_name.to_owned(),
        serial_hex: hex::encode(cert.raw_serial()),
        not_after,
    })
}
