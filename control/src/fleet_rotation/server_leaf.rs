//! The server's TLS certificate follows the fleet CA in force. After a rotation's `finish` (or a
//! restart that finds a finish cut short) a certificate calseg made from another fleet CA is
//! re-issued from the one in force, with the same names and a new key. A certificate from
//! elsewhere (`[api] cert_file` pointing at an operator's own) is left alone.

use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use rcgen::{KeyPair, PublicKeyData};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::pki::{
    CA_ORGANIZATION, CaKind, CertificateAuthority, Existing, PkiError, write_public_file,
    write_secret_file,
};

/// What [`follow`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leaf {
    /// From the CA in force, with its key.
    Current,
    /// Re-issued from the CA in force; the new serial.
    Reissued { serial_hex: String },
    /// Not made by calseg from a fleet CA: left as it is.
    NotCalsegs,
}

/// Re-issues the server certificate in `cert_file` (and its key in `key_file`) from `ca` when
/// calseg made it from another fleet CA, or its key does not match. Valid for `lifetime`.
pub fn follow(
    ca: &CertificateAuthority,
    cert_file: &Path,
    key_file: &Path,
    lifetime: Duration,
    now: OffsetDateTime,
) -> Result<Leaf, PkiError> {
    let read = |path: &Path| {
        fs::read_to_string(path).map_err(|source| PkiError::Io {
            op: "read",
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(cert_file)?;
    let key_pem = read(key_file)?;
    let bad = |why: String| PkiError::InvalidRequest(format!("{}: {why}", cert_file.display()));
    let blocks = crate::pki::pem::blocks(&cert_pem).map_err(bad)?;
    let Some(first) = blocks.into_iter().find(|b| b.label == "CERTIFICATE") else {
        return Err(bad("no certificate".into()));
    };
    let (_, cert) = X509Certificate::from_der(&first.der).map_err(|e| bad(e.to_string()))?;
    let (_, ca_cert) = X509Certificate::from_der(ca.cert_der()).map_err(|e| bad(e.to_string()))?;
    let key_matches = KeyPair::from_pem(&key_pem)
        .is_ok_and(|key| key.subject_public_key_info() == cert.public_key().raw);
    let from_ca = cert.issuer().as_raw() == ca_cert.subject().as_raw()
        && cert.verify_signature(Some(ca_cert.public_key())).is_ok();
    if from_ca && key_matches {
        return Ok(Leaf::Current);
    }
    let by_calseg = |unit: &str| {
        let issuer = cert.issuer();
        issuer
            .iter_organization()
            .any(|o| o.as_str() == Ok(CA_ORGANIZATION))
            && issuer
                .iter_organizational_unit()
                .any(|ou| ou.as_str() == Ok(unit))
    };
    if !by_calseg(CaKind::Fleet.unit()) {
        return Ok(Leaf::NotCalsegs);
    }
    let names = subject_alt_names(&cert).map_err(bad)?;
    let issued = ca.issue_server(&names, lifetime, now)?;
    write_secret_file(key_file, issued.key_pem.as_bytes(), Existing::Replace)?;
    write_public_file(
        cert_file,
        issued.cert_pem.as_bytes(),
        0o644,
        Existing::Replace,
    )?;
    Ok(Leaf::Reissued {
        serial_hex: issued.serial_hex,
    })
}

/// The DNS names and IP addresses a certificate is for, as `issue_server` takes them.
fn subject_alt_names(cert: &X509Certificate<'_>) -> Result<Vec<String>, String> {
    let Some(san) = cert.subject_alternative_name().map_err(|e| e.to_string())? else {
        return Err("the server certificate names no DNS name or IP address".into());
    };
    let mut names = Vec::new();
    for name in &san.value.general_names {
        match name {
            GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => names.push(
                    IpAddr::from(<[u8; 4]>::try_from(*bytes).unwrap_or_default()).to_string(),
                ),
                16 => names.push(
                    IpAddr::from(<[u8; 16]>::try_from(*bytes).unwrap_or_default()).to_string(),
                ),
                n => return Err(format!("an IP address of {n} bytes in subjectAltName")),
            },
            _ => {}
        }
    }
    Ok(names)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const YEAR: Duration = Duration::from_secs(365 * 86400);

    fn ca(name: &str) -> CertificateAuthority {
        CertificateAuthority::generate(CaKind::Fleet, name, YEAR, OffsetDateTime::now_utc())
            .unwrap()
    }

    #[test]
    fn a_certificate_from_the_old_fleet_ca_is_reissued_with_the_same_names() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_file, key_file) = (dir.path().join("server.pem"), dir.path().join("key.pem"));
        let now = OffsetDateTime::now_utc();
        let (old, new) = (ca("old"), ca("new"));
        let names = vec![
            "calseg.example".to_owned(),
            "127.0.0.1".into(),
            "::1".into(),
        ];
        let first = old.issue_server(&names, YEAR, now).unwrap();
        fs::write(&cert_file, &first.cert_pem).unwrap();
        fs::write(&key_file, &first.key_pem).unwrap();
        assert_eq!(
            follow(&old, &cert_file, &key_file, YEAR, now).unwrap(),
            Leaf::Current
        );
        let Leaf::Reissued { serial_hex } = follow(&new, &cert_file, &key_file, YEAR, now).unwrap()
        else {
            panic!("not re-issued")
        };
        assert_ne!(serial_hex, first.serial_hex);
        assert_ne!(fs::read_to_string(&key_file).unwrap(), first.key_pem);
        let pem = fs::read_to_string(&cert_file).unwrap();
        let der = crate::pki::pem::single(&pem, &["CERTIFICATE"], "c")
            .unwrap()
            .der;
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(subject_alt_names(&cert).unwrap(), names);
        assert_eq!(
            follow(&new, &cert_file, &key_file, YEAR, now).unwrap(),
            Leaf::Current
        );
        // A key that does not match (a cut write) is mended too.
        fs::write(&key_file, &first.key_pem).unwrap();
        assert!(matches!(
            follow(&new, &cert_file, &key_file, YEAR, now).unwrap(),
            Leaf::Reissued { .. }
        ));
    }

    #[test]
    fn a_certificate_calseg_did_not_make_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_file, key_file) = (dir.path().join("server.pem"), dir.path().join("key.pem"));
        let now = OffsetDateTime::now_utc();
        let own = rcgen::CertificateParams::new(vec!["x.example".to_owned()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = own.self_signed(&key).unwrap();
        fs::write(&cert_file, cert.pem()).unwrap();
        fs::write(&key_file, key.serialize_pem()).unwrap();
        assert_eq!(
            follow(&ca("new"), &cert_file, &key_file, YEAR, now).unwrap(),
            Leaf::NotCalsegs
        );
        assert_eq!(fs::read_to_string(&cert_file).unwrap(), cert.pem());
    }
}
