//! [`CertificateAuthority`]: one CA (fleet or etcd client), its certificate and signing key,
//! and how a new one is generated. Importing lives in `import`, signing in `sign`.

use std::fmt;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;

use super::PkiError;
use super::pem;

/// Organization (O) in the subject of every CA calseg generates.
pub const CA_ORGANIZATION: &str = "calseg";

/// Backdating of not_before, so hosts whose clocks run a little behind accept new certificates.
pub(crate) const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// Which of calseg's two CAs this is. They are never interchangeable: etcd trusts only the
/// etcd client CA, and the server accepts agents only with certificates from the fleet CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaKind {
    /// Signs agent certificates and the server's TLS certificate (server <-> agent mTLS).
    Fleet,
    /// Signs component identities for etcd; etcd's `--trusted-ca-file` includes it.
    EtcdClient,
}

impl CaKind {
    /// The organizational unit (OU) recorded in the subject of a CA calseg generates.
    pub fn unit(self) -> &'static str {
        match self {
            Self::Fleet => "fleet CA",
            Self::EtcdClient => "etcd client CA",
        }
    }

    pub(crate) fn from_unit(unit: &str) -> Option<Self> {
        [Self::Fleet, Self::EtcdClient]
            .into_iter()
            .find(|kind| kind.unit() == unit)
    }
}

impl fmt::Display for CaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.unit())
    }
}

/// A CA that can sign: its certificate and its key. `Debug` shows neither the key nor the PEM.
pub struct CertificateAuthority {
    pub(crate) kind: CaKind,
    pub(crate) cert_der: Vec<u8>,
    pub(crate) cert_pem: String,
    /// The subject and key identifier as read back from the certificate, plus the key.
    pub(crate) issuer: Issuer<'static, KeyPair>,
    pub(crate) not_after: OffsetDateTime,
}

impl CertificateAuthority {
    /// A new self-signed ECDSA P-256 CA: subject `O=calseg, OU=<kind>, CN=<common_name>`,
    /// basicConstraints CA:TRUE pathlen 0, keyUsage keyCertSign + cRLSign, a subject key
    /// identifier, a random serial, valid from `now` (minus clock skew) for `lifetime`.
    pub fn generate(
        kind: CaKind,
        common_name: &str,
        lifetime: Duration,
        now: OffsetDateTime,
    ) -> Result<Self, PkiError> {
        if common_name.trim().is_empty() {
            return Err(PkiError::InvalidRequest(
                "a CA needs a non-empty Common Name".into(),
            ));
        }
        let (not_before, not_after) = validity(now, lifetime)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, CA_ORGANIZATION);
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, kind.unit());
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(random_serial()?);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| PkiError::generate("a CA key", e))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| PkiError::generate("a CA certificate", e))?;
        let issuer = Issuer::from_ca_cert_der(cert.der(), key)
            .map_err(|e| PkiError::generate("a CA certificate", e))?;
        Ok(Self {
            kind,
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            issuer,
            not_after,
        })
    }

    /// Which CA this is.
    pub fn kind(&self) -> CaKind {
        self.kind
    }

    /// The CA certificate, PEM: what clients (etcd, agents) are given to trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA's private key as PKCS#8 PEM. Secret: write it only with
    /// [`write_secret_file`](super::write_secret_file), never log it.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// `sha256:<64 lowercase hex>`: SHA-256 over the whole DER certificate (not only its public
    /// key). This is what agents pin at enrollment, like kubeadm's discovery hash; `openssl x509
    /// -outform der | sha256sum` gives the same digits.
    pub fn fingerprint_sha256(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.cert_der);
        format!("sha256:{}", hex::encode(digest))
    }

    /// End of the CA's validity; no certificate it issues outlives it.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("kind", &self.kind)
            .field("fingerprint", &self.fingerprint_sha256())
            .field("not_after", &self.not_after)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// (not_before, not_after) for a certificate made at `now` for `lifetime`, in UTC, whole
/// seconds (what the certificate can hold), with not_before backdated by [`CLOCK_SKEW`].
pub(crate) fn validity(
    now: OffsetDateTime,
    lifetime: Duration,
) -> Result<(OffsetDateTime, OffsetDateTime), PkiError> {
    let now = whole_seconds(now);
    let lifetime = time::Duration::try_from(lifetime)
        .ok()
        .filter(|l| l.is_positive())
        .ok_or_else(|| PkiError::InvalidRequest(format!("invalid lifetime {lifetime:?}")))?;
    let not_after = now
        .checked_add(lifetime)
        .filter(|t| t.year() <= 9999)
        .ok_or_else(|| PkiError::InvalidRequest(format!("lifetime {lifetime} is too long")))?;
    Ok((now - CLOCK_SKEW, not_after))
}

/// `t` in UTC without its fraction of a second.
pub(crate) fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.replace_nanosecond(0).unwrap_or(t)
}

/// A random positive 16-byte serial: 126 random bits, top bit clear (positive), next bit set so
/// every serial is exactly 16 bytes long and its hex 32 digits.
pub(crate) fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::generate("a serial number", "the system CSPRNG failed"))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// The DER certificate `der` as PEM.
pub(crate) fn cert_pem_of(der: &[u8]) -> String {
    pem::encode("CERTIFICATE", der)
}
