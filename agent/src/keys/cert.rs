//! Facts read from PEM certificates: serial, validity, subject CN, public key, and the
//! `sha256:<hex>` pin of a CA certificate's DER.

use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

/// What the agent needs to know about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Lowercase hex without separators, as the server reports it.
    pub serial: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// The subject's Common Name (the etcd user), empty if none.
    pub common_name: String,
    /// SubjectPublicKeyInfo DER.
    pub public_key_der: Vec<u8>,
}

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("no PEM CERTIFICATE block found")]
    NoCertificate,
    #[error("malformed certificate: {0}")]
    Malformed(String),
}

/// The DER of the first `CERTIFICATE` block in `pem`.
pub fn first_cert_der(pem: &str) -> Result<Vec<u8>, CertError> {
    for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| CertError::Malformed(e.to_string()))?;
        if block.label == "CERTIFICATE" {
            return Ok(block.contents);
        }
    }
    Err(CertError::NoCertificate)
}

/// Reads the first certificate of `pem`.
pub fn cert_info(pem: &str) -> Result<CertInfo, CertError> {
    let der = first_cert_der(pem)?;
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| CertError::Malformed(e.to_string()))?;
    let raw = cert.raw_serial();
    let trimmed = match raw.iter().position(|b| *b != 0) {
        Some(i) => &raw[i..],
        None => raw,
    };
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("")
        .to_owned();
    Ok(CertInfo {
        serial: hex::encode(trimmed),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        common_name,
        public_key_der: cert.public_key().raw.to_vec(),
    })
}

/// The pin of a CA certificate: `sha256:` and the lowercase hex SHA-256 of its DER, as given
/// to `calseg-agent enroll --ca-hash` (and shown by the server).
pub fn ca_sha256_pin(pem: &str) -> Result<String, CertError> {
    let der = first_cert_der(pem)?;
    Ok(format!("sha256:{}", crate::install::sha256_hex(&der)))
}
