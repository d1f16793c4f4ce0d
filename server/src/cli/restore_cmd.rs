//! `calseg-server restore FILE --ca-hash sha256:...`: a new machine in the state of the
//! backup. Everything is checked before a byte is written: the decryption, the pin, the
//! signature, the versions, the contents (`calseg_control::backup::open`), then that the
//! target holds nothing (CA directory, TLS files, store). Then the CA files (keys 0600, the
//! rest 0644), the TLS files and the store are written, owned like `init` owns them; if any
//! write fails, what was written is removed again.

use super::backup_cmd::{CALSEG_VERSION, tls_paths};
use super::store_cmd::{self, StoreKind};
use crate::config::{ServerConfig, StoreBackend};
use crate::store::Store;
use anyhow::{Context, Result, anyhow, bail};
use calseg_control::backup::{self, BackupFile, age};
use calseg_control::pki::{Existing, FileOwner, write_file_as};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use time::OffsetDateTime;

/// `calseg-server restore`.
#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    /// The backup `calseg-server backup` wrote.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// `sha256:<64 hex>`: the fleet CA the agents pinned when they enrolled (the value given
    /// to `calseg-agent enroll --ca-hash`). A backup of another fleet CA is refused.
    #[arg(long, value_name = "sha256:HEX")]
    pub ca_hash: String,
    /// The age identity file (`AGE-SECRET-KEY-1...`) of [backup] recipient, for an encrypted
    /// backup.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,
}

/// `restore FILE`.
pub async fn restore(config_path: Option<&Path>, args: &RestoreArgs) -> Result<ExitCode> {
    let config = ServerConfig::load(config_path)?;
    let pin = backup::parse_pin(&args.ca_hash)?;
    let now = OffsetDateTime::now_utc();
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("read the backup {}", args.file.display()))?;
    let bytes = if age::is_age(&bytes) {
        let path = args
            .identity
            .as_ref()
            .ok_or(backup::BackupError::Encrypted)?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read the identity file {}", path.display()))?;
        age::decrypt(&bytes, &age::Identity::parse_file(&text, path)?)?
    } else {
        bytes
    };
    let verified = backup::open(&bytes, &pin, CALSEG_VERSION, now)
        .with_context(|| format!("{}: nothing was restored", args.file.display()))?;
    let borrowed = BorrowedEtcdCa::of(&config, &verified.contents)?;
    let target = Target::of(&config, borrowed.config.as_ref().unwrap_or(&config)).await?;
    target.refuse_unless_empty().await?;
    let mut written = Written::default();
    let outcome = target.write(&verified.contents, &mut written).await;
    if let Err(error) = outcome {
        written.undo();
        return Err(error.context("restore failed; what it had written was removed"));
    }
    let s = &verified.contents.store;
    eprintln!(
        "restored the backup of {} (calseg {}): {} files into {}, the TLS files, and {} nodes, \
         {} tokens, {} issued certificates, {} audit entries, {} policy revisions into {}",
        calseg_api::when::rfc3339(&verified.header.created_at),
        verified.header.calseg_version,
        verified.contents.ca_files.len(),
        target.ca_dir.display(),
        s.nodes.len(),
        s.tokens.len(),
        s.issued.len(),
        s.audit.len(),
        s.policy_revisions.len(),
        target.store_name,
    );
    eprintln!("next: start calseg-server; agents pinned to {pin} go on without enrolling again");
    Ok(ExitCode::SUCCESS)
}

/// Where a restore writes, from server.toml.
struct Target {
    state_dir: PathBuf,
    ca_dir: PathBuf,
    tls_cert: PathBuf,
    tls_key: PathBuf,
    store: TargetStore,
    store_name: String,
    /// The packaged server's account, when root restores into its state directory (as
    /// `init` does).
    owner: Option<FileOwner>,
}

enum TargetStore {
    Embedded(PathBuf),
    /// Blocking: its calls run on tokio's blocking pool.
    Etcd(std::sync::Arc<dyn Store>),
}

impl Target {
    /// The targets `config` names; `etcd_config` is how to reach an etcd store.
    async fn of(config: &ServerConfig, etcd_config: &ServerConfig) -> Result<Self> {
        let state_dir = config.state_dir();
        let (tls_cert, tls_key) = tls_paths(config);
        let (store, store_name) = match config.store.backend()? {
            StoreBackend::Embedded => {
                let path = state_dir.join("state.redb");
                let name = path.display().to_string();
                (TargetStore::Embedded(path), name)
            }
            StoreBackend::Etcd => {
                let prefix = config.store.prefix()?;
                // Refuses while a replica leads on the prefix.
                let store = store_cmd::open(etcd_config, StoreKind::Etcd, &state_dir).await?;
                (
                    TargetStore::Etcd(store.into()),
                    format!("etcd under {prefix}"),
                )
            }
        };
        Ok(Self {
            owner: crate::init::service_account(&state_dir),
            ca_dir: config.ca_dir(),
            state_dir,
            tls_cert,
            tls_key,
            store,
            store_name,
        })
    }

    /// Refuses, naming everything in the way, unless the CA directory is missing or empty and
    /// neither the TLS files nor the store hold anything.
    async fn refuse_unless_empty(&self) -> Result<()> {
        let mut found = Vec::new();
        // As init: root writes keys (for the server's account) only into real directories, never
        // wherever a link that account planted points.
        let dirs = [Some(self.state_dir.as_path()), Some(self.ca_dir.as_path())]
            .into_iter()
            .chain([self.tls_cert.parent(), self.tls_key.parent()]);
        for dir in dirs.flatten() {
            if dir
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
            {
                found.push(format!(
                    "{} is a symbolic link (restore writes only into real directories)",
                    dir.display()
                ));
            }
        }
        if let Ok(entries) = std::fs::read_dir(&self.ca_dir) {
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            if !names.is_empty() {
                found.push(format!(
                    "the CA directory {} holds {}",
                    self.ca_dir.display(),
                    names.join(", ")
                ));
            }
        }
        for path in [&self.tls_cert, &self.tls_key] {
            if path.symlink_metadata().is_ok() {
                found.push(format!("{} exists", path.display()));
            }
        }
        match &self.store {
            TargetStore::Embedded(path) => {
                if path.symlink_metadata().is_ok() {
                    found.push(format!("the store {} exists", path.display()));
                }
            }
            TargetStore::Etcd(store) => {
                let store = std::sync::Arc::clone(store);
                let snapshot = tokio::task::spawn_blocking(move || store.export_snapshot())
                    .await?
                    .map_err(|e| anyhow!("read {}: {e}", self.store_name))?;
                if !snapshot.is_empty() {
                    found.push(format!(
                        "{} holds {} nodes, {} audit entries",
                        self.store_name,
                        snapshot.nodes.len(),
                        snapshot.audit.len()
                    ));
                }
            }
        }
        if !found.is_empty() {
            bail!(
                "restore writes only into an empty target, and {}; nothing was written: restore \
                 on a fresh machine, or move these away (after a backup of them) and run restore \
                 again",
                found.join("; ")
            );
        }
        Ok(())
    }

    /// Writes the CA files, the TLS files and the store, recording each in `written`.
    async fn write(&self, contents: &backup::BackupContents, written: &mut Written) -> Result<()> {
        written.create_dir(&self.state_dir, None)?;
        written.create_dir(&self.ca_dir, self.owner)?;
        for file in &contents.ca_files {
            written.file(&self.ca_dir.join(&file.name), file, self.owner)?;
        }
        for (path, file) in [
            (&self.tls_cert, &contents.tls_cert),
            (&self.tls_key, &contents.tls_key),
        ] {
            if let Some(dir) = path.parent() {
                written.create_dir(dir, self.owner)?;
            }
            written.file(path, file, self.owner)?;
        }
        let snapshot = contents.store.clone();
        match &self.store {
            TargetStore::Embedded(path) => {
                written.files.push(path.clone());
                let opened = path.clone();
                tokio::task::spawn_blocking(move || {
                    let store = crate::store::RedbStore::open(&opened)?;
                    store.import_snapshot(&snapshot)
                })
                .await?
                .map_err(|e| anyhow!("write the store {}: {e}", path.display()))?;
                if let Some(owner) = self.owner {
                    std::os::unix::fs::chown(path, Some(owner.uid), Some(owner.gid))
                        .with_context(|| format!("chown {}", path.display()))?;
                }
            }
            TargetStore::Etcd(store) => {
                let store = std::sync::Arc::clone(store);
                tokio::task::spawn_blocking(move || store.import_snapshot(&snapshot))
                    .await?
                    .map_err(|e| {
                        anyhow!(
                            "write the store into {}: {e}; delete the keys written there \
                             (etcdctl del --prefix) before restoring again",
                            self.store_name
                        )
                    })?
            }
        }
        Ok(())
    }
}

/// `[etcd] ca_file` from the backup, while the restore needs etcd before it has written the CA
/// directory: `init` makes etcd's server CA the etcd client CA (`ca/etcd-client.pem`) unless
/// told otherwise. A copy of that certificate (public) in a private temporary directory, removed
/// when this is dropped.
struct BorrowedEtcdCa {
    /// server.toml's settings with `[etcd] ca_file` pointing at the copy, when one was needed.
    config: Option<ServerConfig>,
    dir: Option<PathBuf>,
}

impl BorrowedEtcdCa {
    fn of(config: &ServerConfig, contents: &backup::BackupContents) -> Result<Self> {
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

/// What a restore created, to remove it again when a later step fails.
#[derive(Default)]
struct Written {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Written {
    /// Creates `dir` and its missing parents (0750), each recorded; `owner` owns `dir` itself.
    fn create_dir(&mut self, dir: &Path, owner: Option<FileOwner>) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
        for (i, d) in missing.iter().rev().enumerate() {
            std::fs::DirBuilder::new()
                .mode(0o750)
                .create(d)
                .with_context(|| format!("create {}", d.display()))?;
            self.dirs.push(d.to_path_buf());
            if let (Some(owner), true) = (owner, i + 1 == missing.len()) {
                std::os::unix::fs::chown(d, Some(owner.uid), Some(owner.gid))
                    .with_context(|| format!("chown {}", d.display()))?;
            }
        }
        Ok(())
    }

    /// Writes a key 0600, anything else 0644, refusing an existing file.
    fn file(&mut self, path: &Path, file: &BackupFile, owner: Option<FileOwner>) -> Result<()> {
        let mode = if file.is_secret() { 0o600 } else { 0o644 };
        write_file_as(path, &file.contents, mode, owner, Existing::Refuse)?;
        self.files.push(path.to_path_buf());
        Ok(())
    }

    /// Removes the files, then the directories (deepest first, only when empty).
    fn undo(&self) {
        for file in self.files.iter().rev() {
            let _ = std::fs::remove_file(file);
        }
        for dir in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn file(name: &str, mode: u32) -> BackupFile {
        BackupFile {
            name: name.into(),
            mode,
            contents: b"x".to_vec(),
        }
    }

    #[test]
    fn undo_removes_what_was_written_and_only_that() {
        let root = tempfile::tempdir().unwrap();
        let kept = root.path().join("kept");
        std::fs::write(&kept, "operator's").unwrap();
        let ca = root.path().join("state/ca");
        let mut written = Written::default();
        written.create_dir(&ca, None).unwrap();
        written
            .file(
                &ca.join("fleet-key.pem"),
                &file("fleet-key.pem", 0o640),
                None,
            )
            .unwrap();
        written
            .file(&ca.join("fleet.pem"), &file("fleet.pem", 0o644), None)
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode(&ca.join("fleet-key.pem")),
            0o600,
            "keys are 0600 whatever they were"
        );
        assert_eq!(mode(&ca.join("fleet.pem")), 0o644);
        // An existing file is never replaced.
        assert!(written.file(&kept, &file("kept", 0o644), None).is_err());
        written.undo();
        assert!(
            !root.path().join("state").exists(),
            "created directories removed"
        );
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "operator's");
    }
}
