//! Signing: client certificates from checked CSRs (etcd identities on the etcd client CA, agent
//! identities on the fleet CA) and the server's own TLS certificate. The server sets every field
//! of what it signs; nothing is copied from the CSR but its public key.

use std::fmt;
use std::time::Duration;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SubjectPublicKeyInfo,
};
use time::OffsetDateTime;

use super::authority::{random_serial, validity};
use super::csr::{self, CsrRules};
use super::{CaKind, CertificateAuthority, CsrError, PkiError};

/// RFC 5280's upper bound on a Common Name (ub-common-name).
const MAX_COMMON_NAME: usize = 64;

/// A certificate signed from a CSR, with what the audit log and the renewal logic need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    pub cert_pem: String,
    /// The serial number as lowercase hex without separators, always 32 digits.
    pub serial_hex: String,
    /// Backdated by five minutes for clock skew.
    pub not_before: OffsetDateTime,
    /// `now + lifetime`, or the CA's own not_after if that comes first.
    pub not_after: OffsetDateTime,
    pub common_name: String,
    /// `sha256:` of the certificate's public key (`calseg_api::fingerprint`), as the agent
    /// that holds the key prints it.
    pub key_fingerprint: String,
    /// The signing CA's [`CertificateAuthority::fingerprint_sha256`].
    pub issuer_fingerprint: String,
}

/// A certificate together with the key the server made for it. `Debug` hides the key.
pub struct KeyedCert {
    pub cert_pem: String,
    /// PKCS#8 PEM. Secret.
    pub key_pem: String,
    pub serial_hex: String,
    pub not_after: OffsetDateTime,
}

impl fmt::Debug for KeyedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCert")
            .field("serial_hex", &self.serial_hex)
            .field("not_after", &self.not_after)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Which CA a kind of client certificate must come from, and its name in errors.
#[derive(Clone, Copy)]
enum Purpose {
    EtcdIdentity,
    Agent,
}

impl Purpose {
    fn ca(self) -> CaKind {
        match self {
            Self::EtcdIdentity => CaKind::EtcdClient,
            Self::Agent => CaKind::Fleet,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::EtcdIdentity => "etcd client",
            Self::Agent => "agent",
        }
    }
}

impl CertificateAuthority {
    /// Signs an etcd identity: `subject_cn` is the etcd user the policy gives this node for this
    /// component, and the CSR must ask for exactly that. The certificate is `CN=<subject_cn>`
    /// only, clientAuth only, CA:FALSE. Only the etcd client CA signs these.
    pub fn sign_client_csr(
        &self,
        csr_pem: &str,
        rules: &CsrRules,
        subject_cn: &str,
        lifetime: Duration,
        now: OffsetDateTime,
    ) -> Result<IssuedCert, CsrError> {
        self.sign_csr(
            Purpose::EtcdIdentity,
            csr_pem,
            rules,
            subject_cn,
            lifetime,
            now,
        )
    }

    /// Signs an agent's certificate for server <-> agent mTLS: `CN=<node_name>`, clientAuth
    /// only. Same checks as [`sign_client_csr`](Self::sign_client_csr); only the fleet CA
    /// signs these.
    pub fn sign_agent_csr(
        &self,
        csr_pem: &str,
        rules: &CsrRules,
        node_name: &str,
        lifetime: Duration,
        now: OffsetDateTime,
    ) -> Result<IssuedCert, CsrError> {
        self.sign_csr(Purpose::Agent, csr_pem, rules, node_name, lifetime, now)
    }

    fn sign_csr(
        &self,
        purpose: Purpose,
        csr_pem: &str,
        rules: &CsrRules,
        subject_cn: &str,
        lifetime: Duration,
        now: OffsetDateTime,
    ) -> Result<IssuedCert, CsrError> {
        if self.kind != purpose.ca() {
            return Err(CsrError::WrongAuthority {
                actual: self.kind,
                purpose: purpose.name(),
            });
        }
        check_common_name(subject_cn)?;
        let (not_before, not_after) = self.validity(now, lifetime)?;
        let checked = csr::check(csr_pem, rules, subject_cn)?;
        let public_key = SubjectPublicKeyInfo::from_der(&checked.spki_der)
            .map_err(|e| CsrError::Internal(format!("the CSR's public key: {e}")))?;
        let mut params = leaf_params(subject_cn, not_before, not_after);
        let serial = random_serial().map_err(|e| CsrError::Internal(e.to_string()))?;
        let serial_hex = hex::encode(serial.to_bytes());
        params.serial_number = Some(serial);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params
            .signed_by(&public_key, &self.issuer)
            .map_err(|e| CsrError::Internal(e.to_string()))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            serial_hex,
            not_before,
            not_after,
            common_name: subject_cn.to_owned(),
            key_fingerprint: calseg_api::fingerprint::of_public_key(&checked.spki_der),
            issuer_fingerprint: self.fingerprint_sha256(),
        })
    }

    /// A TLS server certificate for calseg-server from the fleet CA, with a new ECDSA P-256
    /// key: serverAuth only, each SAN a DNS name or an IP address.
    pub fn issue_server(
        &self,
        sans: &[String],
        lifetime: Duration,
        now: OffsetDateTime,
    ) -> Result<KeyedCert, PkiError> {
        if self.kind != CaKind::Fleet {
            return Err(PkiError::InvalidRequest(format!(
                "the server's TLS certificate comes from the fleet CA, not the {}",
                self.kind
            )));
        }
        if sans.is_empty() {
            return Err(PkiError::InvalidRequest(
                "the server certificate needs at least one DNS name or IP address".into(),
            ));
        }
        let (not_before, not_after) = self
            .validity(now, lifetime)
            .map_err(|e| PkiError::InvalidRequest(e.to_string()))?;
        let sans = CertificateParams::new(sans.to_vec())
            .map_err(|e| PkiError::InvalidRequest(format!("bad server name ({e})")))?
            .subject_alt_names;
        let mut params = leaf_params("calseg-server", not_before, not_after);
        let serial = random_serial()?;
        let serial_hex = hex::encode(serial.to_bytes());
        params.serial_number = Some(serial);
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| PkiError::generate("a server key", e))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| PkiError::generate("the server certificate", e))?;
        Ok(KeyedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial_hex,
            not_after,
        })
    }

    /// Validity of a certificate issued at `now`: capped at the CA's own end.
    fn validity(
        &self,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<(OffsetDateTime, OffsetDateTime), CsrError> {
        if now >= self.not_after {
            return Err(CsrError::CaExpired {
                ca: self.kind,
                not_after: self.not_after,
            });
        }
        let (not_before, not_after) =
            validity(now, lifetime).map_err(|e| CsrError::Internal(e.to_string()))?;
        Ok((not_before, not_after.min(self.not_after)))
    }
}

/// An end-entity certificate's common fields: subject CN only, CA:FALSE, digitalSignature,
/// subject and authority key identifiers. The caller sets serial, EKU and SANs.
fn leaf_params(
    cn: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.not_before = not_before;
    params.not_after = not_after;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params
}

/// A name from the policy must fit in a certificate: non-empty, at most 64 characters, no
/// control characters.
fn check_common_name(cn: &str) -> Result<(), CsrError> {
    let reason = if cn.is_empty() {
        "it is empty"
    } else if cn.chars().count() > MAX_COMMON_NAME {
        "it is longer than 64 characters"
    } else if cn.chars().any(char::is_control) {
        "it contains control characters"
    } else {
        return Ok(());
    };
    Err(CsrError::InvalidCommonName {
        cn: super::errors::quoted(cn),
        reason,
    })
}
