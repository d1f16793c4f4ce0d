//! Generated CAs: subject, extensions, fingerprint, and that the key stays out of Debug.

use super::*;
use crate::pki::CA_ORGANIZATION;

#[test]
fn a_generated_ca_has_the_expected_shape() {
    for kind in [CaKind::Fleet, CaKind::EtcdClient] {
        let ca = ca(kind);
        let cert = parse(ca.cert_der());
        assert_eq!(
            cert.subject().to_string(),
            format!("O={CA_ORGANIZATION}, OU={}, CN=test {kind}", kind.unit())
        );
        assert_eq!(cert.subject().as_raw(), cert.issuer().as_raw());
        cert.verify_signature(None).unwrap();
        let bc = cert.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, Some(0));
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
        assert!(cert.iter_extensions().any(|e| matches!(
            e.parsed_extension(),
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(_)
        )));
        assert_eq!(cert.raw_serial().len(), 16);
        assert_eq!(ca.not_after(), now() + 3650 * DAY);
        assert_eq!(ca.kind(), kind);
    }
}

#[test]
fn fleet_and_etcd_cas_differ() {
    let fleet = ca(CaKind::Fleet);
    let etcd = ca(CaKind::EtcdClient);
    assert_ne!(fleet.cert_der(), etcd.cert_der());
    assert_ne!(fleet.key_pem(), etcd.key_pem());
    assert_ne!(
        parse(fleet.cert_der()).subject().to_string(),
        parse(etcd.cert_der()).subject().to_string()
    );
}

#[test]
fn fingerprint_is_sha256_over_the_whole_der() {
    let ca = ca(CaKind::Fleet);
    let fingerprint = ca.fingerprint_sha256();
    let hex = fingerprint.strip_prefix("sha256:").unwrap();
    assert_eq!(hex.len(), 64);
    assert!(hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
    let digest = ring::digest::digest(&ring::digest::SHA256, ca.cert_der());
    let expected = hex::encode(digest);
    assert_eq!(hex, expected);
}

#[test]
fn the_key_never_shows_in_debug() {
    let ca = ca(CaKind::EtcdClient);
    assert!(ca.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    let debug = format!("{ca:?}");
    assert!(!debug.contains("PRIVATE"), "{debug}");
    assert!(debug.contains("redacted") && debug.contains("sha256:"));
    let pair = new_csr("x", KeyAlgorithm::EcdsaP256).unwrap();
    assert!(!format!("{pair:?}").contains("PRIVATE KEY"));
}

#[test]
fn cert_pem_is_canonical_pem_of_the_der() {
    let ca = ca(CaKind::Fleet);
    assert_eq!(ca.cert_pem(), to_pem("CERTIFICATE", ca.cert_der()));
}

#[test]
fn bad_parameters_are_refused() {
    let zero = CertificateAuthority::generate(CaKind::Fleet, "x", Duration::ZERO, now());
    assert_eq!(zero.unwrap_err().kind(), "invalid_request");
    let unnamed = CertificateAuthority::generate(CaKind::Fleet, " ", DAY, now());
    assert_eq!(unnamed.unwrap_err().kind(), "invalid_request");
}

#[test]
fn a_ca_can_be_shared_across_tasks() {
    fn shareable<T: Send + Sync>() {}
    shareable::<CertificateAuthority>();
}
