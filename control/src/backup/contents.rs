//! [`BackupContents`]: what a backup holds besides its header. The store snapshot is opaque
//! here ([`StoreSnapshot`] owns its records and its check); the CA directory is kept file by
//! file, every regular file with its mode, so files added later (a rotation's next CA) come
//! along; the TLS files are kept by role, since a restore writes them where its server.toml
//! says.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::BackupError;
use crate::pki::{CaKind, CertificateAuthority};
use crate::store::StoreSnapshot;

/// The CA files every server needs (`init` writes them): certificate and key of the fleet CA,
/// and the etcd client CA's certificate (its key: see [`etcd_client_pair`]).
pub const REQUIRED_CA_FILES: [&str; 3] = ["fleet.pem", "fleet-key.pem", "etcd-client.pem"];

/// The etcd client CA in force among `names`: the pair a finished rotation left
/// (`etcd-client.active.pem`, whose key is then the only one), else `init`'s.
fn etcd_client_pair(has: impl Fn(&str) -> bool) -> (&'static str, &'static str) {
    if has("etcd-client.active.pem") {
        ("etcd-client.active.pem", "etcd-client.active-key.pem")
    } else {
        ("etcd-client.pem", "etcd-client-key.pem")
    }
}

/// The payload of a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupContents {
    /// Every record of the store, as `export_snapshot` read it in one view.
    pub store: StoreSnapshot,
    /// Every regular file of the CA directory, by name.
    pub ca_files: Vec<BackupFile>,
    /// The server's TLS certificate (fleet-signed), PEM.
    pub tls_cert: BackupFile,
    /// Its key, PEM.
    pub tls_key: BackupFile,
}

/// One file: its name (no directory), its mode bits, its bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupFile {
    pub name: String,
    pub mode: u32,
    #[serde(with = "base64_bytes")]
    pub contents: Vec<u8>,
}

impl std::fmt::Debug for BackupFile {
    /// Keys are in here: the name, mode and size only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupFile")
            .field("name", &self.name)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("len", &self.contents.len())
            .finish()
    }
}

impl BackupFile {
    /// Whether the file is a secret (written 0600 whatever mode it had).
    pub fn is_secret(&self) -> bool {
        self.name.ends_with("-key.pem") || self.mode & 0o077 == 0
    }
}

impl BackupContents {
    /// The CA file `name`, if the backup has it.
    pub fn ca_file(&self, name: &str) -> Option<&BackupFile> {
        self.ca_files.iter().find(|f| f.name == name)
    }

    /// Everything a restore relies on, checked before it writes a byte: the store snapshot
    /// ([`StoreSnapshot::check`]), CA file names that stay inside the CA directory, both CAs
    /// present with their keys, the fleet CA the one the header (and so the pin) names, the
    /// TLS files present.
    pub fn check(&self, fleet_cert_pem: &str, now: OffsetDateTime) -> Result<(), BackupError> {
        let bad = |reason: String| Err(BackupError::InvalidContents(reason));
        if let Err(e) = self.store.check() {
            return bad(format!("store snapshot: {e}"));
        }
        let mut names = std::collections::BTreeSet::new();
        for file in &self.ca_files {
            if !valid_name(&file.name) {
                return bad(format!(
                    "CA file name {:?} is not a plain file name",
                    file.name
                ));
            }
            if !names.insert(file.name.as_str()) {
                return bad(format!("CA file {:?} appears twice", file.name));
            }
        }
        let (etcd_cert, etcd_key) = etcd_client_pair(|name| self.ca_file(name).is_some());
        for name in REQUIRED_CA_FILES.into_iter().chain([etcd_cert, etcd_key]) {
            if self.ca_file(name).is_none() {
                return bad(format!("the CA file {name} is missing"));
            }
        }
        let text = |name: &str| {
            let file = self
                .ca_file(name)
                .map(|f| f.contents.as_slice())
                .unwrap_or_default();
            std::str::from_utf8(file)
                .map_err(|_| BackupError::InvalidContents(format!("{name} is not PEM text")))
        };
        if text("fleet.pem")?.trim() != fleet_cert_pem.trim() {
            return bad("fleet.pem is not the fleet CA the header names".into());
        }
        for (kind, cert, key) in [
            (CaKind::Fleet, "fleet.pem", "fleet-key.pem"),
            (CaKind::EtcdClient, etcd_cert, etcd_key),
        ] {
            CertificateAuthority::from_pem(kind, text(cert)?, text(key)?, now)
                .map_err(|e| BackupError::InvalidContents(format!("{cert} and {key}: {e}")))?;
        }
        if self.tls_cert.contents.is_empty() || self.tls_key.contents.is_empty() {
            return bad("the TLS certificate or key is empty".into());
        }
        Ok(())
    }
}

/// A file name a restore may create inside a directory: no separator, not `.` or `..`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// Bytes as standard base64 in the JSON payload.
mod base64_bytes {
    use super::{Engine, STANDARD};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}
