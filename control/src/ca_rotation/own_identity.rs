//! calseg's own etcd client certificate (`[etcd] cert_file`, made by `init --etcd-user`) after
//! a rotation of the etcd client CA: when the old CA signed it, calseg itself would lose etcd
//! once the operator drops the old CA from etcd's `--trusted-ca-file`. `ca rotate etcd-client
//! --finish`, run on the server host, re-issues it from the CA in force (new key, same Common
//! Name, same owner and modes); the server picks it up when it restarts.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::pki::{
    CertificateAuthority, CsrRules, Existing, FileOwner, KeyAlgorithm, PkiError, new_csr,
    verify_client_chain, write_file_as,
};

/// How long a re-issued own certificate lives (as `init` makes it: a tenth of a CA's 10 years).
const OWN_LIFETIME: Duration = Duration::from_secs(365 * 86_400);

/// What [`reissue_if_old`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum OwnIdentity {
    /// The certificate already comes from the CA in force.
    Current,
    /// Re-issued for this Common Name.
    Reissued { common_name: String },
}

/// Re-issues the certificate at `cert_file` (and its key at `key_file`) from `ca` unless `ca`
/// already signed it. Both files keep their owner and mode; each is replaced atomically.
pub fn reissue_if_old(
    cert_file: &Path,
    key_file: &Path,
    ca: &CertificateAuthority,
    now: OffsetDateTime,
) -> Result<OwnIdentity, PkiError> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| PkiError::Io { op, path, source }
    };
    let pem = std::fs::read(cert_file).map_err(io("read", cert_file))?;
    let der = x509_parser::pem::parse_x509_pem(&pem)
        .map(|(_, block)| block.contents)
        .map_err(|e| {
            PkiError::InvalidRequest(format!(
                "{}: not a PEM certificate: {e}",
                cert_file.display()
            ))
        })?;
    if verify_client_chain(&der, ca, now).is_ok() {
        return Ok(OwnIdentity::Current);
    }
    let common_name = X509Certificate::from_der(&der)
        .ok()
        .and_then(|(_, cert)| {
            cert.subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok().map(str::to_owned))
        })
        .ok_or_else(|| {
            PkiError::InvalidRequest(format!("{}: no Common Name", cert_file.display()))
        })?;
    let request = new_csr(&common_name, KeyAlgorithm::EcdsaP256)?;
    let issued = ca
        .sign_client_csr(
            &request.csr_pem,
            &CsrRules::default(),
            &common_name,
            OWN_LIFETIME,
            now,
        )
        .map_err(|e| PkiError::InvalidRequest(format!("calseg's own etcd certificate: {e}")))?;
    let cert_meta = std::fs::metadata(cert_file).map_err(io("stat", cert_file))?;
    let key_meta = std::fs::metadata(key_file).map_err(io("stat", key_file))?;
    let owner = |m: &std::fs::Metadata| FileOwner {
        uid: m.uid(),
        gid: m.gid(),
    };
    let old_key = std::fs::read(key_file).map_err(io("read", key_file))?;
    write_file_as(
        key_file,
        request.key_pem.as_bytes(),
        key_meta.mode() & 0o777,
        Some(owner(&key_meta)),
        Existing::Replace,
    )?;
    let written = write_file_as(
        cert_file,
        issued.cert_pem.as_bytes(),
        cert_meta.mode() & 0o777,
        Some(owner(&cert_meta)),
        Existing::Replace,
    );
    if let Err(error) = written {
        // Never leave a key that does not match its certificate.
        let _ = write_file_as(
            key_file,
            &old_key,
            key_meta.mode() & 0o777,
            Some(owner(&key_meta)),
            Existing::Replace,
        );
        return Err(error);
    }
    Ok(OwnIdentity::Reissued { common_name })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pki::CaKind;
    use std::os::unix::fs::PermissionsExt;

    fn ca(name: &str) -> CertificateAuthority {
        CertificateAuthority::generate(
            CaKind::EtcdClient,
            name,
            Duration::from_secs(10 * 86400),
            OffsetDateTime::now_utc(),
        )
        .unwrap()
    }

    #[test]
    fn a_certificate_of_the_old_ca_is_reissued_once_with_its_name_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (
            dir.path().join("calseg.pem"),
            dir.path().join("calseg-key.pem"),
        );
        let (old, new) = (ca("old"), ca("new"));
        let now = OffsetDateTime::now_utc();
        let request = new_csr("root", KeyAlgorithm::EcdsaP256).unwrap();
        let issued = old
            .sign_client_csr(
                &request.csr_pem,
                &CsrRules::default(),
                "root",
                OWN_LIFETIME,
                now,
            )
            .unwrap();
        write_file_as(
            &key,
            request.key_pem.as_bytes(),
            0o640,
            None,
            Existing::Refuse,
        )
        .unwrap();
        write_file_as(
            &cert,
            issued.cert_pem.as_bytes(),
            0o644,
            None,
            Existing::Refuse,
        )
        .unwrap();
        assert_eq!(
            reissue_if_old(&cert, &key, &old, now).unwrap(),
            OwnIdentity::Current
        );
        assert_eq!(
            reissue_if_old(&cert, &key, &new, now).unwrap(),
            OwnIdentity::Reissued {
                common_name: "root".into()
            }
        );
        assert_eq!(
            reissue_if_old(&cert, &key, &new, now).unwrap(),
            OwnIdentity::Current
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&key), mode(&cert)), (0o640, 0o644));
        assert_ne!(std::fs::read_to_string(&key).unwrap(), request.key_pem);
    }
}
