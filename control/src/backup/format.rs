//! The signed container of a backup:
//!
//! ```text
//! "calseg-backup\n"            magic, 14 bytes
//! u32 big-endian               container format (BACKUP_FORMAT)
//! u32 big-endian, bytes        the header, JSON (BackupHeader)
//! u64 big-endian, bytes        the payload, JSON (BackupContents)
//! u16 big-endian, bytes        the signature over every byte above: ECDSA with SHA-256
//!                              (P-256) or SHA-384 (P-384), ASN.1 DER, by the fleet CA key
//! ```
//! Nothing may follow the signature. The header carries the fleet CA certificate; [`open`]
//! checks its SHA-256 against the operator's pin (the `--ca-hash` agents enrolled with), then
//! the signature with its key, so only the holder of the pinned fleet CA key can make a file
//! that `restore` accepts; then the versions; then the payload.

use rcgen::SigningKey;
use ring::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{OID_EC_P256, OID_NIST_EC_P384};
use x509_parser::prelude::FromDer;

use super::{BackupContents, BackupError, version_newer};
use crate::pki::{CaKind, CertificateAuthority};

/// The first bytes of every backup.
pub const MAGIC: &[u8; 14] = b"calseg-backup\n";
/// The container format this code writes and reads.
pub const BACKUP_FORMAT: u32 = 1;
/// A header longer than this is refused before it is read (it holds one certificate).
const MAX_HEADER: u64 = 1 << 20;

/// What a backup says about itself, signed with the rest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    /// The calseg release that wrote it (`CARGO_PKG_VERSION`).
    pub calseg_version: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// `sha256:<hex>` of the fleet CA certificate's DER, as agents pin it.
    pub fleet_ca_fingerprint: String,
    /// The fleet CA certificate whose key signed the backup, PEM.
    pub fleet_ca_cert_pem: String,
}

/// A backup whose signature, pin, versions and contents were all checked.
#[derive(Debug)]
pub struct VerifiedBackup {
    pub header: BackupHeader,
    pub contents: BackupContents,
}

/// The backup of `contents`, made at `now` by calseg `calseg_version`, signed with `fleet`'s
/// key. The contents are checked first: a backup that `restore` would refuse is never written.
pub fn seal(
    contents: &BackupContents,
    fleet: &CertificateAuthority,
    calseg_version: &str,
    now: OffsetDateTime,
) -> Result<Vec<u8>, BackupError> {
    if fleet.kind() != CaKind::Fleet {
        return Err(BackupError::Sign(format!(
            "the {} is not the fleet CA",
            fleet.kind()
        )));
    }
    contents.check(fleet.cert_pem(), now)?;
    let header = BackupHeader {
        calseg_version: calseg_version.to_owned(),
        created_at: now,
        fleet_ca_fingerprint: fleet.fingerprint_sha256(),
        fleet_ca_cert_pem: fleet.cert_pem().to_owned(),
    };
    let json =
        |what: &str, e: serde_json::Error| BackupError::Sign(format!("encode the {what}: {e}"));
    let header = serde_json::to_vec(&header).map_err(|e| json("header", e))?;
    let payload = serde_json::to_vec(contents).map_err(|e| json("payload", e))?;
    let mut out = Vec::with_capacity(payload.len() + header.len() + 256);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&BACKUP_FORMAT.to_be_bytes());
    out.extend_from_slice(
        &u32::try_from(header.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(&header);
    out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    out.extend_from_slice(&payload);
    let signature = fleet
        .issuer
        .key()
        .sign(&out)
        .map_err(|e| BackupError::Sign(e.to_string()))?;
    let length = u16::try_from(signature.len())
        .map_err(|_| BackupError::Sign("the signature is longer than 65535 bytes".into()))?;
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&signature);
    Ok(out)
}

/// Reads and checks the backup `bytes` against the pin `pin` (`sha256:<hex>`, normalized):
/// layout, format, pin, signature, calseg version (not newer than `this_version`), then the
/// contents ([`BackupContents::check`] at `now`). Nothing is trusted before the signature.
pub fn open(
    bytes: &[u8],
    pin: &str,
    this_version: &str,
    now: OffsetDateTime,
) -> Result<VerifiedBackup, BackupError> {
    let mut r = Reader { bytes, at: 0 };
    if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) && !bytes.is_empty() {
        return Err(r.short("the magic", MAGIC.len() as u64));
    }
    if !bytes.starts_with(MAGIC) {
        return Err(BackupError::NotABackup);
    }
    r.at = MAGIC.len();
    let format = u32::from_be_bytes(r.array("the format version")?);
    if format > BACKUP_FORMAT {
        return Err(BackupError::NewerFormat {
            found: format,
            supported: BACKUP_FORMAT,
        });
    }
    if format != BACKUP_FORMAT {
        return Err(BackupError::InvalidHeader(format!(
            "format {format} does not exist"
        )));
    }
    let header_len = u64::from(u32::from_be_bytes(r.array("the header length")?));
    if header_len > MAX_HEADER {
        return Err(damaged(format!("a header of {header_len} bytes")));
    }
    let header = r.take("the header", header_len)?;
    let payload_len = u64::from_be_bytes(r.array("the payload length")?);
    let payload = r.take("the payload", payload_len)?;
    let signed = &bytes[..r.at];
    let signature_len = u64::from(u16::from_be_bytes(r.array("the signature length")?));
    let signature = r.take("the signature", signature_len)?;
    if r.at < bytes.len() {
        return Err(BackupError::TrailingBytes(bytes.len() - r.at));
    }
    let header: BackupHeader = serde_json::from_slice(header)
        .map_err(|e| damaged(format!("the header is not valid JSON ({e})")))?;
    let cert_der = pem_cert_der(&header.fleet_ca_cert_pem)?;
    let found = format!(
        "sha256:{}",
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &cert_der))
    );
    if found != pin {
        return Err(BackupError::PinMismatch {
            found,
            pin: pin.to_owned(),
        });
    }
    verify_signature(&cert_der, signed, signature)?;
    if header.fleet_ca_fingerprint != found {
        return Err(BackupError::InvalidHeader(format!(
            "it names fleet CA {} but holds {found}",
            header.fleet_ca_fingerprint
        )));
    }
    match version_newer(&header.calseg_version, this_version) {
        Some(false) => {}
        Some(true) => {
            return Err(BackupError::NewerCalseg {
                found: header.calseg_version,
                this: this_version.to_owned(),
            });
        }
        None => {
            return Err(BackupError::InvalidHeader(format!(
                "calseg version {:?} is not MAJOR.MINOR.PATCH",
                header.calseg_version
            )));
        }
    }
    let contents: BackupContents = serde_json::from_slice(payload)
        .map_err(|e| BackupError::InvalidContents(format!("the payload is not readable: {e}")))?;
    contents.check(&header.fleet_ca_cert_pem, now)?;
    Ok(VerifiedBackup { header, contents })
}

/// A header that cannot be read: the file was damaged (the signature could not be checked).
fn damaged(what: String) -> BackupError {
    BackupError::InvalidHeader(format!(
        "{what}: the file was damaged or altered; use another copy"
    ))
}

/// The DER of the one certificate in `pem`.
fn pem_cert_der(pem: &str) -> Result<Vec<u8>, BackupError> {
    crate::pki::pem::single(pem, &["CERTIFICATE"], "fleet CA certificate")
        .map(|block| block.der)
        .map_err(|e| damaged(format!("the fleet CA certificate is unreadable ({e})")))
}

/// Checks `signature` over `signed` with the key of the certificate `cert_der`.
fn verify_signature(cert_der: &[u8], signed: &[u8], signature: &[u8]) -> Result<(), BackupError> {
    let Ok((_, cert)) = X509Certificate::from_der(cert_der) else {
        return Err(damaged("the fleet CA certificate is not X.509".into()));
    };
    let spki = cert.public_key();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    let algorithm = match curve {
        Some(oid) if oid == OID_EC_P256 => &ECDSA_P256_SHA256_ASN1,
        Some(oid) if oid == OID_NIST_EC_P384 => &ECDSA_P384_SHA384_ASN1,
        _ => {
            return Err(BackupError::InvalidHeader(
                "the fleet CA key is not ECDSA P-256 or P-384, which backups are signed with"
                    .into(),
            ));
        }
    };
    UnparsedPublicKey::new(algorithm, spki.subject_public_key.data.as_ref())
        .verify(signed, signature)
        .map_err(|_| BackupError::BadSignature)
}

/// Reads the container front to back; a read past the end is [`BackupError::Truncated`].
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn short(&self, what: &'static str, needed: u64) -> BackupError {
        BackupError::Truncated {
            what,
            needed,
            have: (self.bytes.len() - self.at.min(self.bytes.len())) as u64,
        }
    }

    fn take(&mut self, what: &'static str, len: u64) -> Result<&'a [u8], BackupError> {
        let left = self.bytes.len() - self.at;
        match usize::try_from(len) {
            Ok(n) if n <= left => {
                let out = &self.bytes[self.at..self.at + n];
                self.at += n;
                Ok(out)
            }
            _ => Err(self.short(what, len)),
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], BackupError> {
        let bytes = self.take(what, N as u64)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }
}
