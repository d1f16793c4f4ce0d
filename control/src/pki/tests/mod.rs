//! The PKI unit tests, one file per part of the module, and their helpers: a fixed clock,
//! fresh CAs, CSRs and certificate parsing. Certificates are minted at test time.

mod authority;
mod files;
mod import;
mod intake;
mod sign;
mod verify;

use std::time::Duration;

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::pki::{CaKind, CertificateAuthority, KeyAlgorithm, new_csr, pem};

pub const DAY: Duration = Duration::from_secs(86_400);

/// The tests' "now".
pub fn now() -> OffsetDateTime {
    // 2025-03-01 12:00:00 UTC
    OffsetDateTime::from_unix_timestamp(1_740_830_400).unwrap()
}

/// A fresh CA of `kind`, valid ten years from [`now`].
pub fn ca(kind: CaKind) -> CertificateAuthority {
    CertificateAuthority::generate(kind, &format!("test {kind}"), 3650 * DAY, now()).unwrap()
}

/// A CSR PEM for `cn` with a new key of type `key`.
pub fn csr(cn: &str, key: KeyAlgorithm) -> String {
    new_csr(cn, key).unwrap().csr_pem
}

/// The DER inside a single-block PEM.
pub fn der(pem_text: &str) -> Vec<u8> {
    pem::blocks(pem_text).unwrap().remove(0).der
}

/// Re-encodes `der` as PEM with `label`.
pub fn to_pem(label: &str, der: &[u8]) -> String {
    pem::encode(label, der)
}

/// Parses a DER certificate, which must be complete.
pub fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = X509Certificate::from_der(der).unwrap();
    assert!(rest.is_empty());
    cert
}
