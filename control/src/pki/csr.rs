//! CSR intake: the checks a certificate signing request passes before anything is signed
//! (size, exactly one PEM block, DER, key type, signature algorithm, self-signature, Common
//! Name), and [`new_csr`],
//! which makes a key and a CSR the way an agent does.
//!
//! Only the CSR's public key and Common Name are used. Everything else it asks for (other
//! subject attributes, SANs, key usages, any extension) is ignored: the server decides those.

use std::fmt;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED448, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::errors::quoted;
use super::{CsrError, PkiError, pem};

/// A key type a CSR may carry, and [`new_csr`] can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EcdsaP256 => "ECDSA P-256",
            Self::EcdsaP384 => "ECDSA P-384",
            Self::Ed25519 => "Ed25519",
        })
    }
}

/// What a CSR must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrRules {
    /// Upper bound on the PEM text, checked before any parsing; a CSR is well under 2 KiB.
    pub max_pem_bytes: usize,
    /// Key types accepted. ECDSA only by default: every etcd and Go version supports it, and
    /// RSA keys are slow to make on small hosts.
    pub allowed_keys: Vec<KeyAlgorithm>,
}

impl Default for CsrRules {
    fn default() -> Self {
        Self {
            max_pem_bytes: 16 * 1024,
            allowed_keys: vec![KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384],
        }
    }
}

/// A CSR that passed intake: all that is used of it is its public key.
pub(crate) struct CheckedCsr {
    /// SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
}

/// Runs every intake check on `csr_pem`, in order: size, PEM, DER, key type, self-signature,
/// and Common Name equal to `subject_cn`.
pub(crate) fn check(
    csr_pem: &str,
    rules: &CsrRules,
    subject_cn: &str,
) -> Result<CheckedCsr, CsrError> {
    if csr_pem.len() > rules.max_pem_bytes {
        return Err(CsrError::TooLarge {
            size: csr_pem.len(),
            max: rules.max_pem_bytes,
        });
    }
    let mut blocks = pem::blocks(csr_pem).map_err(CsrError::Malformed)?;
    let block = match blocks.len() {
        0 => return Err(CsrError::Malformed("no PEM block found".into())),
        1 => blocks.remove(0),
        count => return Err(CsrError::Multiple { count }),
    };
    // RFC 7468 section 7: "NEW CERTIFICATE REQUEST" is a legacy label parsers accept.
    if !["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"].contains(&block.label.as_str()) {
        return Err(CsrError::Malformed(format!(
            "the PEM block is labelled {:?}",
            quoted(&block.label)
        )));
    }
    let csr = match X509CertificationRequest::from_der(&block.der) {
        Ok(([], csr)) => csr,
        Ok(_) => return Err(CsrError::Malformed("trailing bytes after the DER".into())),
        Err(e) => return Err(CsrError::Malformed(format!("not a PKCS#10 request ({e})"))),
    };
    let info = &csr.certification_request_info;
    key_algorithm(&info.subject_pki, &rules.allowed_keys)?;
    signature_algorithm(&csr)?;
    csr.verify_signature().map_err(|e| match e {
        // A key and hash pair the checks above let through but the verifier does not know.
        x509_parser::error::X509Error::SignatureUnsupportedAlgorithm => unsupported_signature(&csr),
        _ => CsrError::BadSignature,
    })?;
    check_common_name(&csr, subject_cn)?;
    Ok(CheckedCsr {
        spki_der: info.subject_pki.raw.to_vec(),
    })
}

/// The key type of `spki`, if it is one of `allowed`.
fn key_algorithm(
    spki: &SubjectPublicKeyInfo<'_>,
    allowed: &[KeyAlgorithm],
) -> Result<KeyAlgorithm, CsrError> {
    let alg = &spki.algorithm.algorithm;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    let (found, name) = if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        match curve {
            Some(c) if c == OID_EC_P256 => (Some(KeyAlgorithm::EcdsaP256), String::new()),
            Some(c) if c == OID_NIST_EC_P384 => (Some(KeyAlgorithm::EcdsaP384), String::new()),
            Some(c) if c == OID_NIST_EC_P521 => (None, "ECDSA P-521".to_owned()),
            Some(c) => (None, format!("EC on curve {c}")),
            None => (None, "EC without a named curve".to_owned()),
        }
    } else if *alg == OID_SIG_ED25519 {
        (Some(KeyAlgorithm::Ed25519), String::new())
    } else if *alg == OID_PKCS1_RSAENCRYPTION {
        let bits = spki.parsed().map(|k| k.key_size()).unwrap_or(0);
        (None, format!("RSA {bits}-bit"))
    } else if *alg == OID_SIG_ED448 {
        (None, "Ed448".to_owned())
    } else {
        (None, format!("of unknown type {alg}"))
    };
    match found {
        Some(key) if allowed.contains(&key) => Ok(key),
        _ => Err(CsrError::KeyTypeNotAllowed {
            found: found.map_or(name, |key| key.to_string()),
            allowed: allowed
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" or "),
        }),
    }
}

/// Signature algorithms a CSR may be signed with: ECDSA with SHA-256 or SHA-384 (what agents
/// make), and Ed25519 (for the keys [`KeyAlgorithm::Ed25519`] allows).
const SIGNATURE_ALGORITHMS: [(&str, &str); 3] = [
    ("1.2.840.10045.4.3.2", "ecdsa-with-SHA256"),
    ("1.2.840.10045.4.3.3", "ecdsa-with-SHA384"),
    ("1.3.101.112", "Ed25519"),
];

/// Names of signature algorithms a refused CSR may carry, to name them in the error.
const OTHER_SIGNATURE_ALGORITHMS: [(&str, &str); 8] = [
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1"),
    ("1.2.840.10045.4.3.1", "ecdsa-with-SHA224"),
    ("1.2.840.10045.4.3.4", "ecdsa-with-SHA512"),
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.2.840.113549.1.1.10", "RSASSA-PSS"),
    ("1.2.840.113549.1.1.11", "sha256WithRSAEncryption"),
    ("1.2.840.113549.1.1.12", "sha384WithRSAEncryption"),
    ("1.2.840.113549.1.1.13", "sha512WithRSAEncryption"),
];

/// The CSR must be signed with one of [`SIGNATURE_ALGORITHMS`]. Checked before the signature,
/// so a CSR signed with, say, ecdsa-with-SHA512 is refused for what it is, not reported as
/// altered.
fn signature_algorithm(csr: &X509CertificationRequest<'_>) -> Result<(), CsrError> {
    let oid = csr.signature_algorithm.algorithm.to_id_string();
    if SIGNATURE_ALGORITHMS.iter().any(|(known, _)| *known == oid) {
        Ok(())
    } else {
        Err(unsupported_signature(csr))
    }
}

/// [`CsrError::UnsupportedSignature`] for `csr`'s signature algorithm.
fn unsupported_signature(csr: &X509CertificationRequest<'_>) -> CsrError {
    let oid = csr.signature_algorithm.algorithm.to_id_string();
    let found = SIGNATURE_ALGORITHMS
        .iter()
        .chain(&OTHER_SIGNATURE_ALGORITHMS)
        .find(|(known, _)| *known == oid)
        .map_or_else(
            || format!("OID {oid}"),
            |(_, name)| format!("{name} ({oid})"),
        );
    CsrError::UnsupportedSignature {
        found,
        supported: SIGNATURE_ALGORITHMS
            .iter()
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The subject must hold exactly one Common Name, equal to `allowed`.
fn check_common_name(csr: &X509CertificationRequest<'_>, allowed: &str) -> Result<(), CsrError> {
    let subject = &csr.certification_request_info.subject;
    let names: Vec<_> = subject.iter_common_name().collect();
    let asked = match names.as_slice() {
        [] => {
            return Err(CsrError::MissingCommonName {
                allowed: allowed.to_owned(),
            });
        }
        [one] => one
            .as_str()
            .map_err(|_| CsrError::Malformed("the Common Name is not a string".into()))?,
        more => {
            return Err(CsrError::Malformed(format!(
                "the subject has {} Common Names; give exactly one",
                more.len()
            )));
        }
    };
    if asked == allowed {
        Ok(())
    } else {
        Err(CsrError::WrongCommonName {
            asked: quoted(asked),
            allowed: allowed.to_owned(),
        })
    }
}

/// A fresh private key and a CSR for it. `Debug` hides the key.
pub struct KeyAndCsr {
    /// PKCS#8 PEM. Secret.
    pub key_pem: String,
    /// PEM `CERTIFICATE REQUEST` whose subject is only `CN=<cn>`.
    pub csr_pem: String,
}

impl fmt::Debug for KeyAndCsr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyAndCsr")
            .field("key_pem", &"<redacted>")
            .field("csr_pem", &self.csr_pem)
            .finish()
    }
}

/// Makes a new key of type `key` and a CSR with subject `CN=<cn>` and no extensions.
pub fn new_csr(cn: &str, key: KeyAlgorithm) -> Result<KeyAndCsr, PkiError> {
    let alg = match key {
        KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
    };
    let key = KeyPair::generate_for(alg).map_err(|e| PkiError::generate("a key", e))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    let csr = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(|e| PkiError::generate("a CSR", e))?;
    Ok(KeyAndCsr {
        key_pem: key.serialize_pem(),
        csr_pem: csr,
    })
}
