//! The identity service's cryptography: calseg's two CAs, CSR intake checks and signing, chain
//! verification, and writing keys to disk. Pure computation and local files: no network, no
//! database, and no hidden clock (every function that cares about time takes `now`).
//!
//! Two CAs, never one: the fleet CA signs agent certificates and the server's TLS certificate;
//! the etcd client CA signs component identities whose Common Name is the etcd user. A
//! [`CertificateAuthority`] knows its [`CaKind`] and refuses to sign for the other one.
//!
//! # Layout
//! - [`admin`]: administrator certificates (`admin:NAME`), short-lived, and the lifetime rule.
//! - `authority`: [`CertificateAuthority`] and [`CaKind`]; generating a CA; fingerprint.
//! - `import`: [`CertificateAuthority::from_pem`], with the checks for an operator's CA.
//! - [`csr`]: intake checks on a CSR ([`CsrRules`]) and [`new_csr`] to make one.
//! - `sign`: client certificates from CSRs ([`IssuedCert`]) and the server's TLS certificate.
//! - `verify`: [`verify_client_chain`], a second look at a presented client certificate.
//! - `files`: secret and public files written atomically with their final mode; [`CaFiles`].
//! - `errors`: [`PkiError`] and [`CsrError`], each with a stable `kind()`.
//! - `pem`: reading and writing PEM blocks.

pub mod admin;
mod authority;
pub mod csr;
mod errors;
mod files;
mod import;
pub(crate) mod pem;
mod sign;
mod verify;

#[cfg(test)]
mod tests;

pub(crate) use authority::whole_seconds;
pub use authority::{CA_ORGANIZATION, CaKind, CertificateAuthority};
pub use csr::{CsrRules, KeyAlgorithm, KeyAndCsr, new_csr};
pub use errors::{CsrError, PkiError};
pub use files::{
    CaFiles, Existing, FileOwner, bundle_pem, keep_retired, remove_if_present, write_file_as,
    write_public_file, write_secret_file,
};
pub use sign::{IssuedCert, KeyedCert};
pub use verify::{ClientIdentity, VerifyError, verify_client_chain};

/// The fingerprint (`sha256:<hex>` of its SubjectPublicKeyInfo, [`calseg_api::fingerprint`])
/// of the key in `csr_pem`, after the same intake checks signing runs: what `nodes approve
/// --fingerprint` must name, and what the agent prints.
pub fn csr_key_fingerprint(
    csr_pem: &str,
    rules: &CsrRules,
    subject_cn: &str,
) -> Result<String, CsrError> {
    let checked = csr::check(csr_pem, rules, subject_cn)?;
    Ok(calseg_api::fingerprint::of_public_key(&checked.spki_der))
}
