//! Hostile CSRs and client certificates for the catalogue, made at test time: rcgen for what
//! ring can make, openssl for RSA and P-521 keys and ECDSA signatures over SHA-1 or SHA-512
//! (ring makes none of them).

use super::Csr;
use calseg_tests::api_client::key_and_csr;
use calseg_tests::pki::KeyedCert;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
use std::process::Command;

/// The CSR text a row sends; `cn` is the Common Name the call would accept.
pub fn csr_text(csr: Csr, cn: &str) -> String {
    match csr {
        Csr::Good => key_and_csr(cn).expect("csr").1,
        Csr::Cn(other) => key_and_csr(other).expect("csr").1,
        Csr::Text(text) => text.to_owned(),
        Csr::Truncated => {
            let good = key_and_csr(cn).expect("csr").1;
            let body_start = good.find('\n').expect("pem header") + 1;
            format!(
                "{}\n-----END CERTIFICATE REQUEST-----\n",
                &good[..body_start + 40]
            )
        }
        Csr::Tampered => tampered(&key_and_csr(cn).expect("csr").1),
        Csr::Ed25519 => {
            let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519 key");
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.distinguished_name.push(DnType::CommonName, cn);
            params
                .serialize_request(&key)
                .and_then(|c| c.pem())
                .expect("csr")
        }
        Csr::Rsa(bits) => openssl_csr(&format!("rsa:{bits}"), &[], cn),
        Csr::P521 => openssl_csr("ec", &["-pkeyopt", "ec_paramgen_curve:P-521"], cn),
        Csr::Digest(digest) => openssl_csr(
            "ec",
            &["-pkeyopt", "ec_paramgen_curve:P-256", &format!("-{digest}")],
            cn,
        ),
        Csr::Oversized => {
            let mut text = String::from("-----BEGIN CERTIFICATE REQUEST-----\n");
            let footer = "-----END CERTIFICATE REQUEST-----\n";
            while text.len() + 64 + footer.len() + 64 < 20 * 1024 {
                text.push_str(&"A".repeat(63));
                text.push('\n');
            }
            text.push_str(&"A".repeat(20 * 1024 - text.len() - footer.len() - 1));
            text.push('\n');
            text.push_str(footer);
            text
        }
        Csr::TwoBlocks => {
            let one = key_and_csr(cn).expect("csr").1;
            format!("{one}{}", key_and_csr(cn).expect("csr").1)
        }
        Csr::Certificate => {
            let ca = calseg_tests::pki::TestCa::new("not a csr").expect("ca");
            ca.issue_client(cn).expect("cert").cert_pem
        }
    }
}

/// `pem` with one base64 character of its signed content changed (inside the subject's CN),
/// so the DER still parses but the self-signature no longer verifies.
fn tampered(pem: &str) -> String {
    let lines: Vec<&str> = pem.lines().collect();
    // Line 1 of the body holds the subject: flip a character in its middle.
    let mut body: Vec<char> = lines[1].chars().collect();
    let at = body.len() / 2;
    body[at] = if body[at] == 'A' { 'B' } else { 'A' };
    let mut out = vec![lines[0].to_owned(), body.into_iter().collect()];
    out.extend(lines[2..].iter().map(|l| (*l).to_owned()));
    out.join("\n") + "\n"
}

/// A CSR made by `openssl req` with a new key (`-newkey spec`).
fn openssl_csr(spec: &str, options: &[&str], cn: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = Command::new("openssl")
        .args(["req", "-new", "-nodes", "-newkey", spec])
        .args(options)
        .arg("-keyout")
        .arg(dir.path().join("key.pem"))
        .args(["-subj", &format!("/CN={cn}")])
        .output()
        .expect("prerequisite missing: openssl (apt-get install openssl)");
    assert!(
        output.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 csr")
}

/// A client certificate for `cn` signed by the CA at `ca_pem`/`ca_key_pem`; `expired` makes it
/// valid only in January 2020.
pub fn client_cert(ca_pem: &str, ca_key_pem: &str, cn: &str, expired: bool) -> KeyedCert {
    let ca_key = KeyPair::from_pem(ca_key_pem).expect("CA key");
    let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key).expect("CA");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 2);
    }
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &issuer).expect("sign");
    KeyedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}
