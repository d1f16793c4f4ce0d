//! `calseg-server restore FILE --ca-hash sha256:...`: a new machine in the state of the
//! backup. Everything is checked before a byte is written: the decryption, the pin, the
//! signature, the versions, the contents (`calseg_control::backup::open`), then that the
//! target holds nothing (CA directory, TLS files, store). Then the CA files (keys 0600, the
//! rest 0644), the TLS files and the store are written, owned like `init` owns them; if any
//! write fails, what was written is removed again.
//!
//! # Layout
//! - `etcd_ca`: etcd's CA certificate from the backup, to reach an etcd store first.
//! - `written`: what the restore wrote, and its removal.

use super::backup_cmd::{CALSEG_VERSION, tls_paths};
use super::store_cmd::{self, StoreKind};
use crate::config::{ServerConfig, StoreBackend};
use crate::store::Store;
use anyhow::{Context, Result, anyhow, bail};
use calseg_control::backup::{self, age};
use calseg_control::pki::FileOwner;
use etcd_ca::BorrowedEtcdCa;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use time::OffsetDateTime;
use written::Written;

/// `[etcd] ca_file` from the backup, while the CA directory is not written yet.
mod etcd_ca;
/// What a restore wrote, to remove it again.
mod written;

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
