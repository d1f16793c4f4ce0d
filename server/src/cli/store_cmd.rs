//! `calseg-server migrate-store`: copies every record from the embedded store to etcd or back,
//! then reads the target again and compares it with the source record by record. Run it with
//! every server stopped: the embedded file is locked by a running server, and an etcd prefix
//! with a leader key means a replica is running.

use crate::config::{ServerConfig, StoreBackend};
use crate::store::{EtcdStore, RedbStore, Store, StoreSnapshot};
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where to copy from or to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    /// The embedded file (`state.redb` in the state directory, or --file).
    Embedded,
    /// etcd under `[store] prefix`, with the `[etcd]` credentials.
    Etcd,
}

/// `migrate-store --from A --to B`.
pub async fn migrate(
    config_path: Option<&Path>,
    from: StoreKind,
    to: StoreKind,
    file: Option<PathBuf>,
) -> Result<ExitCode> {
    if from == to {
        bail!("--from and --to are both {from:?}: nothing to migrate");
    }
    let config = ServerConfig::load(config_path)?;
    let file = file.unwrap_or_else(|| config.state_dir().join("state.redb"));
    let source = open(&config, from, &file).await?;
    let target = open(&config, to, &file).await?;
    let clear = match to {
        StoreKind::Embedded => format!("delete {}", file.display()),
        StoreKind::Etcd => format!(
            "delete the keys under {} (etcdctl del --prefix {0})",
            config.store.prefix()?
        ),
    };
    let report =
        tokio::task::spawn_blocking(move || copy(source.as_ref(), target.as_ref(), &clear))
            .await??;
    println!("{report}");
    match to {
        StoreKind::Etcd if config.store.backend()? != StoreBackend::Etcd => {
            eprintln!("next: set [store] backend = \"etcd\" in server.toml and start the servers")
        }
        StoreKind::Embedded if config.store.backend()? != StoreBackend::Embedded => eprintln!(
            "next: set [store] backend = \"embedded\" in server.toml and start the server"
        ),
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// Copies `source` into the empty `target` and checks the copy; says what was copied. The
/// source is only read; `clear` says how to empty the target after a copy that differs.
fn copy(source: &dyn Store, target: &dyn Store, clear: &str) -> Result<String> {
    let snapshot = source
        .export_snapshot()
        .map_err(|e| anyhow!("read the source store: {e}"))?;
    target
        .import_snapshot(&snapshot)
        .map_err(|e| anyhow!("write the target store: {e}"))?;
    let copied = target
        .export_snapshot()
        .map_err(|e| anyhow!("read the target store back: {e}"))?;
    if let Some(difference) = first_difference(&snapshot, &copied) {
        bail!(
            "the copy differs from the source: {difference}; the source is unchanged; {clear} \
             before migrating again"
        );
    }
    Ok(format!(
        "copied and verified record by record: {} nodes, {} tokens, {} issued certificates, \
         {} audit entries, {} restart leases, {} policy revisions ({} texts), {} rollout",
        snapshot.nodes.len(),
        snapshot.tokens.len(),
        snapshot.issued.len(),
        snapshot.audit.len(),
        snapshot.leases.len(),
        snapshot.policy_revisions.len(),
        snapshot.policy_texts.len(),
        if snapshot.rollout.is_some() {
            "1"
        } else {
            "no"
        },
    ))
}

/// The first kind of record whose lists differ, with its count on both sides.
fn first_difference(a: &StoreSnapshot, b: &StoreSnapshot) -> Option<String> {
    let kinds = [
        (
            "tokens",
            a.tokens == b.tokens,
            a.tokens.len(),
            b.tokens.len(),
        ),
        ("nodes", a.nodes == b.nodes, a.nodes.len(), b.nodes.len()),
        (
            "issued",
            a.issued == b.issued,
            a.issued.len(),
            b.issued.len(),
        ),
        ("audit", a.audit == b.audit, a.audit.len(), b.audit.len()),
        (
            "leases",
            a.leases == b.leases,
            a.leases.len(),
            b.leases.len(),
        ),
        (
            "policy revisions",
            a.policy_revisions == b.policy_revisions,
            a.policy_revisions.len(),
            b.policy_revisions.len(),
        ),
        (
            "policy texts",
            a.policy_texts == b.policy_texts,
            a.policy_texts.len(),
            b.policy_texts.len(),
        ),
        (
            "rollout",
            a.rollout == b.rollout,
            usize::from(a.rollout.is_some()),
            usize::from(b.rollout.is_some()),
        ),
    ];
    kinds
        .into_iter()
        .find(|(_, same, _, _)| !same)
        .map(|(kind, _, n, m)| format!("{kind} ({n} in the source, {m} in the copy)"))
}

pub(super) async fn open(
    config: &ServerConfig,
    kind: StoreKind,
    file: &Path,
) -> Result<Box<dyn Store>> {
    match kind {
        StoreKind::Embedded => {
            let path = file.to_path_buf();
            let store = tokio::task::spawn_blocking(move || RedbStore::open(&path))
                .await?
                .with_context(|| {
                    format!(
                        "open {} (is calseg-server still running? stop it first)",
                        file.display()
                    )
                })?;
            Ok(Box::new(store))
        }
        StoreKind::Etcd => {
            let access = etcd_access(config)?;
            let prefix = config.store.prefix()?;
            let mut client = crate::rbac::connect(&access).await?;
            let leader = client
                .get(format!("{prefix}leader"), None)
                .await
                .with_context(|| format!("read {prefix}leader in etcd"))?;
            if let Some(kv) = leader.kvs().first() {
                bail!(
                    "a calseg-server replica leads on {prefix} ({}): stop every replica before migrating",
                    kv.value_str().unwrap_or("?")
                );
            }
            let user = crate::ha::access::etcd_user_of(&access.cert_file)?;
            crate::ha::access::provision_state_role(&mut client, &prefix, &user).await?;
            let store = tokio::task::spawn_blocking(move || EtcdStore::connect(&access, &prefix))
                .await?
                .map_err(|e| anyhow!("open the store in etcd: {e}"))?;
            Ok(Box::new(store))
        }
    }
}

/// The `[etcd]` credentials; endpoints default to the policy's.
pub(super) fn etcd_access(config: &ServerConfig) -> Result<crate::rbac::EtcdAccess> {
    let policy_endpoints = || {
        let path = super::rbac_cmd::policy_path(config, None);
        crate::policy::load(&path)
            .map(|policy| policy.etcd.endpoints)
            .map_err(|errors| anyhow!("{errors}"))
            .context("[etcd] endpoints is not set, and the policy's could not be read")
    };
    config
        .etcd
        .access(policy_endpoints)?
        .context("server.toml [etcd] needs cert_file, key_file and ca_file to reach the etcd store")
}
