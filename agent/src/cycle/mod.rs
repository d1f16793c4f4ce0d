//! One reconcile pass: pull → decide → issue (CSR, sign, verify against etcd) → install and
//! render → restart → report.
//!
//! The pass talks to the outside through small traits ([`ManifestSource`], [`Signer`],
//! [`Verifier`], [`Installer`], [`Restarter`], [`RestartLeases`], [`Reporter`]); [`real`] holds the
//! implementations over HTTPS, etcd, the file system and systemd, and the unit tests drive the
//! pass with fakes. [`Phase`] walks the pass through its steps with checked transitions, so
//! the daemon knows whether an install is under way when asked to stop.
//!
//! The whole manifest is checked against agent.toml's [`Limits`] as soon as it is known, before
//! any managed file is read, any CSR made, anything installed or restarted; one violation
//! refuses the pass, and the report names it.
//!
//! Nothing is installed before every new certificate of the pass has been verified against
//! etcd, and a stop request seen before installing ends the pass without touching a file.
//! Units restart only under a restart lease from the server (the fleet's restart budget); when
//! none is granted in time, the identities behind those units are rolled back instead.

mod auth_race;
mod lease;
mod phase;
pub mod real;
mod report;
mod restart;
mod revoked;
mod run;
pub(crate) mod steps;

pub use phase::{Phase, PhaseError};

use crate::client::{ClientError, ManifestFetch};
use crate::install::{FileSpec, InstallError, InstallReceipt, Root};
use crate::keys::{KeyAlgorithm, PrivateKeyPem};
use crate::limits::Limits;
use crate::state::{Outcome, StateDir};
use crate::systemd::{SystemdError, UnitStatus};
use calseg_api::certificates::{SignRequest, SignResponse};
use calseg_api::lease::{LeaseGrant, LeaseRequest};
use calseg_api::report::Report;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use time::OffsetDateTime;

/// Where manifests come from.
pub trait ManifestSource {
    /// The manifest, or "not modified" when its revision is still `etag`.
    fn fetch(
        &mut self,
        etag: Option<&str>,
    ) -> impl Future<Output = Result<ManifestFetch, ClientError>> + Send;
}

/// Who signs CSRs.
pub trait Signer {
    fn sign(
        &mut self,
        request: &SignRequest,
    ) -> impl Future<Output = Result<SignResponse, ClientError>> + Send;
}

/// A new identity to try against etcd before anything is installed.
#[derive(Debug, Clone)]
pub struct Probe {
    pub etcd_user: String,
    pub endpoints: Vec<String>,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key: PrivateKeyPem,
    /// A key the identity may read; empty to check only that etcd accepts the certificate.
    pub probe_key: String,
}

/// Checks a new identity works against etcd.
pub trait Verifier {
    /// `Err` says why etcd refused it (never containing the key).
    fn verify(&mut self, probe: &Probe) -> impl Future<Output = Result<(), String>> + Send;
}

/// Writes files under the root prefix (synchronous: local file operations).
pub trait Installer {
    fn root(&self) -> &Root;
    fn install_set(&mut self, specs: &[FileSpec]) -> Result<InstallReceipt, InstallError>;
    fn install_file(&mut self, spec: &FileSpec) -> Result<InstallReceipt, InstallError>;
    fn rollback(&mut self, receipt: &InstallReceipt) -> Result<(), InstallError>;
    /// The text at a manifest path (following calseg's own links), `None` if absent.
    fn read(&self, path: &Path) -> Option<String>;
    /// Mode, owner and group names of an existing file at a manifest path.
    fn attributes(&self, path: &Path) -> Option<(u32, String, String)>;
}

/// Why a restarted unit is not healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartFailure {
    pub status: Option<UnitStatus>,
    pub reason: String,
}

/// Restarts units and watches them.
pub trait Restarter {
    fn status(
        &mut self,
        unit: &str,
    ) -> impl Future<Output = Result<UnitStatus, SystemdError>> + Send;
    /// Restarts `unit` and waits (at most `timeout`) until it is active and stays active
    /// without restarting by itself.
    fn restart_and_wait(
        &mut self,
        unit: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<UnitStatus, RestartFailure>> + Send;
}

/// The server's restart budget: a lease must be held while units restart.
pub trait RestartLeases {
    /// A lease, or a transient error (429 with `retry_after` while the budget is full).
    fn acquire(
        &mut self,
        request: &LeaseRequest,
    ) -> impl Future<Output = Result<LeaseGrant, ClientError>> + Send;
    /// Extends a held lease.
    fn renew(
        &mut self,
        lease_id: &str,
    ) -> impl Future<Output = Result<LeaseGrant, ClientError>> + Send;
    /// Gives a lease back early.
    fn release(&mut self, lease_id: &str) -> impl Future<Output = Result<(), ClientError>> + Send;
}

/// Who receives reports.
pub trait Reporter {
    fn report(&mut self, report: &Report) -> impl Future<Output = Result<(), ClientError>> + Send;
}

/// The outside world of one pass.
pub struct Ports<M, S, V, I, R, P, L> {
    pub manifest: M,
    pub signer: S,
    pub verifier: V,
    pub installer: I,
    pub restarter: R,
    pub reporter: P,
    pub leases: L,
}

/// What a pass needs besides its ports.
#[derive(Debug, Clone)]
pub struct CycleContext {
    pub node: String,
    pub key_algorithm: KeyAlgorithm,
    pub restart_timeout: Duration,
    /// How long to wait for a restart lease before rolling back instead of restarting.
    pub lease_wait: Duration,
    pub state: StateDir,
    /// The pass's clock: decisions are made as of this instant.
    pub now: OffsetDateTime,
    /// Set by the daemon on SIGTERM/SIGINT; checked before installing.
    pub stop: Arc<AtomicBool>,
    /// agent.toml's limits; a manifest outside them is refused before anything is touched.
    pub limits: Limits,
    /// Which certificates to renew whether or not they are due (`calseg-agent renew`).
    pub renew: crate::decide::Renew,
}

/// How a pass ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleResult {
    pub outcome: Outcome,
    pub report: Option<Report>,
    pub errors: Vec<String>,
    /// The server's `Retry-After` when it asked to be left alone.
    pub retry_after: Option<Duration>,
}

#[cfg(test)]
mod tests;
