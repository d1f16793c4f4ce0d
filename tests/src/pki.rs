//! A throwaway certificate authority for tests, minted at test time with rcgen (no committed
//! certificate blobs).

use anyhow::Result;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SerialNumber,
};
use std::path::{Path, PathBuf};

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug)]
pub struct KeyedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Paths of a CA bundle, certificate and key written to disk, as TLS clients take them.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl KeyedCert {
    /// Writes `{name}.pem`, `{name}-key.pem` and `ca.pem` into `dir` (key mode 0600).
    pub fn write_files(&self, dir: &Path, name: &str, ca_pem: &str) -> Result<TlsFiles> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(dir)?;
        let files = TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        std::fs::write(&files.ca, ca_pem)?;
        std::fs::write(&files.cert, &self.cert_pem)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&files.key)?
            .write_all(self.key_pem.as_bytes())?;
        Ok(files)
    }
}

/// A test CA that signs server and client certificates.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM: what peers put in their trust store.
    pub cert_pem: String,
    /// The CA private key, PEM: for tests that hand the CA to calseg to import.
    pub key_pem: String,
}

impl TestCa {
    /// Creates a self-signed CA named `common_name`.
    pub fn new(common_name: &str) -> Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
            key_pem,
        })
    }

    /// A server certificate for `sans` (DNS names or IP addresses). It also carries clientAuth,
    /// because etcd reuses its server certificate when it dials itself.
    pub fn issue_server(&self, sans: &[&str]) -> Result<KeyedCert> {
        let names: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(
            DnType::CommonName,
            sans.first().copied().unwrap_or("server"),
        );
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.sign(params)
    }

    /// A client certificate whose Common Name is `common_name` (for etcd: the user name).
    pub fn issue_client(&self, common_name: &str) -> Result<KeyedCert> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    /// A CRL (PEM) signed by this CA listing `revoked` (certificates it signed) as revoked
    /// an hour ago (key compromise), valid from an hour ago for a day.
    pub fn crl(&self, revoked: &[&KeyedCert]) -> Result<String> {
        let now = time::OffsetDateTime::now_utc();
        let hour_ago = now - time::Duration::hours(1);
        let revoked_certs = revoked
            .iter()
            .map(|cert| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&serial_of(&cert.cert_pem)?),
                    revocation_time: hour_ago,
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let params = CertificateRevocationListParams {
            this_update: hour_ago,
            next_update: now + time::Duration::days(1),
            crl_number: SerialNumber::from(now.unix_timestamp() as u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }

    fn sign(&self, mut params: CertificateParams) -> Result<KeyedCert> {
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(KeyedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The serial number of a PEM certificate (big-endian, without leading zero bytes): the
/// INTEGER after the optional `[0]` version in the TBSCertificate.
fn serial_of(cert_pem: &str) -> Result<Vec<u8>> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())?;
    let (_, certificate) = der_tlv(&der, 0x30)?;
    let (_, tbs) = der_tlv(certificate, 0x30)?;
    let tbs = match tbs.first() {
        Some(0xa0) => der_tlv(tbs, 0xa0)?.0,
        _ => tbs,
    };
    let (_, serial) = der_tlv(tbs, 0x02)?;
    let start = serial.iter().position(|&b| b != 0).unwrap_or(serial.len());
    Ok(serial[start..].to_vec())
}

/// Splits the DER element at the start of `input`, which must have tag `tag`, into (what
/// follows it, its contents).
fn der_tlv(input: &[u8], tag: u8) -> Result<(&[u8], &[u8])> {
    let malformed = || anyhow::anyhow!("malformed DER certificate (expected tag {tag:#04x})");
    if input.first() != Some(&tag) {
        return Err(malformed());
    }
    let first = *input.get(1).ok_or_else(malformed)?;
    let (length, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 {
            return Err(malformed());
        }
        let bytes = input.get(2..2 + octets).ok_or_else(malformed)?;
        let length = bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b));
        (length, 2 + octets)
    };
    let contents = input.get(header..header + length).ok_or_else(malformed)?;
    Ok((&input[header + length..], contents))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn a_crl_lists_the_serial_of_the_revoked_certificate() {
        let ca = TestCa::new("crl test CA").unwrap();
        let cert = ca.issue_client("revoked").unwrap();
        let serial = serial_of(&cert.cert_pem).unwrap();
        assert!((1..=20).contains(&serial.len()), "{serial:?}");
        let crl = ca.crl(&[&cert]).unwrap();
        let der = rustls::pki_types::CertificateRevocationListDer::from_pem_slice(crl.as_bytes())
            .unwrap();
        assert!(
            der.windows(serial.len()).any(|w| w == serial.as_slice()),
            "the CRL does not hold the serial"
        );
        assert!(!ca.crl(&[]).unwrap().is_empty());
    }
}
