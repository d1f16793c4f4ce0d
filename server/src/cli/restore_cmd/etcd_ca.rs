//! [`BorrowedEtcdCa`]: etcd's CA certificate from the backup, for a restore that must reach an
//! etcd store before it writes the CA directory.

use anyhow::{Context, Result};
use calseg_control::backup;
use calseg_control::pki::{Existing, write_file_as};
use std::path::PathBuf;

use crate::config::ServerConfig;

/// `[etcd] ca_file` from the backup, while the restore needs etcd before it has written the CA
/// directory: `init` makes etcd's server CA the etcd client CA (`ca/etcd-client.pem`) unless
/// told otherwise. A copy of that certificate (public) in a private temporary directory, removed
/// when this is dropped.
pub(super) struct BorrowedEtcdCa {
    /// server.toml's settings with `[etcd] ca_file` pointing at the copy, when one was needed.
    pub config: Option<ServerConfig>,
    dir: Option<PathBuf>,
}

impl BorrowedEtcdCa {
    pub fn of(config: &ServerConfig, contents: &backup::BackupContents) -> Result<Self> {
        let none = Self {
            config: None,
            dir: None,
        };
        let Some(ca_file) = &config.etcd.ca_file else {
            return Ok(none);
        };
        let ca_dir = config.ca_dir();
        let from_backup = ca_file
            .strip_prefix(&ca_dir)
            .ok()
            .and_then(|name| name.to_str())
            .and_then(|name| contents.ca_file(name));
        let (Some(file), false) = (from_backup, ca_file.exists()) else {
            return Ok(none);
        };
        let dir = std::env::temp_dir().join(format!(
            "calseg-restore-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("create {}", dir.display()))?;
        // Removes the directory again if a step below fails.
        let mut borrowed = Self {
            config: None,
            dir: Some(dir.clone()),
        };
        let copy = dir.join(&file.name);
        write_file_as(&copy, &file.contents, 0o644, None, Existing::Refuse)?;
        let mut config = config.clone();
        config.etcd.ca_file = Some(copy);
        borrowed.config = Some(config);
        Ok(borrowed)
    }
}

impl Drop for BorrowedEtcdCa {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
