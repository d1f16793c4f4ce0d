//! `calseg-agent run` and `once`: the loop of passes. The first pass runs at once, then one
//! every `interval` plus this node's fixed share of `jitter`; while the server is unreachable
//! the next pass comes sooner, with exponential backoff and jitter (and never before a
//! `Retry-After`). With `long_poll` (the default), `run` spends the time between passes in
//! long-polls of the manifest ([`long_poll`]), so a new revision starts a pass within seconds;
//! `once` never long-polls. A revoked node stops asking: one pass per [`revoked::RECHECK`], or
//! at once after a new enrollment ([`revoked`]). A stop request (SIGTERM/SIGINT, or the `shutdown` future in tests) ends a
//! wait at once; a pass under way stops before installing, or, once it has installed, finishes
//! its restarts (or rollback) first.

pub mod long_poll;
pub mod revoked;

use crate::client::{self, ApiClient, backoff};
use crate::config::Settings;
use crate::cycle::real::{EtcdVerifier, FsInstaller};
use crate::cycle::{CycleContext, CycleResult, Ports, RestartFailure, Restarter};
use crate::decide::jitter_fraction;
use crate::enroll::{EnrollError, renew_fleet_if_due};
use crate::install::Root;
use crate::state::{Outcome, StateDir};
use crate::systemd::{Systemd, SystemdError, UnitStatus};
use anyhow::{Context, Result, bail};
use calseg_service::notify;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::Notify;

/// The server client from the state directory (and the configured URLs, if any), starting at
/// the server that answered last.
pub fn server_client(settings: &Settings, state: &StateDir) -> Result<ApiClient> {
    let fleet = state.fleet()?.with_context(|| {
        format!(
            "not enrolled: no fleet certificate in {}; run `calseg-agent enroll` first",
            state.dir.display()
        )
    })?;
    let Some(servers) = client::host::servers(&settings.servers, state)? else {
        bail!("no server URL: set `servers` in the config or enroll with --server");
    };
    Ok(ApiClient::mtls(Arc::new(servers), &fleet)?)
}

/// A systemd connection made on first use, so hosts (and demos) whose components have no
/// units never need a bus.
pub struct LazySystemd {
    bus: Option<String>,
    conn: Option<crate::cycle::real::SystemdRestarter>,
}

impl LazySystemd {
    pub fn new(bus: Option<String>) -> Self {
        Self { bus, conn: None }
    }

    async fn get(&mut self) -> Result<&mut crate::cycle::real::SystemdRestarter, SystemdError> {
        if self.conn.is_none() {
            let systemd = match &self.bus {
                Some(address) => Systemd::at_address(address).await?,
                None => Systemd::system().await?,
            };
            self.conn = Some(crate::cycle::real::SystemdRestarter { systemd });
        }
        match self.conn.as_mut() {
            Some(conn) => Ok(conn),
            None => Err(SystemdError::NotActive {
                unit: String::new(),
                waited: Duration::ZERO,
                state: "no connection".into(),
            }),
        }
    }
}

impl Restarter for LazySystemd {
    async fn status(&mut self, unit: &str) -> Result<UnitStatus, SystemdError> {
        self.get().await?.status(unit).await
    }

    async fn restart_and_wait(
        &mut self,
        unit: &str,
        timeout: Duration,
    ) -> Result<UnitStatus, RestartFailure> {
        let conn = self.get().await.map_err(|e| RestartFailure {
            status: None,
            reason: e.to_string(),
        })?;
        conn.restart_and_wait(unit, timeout).await
    }
}

/// One pass with the real ports: renews the fleet certificate when due, then runs the cycle.
pub async fn pass(
    settings: &Settings,
    restarter: &mut LazySystemd,
    stop: Arc<AtomicBool>,
) -> Result<CycleResult> {
    pass_renewing(settings, restarter, stop, crate::decide::Renew::AsDue).await
}

/// What every pass starts with, the daemon's and the side car's: the server client (its fleet
/// certificate renewed first when due) and the cycle's context, under `limits`.
pub(crate) async fn cycle_start(
    settings: &Settings,
    limits: crate::limits::Limits,
    stop: Arc<AtomicBool>,
    renew: crate::decide::Renew,
) -> Result<(ApiClient, CycleContext)> {
    let state = StateDir::new(&settings.state_dir);
    let client = server_client(settings, &state)?;
    let now = OffsetDateTime::now_utc();
    let client = renew_fleet(settings, &state, client, now).await?;
    let ctx = CycleContext {
        node: settings.node.clone(),
        key_algorithm: settings.key_algorithm,
        restart_timeout: settings.restart_timeout,
        lease_wait: settings.lease_wait,
        state,
        now,
        stop,
        limits,
        renew,
    };
    Ok((client, ctx))
}

/// [`pass`], renewing the certificates `renew` names even when they are not due
/// (`calseg-agent renew`).
pub async fn pass_renewing(
    settings: &Settings,
    restarter: &mut LazySystemd,
    stop: Arc<AtomicBool>,
    renew: crate::decide::Renew,
) -> Result<CycleResult> {
    // A demo or test root is created on first use; `/` always exists.
    std::fs::create_dir_all(&settings.root)
        .with_context(|| format!("create root {}", settings.root.display()))?;
    let (client, ctx) = cycle_start(settings, settings.limits.clone(), stop, renew).await?;
    let after_pass = client.clone();
    let mut ports = Ports {
        manifest: client.clone(),
        signer: client.clone(),
        verifier: EtcdVerifier::default(),
        installer: FsInstaller {
            root: Root::new(&settings.root),
        },
        restarter: LazySystemd::new(settings.systemd_bus.clone()),
        reporter: client.clone(),
        leases: client,
    };
    std::mem::swap(&mut ports.restarter, restarter);
    let result = ports.run_cycle(&ctx).await;
    std::mem::swap(&mut ports.restarter, restarter);
    // A manifest that names another fleet CA (a rotation began) is answered at once, not at
    // the next pass.
    renew_fleet(settings, &ctx.state, after_pass, ctx.now).await?;
    if let Some(dir) = &settings.textfile_dir
        && let Err(error) = crate::textfile::write(dir, &ctx.state)
    {
        tracing::warn!(%error, "cannot write the node_exporter textfile {}", crate::textfile::FILE_NAME);
    }
    Ok(result)
}

/// Renews the fleet certificate when due; returns the client to go on with (a new one after a
/// renewal). A failed renewal is logged and retried next pass.
pub async fn renew_fleet(
    settings: &Settings,
    state: &StateDir,
    client: ApiClient,
    now: OffsetDateTime,
) -> Result<ApiClient> {
    match renew_fleet_if_due(state, &client, &settings.node, now).await {
        Ok(Some(_)) => return server_client(settings, state),
        Ok(None) => {}
        // The pass gets the same answer and records the revocation.
        Err(EnrollError::Client(e)) if e.is_revoked() => {
            tracing::debug!(error = %e, "fleet certificate not renewed: this node is revoked")
        }
        Err(e) => {
            tracing::warn!(error = %e, "fleet certificate renewal failed; will retry next cycle")
        }
    }
    Ok(client)
}

/// The delay before the next pass after `result`; `failures` counts unreachable passes in a row.
pub fn next_delay(settings: &Settings, result: Option<&CycleResult>, failures: u32) -> Duration {
    let node_jitter = settings.jitter.mul_f64(jitter_fraction(&settings.node));
    match result {
        Some(r) if r.outcome == Outcome::Unreachable => backoff::delay(
            failures,
            settings.interval,
            backoff::random_unit(),
            r.retry_after,
        ),
        Some(r) if r.outcome == Outcome::Revoked => {
            settings.interval.max(revoked::RECHECK) + node_jitter
        }
        _ => settings.interval + node_jitter,
    }
}

/// Runs passes until `shutdown` completes.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(Notify::new());
    {
        let (stop, wake) = (stop.clone(), wake.clone());
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("stop requested");
            stop.store(true, Ordering::SeqCst);
            wake.notify_one();
        });
    }
    notify::ready_with_status("first cycle");
    let mut restarter = LazySystemd::new(settings.systemd_bus.clone());
    let mut failures = 0u32;
    loop {
        let result = match pass(&settings, &mut restarter, stop.clone()).await {
            Ok(result) => Some(result),
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "cycle could not run");
                None
            }
        };
        if let Some(r) = &result {
            failures = if r.outcome == Outcome::Unreachable {
                failures.saturating_add(1)
            } else {
                0
            };
            for error in &r.errors {
                tracing::warn!("{error}");
            }
            tracing::info!(outcome = r.outcome.as_str(), "cycle finished");
            notify::status(&format!("last cycle: {}", r.outcome.as_str()));
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let delay = next_delay(&settings, result.as_ref(), failures.max(1));
        tracing::debug!(delay_ms = delay.as_millis() as u64, "next cycle");
        let watch = long_poll_target(&settings, result.as_ref());
        let is_revoked = result
            .as_ref()
            .is_some_and(|r| r.outcome == Outcome::Revoked);
        let state = StateDir::new(&settings.state_dir);
        tokio::select! {
            () = wait_between_passes(delay, watch), if !is_revoked => {}
            () = revoked::wait(&state, tokio::time::Instant::now() + delay, revoked::LOOK_EVERY), if is_revoked => {}
            () = wake.notified() => {}
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
    }
    notify::stopping();
    Ok(())
}

/// The client and ETag to long-poll with after `result`, when long-polling applies: enabled,
/// the pass reached the server (and was not refused as revoked), and a manifest is cached.
fn long_poll_target(
    settings: &Settings,
    result: Option<&CycleResult>,
) -> Option<(ApiClient, String)> {
    let reached =
        result.is_some_and(|r| !matches!(r.outcome, Outcome::Unreachable | Outcome::Revoked));
    if !settings.long_poll || !reached {
        return None;
    }
    let state = StateDir::new(&settings.state_dir);
    let etag = state.manifest().ok().flatten()?.revision;
    let client = server_client(settings, &state).ok()?;
    Some((client, etag))
}

/// Waits `delay`, or less if the long-poll says the manifest changed.
async fn wait_between_passes(delay: Duration, watch: Option<(ApiClient, String)>) {
    let Some((mut client, etag)) = watch else {
        return tokio::time::sleep(delay).await;
    };
    let until = tokio::time::Instant::now() + delay;
    let parked = long_poll::park(&mut client, &etag, until, long_poll::Schedule::DEFAULT).await;
    match parked {
        long_poll::Parked::Changed => {
            tracing::info!("the server has a new manifest for this node; starting a pass")
        }
        long_poll::Parked::Revoked => {
            tracing::debug!("the server refused the long-poll as revoked; starting a pass")
        }
        long_poll::Parked::Deadline => {}
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn signals() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
