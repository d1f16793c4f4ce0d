//! `calseg-server backup FILE`: one file with the store, the CA directory and the TLS files,
//! signed with the fleet CA key (`calseg_control::backup`), encrypted to `[backup] recipient`
//! when set, written 0600 from its first byte and moved into place whole.
//!
//! It runs on the server host, like `admin`: the CA files are read from disk there and never
//! cross the API. The store is read in one consistent view: from the running server through
//! the admin API when server.toml has an `[admin]` section (a second process cannot open the
//! embedded store while the server runs), else straight from the store.

use crate::admin_client::{AdminClient, ServerUnreachable};
use crate::config::{ServerConfig, StoreBackend};
use crate::store::{EtcdStore, RedbStore, Store, StoreSnapshot};
use anyhow::{Context, Result, anyhow, bail};
use calseg_control::backup::{self, BackupContents, BackupFile, age};
use calseg_control::pki::{CaFiles, CaKind, Existing, write_file_as};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use time::OffsetDateTime;

/// The calseg release written into every backup, and the newest one `restore` accepts.
pub const CALSEG_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `calseg-server backup`.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupArgs {
    /// Where to write the backup (mode 0600; an existing file is kept unless --force).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Replace FILE when it exists (atomically: readers see the old or the whole new file).
    #[arg(long)]
    pub force: bool,
}

/// `backup FILE`.
pub async fn backup(config_path: Option<&Path>, args: &BackupArgs) -> Result<ExitCode> {
    let config = ServerConfig::load(config_path)?;
    let now = OffsetDateTime::now_utc();
    let recipient = config
        .backup
        .recipient
        .as_deref()
        .map(age::Recipient::parse)
        .transpose()
        .context("server.toml [backup] recipient")?;
    if !args.force && args.file.symlink_metadata().is_ok() {
        bail!(
            "{} exists; pass --force to replace it, or give another file",
            args.file.display()
        );
    }
    let ca_dir = config.ca_dir();
    let fleet = CaFiles::new(&ca_dir, "fleet")
        .load(CaKind::Fleet, now)
        .with_context(|| {
            format!(
                "load the fleet CA from {}: backup runs on the server host, as a user who can \
                 read the CA keys (it signs the backup with the fleet CA key)",
                ca_dir.display()
            )
        })?;
    let ca_files = read_ca_dir(&ca_dir)?;
    let (cert_path, key_path) = tls_paths(&config);
    let tls_cert = read_backup_file(&cert_path, "server.pem")?;
    let tls_key = read_backup_file(&key_path, "server-key.pem")?;
    let (store, source) = snapshot(&config).await?;
    let contents = BackupContents {
        store,
        ca_files,
        tls_cert,
        tls_key,
    };
    let mut bytes = backup::seal(&contents, &fleet, CALSEG_VERSION, now)?;
    if let Some(recipient) = &recipient {
        bytes = age::encrypt(&bytes, recipient)?;
    }
    let existing = if args.force {
        Existing::Replace
    } else {
        Existing::Refuse
    };
    write_file_as(&args.file, &bytes, 0o600, None, existing)?;
    let s = &contents.store;
    eprintln!(
        "wrote {} ({} bytes, mode 0600): the store read {source} ({} nodes, {} tokens, {} \
         issued certificates, {} audit entries, {} policy revisions), {} files of {}, the TLS \
         certificate and key",
        args.file.display(),
        bytes.len(),
        s.nodes.len(),
        s.tokens.len(),
        s.issued.len(),
        s.audit.len(),
        s.policy_revisions.len(),
        contents.ca_files.len(),
        ca_dir.display(),
    );
    match &recipient {
        Some(r) => eprintln!("encrypted to {}", r.encode()),
        None => eprintln!(
            "not encrypted: the file holds both CA keys; keep it as you keep them, or set \
             [backup] recipient in server.toml"
        ),
    }
    eprintln!(
        "restore with: calseg-server restore {} --ca-hash {}{}",
        args.file.display(),
        fleet.fingerprint_sha256(),
        if recipient.is_some() {
            " --identity <the recipient's key file>"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// The server's TLS certificate and key: `[api] cert_file`/`key_file`, else in state_dir/tls.
pub(super) fn tls_paths(config: &ServerConfig) -> (PathBuf, PathBuf) {
    let tls = config.state_dir().join("tls");
    (
        config
            .api
            .cert_file
            .clone()
            .unwrap_or_else(|| tls.join("server.pem")),
        config
            .api
            .key_file
            .clone()
            .unwrap_or_else(|| tls.join("server-key.pem")),
    )
}

/// Every regular file of the CA directory (not below it), by name. A symbolic link is left out
/// and named: the directory may belong to the server's account, and root must not copy
/// wherever a link planted there points into a file that `restore` writes world-readable.
fn read_ca_dir(dir: &Path) -> Result<Vec<BackupFile>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("read {}", dir.display()))?;
        let path = entry.path();
        let meta =
            std::fs::symlink_metadata(&path).with_context(|| format!("read {}", path.display()))?;
        if meta.file_type().is_symlink() {
            eprintln!(
                "left out {}: a symbolic link (copy the file it points to into {} if the \
                 server needs it)",
                path.display(),
                dir.display()
            );
            continue;
        }
        if !meta.is_file() {
            continue;
        }
        let name = entry
            .file_name()
            .into_string()
            .map_err(|name| anyhow!("{}: the file name {name:?} is not UTF-8", dir.display()))?;
        files.push(read_backup_file(&path, &name)?);
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

fn read_backup_file(path: &Path, name: &str) -> Result<BackupFile> {
    let contents = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("read {}", path.display()))?
        .mode()
        & 0o7777;
    Ok(BackupFile {
        name: name.to_owned(),
        mode,
        contents,
    })
}

/// The store's snapshot, and where it was read.
async fn snapshot(config: &ServerConfig) -> Result<(StoreSnapshot, String)> {
    if let Some(server) = &config.admin.server {
        let client = AdminClient::from_config(config)?;
        match client
            .get::<StoreSnapshot>(calseg_api::paths::ADMIN_STORE_SNAPSHOT)
            .await
        {
            Ok(snapshot) => return Ok((snapshot, format!("from the running server {server}"))),
            Err(error) if error.chain().any(|e| e.is::<ServerUnreachable>()) => {
                eprintln!("no server answers at {server}: reading the store directly");
            }
            Err(error) => return Err(error.context("read the store through the running server")),
        }
    }
    let store: Box<dyn Store> = match config.store.backend()? {
        StoreBackend::Embedded => {
            let path = config.state_dir().join("state.redb");
            if !path.exists() {
                bail!("no store at {}: nothing to back up there", path.display());
            }
            let opened = path.clone();
            let store = tokio::task::spawn_blocking(move || RedbStore::open(&opened))
                .await?
                .with_context(|| {
                    format!(
                        "open {} (does calseg-server run? give server.toml an [admin] section \
                         so backup reads the store through it)",
                        path.display()
                    )
                })?;
            Box::new(store)
        }
        StoreBackend::Etcd => {
            let access = super::store_cmd::etcd_access(config)?;
            let prefix = config.store.prefix()?;
            let store = tokio::task::spawn_blocking(move || EtcdStore::connect(&access, &prefix))
                .await?
                .map_err(|e| anyhow!("open the store in etcd: {e}"))?;
            Box::new(store)
        }
    };
    let snapshot = tokio::task::spawn_blocking(move || store.export_snapshot())
        .await?
        .map_err(|e| anyhow!("read the store: {e}"))?;
    Ok((snapshot, "directly".into()))
}
