//! Keys and CSRs made on this host, and the facts the agent reads from certificates.
//!
//! A new key is made for every new certificate and never leaves the host: only the CSR (which
//! holds the public key) is sent. [`PrivateKeyPem`] keeps the key's PEM out of `Debug`, so a
//! stray `{:?}` or `tracing` field cannot log it.

mod cert;

pub use cert::{
    CertError, CertInfo, ca_sha256_pin, cert_ders, cert_info, der_pin, first_cert_der, signed_by,
};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use std::fmt;

/// Key types the agent makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    P256,
    P384,
}

impl KeyAlgorithm {
    /// Parses the config word (`p256`, `p384`).
    pub fn parse(word: &str) -> Option<Self> {
        match word {
            "p256" => Some(Self::P256),
            "p384" => Some(Self::P384),
            _ => None,
        }
    }

    fn rcgen(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Self::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }
}

/// A private key in PKCS#8 PEM. Never printed: `Debug` shows only that it is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyPem(String);

impl PrivateKeyPem {
    /// Wraps PEM read back from disk.
    pub fn new(pem: String) -> Self {
        Self(pem)
    }

    /// The PEM text, for writing to a file with a private mode or handing to TLS.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeyPem(<redacted>)")
    }
}

/// A fresh key and a CSR for it.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key: PrivateKeyPem,
    /// PEM PKCS#10 request with CN = the requested name; safe to send and log.
    pub csr_pem: String,
    /// SubjectPublicKeyInfo DER, to check a returned certificate is for this key.
    pub public_key_der: Vec<u8>,
}

/// Why a key or CSR could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot generate a key: {0}")]
    Generate(String),
    #[error("cannot make a CSR for CN {common_name:?}: {message}")]
    Csr {
        common_name: String,
        message: String,
    },
    #[error("the saved key is not a usable PEM key: {0}")]
    Load(String),
}

/// Makes a new key of type `alg` and a CSR with Common Name `common_name`.
pub fn generate(alg: KeyAlgorithm, common_name: &str) -> Result<NewKey, KeyError> {
    let key = KeyPair::generate_for(alg.rcgen()).map_err(|e| KeyError::Generate(e.to_string()))?;
    csr_for_pair(&key, common_name)
}

/// A CSR for a key saved earlier (PEM), e.g. the fleet key of a pending enrollment.
pub fn csr_for(key: &PrivateKeyPem, common_name: &str) -> Result<NewKey, KeyError> {
    let pair = KeyPair::from_pem(key.expose()).map_err(|e| KeyError::Load(e.to_string()))?;
    csr_for_pair(&pair, common_name)
}

fn csr_for_pair(key: &KeyPair, common_name: &str) -> Result<NewKey, KeyError> {
    let csr_err = |e: rcgen::Error| KeyError::Csr {
        common_name: common_name.to_owned(),
        message: e.to_string(),
    };
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    let csr_pem = params
        .serialize_request(key)
        .and_then(|csr| csr.pem())
        .map_err(csr_err)?;
    Ok(NewKey {
        key: PrivateKeyPem(key.serialize_pem()),
        csr_pem,
        public_key_der: rcgen::PublicKeyData::subject_public_key_info(key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() -> Result<(), KeyError> {
        for alg in [KeyAlgorithm::P256, KeyAlgorithm::P384] {
            let new = generate(alg, "calico-node.worker-1")?;
            assert!(new.key.expose().contains("PRIVATE KEY"));
            let shown = format!("{new:?} {:?}", new.key);
            assert!(!shown.contains("PRIVATE KEY"), "{shown}");
            let body = new.key.expose().lines().nth(1).unwrap_or_default();
            assert!(!shown.contains(body), "{shown}");
            assert!(new.csr_pem.contains("CERTIFICATE REQUEST"));
        }
        Ok(())
    }

    #[test]
    fn csr_for_a_saved_key_keeps_the_public_key() -> Result<(), KeyError> {
        let first = generate(KeyAlgorithm::P256, "node-1")?;
        let again = csr_for(&first.key, "node-1")?;
        assert_eq!(first.public_key_der, again.public_key_der);
        Ok(())
    }
}
