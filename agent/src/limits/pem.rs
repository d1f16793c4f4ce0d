//! The CA bundle: one or more PEM `CERTIFICATE` blocks and whitespace, nothing else. Text
//! outside the blocks (a shell line, an `authorized_keys` entry) and other labels (a private
//! key) are refused, and each block must parse as an X.509 certificate.

use x509_parser::prelude::{FromDer, X509Certificate};

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// Checks the CA bundle of a manifest.
pub fn check_ca_bundle(text: &str) -> Result<(), String> {
    let mut rest = text;
    let mut count = 0usize;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let Some(body) = rest.strip_prefix(BEGIN) else {
            if let Some(label) = rest.strip_prefix("-----BEGIN ") {
                let label = label.split("-----").next().unwrap_or("");
                return Err(format!(
                    "block {}: a {label} block; only CERTIFICATE blocks are allowed",
                    count + 1
                ));
            }
            let place = if count == 0 {
                "before the first"
            } else {
                "after or between"
            };
            return Err(format!("text {place} PEM CERTIFICATE block"));
        };
        let Some(end) = body.find(END) else {
            return Err(format!("block {}: no {END} line", count + 1));
        };
        let base64 = &body[..end];
        let ok =
            |c: char| c.is_ascii_alphanumeric() || "+/=".contains(c) || c.is_ascii_whitespace();
        if !base64.chars().all(ok) {
            return Err(format!(
                "block {}: headers or text inside the block; only base64 is allowed",
                count + 1
            ));
        }
        let block = &rest[..BEGIN.len() + end + END.len()];
        parse_certificate(block).map_err(|e| format!("block {}: {e}", count + 1))?;
        rest = &body[end + END.len()..];
        count += 1;
    }
    if count == 0 {
        return Err("no PEM CERTIFICATE block".into());
    }
    Ok(())
}

fn parse_certificate(block: &str) -> Result<(), String> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(block.as_bytes()).map_err(|e| format!("not PEM: {e}"))?;
    let (left, _) = X509Certificate::from_der(&pem.contents)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    if !left.is_empty() {
        return Err("bytes after the certificate's DER".into());
    }
    Ok(())
}
