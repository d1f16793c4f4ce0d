//! What a signed certificate holds, and when the CA refuses to sign at all.

use std::collections::HashSet;

use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::OID_X509_COMMON_NAME;

use super::*;
use crate::pki::{CsrError, CsrRules, IssuedCert};

const CN: &str = "calico-node.worker-17";

fn issue(ca: &CertificateAuthority) -> IssuedCert {
    let csr = csr(CN, KeyAlgorithm::EcdsaP256);
    ca.sign_client_csr(&csr, &CsrRules::default(), CN, 30 * DAY, now())
        .unwrap()
}

#[test]
fn a_client_certificate_is_exactly_what_the_server_decides() {
    let ca = ca(CaKind::EtcdClient);
    let issued = issue(&ca);
    let der = der(&issued.cert_pem);
    let cert = parse(&der);

    // Subject: the CN and nothing else.
    let attrs: Vec<_> = cert.subject().iter_attributes().collect();
    assert_eq!(attrs.len(), 1);
    assert_eq!(*attrs[0].attr_type(), OID_X509_COMMON_NAME);
    assert_eq!(attrs[0].as_str().unwrap(), CN);
    assert_eq!(
        cert.issuer().as_raw(),
        parse(ca.cert_der()).subject().as_raw()
    );

    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth);
    assert!(!eku.server_auth && !eku.any && eku.other.is_empty());
    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(!bc.value.ca && bc.critical);
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign() && !ku.crl_sign());
    assert!(cert.subject_alternative_name().unwrap().is_none());

    // The authority key identifier is the CA's subject key identifier.
    let ca_cert = parse(ca.cert_der());
    let ski = ca_cert
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        });
    let aki = cert
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        });
    assert!(ski.is_some());
    assert_eq!(aki, ski);

    // Validity: backdated five minutes, ends exactly at now + lifetime.
    let v = cert.validity();
    assert_eq!(
        v.not_before.timestamp(),
        (now() - time::Duration::minutes(5)).unix_timestamp()
    );
    assert_eq!(v.not_after.timestamp(), (now() + 30 * DAY).unix_timestamp());
    assert_eq!(issued.not_before, now() - time::Duration::minutes(5));
    assert_eq!(issued.not_after, now() + 30 * DAY);

    // Serial: 16 bytes, positive, reported as 32 hex digits.
    assert_eq!(cert.raw_serial().len(), 16);
    assert_eq!(cert.raw_serial()[0] & 0x80, 0);
    assert_eq!(issued.serial_hex.len(), 32);
    assert_eq!(
        issued.serial_hex,
        cert.raw_serial_as_string().replace(':', "")
    );
}

#[test]
fn serials_are_unique_over_100_signings() {
    let ca = ca(CaKind::EtcdClient);
    let csr = csr(CN, KeyAlgorithm::EcdsaP256);
    let serials: HashSet<String> = (0..100)
        .map(|_| {
            ca.sign_client_csr(&csr, &CsrRules::default(), CN, DAY, now())
                .unwrap()
                .serial_hex
        })
        .collect();
    assert_eq!(serials.len(), 100);
}

#[test]
fn requested_extensions_and_subject_attributes_are_ignored() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["etcd.example".into()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, CN);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "root");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();

    let ca = ca(CaKind::EtcdClient);
    let issued = ca
        .sign_client_csr(&csr, &CsrRules::default(), CN, DAY, now())
        .unwrap();
    let der = der(&issued.cert_pem);
    let cert = parse(&der);
    assert_eq!(cert.subject().to_string(), format!("CN={CN}"));
    assert!(cert.subject_alternative_name().unwrap().is_none());
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert!(!cert.key_usage().unwrap().unwrap().value.key_cert_sign());
}

#[test]
fn lifetime_is_capped_at_the_ca_end_and_an_expired_ca_signs_nothing() {
    let ca = CertificateAuthority::generate(CaKind::EtcdClient, "short", 10 * DAY, now()).unwrap();
    let csr = csr(CN, KeyAlgorithm::EcdsaP256);
    let rules = CsrRules::default();
    let issued = ca
        .sign_client_csr(&csr, &rules, CN, 30 * DAY, now())
        .unwrap();
    assert_eq!(issued.not_after, ca.not_after());

    let later = now() + 11 * DAY;
    let err = ca
        .sign_client_csr(&csr, &rules, CN, DAY, later)
        .unwrap_err();
    assert_eq!(err.kind(), "ca_expired");
    assert!(!err.is_client_error());
}

#[test]
fn each_ca_signs_only_its_own_kind() {
    let fleet = ca(CaKind::Fleet);
    let etcd = ca(CaKind::EtcdClient);
    let csr = csr("worker-17", KeyAlgorithm::EcdsaP256);
    let rules = CsrRules::default();
    let err = fleet
        .sign_client_csr(&csr, &rules, "worker-17", DAY, now())
        .unwrap_err();
    assert!(
        matches!(
            err,
            CsrError::WrongAuthority {
                actual: CaKind::Fleet,
                ..
            }
        ),
        "{err}"
    );
    let err = etcd
        .sign_agent_csr(&csr, &rules, "worker-17", DAY, now())
        .unwrap_err();
    assert_eq!(err.kind(), "wrong_authority");

    let agent = fleet
        .sign_agent_csr(&csr, &rules, "worker-17", DAY, now())
        .unwrap();
    let der = der(&agent.cert_pem);
    let cert = parse(&der);
    assert_eq!(cert.subject().to_string(), "CN=worker-17");
    assert!(
        cert.extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .client_auth
    );
}

#[test]
fn unusable_names_from_the_policy_are_refused() {
    let ca = ca(CaKind::EtcdClient);
    let rules = CsrRules::default();
    let long = "n".repeat(65);
    for name in ["", long.as_str(), "a\nb"] {
        let csr = csr(
            if name.is_empty() { "x" } else { name },
            KeyAlgorithm::EcdsaP256,
        );
        let err = ca
            .sign_client_csr(&csr, &rules, name, DAY, now())
            .unwrap_err();
        assert_eq!(err.kind(), "invalid_common_name", "{name:?}");
        assert!(!err.is_client_error());
    }
}

#[test]
fn time_is_normalised_to_whole_utc_seconds() {
    let ca = ca(CaKind::EtcdClient);
    let offset = time::UtcOffset::from_hms(2, 0, 0).unwrap();
    let odd = (now() + time::Duration::milliseconds(750)).to_offset(offset);
    let csr = csr(CN, KeyAlgorithm::EcdsaP256);
    let issued = ca
        .sign_client_csr(&csr, &CsrRules::default(), CN, DAY, odd)
        .unwrap();
    assert_eq!(issued.not_after, now() + DAY);
    assert_eq!(issued.not_after.offset(), time::UtcOffset::UTC);
}

#[test]
fn the_server_certificate_comes_from_the_fleet_ca() {
    let fleet = ca(CaKind::Fleet);
    let sans = vec!["calseg.example".to_owned(), "10.0.0.5".to_owned()];
    let keyed = fleet.issue_server(&sans, 90 * DAY, now()).unwrap();
    assert!(keyed.key_pem.contains("PRIVATE KEY"));
    assert!(!format!("{keyed:?}").contains("PRIVATE"));
    let der = der(&keyed.cert_pem);
    let cert = parse(&der);
    cert.verify_signature(Some(parse(fleet.cert_der()).public_key()))
        .unwrap();
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    let san = cert.subject_alternative_name().unwrap().unwrap().value;
    use x509_parser::extensions::GeneralName;
    match san.general_names.as_slice() {
        [GeneralName::DNSName(dns), GeneralName::IPAddress(ip)] => {
            assert_eq!(*dns, "calseg.example");
            assert_eq!(*ip, [10, 0, 0, 5]);
        }
        other => panic!("{other:?}"),
    }

    let etcd = ca(CaKind::EtcdClient);
    assert_eq!(
        etcd.issue_server(&sans, DAY, now()).unwrap_err().kind(),
        "invalid_request"
    );
    assert_eq!(
        fleet.issue_server(&[], DAY, now()).unwrap_err().kind(),
        "invalid_request"
    );
}
