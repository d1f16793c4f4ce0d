//! CSR intake: every refusal kind, and what is accepted.

use super::*;
use crate::pki::{CsrError, CsrRules};

const CN: &str = "calico-node.worker-17";

fn sign(csr_pem: &str, rules: &CsrRules) -> Result<crate::pki::IssuedCert, CsrError> {
    let ca = ca(CaKind::EtcdClient);
    ca.sign_client_csr(csr_pem, rules, CN, 30 * DAY, now())
}

fn refused(csr_pem: &str) -> CsrError {
    sign(csr_pem, &CsrRules::default()).unwrap_err()
}

#[test]
fn p256_and_p384_are_accepted() {
    for key in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::EcdsaP384] {
        let issued = sign(&csr(CN, key), &CsrRules::default()).unwrap();
        assert_eq!(issued.common_name, CN);
    }
}

#[test]
fn ed25519_is_refused_by_default_naming_the_allowed_types() {
    let err = refused(&csr(CN, KeyAlgorithm::Ed25519));
    assert_eq!(err.kind(), "key_type_not_allowed");
    match &err {
        CsrError::KeyTypeNotAllowed { found, allowed } => {
            assert_eq!(found, "Ed25519");
            assert_eq!(allowed, "ECDSA P-256 or ECDSA P-384");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_client_error());
    assert!(
        err.to_string()
            .contains("make a new key of type ECDSA P-256 or ECDSA P-384")
    );
}

#[test]
fn ed25519_is_accepted_when_the_rules_allow_it() {
    let rules = CsrRules {
        allowed_keys: vec![KeyAlgorithm::Ed25519],
        ..CsrRules::default()
    };
    sign(&csr(CN, KeyAlgorithm::Ed25519), &rules).unwrap();
    let err = sign(&csr(CN, KeyAlgorithm::EcdsaP256), &rules).unwrap_err();
    assert_eq!(err.kind(), "key_type_not_allowed");
}

#[test]
fn another_common_name_is_refused() {
    let err = refused(&csr("calico-node.worker-18", KeyAlgorithm::EcdsaP256));
    match err {
        CsrError::WrongCommonName { asked, allowed } => {
            assert_eq!(asked, "calico-node.worker-18");
            assert_eq!(allowed, CN);
        }
        other => panic!("{other:?}"),
    }
    // Not a prefix match, not case-insensitive.
    for asked in [
        "calico-node.worker-1",
        "Calico-node.worker-17",
        "calico-node.worker-17 ",
    ] {
        assert_eq!(
            refused(&csr(asked, KeyAlgorithm::EcdsaP256)).kind(),
            "wrong_common_name"
        );
    }
}

#[test]
fn a_csr_without_common_name_is_refused() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:masters");
    let pem = params.serialize_request(&key).unwrap().pem().unwrap();
    assert_eq!(refused(&pem).kind(), "missing_common_name");
}

#[test]
fn a_tampered_signature_is_refused() {
    let mut der = der(&csr(CN, KeyAlgorithm::EcdsaP256));
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let err = refused(&to_pem("CERTIFICATE REQUEST", &der));
    assert_eq!(err.kind(), "bad_signature", "{err}");
}

#[test]
fn a_tampered_subject_is_refused() {
    // Swap the CN for another of the same length: the DER stays valid, the signature does not.
    let pem = csr("calico-node.worker-99", KeyAlgorithm::EcdsaP256);
    let mut der = der(&pem);
    let at = der.windows(2).position(|w| w == b"99").unwrap();
    der[at..at + 2].copy_from_slice(b"17");
    let err = refused(&to_pem("CERTIFICATE REQUEST", &der));
    assert_eq!(err.kind(), "bad_signature", "{err}");
}

#[test]
fn garbage_truncated_and_mislabelled_input_is_malformed() {
    let good = csr(CN, KeyAlgorithm::EcdsaP256);
    let truncated = &good[..good.len() / 2];
    let cert = ca(CaKind::Fleet).cert_pem().to_owned();
    let not_der = to_pem("CERTIFICATE REQUEST", b"not DER at all");
    let mut trailing = der(&good);
    trailing.push(0);
    let trailing = to_pem("CERTIFICATE REQUEST", &trailing);
    for input in ["", "hello", truncated, &cert, &not_der, &trailing] {
        let err = refused(input);
        assert_eq!(err.kind(), "malformed", "{input:?}: {err}");
    }
}

#[test]
fn two_csrs_are_refused() {
    let one = csr(CN, KeyAlgorithm::EcdsaP256);
    let err = refused(&format!("{one}{one}"));
    assert!(matches!(err, CsrError::Multiple { count: 2 }), "{err}");
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let padded = format!(
        "{}{}",
        "#".repeat(16 * 1024),
        csr(CN, KeyAlgorithm::EcdsaP256)
    );
    let err = refused(&padded);
    assert!(
        matches!(err, CsrError::TooLarge { max: 16384, .. }),
        "{err}"
    );
}

#[test]
fn legacy_label_and_surrounding_text_are_accepted() {
    let pem =
        csr(CN, KeyAlgorithm::EcdsaP256).replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST");
    sign(&format!("made by hand\n{pem}\n"), &CsrRules::default()).unwrap();
}

#[test]
fn untrusted_common_names_are_truncated_in_errors() {
    let long = "x".repeat(500);
    match refused(&csr(&long, KeyAlgorithm::EcdsaP256)) {
        CsrError::WrongCommonName { asked, .. } => assert!(asked.chars().count() <= 129),
        other => panic!("{other:?}"),
    }
}

/// `csr_der` re-encoded with its signature algorithm replaced by the OID whose content bytes
/// are `oid` (the signature itself is left as it was).
fn with_signature_algorithm(csr_der: &[u8], oid: &[u8]) -> Vec<u8> {
    /// The header length and the whole length of the TLV at the start of `der`.
    fn tlv_len(der: &[u8]) -> (usize, usize) {
        match der[1] {
            n if n < 0x80 => (2, 2 + usize::from(n)),
            0x81 => (3, 3 + usize::from(der[2])),
            0x82 => (4, 4 + usize::from(u16::from_be_bytes([der[2], der[3]]))),
            other => panic!("length form {other:#x}"),
        }
    }
    #[allow(clippy::cast_possible_truncation)]
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(content);
        out
    }
    let body = &csr_der[tlv_len(csr_der).0..];
    let tbs = &body[..tlv_len(body).1];
    let rest = &body[tbs.len()..];
    let signature = &rest[tlv_len(rest).1..];
    let mut content = tbs.to_vec();
    content.extend(tlv(0x30, &tlv(0x06, oid)));
    content.extend_from_slice(signature);
    tlv(0x30, &content)
}

#[test]
fn ecdsa_sha1_and_sha512_csrs_are_refused_for_their_algorithm_not_as_altered() {
    // Issue 17: these were reported as "altered after signing".
    let good = der(&csr(CN, KeyAlgorithm::EcdsaP256));
    let ecdsa_sha256 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    // Re-encoding with the algorithm it already has changes nothing: the helper is faithful.
    let same = with_signature_algorithm(&good, &ecdsa_sha256);
    assert_eq!(same, good);
    sign(&to_pem("CERTIFICATE REQUEST", &same), &CsrRules::default()).unwrap();
    for (oid, name) in [
        (
            &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01][..],
            "ecdsa-with-SHA1 (1.2.840.10045.4.1)",
        ),
        (
            &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04][..],
            "ecdsa-with-SHA512 (1.2.840.10045.4.3.4)",
        ),
        (&[0x2b, 0x06, 0x01, 0x04, 0x01][..], "OID 1.3.6.1.4.1"),
    ] {
        let pem = to_pem("CERTIFICATE REQUEST", &with_signature_algorithm(&good, oid));
        let err = refused(&pem);
        assert_eq!(err.kind(), "unsupported_signature_algorithm", "{err}");
        assert!(err.is_client_error());
        let text = err.to_string();
        assert!(text.contains(name), "{text}");
        assert!(
            text.contains("ecdsa-with-SHA256, ecdsa-with-SHA384, Ed25519"),
            "{text}"
        );
        assert!(!text.contains("altered"), "{text}");
    }
}
