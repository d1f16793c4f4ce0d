//! The real ports: the server over HTTPS ([`ApiClient`]), etcd ([`EtcdVerifier`]), the file
//! system under a root prefix ([`FsInstaller`]) and systemd ([`SystemdRestarter`]).

use super::{
    Installer, ManifestSource, Probe, Reporter, RestartFailure, RestartLeases, Restarter, Signer,
    Verifier,
};
use crate::client::{ApiClient, ClientError, ManifestFetch};
use crate::install::{self, FileSpec, InstallError, InstallReceipt, Root};
use crate::systemd::{Systemd, SystemdError, UnitStatus};
use calseg_api::certificates::{SignRequest, SignResponse};
use calseg_api::lease::{LeaseGrant, LeaseRequest};
use calseg_api::report::Report;
use etcd_client::{Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

impl ManifestSource for ApiClient {
    async fn fetch(&mut self, etag: Option<&str>) -> Result<ManifestFetch, ClientError> {
        self.manifest(etag).await
    }
}

impl Signer for ApiClient {
    async fn sign(&mut self, request: &SignRequest) -> Result<SignResponse, ClientError> {
        ApiClient::sign(self, request).await
    }
}

impl Reporter for ApiClient {
    async fn report(&mut self, report: &Report) -> Result<(), ClientError> {
        ApiClient::report(self, report).await
    }
}

impl RestartLeases for ApiClient {
    async fn acquire(&mut self, request: &LeaseRequest) -> Result<LeaseGrant, ClientError> {
        self.acquire_lease(request).await
    }

    async fn renew(&mut self, lease_id: &str) -> Result<LeaseGrant, ClientError> {
        self.renew_lease(lease_id).await
    }

    async fn release(&mut self, lease_id: &str) -> Result<(), ClientError> {
        self.release_lease(lease_id).await
    }
}

/// Reads the probe key with the new certificate against the manifest's endpoints and CA.
#[derive(Debug, Clone)]
pub struct EtcdVerifier {
    pub timeout: Duration,
}

impl Default for EtcdVerifier {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
        }
    }
}

impl Verifier for EtcdVerifier {
    async fn verify(&mut self, probe: &Probe) -> Result<(), String> {
        let tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(probe.ca_pem.as_bytes()))
            .identity(Identity::from_pem(
                probe.cert_pem.as_bytes(),
                probe.key.expose().as_bytes(),
            ));
        let options = ConnectOptions::new()
            .with_tls(tls)
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(self.timeout);
        let endpoints = probe.endpoints.join(",");
        let client = Client::connect(&probe.endpoints, Some(options))
            .await
            .map_err(|e| format!("connect to {endpoints}: {e}"))?;
        // A reconcile running meanwhile may invalidate the check; it is sent again then.
        let deadline = Instant::now() + self.timeout;
        super::auth_race::retry_auth_races(deadline, || {
            let mut client = client.clone();
            async move {
                if probe.probe_key.is_empty() {
                    client
                        .status()
                        .await
                        .map(drop)
                        .map_err(|e| format!("status as {}: {e}", probe.etcd_user))
                } else {
                    let options = GetOptions::new().with_keys_only().with_count_only();
                    client
                        .get(probe.probe_key.as_str(), Some(options))
                        .await
                        .map(drop)
                        .map_err(|e| {
                            format!("read {:?} as {}: {e}", probe.probe_key, probe.etcd_user)
                        })
                }
            }
        })
        .await
    }
}

/// Installs under a root prefix with backups, so every install can be rolled back.
#[derive(Debug, Clone)]
pub struct FsInstaller {
    pub root: Root,
}

impl Installer for FsInstaller {
    fn root(&self) -> &Root {
        &self.root
    }

    fn install_set(&mut self, specs: &[FileSpec]) -> Result<InstallReceipt, InstallError> {
        install::install_set(&self.root, specs, true)
    }

    fn install_file(&mut self, spec: &FileSpec) -> Result<InstallReceipt, InstallError> {
        install::install_file(&self.root, spec, true)
    }

    fn rollback(&mut self, receipt: &InstallReceipt) -> Result<(), InstallError> {
        install::rollback(&self.root, receipt)
    }

    fn read(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(self.root.resolve(path).ok()?).ok()
    }

    fn attributes(&self, path: &Path) -> Option<(u32, String, String)> {
        let meta = std::fs::symlink_metadata(self.root.resolve(path).ok()?).ok()?;
        if !meta.is_file() {
            return None;
        }
        let user = nix::unistd::User::from_uid(meta.uid().into())
            .ok()
            .flatten()?;
        let group = nix::unistd::Group::from_gid(meta.gid().into())
            .ok()
            .flatten()?;
        Some((meta.mode() & 0o7777, user.name, group.name))
    }
}

/// Restarts through systemd and watches the unit settle.
#[derive(Clone)]
pub struct SystemdRestarter {
    pub systemd: Systemd,
}

/// How often a restarted unit is read until it is active: a start that fails shows at once.
const START_POLL: Duration = Duration::from_millis(250);

/// How often an active unit is read while it settles. Coarser than [`START_POLL`] because
/// nothing is missed between reads: a unit that dies and is restarted by systemd raises
/// `NRestarts`, and one that dies for good stays `failed` or inactive; a read comes at the end
/// of the settle time in any case. A 15 s settle costs 15 reads instead of 60.
const SETTLE_POLL: Duration = Duration::from_secs(1);

/// How long a restarted unit must stay active, without restarting by itself, to count as
/// healthy: a quarter of the restart timeout, at most 15 s.
pub fn settle_time(timeout: Duration) -> Duration {
    (timeout / 4).min(Duration::from_secs(15))
}

impl Restarter for SystemdRestarter {
    async fn status(&mut self, unit: &str) -> Result<UnitStatus, SystemdError> {
        self.systemd.unit_status(unit).await
    }

    async fn restart_and_wait(
        &mut self,
        unit: &str,
        timeout: Duration,
    ) -> Result<UnitStatus, RestartFailure> {
        let fail = |status: Option<UnitStatus>, reason: String| RestartFailure { status, reason };
        self.systemd
            .restart(unit)
            .await
            .map_err(|e| fail(None, e.to_string()))?;
        let started = Instant::now();
        let settle = settle_time(timeout);
        // Resolved once: each read below is then only the property reads.
        let handle = self
            .systemd
            .unit(unit)
            .await
            .map_err(|e| fail(None, e.to_string()))?;
        // NRestarts is reset by a manual restart, so the lowest value seen is the baseline.
        let mut baseline = u32::MAX;
        let mut active_since: Option<Instant> = None;
        loop {
            let status = handle
                .status()
                .await
                .map_err(|e| fail(None, e.to_string()))?;
            baseline = baseline.min(status.n_restarts);
            if status.active_state == "failed" {
                let why = format!(
                    "failed after restart ({}/{})",
                    status.active_state, status.sub_state
                );
                return Err(fail(Some(status), why));
            }
            if status.n_restarts > baseline {
                let why = format!(
                    "restarts by itself (NRestarts {} -> {})",
                    baseline, status.n_restarts
                );
                return Err(fail(Some(status), why));
            }
            let poll = if status.active_state == "active" {
                let since = *active_since.get_or_insert_with(Instant::now);
                let settled_for = since.elapsed();
                if settled_for >= settle {
                    return Ok(status);
                }
                SETTLE_POLL.min(settle - settled_for)
            } else {
                active_since = None;
                START_POLL
            };
            if started.elapsed() >= timeout {
                let why = format!(
                    "not active and stable within {timeout:?} (last state {}/{})",
                    status.active_state, status.sub_state
                );
                return Err(fail(Some(status), why));
            }
            let left = timeout.saturating_sub(started.elapsed());
            tokio::time::sleep(poll.min(left)).await;
        }
    }
}
