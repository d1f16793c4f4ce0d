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

/// The DER of every `CERTIFICATE` block in `pem`, in order.
pub fn cert_ders(pem: &str) -> Result<Vec<Vec<u8>>, CertError> {
    let mut ders = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| CertError::Malformed(e.to_string()))?;
        if block.label == "CERTIFICATE" {
            ders.push(block.contents);
        }
    }
    if ders.is_empty() {
        return Err(CertError::NoCertificate);
    }
    Ok(ders)
}

/// The pin of one DER certificate (see [`ca_sha256_pin`]).
pub fn der_pin(der: &[u8]) -> String {
    format!("sha256:{}", crate::install::sha256_hex(der))
}

/// Whether the certificate `cert_pem` was signed by the CA certificate `ca_der` (its issuer is
/// the CA's subject and the signature verifies with the CA's key). Validity is not checked.
pub fn signed_by(cert_pem: &str, ca_der: &[u8]) -> Result<bool, CertError> {
    let der = first_cert_der(cert_pem)?;
    let malformed = |e: x509_parser::nom::Err<x509_parser::error::X509Error>| {
        CertError::Malformed(e.to_string())
    };
    let (_, cert) = X509Certificate::from_der(&der).map_err(malformed)?;
    let (_, ca) = X509Certificate::from_der(ca_der).map_err(malformed)?;
    Ok(cert.issuer().as_raw() == ca.subject().as_raw()
        && cert.verify_signature(Some(ca.public_key())).is_ok())
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
    Ok(der_pin(&first_cert_der(pem)?))
}
