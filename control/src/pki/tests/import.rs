//! Importing a CA from PEM: an operator's CA works; every bad pair is refused with its reason.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

use super::*;
use crate::pki::{CsrRules, PkiError, verify_client_chain};

/// A CA as an operator might have made it (cfssl, openssl): another subject, no pathlen.
fn foreign_ca(
    alg: &'static rcgen::SignatureAlgorithm,
    not_after: OffsetDateTime,
) -> (String, String) {
    let key = KeyPair::generate_for(alg).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CountryName, "DE");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Example Corp");
    params
        .distinguished_name
        .push(DnType::CommonName, "etcd-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now() - 365 * DAY;
    params.not_after = not_after;
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn import(kind: CaKind, cert: &str, key: &str) -> Result<CertificateAuthority, PkiError> {
    CertificateAuthority::from_pem(kind, cert, key, now())
}

#[test]
fn a_generated_ca_round_trips() {
    let original = ca(CaKind::EtcdClient);
    let imported = import(CaKind::EtcdClient, original.cert_pem(), &original.key_pem()).unwrap();
    assert_eq!(imported.fingerprint_sha256(), original.fingerprint_sha256());
    assert_eq!(imported.not_after(), original.not_after());
    let csr = csr("cni-plugin.worker-1", KeyAlgorithm::EcdsaP256);
    let issued = imported
        .sign_client_csr(
            &csr,
            &CsrRules::default(),
            "cni-plugin.worker-1",
            DAY,
            now(),
        )
        .unwrap();
    verify_client_chain(&der(&issued.cert_pem), &original, now()).unwrap();
}

#[test]
fn operator_cas_with_p256_p384_and_ed25519_keys_sign_chaining_certificates() {
    for alg in [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
    ] {
        let (cert, key) = foreign_ca(alg, now() + 365 * DAY);
        let ca = import(CaKind::EtcdClient, &cert, &key).unwrap();
        let csr = csr("calico-node.w1", KeyAlgorithm::EcdsaP256);
        let issued = ca
            .sign_client_csr(&csr, &CsrRules::default(), "calico-node.w1", DAY, now())
            .unwrap();
        let identity = verify_client_chain(&der(&issued.cert_pem), &ca, now()).unwrap();
        assert_eq!(identity.common_name, "calico-node.w1");
        assert_eq!(ca.cert_pem(), cert, "PEM re-encoding is canonical");
    }
}

#[test]
fn a_key_from_another_ca_is_refused() {
    let one = ca(CaKind::EtcdClient);
    let two = ca(CaKind::EtcdClient);
    let err = import(CaKind::EtcdClient, one.cert_pem(), &two.key_pem()).unwrap_err();
    assert!(matches!(err, PkiError::KeyMismatch), "{err}");
}

#[test]
fn expired_and_future_cas_are_refused() {
    let (cert, key) = foreign_ca(&rcgen::PKCS_ECDSA_P256_SHA256, now() - DAY);
    let err = import(CaKind::EtcdClient, &cert, &key).unwrap_err();
    assert!(matches!(err, PkiError::Expired { .. }), "{err}");
    let ca = ca(CaKind::Fleet);
    let err =
        CertificateAuthority::from_pem(CaKind::Fleet, ca.cert_pem(), &ca.key_pem(), now() - DAY);
    assert_eq!(err.unwrap_err().kind(), "ca_not_yet_valid");
}

#[test]
fn calseg_cas_are_not_imported_as_the_other_kind() {
    let fleet = ca(CaKind::Fleet);
    let err = import(CaKind::EtcdClient, fleet.cert_pem(), &fleet.key_pem()).unwrap_err();
    assert!(
        matches!(
            err,
            PkiError::WrongKind {
                expected: CaKind::EtcdClient,
                found: CaKind::Fleet
            }
        ),
        "{err}"
    );
}

#[test]
fn a_leaf_certificate_is_not_a_ca() {
    let fleet = ca(CaKind::Fleet);
    let server = fleet
        .issue_server(&["calseg.example".into()], DAY, now())
        .unwrap();
    let err = import(CaKind::Fleet, &server.cert_pem, &server.key_pem).unwrap_err();
    assert_eq!(err.kind(), "not_a_ca", "{err}");
}

#[test]
fn keys_in_other_forms_get_a_conversion_hint() {
    let ca = ca(CaKind::EtcdClient);
    let key_der = der(&ca.key_pem());
    for label in ["EC PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"] {
        let err = import(CaKind::EtcdClient, ca.cert_pem(), &to_pem(label, &key_der)).unwrap_err();
        assert_eq!(err.kind(), "invalid_key");
        assert!(
            err.to_string().contains("openssl pkcs8 -topk8 -nocrypt"),
            "{err}"
        );
    }
    let err = import(CaKind::EtcdClient, ca.cert_pem(), "not a key").unwrap_err();
    assert_eq!(err.kind(), "invalid_key");
    let garbage = to_pem("PRIVATE KEY", b"garbage");
    let err = import(CaKind::EtcdClient, ca.cert_pem(), &garbage).unwrap_err();
    assert_eq!(err.kind(), "invalid_key");
}

#[test]
fn certificate_bundles_and_garbage_are_refused() {
    let ca = ca(CaKind::EtcdClient);
    let bundle = format!("{}{}", ca.cert_pem(), ca.cert_pem());
    let err = import(CaKind::EtcdClient, &bundle, &ca.key_pem()).unwrap_err();
    assert_eq!(err.kind(), "invalid_certificate");
    let junk = to_pem("CERTIFICATE", b"junk");
    let err = import(CaKind::EtcdClient, &junk, &ca.key_pem()).unwrap_err();
    assert_eq!(err.kind(), "invalid_certificate");
}
