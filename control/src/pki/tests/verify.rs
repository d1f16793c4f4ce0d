//! verify_client_chain: the two CAs never accept each other's certificates.

use super::*;
use crate::pki::{CsrRules, VerifyError, verify_client_chain};

fn client_cert(ca: &CertificateAuthority, cn: &str) -> (Vec<u8>, String) {
    let csr = csr(cn, KeyAlgorithm::EcdsaP256);
    let rules = CsrRules::default();
    let issued = match ca.kind() {
        CaKind::EtcdClient => ca.sign_client_csr(&csr, &rules, cn, 30 * DAY, now()),
        CaKind::Fleet => ca.sign_agent_csr(&csr, &rules, cn, 30 * DAY, now()),
    }
    .unwrap();
    (der(&issued.cert_pem), issued.serial_hex)
}

#[test]
fn a_certificate_verifies_against_its_own_ca_only() {
    let fleet = ca(CaKind::Fleet);
    let etcd = ca(CaKind::EtcdClient);
    assert_ne!(fleet.fingerprint_sha256(), etcd.fingerprint_sha256());

    let (agent, serial) = client_cert(&fleet, "worker-17");
    let identity = verify_client_chain(&agent, &fleet, now()).unwrap();
    assert_eq!(identity.common_name, "worker-17");
    assert_eq!(identity.serial_hex, serial);
    assert_eq!(identity.not_after, now() + 30 * DAY);
    let err = verify_client_chain(&agent, &etcd, now()).unwrap_err();
    assert!(
        matches!(err, VerifyError::WrongIssuer(CaKind::EtcdClient)),
        "{err}"
    );

    let (component, _) = client_cert(&etcd, "calico-node.worker-17");
    verify_client_chain(&component, &etcd, now()).unwrap();
    let err = verify_client_chain(&component, &fleet, now()).unwrap_err();
    assert_eq!(err.kind(), "wrong_issuer");
}

#[test]
fn a_ca_with_the_same_name_but_another_key_is_refused_by_signature() {
    let one = CertificateAuthority::generate(CaKind::Fleet, "fleet", 365 * DAY, now()).unwrap();
    let two = CertificateAuthority::generate(CaKind::Fleet, "fleet", 365 * DAY, now()).unwrap();
    let (cert, _) = client_cert(&one, "worker-1");
    let err = verify_client_chain(&cert, &two, now()).unwrap_err();
    assert_eq!(err.kind(), "bad_signature");
}

#[test]
fn validity_is_checked_at_the_given_time() {
    let etcd = ca(CaKind::EtcdClient);
    let (cert, _) = client_cert(&etcd, "cni-plugin.worker-1");
    let early = now() - time::Duration::minutes(6);
    assert_eq!(
        verify_client_chain(&cert, &etcd, early).unwrap_err().kind(),
        "not_yet_valid"
    );
    let skewed = now() - time::Duration::minutes(4);
    verify_client_chain(&cert, &etcd, skewed).unwrap();
    let late = now() + 31 * DAY;
    assert_eq!(
        verify_client_chain(&cert, &etcd, late).unwrap_err().kind(),
        "expired"
    );
}

#[test]
fn server_and_ca_certificates_are_not_client_identities() {
    let fleet = ca(CaKind::Fleet);
    let server = fleet
        .issue_server(&["calseg.example".into()], DAY, now())
        .unwrap();
    let err = verify_client_chain(&der(&server.cert_pem), &fleet, now()).unwrap_err();
    assert_eq!(err.kind(), "not_client_auth");
    let err = verify_client_chain(fleet.cert_der(), &fleet, now()).unwrap_err();
    assert_eq!(err.kind(), "is_ca");
    let err = verify_client_chain(b"junk", &fleet, now()).unwrap_err();
    assert_eq!(err.kind(), "malformed");
}
