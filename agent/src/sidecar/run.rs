//! Running the side car: enrollment when the state directory has no fleet identity, then one
//! pass (`--init`, the init container) or a pass every interval until SIGTERM.
//!
//! Each pass is the agent's own cycle ([`crate::cycle`]): pull, sign, verify against etcd,
//! install, report; with the manifest rewritten by [`Target::rewrite`], the limits of
//! [`Target::limits`], and no systemd ([`NoUnits`]).

use super::Target;
use crate::cli::{EXIT_FAILED, EXIT_OK, EXIT_PENDING, EXIT_UNREACHABLE};
use crate::client::{ApiClient, ClientError, ManifestFetch};
use crate::config::{self, Settings};
use crate::cycle::real::{EtcdVerifier, FsInstaller};
use crate::cycle::{CycleResult, ManifestSource, Ports, RestartFailure, Restarter};
use crate::daemon;
use crate::decide::Renew;
use crate::enroll::{self, EnrollOptions, EnrollOutcome, Token};
use crate::state::{Outcome, StateDir};
use crate::systemd::{SystemdError, UnitStatus};
use anyhow::{Context, Result, bail};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How to enroll when the state directory has no fleet identity yet.
#[derive(Debug, Clone, Default)]
pub struct Enrollment {
    /// Server URLs (empty: `servers` from the config).
    pub servers: Vec<String>,
    /// The fleet CA pin, `sha256:<hex>`; needed only to enroll.
    pub ca_hash: Option<String>,
    /// A glob token (from a mounted Secret); `None` waits for approval.
    pub token: Option<Token>,
    /// How long to wait for approval; `None` returns at once (exit 3).
    pub wait: Option<Duration>,
}

/// What `calseg-agent sidecar` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    pub enrollment: Enrollment,
    /// The init-container form: one pass, exit 0 once the files are there.
    pub init: bool,
    /// Renew the component's certificate in the first pass, due or not.
    pub renew: bool,
    /// Signal this process after a new identity is installed (never in the init form).
    pub signal: Option<super::signal::Signaller>,
}

/// The side car: returns the exit status.
pub async fn run(
    settings: &Settings,
    opts: &Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<u8> {
    opts.target.check_writable()?;
    let state = StateDir::new(&settings.state_dir);
    if let Some(code) = ensure_enrolled(settings, &state, &opts.enrollment).await? {
        return Ok(code);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(tokio::sync::Notify::new());
    {
        let (stop, wake) = (stop.clone(), wake.clone());
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("stop requested");
            stop.store(true, Ordering::SeqCst);
            wake.notify_one();
        });
    }
    let mut renew = if opts.renew { Renew::All } else { Renew::AsDue };
    let mut failures = 0u32;
    loop {
        let result = match &opts.signal {
            Some(signaller) if !opts.init => {
                let target = opts.target.clone().restarting(Some(signaller.unit()));
                pass(settings, &target, signaller.clone(), stop.clone(), renew).await
            }
            _ => pass(settings, &opts.target, NoUnits, stop.clone(), renew).await,
        };
        renew = Renew::AsDue;
        let result = match result {
            Ok(result) => result,
            Err(e) if opts.init => return Err(e),
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "side car pass could not run");
                tokio::select! {
                    () = tokio::time::sleep(settings.interval) => {}
                    () = wake.notified() => {}
                }
                continue;
            }
        };
        for error in &result.errors {
            tracing::warn!("{error}");
        }
        let converged = matches!(result.outcome, Outcome::Unchanged | Outcome::Changed);
        let present = opts.target.files_present();
        tracing::info!(
            outcome = result.outcome.as_str(),
            files = present,
            "side car pass finished"
        );
        if opts.init {
            for error in &result.errors {
                eprintln!("error: {}", calseg_api::text::printable_lines(error));
            }
            return Ok(match (converged, present) {
                (true, true) => EXIT_OK,
                (true, false) => EXIT_FAILED,
                (false, _) => result.outcome.exit_code(),
            });
        }
        failures = if result.outcome == Outcome::Unreachable {
            failures.saturating_add(1)
        } else {
            0
        };
        if stop.load(Ordering::SeqCst) {
            return Ok(EXIT_OK);
        }
        let delay = daemon::next_delay(settings, Some(&result), failures.max(1));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = wake.notified() => {}
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(EXIT_OK);
        }
    }
}

/// Enrolls unless the state directory holds a fleet identity; `Some(3)` while pending.
async fn ensure_enrolled(
    settings: &Settings,
    state: &StateDir,
    how: &Enrollment,
) -> Result<Option<u8>> {
    if state.fleet()?.is_some() {
        tracing::info!(state_dir = %state.dir.display(), "enrolled already; not enrolling again");
        return Ok(None);
    }
    let Some(ca_hash) = how.ca_hash.clone() else {
        bail!(
            "not enrolled (no fleet identity in {}) and no --ca-hash to enroll with: pass --ca-hash sha256:... as `calseg-server init` printed it, and keep the state directory on a hostPath so a restarted pod stays enrolled",
            state.dir.display()
        );
    };
    let servers = if how.servers.is_empty() {
        settings.servers.clone()
    } else {
        config::check_servers(&how.servers)
            .map_err(|(_, message)| anyhow::Error::msg(message))
            .context("--server")?
    };
    if servers.is_empty() {
        bail!("no server: pass --server https://host:port or set `servers` in the config");
    }
    let opts = EnrollOptions {
        servers,
        ca_hash,
        node: settings.node.clone(),
        token: how.token.clone(),
        wait: how.wait,
    };
    let outcome = match enroll::enroll(state, &opts, false).await {
        Ok(outcome) => outcome,
        // As for a pass: no server reachable is its own exit status (the kubelet retries).
        Err(error @ enroll::EnrollError::Client(ClientError::Unreachable { .. })) => {
            eprintln!("error: {error}");
            return Ok(Some(EXIT_UNREACHABLE));
        }
        Err(error) => return Err(error.into()),
    };
    match outcome {
        EnrollOutcome::Enrolled { .. } => {
            eprintln!("enrolled as {}", opts.node);
            Ok(None)
        }
        EnrollOutcome::Pending { fingerprint } => {
            eprintln!(
                "enrollment of {node} is pending approval of key {fingerprint}: on the server, run `calseg-server nodes approve {node} --fingerprint {fingerprint}`; the init container is retried by the kubelet",
                node = opts.node
            );
            Ok(Some(EXIT_PENDING))
        }
    }
}

/// One pass with the side car's ports; `restarter` signals calico-node, or restarts nothing.
async fn pass<R: Restarter>(
    settings: &Settings,
    target: &Target,
    restarter: R,
    stop: Arc<AtomicBool>,
    renew: Renew,
) -> Result<CycleResult> {
    let (client, ctx) = daemon::cycle_start(settings, target.limits(), stop, renew).await?;
    let mut ports = Ports {
        manifest: Source {
            client: client.clone(),
            target: target.clone(),
            missing: None,
        },
        signer: client.clone(),
        verifier: EtcdVerifier::default(),
        installer: FsInstaller {
            root: target.root.clone(),
        },
        restarter,
        reporter: client.clone(),
        leases: client,
    };
    let mut result = ports.run_cycle(&ctx).await;
    if let Some(components) = ports.manifest.missing {
        result.outcome = Outcome::Failed;
        result.errors.push(format!(
            "the manifest of node {} has no identity for component {} (it has: {}); assign the component to this node in the policy, or pass --component",
            settings.node,
            target.component,
            components.join(", ")
        ));
    }
    Ok(result)
}

/// The node's manifest, rewritten for the side car. Always fetched whole: the cached manifest
/// in the state directory is the rewritten one, not the server's revision as served.
struct Source {
    client: ApiClient,
    target: Target,
    /// The components the last manifest had, when the target's was not among them.
    missing: Option<Vec<String>>,
}

impl ManifestSource for Source {
    async fn fetch(&mut self, _etag: Option<&str>) -> Result<ManifestFetch, ClientError> {
        match self.client.manifest(None).await? {
            ManifestFetch::Fresh { manifest, etag } => {
                let components: Vec<String> = manifest
                    .identities
                    .iter()
                    .map(|id| id.component.clone())
                    .collect();
                let manifest = self.target.rewrite(manifest);
                self.missing = manifest.identities.is_empty().then_some(components);
                Ok(ManifestFetch::Fresh { manifest, etag })
            }
            ManifestFetch::NotModified => Ok(ManifestFetch::NotModified),
        }
    }
}

/// The side car has no systemd: the rewritten manifest names no unit, and nothing restarts.
struct NoUnits;

impl Restarter for NoUnits {
    async fn status(&mut self, unit: &str) -> Result<UnitStatus, SystemdError> {
        Err(SystemdError::NotActive {
            unit: unit.to_owned(),
            waited: Duration::ZERO,
            state: "the side car has no systemd".into(),
        })
    }

    async fn restart_and_wait(
        &mut self,
        _unit: &str,
        _timeout: Duration,
    ) -> Result<UnitStatus, RestartFailure> {
        Err(RestartFailure {
            status: None,
            reason: "the side car restarts no units".into(),
        })
    }
}
