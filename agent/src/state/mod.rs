//! The agent's state directory (`state_dir`, default `/var/lib/calseg/agent`, mode 0700):
//!
//! ```text
//! server.url           the server URLs saved at enrollment, one per line (replicas of one service)
//! server.current       the server that answered last (where the next pass starts), for `status`
//! fleet.key            fleet private key (0600)      fleet.pem / fleet-ca.pem  certificate, CA
//! fleet-pending.key    key of an enrollment awaiting approval (0600), with fleet-pending.csr
//! manifest.json        the last manifest received (its revision is the ETag)
//! installed.json       what each identity has installed: user, files, endpoints, CA hash, serial
//! journal.json         receipts of an install not yet confirmed (rolled back after a crash)
//! last-cycle.json      the last cycle's outcome, report and errors, for `status`
//! revoked.json         present while the server says this node is revoked (removed by enroll)
//! ```
//!
//! Every file is replaced atomically (temp file created with its final mode, fsync, rename).

mod records;

pub use records::{
    CycleRecord, InstalledIdentity, Journal, Outcome, REVOKED_WHAT_TO_DO, RevokedRecord,
};

use crate::keys::PrivateKeyPem;
use calseg_api::manifest::Manifest;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why reading or writing the state directory failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {op} failed: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{path}: corrupt ({message}); remove it to start over")]
    Corrupt { path: PathBuf, message: String },
}

/// The fleet credentials saved at enrollment.
#[derive(Debug, Clone)]
pub struct FleetCredentials {
    pub key: PrivateKeyPem,
    pub cert_pem: String,
    pub ca_pem: String,
}

/// Handle on the state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub dir: PathBuf,
}

impl StateDir {
    pub const SERVER_URL: &'static str = "server.url";
    pub const CURRENT_SERVER: &'static str = "server.current";
    pub const FLEET_KEY: &'static str = "fleet.key";
    pub const FLEET_CERT: &'static str = "fleet.pem";
    pub const FLEET_CA: &'static str = "fleet-ca.pem";
    pub const PENDING_KEY: &'static str = "fleet-pending.key";
    pub const PENDING_CSR: &'static str = "fleet-pending.csr";
    pub const MANIFEST: &'static str = "manifest.json";
    pub const INSTALLED: &'static str = "installed.json";
    pub const JOURNAL: &'static str = "journal.json";
    pub const LAST_CYCLE: &'static str = "last-cycle.json";
    pub const REVOKED: &'static str = "revoked.json";

    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Creates the directory (0700) if missing.
    pub fn ensure(&self) -> Result<(), StateError> {
        match DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
        {
            Ok(()) => Ok(()),
            Err(source) => Err(self.io(&self.dir, "create directory", source)),
        }
    }

    fn io(&self, path: &Path, op: &'static str, source: io::Error) -> StateError {
        io_error(path, op, source)
    }

    /// Replaces `name` atomically with `bytes`, the new file created with `mode`.
    pub fn write(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), StateError> {
        self.ensure()?;
        write_atomic(&self.dir, name, bytes, mode)
    }

    /// Reads `name`, `None` if it does not exist.
    pub fn read(&self, name: &str) -> Result<Option<String>, StateError> {
        let path = self.path(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(&path, "read", e)),
        }
    }

    /// Removes `name` if present.
    pub fn remove(&self, name: &str) -> Result<(), StateError> {
        let path = self.path(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(self.io(&path, "remove", e)),
            _ => Ok(()),
        }
    }

    fn read_json<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StateError> {
        let Some(text) = self.read(name)? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path: self.path(name),
                message: e.to_string(),
            })
    }

    fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StateError> {
        let mut text = serde_json::to_string_pretty(value).map_err(|e| StateError::Corrupt {
            path: self.path(name),
            message: e.to_string(),
        })?;
        text.push('\n');
        self.write(name, text.as_bytes(), 0o600)
    }

    /// The fleet credentials, `None` if this host has not enrolled.
    pub fn fleet(&self) -> Result<Option<FleetCredentials>, StateError> {
        let (Some(key), Some(cert_pem), Some(ca_pem)) = (
            self.read(Self::FLEET_KEY)?,
            self.read(Self::FLEET_CERT)?,
            self.read(Self::FLEET_CA)?,
        ) else {
            return Ok(None);
        };
        Ok(Some(FleetCredentials {
            key: PrivateKeyPem::new(key),
            cert_pem,
            ca_pem,
        }))
    }

    /// Saves fleet credentials: the key 0600, certificates 0644; the key is written first so
    /// a certificate on disk always has its key.
    pub fn save_fleet(&self, fleet: &FleetCredentials) -> Result<(), StateError> {
        self.write(Self::FLEET_KEY, fleet.key.expose().as_bytes(), 0o600)?;
        self.write(Self::FLEET_CERT, fleet.cert_pem.as_bytes(), 0o644)?;
        self.write(Self::FLEET_CA, fleet.ca_pem.as_bytes(), 0o644)
    }

    /// The server URLs saved at enrollment (empty if none); a file written by an agent that
    /// knew only one server holds one line and reads as a list of one.
    pub fn servers(&self) -> Result<Vec<String>, StateError> {
        let text = self.read(Self::SERVER_URL)?.unwrap_or_default();
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    }

    pub fn save_servers(&self, urls: &[String]) -> Result<(), StateError> {
        let text: String = urls.iter().map(|url| format!("{url}\n")).collect();
        self.write(Self::SERVER_URL, text.as_bytes(), 0o644)
    }

    /// The server that answered last, if one was recorded.
    pub fn current_server(&self) -> Result<Option<String>, StateError> {
        Ok(self
            .read(Self::CURRENT_SERVER)?
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty()))
    }

    pub fn save_current_server(&self, url: &str) -> Result<(), StateError> {
        self.write(Self::CURRENT_SERVER, format!("{url}\n").as_bytes(), 0o644)
    }

    pub fn manifest(&self) -> Result<Option<Manifest>, StateError> {
        self.read_json(Self::MANIFEST)
    }

    pub fn save_manifest(&self, manifest: &Manifest) -> Result<(), StateError> {
        self.write_json(Self::MANIFEST, manifest)
    }

    /// What each identity (by component) has installed.
    pub fn installed(&self) -> Result<BTreeMap<String, InstalledIdentity>, StateError> {
        Ok(self.read_json(Self::INSTALLED)?.unwrap_or_default())
    }

    pub fn save_installed(
        &self,
        installed: &BTreeMap<String, InstalledIdentity>,
    ) -> Result<(), StateError> {
        self.write_json(Self::INSTALLED, installed)
    }

    pub fn journal(&self) -> Result<Option<Journal>, StateError> {
        self.read_json(Self::JOURNAL)
    }

    pub fn save_journal(&self, journal: &Journal) -> Result<(), StateError> {
        self.write_json(Self::JOURNAL, journal)
    }

    pub fn clear_journal(&self) -> Result<(), StateError> {
        self.remove(Self::JOURNAL)
    }

    pub fn last_cycle(&self) -> Result<Option<CycleRecord>, StateError> {
        self.read_json(Self::LAST_CYCLE)
    }

    pub fn save_last_cycle(&self, record: &CycleRecord) -> Result<(), StateError> {
        self.write_json(Self::LAST_CYCLE, record)
    }

    /// Whether (and since when) the server says this node is revoked.
    pub fn revoked(&self) -> Result<Option<RevokedRecord>, StateError> {
        self.read_json(Self::REVOKED)
    }

    pub fn save_revoked(&self, record: &RevokedRecord) -> Result<(), StateError> {
        self.write_json(Self::REVOKED, record)
    }

    pub fn clear_revoked(&self) -> Result<(), StateError> {
        self.remove(Self::REVOKED)
    }
}

fn io_error(path: &Path, op: &'static str, source: io::Error) -> StateError {
    StateError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// Replaces `dir/name` atomically with `bytes`: a temp file `.name.tmp` created with `mode`
/// (set exactly, whatever the umask), written, fsynced, renamed over `name`; then `dir` is
/// fsynced. `dir` must exist.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(io_error(&tmp, "remove", e));
        }
        _ => {}
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|e| io_error(&tmp, "create", e))?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(&tmp, "write", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, "rename", e))?;
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests;
