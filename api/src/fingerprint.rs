//! The fingerprint of a public key: `sha256:` and the 64 lowercase hex digits of the SHA-256
//! of the key's SubjectPublicKeyInfo DER (the public key with its algorithm, as it sits in the
//! CSR and in the certificate). The agent prints it while it waits for approval, the server
//! shows it in `nodes list`/`nodes show`, and `nodes approve --fingerprint` must name it: both
//! sides compute it here. `openssl req -in fleet-pending.csr -noout -pubkey | openssl pkey
//! -pubin -outform der | sha256sum` gives the same digits.

use std::fmt;

/// What every fingerprint starts with.
pub const PREFIX: &str = "sha256:";

/// The fingerprint of the key whose SubjectPublicKeyInfo DER is `spki_der`.
pub fn of_public_key(spki_der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
    format!("{PREFIX}{}", hex::encode(digest))
}

/// A fingerprint as an operator typed it is not `sha256:` and 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFingerprint(pub String);

impl fmt::Display for BadFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a key fingerprint: expected `sha256:` and 64 hex digits, as the agent \
             prints it and `calseg-server nodes show` shows it",
            self.0
        )
    }
}

impl std::error::Error for BadFingerprint {}

/// Normalizes a typed fingerprint (surrounding space, upper-case digits) to the form
/// [`of_public_key`] returns.
pub fn parse(text: &str) -> Result<String, BadFingerprint> {
    let bad = || BadFingerprint(text.to_owned());
    let hex = text.trim().strip_prefix(PREFIX).ok_or_else(bad)?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok(format!("{PREFIX}{}", hex.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_sha256_of_the_der_in_lowercase_hex() {
        // SHA-256 of the empty input, a known vector.
        assert_eq!(
            of_public_key(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_normalizes_and_refuses_anything_else() {
        let fp = of_public_key(b"key");
        assert_eq!(
            parse(&format!(
                "  {}\n",
                fp.to_uppercase().replace("SHA256", "sha256")
            )),
            Ok(fp.clone())
        );
        for bad in [
            "",
            "sha256:",
            "md5:00",
            &fp[..70],
            &format!("{fp}0"),
            &fp.replace("sha256:", ""),
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(
            parse("sha256:zz")
                .unwrap_err()
                .to_string()
                .contains("64 hex digits")
        );
    }
}
