//! The fleet CAs the server holds ([`FleetCas`]): the one in force (`fleet.pem`) and, during a
//! rotation, the other one both sides also trust. Which of them signs fleet certificates, what
//! TLS clients are checked against and the bundle agents are given to trust are all read here.

use std::sync::Arc;

use calseg_api::ca::FleetRotationPhase;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::pki::CertificateAuthority;

/// The fleet CA in force, and the other one while a rotation runs.
#[derive(Debug, Clone)]
pub struct FleetCas {
    /// `fleet.pem`: what `[admin] fleet_ca` names and a backup is signed with.
    pub current: Arc<CertificateAuthority>,
    pub rotation: Option<(FleetRotationPhase, Arc<CertificateAuthority>)>,
}

impl FleetCas {
    /// No rotation: one CA signs and is trusted.
    pub fn single(current: Arc<CertificateAuthority>) -> Self {
        Self {
            current,
            rotation: None,
        }
    }

    /// The CA that signs fleet (and administrator) certificates now: the new one during the
    /// overlap, the one in force otherwise (also while rolling back).
    pub fn signer(&self) -> &Arc<CertificateAuthority> {
        match &self.rotation {
            Some((FleetRotationPhase::Overlap, next)) => next,
            _ => &self.current,
        }
    }

    /// The CA that does not sign during a rotation (old during the overlap, dropped when
    /// rolling back).
    pub fn other(&self) -> Option<&Arc<CertificateAuthority>> {
        match &self.rotation {
            Some((FleetRotationPhase::Overlap, _)) => Some(&self.current),
            Some((FleetRotationPhase::RollingBack, abandoned)) => Some(abandoned),
            None => None,
        }
    }

    /// Every CA whose client certificates the server accepts: the one in force first.
    pub fn trusted(&self) -> Vec<&Arc<CertificateAuthority>> {
        let mut cas = vec![&self.current];
        cas.extend(self.rotation.as_ref().map(|(_, ca)| ca));
        cas
    }

    /// The PEM bundle agents trust (enrollment, renewal, `GET /v1/fleet-ca`): the CA in force
    /// first, so the pin operators hold keeps matching the first certificate until `--finish`.
    pub fn bundle_pem(&self) -> String {
        crate::pki::bundle_pem(self.trusted().into_iter().map(|ca| &**ca))
    }

    /// What manifests name during a rotation: the signer's fingerprint. `None` otherwise.
    pub fn manifest_fleet_ca(&self) -> Option<String> {
        self.rotation
            .as_ref()
            .map(|_| self.signer().fingerprint_sha256())
    }

    /// The phase, when a rotation runs.
    pub fn phase(&self) -> Option<FleetRotationPhase> {
        self.rotation.as_ref().map(|(phase, _)| *phase)
    }

    /// The CA in force and the rotation (phase, other CA) by fingerprint: equal exactly when
    /// the same CAs are trusted and the same one signs.
    pub fn fingerprints(&self) -> (String, Option<(FleetRotationPhase, String)>) {
        (
            self.current.fingerprint_sha256(),
            self.rotation
                .as_ref()
                .map(|(phase, ca)| (*phase, ca.fingerprint_sha256())),
        )
    }

    /// Which trusted CA issued the (already verified) certificate `cert_der`, by its issuer
    /// name and signature.
    pub fn issuer_of(&self, cert_der: &[u8]) -> Option<&Arc<CertificateAuthority>> {
        let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
        self.trusted().into_iter().find(|ca| {
            X509Certificate::from_der(ca.cert_der()).is_ok_and(|(_, ca_cert)| {
                cert.issuer().as_raw() == ca_cert.subject().as_raw()
                    && cert.verify_signature(Some(ca_cert.public_key())).is_ok()
            })
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pki::{CaKind, CsrRules};
    use std::time::Duration;
    use time::OffsetDateTime;

    fn ca(name: &str) -> Arc<CertificateAuthority> {
        let now = OffsetDateTime::now_utc();
        Arc::new(
            CertificateAuthority::generate(CaKind::Fleet, name, Duration::from_secs(86400), now)
                .unwrap(),
        )
    }

    #[test]
    fn the_overlap_signs_from_the_new_ca_trusts_both_and_keeps_the_old_one_first() {
        let (old, new) = (ca("old"), ca("new"));
        let steady = FleetCas::single(old.clone());
        assert_eq!(
            steady.signer().fingerprint_sha256(),
            old.fingerprint_sha256()
        );
        assert_eq!(steady.manifest_fleet_ca(), None);
        assert_eq!(steady.bundle_pem().matches("BEGIN CERTIFICATE").count(), 1);

        let overlap = FleetCas {
            current: old.clone(),
            rotation: Some((FleetRotationPhase::Overlap, new.clone())),
        };
        assert_eq!(
            overlap.signer().fingerprint_sha256(),
            new.fingerprint_sha256()
        );
        assert_eq!(overlap.manifest_fleet_ca(), Some(new.fingerprint_sha256()));
        let bundle = overlap.bundle_pem();
        assert!(bundle.starts_with(old.cert_pem().trim_end()));
        assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2);

        let rolling_back = FleetCas {
            current: old.clone(),
            rotation: Some((FleetRotationPhase::RollingBack, new.clone())),
        };
        assert_eq!(
            rolling_back.signer().fingerprint_sha256(),
            old.fingerprint_sha256()
        );
        assert_eq!(
            rolling_back.other().unwrap().fingerprint_sha256(),
            new.fingerprint_sha256()
        );
    }

    #[test]
    fn the_issuer_of_a_certificate_is_found_by_its_signature_not_only_its_name() {
        let now = OffsetDateTime::now_utc();
        let (old, new) = (ca("same name"), ca("same name"));
        let csr = crate::pki::new_csr("node1", crate::pki::KeyAlgorithm::EcdsaP256).unwrap();
        let issued = new
            .sign_agent_csr(
                &csr.csr_pem,
                &CsrRules::default(),
                "node1",
                Duration::from_secs(3600),
                now,
            )
            .unwrap();
        let der = crate::pki::pem::single(&issued.cert_pem, &["CERTIFICATE"], "certificate")
            .unwrap()
            .der;
        let cas = FleetCas {
            current: old.clone(),
            rotation: Some((FleetRotationPhase::Overlap, new.clone())),
        };
        assert_eq!(
            cas.issuer_of(&der).unwrap().fingerprint_sha256(),
            new.fingerprint_sha256()
        );
        assert!(FleetCas::single(old).issuer_of(&der).is_none());
    }
}
