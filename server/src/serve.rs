//! `calseg-server serve`: opens the store and the CAs, loads the policy, starts the RBAC
//! reconciler and the HTTPS API, and runs until told to stop. SIGHUP reloads the policy (a
//! policy with errors is refused and the old one stays), announced to systemd with
//! `RELOADING=1` and `READY=1`, its result recorded for `calseg-server reload` (`crate::reload`). Every distinct policy the server runs
//! gets a revision number in the store (at start and after each successful reload), and its text
//! is kept there. When the new policy sets `[rollout] canary` or `wave`, a reload starts a
//! rollout in waves (`calseg_control::rollout`), which a controller task steps every second; a
//! restart resumes it. With `[store] backend = "etcd"` the server is one of possibly several
//! replicas (`crate::ha`): all serve the API, the elected leader alone reconciles and steps
//! rollouts, and every replica follows the policy and rollout the store holds. Before it
//! touches etcd, and then periodically, it reads every endpoint's etcd release and warns about
//! known RBAC bypasses (`crate::etcd_release`); with `[etcd] refuse_known_bypasses = true` it
//! does not start on such a cluster, and stops changing RBAC if one turns up later.

use crate::config::{ServerConfig, StoreBackend, parse_duration};
use crate::http::{self, ApiLimits, AppState};
use crate::metrics::Metrics;
use crate::pki::CaKind;
use crate::reconcile::Reconciler;
use crate::store::{AuditAction, AuditOutcome, EtcdStore, RedbStore, Store};
use crate::{etcd_release, ha, policy, rbac};
use anyhow::{Context, Result, anyhow};
use calseg_control::ca_rotation::{self, RotationFiles};
use calseg_control::{Control, ControlParts};
use calseg_service::notify;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

const DEFAULT_FLEET_LIFETIME: &str = "90d";
const DEFAULT_RECONCILE_INTERVAL: &str = "60s";
const DEFAULT_LEADER_TTL: &str = "10s";

/// Everything `serve` needs, resolved from server.toml.
pub struct Server {
    pub state: Arc<AppState>,
    pub listen: String,
    pub tls: Arc<rustls::ServerConfig>,
    pub reconcile_interval: Duration,
    pub policy_path: PathBuf,
    /// Where to serve `/metrics` (plain HTTP); `None`: not at all.
    pub metrics_listen: Option<String>,
    /// The leader election, when this server is one of several replicas (etcd store).
    pub election: Option<ha::Election>,
    /// The API's connection cap and timeouts.
    pub connections: http::ConnectionSettings,
}

fn read(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("read the {what} {}", path.display()))
}

/// Loads and validates the policy, with the SHA-256 (hex) of the text it was read from and
/// that text.
fn load_policy(path: &Path) -> Result<(policy::Policy, String, String), policy::PolicyErrors> {
    let Ok(source) = std::fs::read_to_string(path) else {
        // Unreadable: `load` says why, in the policy's own error format.
        return policy::load(path).map(|p| (p, String::new(), String::new()));
    };
    let hash = hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        source.as_bytes(),
    ));
    let policy = policy::parse(&source, &path.display().to_string())?;
    Ok((policy, hash, source))
}

/// Records the policy's revision and keeps its text; a store failure is logged and leaves it
/// unnumbered.
async fn record_policy(state: &AppState, hash: String, text: String) -> Option<u64> {
    let now = OffsetDateTime::now_utc();
    let recorded = state
        .control
        .store(move |s| {
            let revision = s.record_policy(&hash, now)?;
            s.save_policy_text(revision, &text)?;
            Ok(revision)
        })
        .await;
    match recorded {
        Ok(revision) => Some(revision),
        Err(error) => {
            tracing::error!(kind = %error.kind, "cannot record the policy revision: {}", error.message);
            None
        }
    }
}

/// Builds the server from its configuration; opens files, binds nothing.
pub async fn build(config: &ServerConfig, policy_path: &Path) -> Result<Server> {
    let now = OffsetDateTime::now_utc();
    let (policy, policy_hash, policy_text) = load_policy(policy_path)
        .map_err(|errors| anyhow!("{errors}\nthe policy has errors; the server does not start"))?;
    for warning in &policy.warnings {
        tracing::warn!("{warning}");
    }
    let state_dir = config.state_dir();
    let access = config.etcd.access(|| Ok(policy.etcd.endpoints.clone()))?;
    // calseg's own etcd user: never rendered by the policy, never signed for.
    let own_user = match &access {
        Some(access) => Some(ha::access::etcd_user_of(&access.cert_file)?),
        None => None,
    };
    if let Some(user) = &own_user {
        policy
            .check_reserved_users(std::slice::from_ref(user))
            .map_err(|e| {
                anyhow!(
                    "{}: {e}\nthe policy has errors; the server does not start",
                    policy_path.display()
                )
            })?;
    }
    let ca_dir = config.ca_dir();
    // `init`'s CA, or the one the last finished rotation put in force.
    let etcd_ca = RotationFiles::new(&ca_dir)
        .current()
        .load(CaKind::EtcdClient, now)?;
    let cert_file = config
        .api
        .cert_file
        .clone()
        .unwrap_or_else(|| state_dir.join("tls/server.pem"));
    let key_file = config
        .api
        .key_file
        .clone()
        .unwrap_or_else(|| state_dir.join("tls/server-key.pem"));
    let (fleet_tls, fleet_cas) =
        http::fleet_tls::FleetTls::start(&ca_dir, &cert_file, &key_file, now)?;
    let etcd_ca_bundle_pem = match policy
        .etcd
        .ca_file
        .as_ref()
        .or(config.etcd.ca_file.as_ref())
    {
        Some(path) => read(path, "etcd server CA bundle")?,
        // Saved by the first CA rotation, so rotating the etcd client CA never changes it.
        None => match RotationFiles::new(&ca_dir).server_ca() {
            saved if saved.exists() => read(&saved, "etcd server CA bundle")?,
            _ => etcd_ca.cert_pem().to_owned(),
        },
    };
    let pacing = config.etcd.pacing(None, None)?;
    let reconciler = match &access {
        Some(access) => {
            // Before anything changes etcd (the reconciler, the etcd store's role).
            let release = Arc::new(etcd_release::Monitor::new(
                access.clone(),
                config.etcd.refuse_known_bypasses,
            ));
            let report = release.check().await;
            etcd_release::log_at_start(&report);
            if release.refuses() {
                report.refuse_known_bypasses()?;
            }
            let client = rbac::connect(access).await?;
            Some(Arc::new(Reconciler::new(
                client,
                access.endpoints.join(","),
                pacing,
                config.etcd.allow_auth_disabled,
                release,
            )))
        }
        None => {
            tracing::warn!(
                "no etcd credentials under [etcd] in server.toml: the server signs certificates but does not manage etcd RBAC"
            );
            None
        }
    };
    let auto_approve = config
        .api
        .auto_approve
        .iter()
        .map(|g| {
            glob::Pattern::new(g).with_context(|| format!("[api] auto_approve: bad glob {g:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let fleet_lifetime = parse_duration(
        "[api] fleet_cert_lifetime",
        config
            .api
            .fleet_cert_lifetime
            .as_deref()
            .unwrap_or(DEFAULT_FLEET_LIFETIME),
    )?;
    let reconcile_interval = parse_duration(
        "[etcd] reconcile_interval",
        config
            .etcd
            .reconcile_interval
            .as_deref()
            .unwrap_or(DEFAULT_RECONCILE_INTERVAL),
    )?;
    let limits = ApiLimits {
        max_in_flight: positive("max_in_flight", config.api.max_in_flight)?
            .unwrap_or(http::ApiLimits::default().max_in_flight),
        max_long_polls: config
            .api
            .max_long_polls
            .unwrap_or(http::ApiLimits::default().max_long_polls),
        enrollment: http::EnrollmentLimits::from_config(&config.api)?,
    };
    let open_files = http::connections::open_file_limit();
    let (connections, too_many) = http::ConnectionSettings::from_config(&config.api, open_files)?;
    if let Some(warning) = too_many {
        tracing::warn!("{warning}");
    }
    // Last, once every other value is checked: a refused configuration leaves no store behind.
    let (store, replicas) = open_store(config, access.as_ref(), &policy).await?;
    let control = Control::new(ControlParts {
        store,
        fleet_ca: fleet_cas.current.clone(),
        etcd_ca: Arc::new(etcd_ca),
        ca_dir: Some(ca_dir.clone()),
        etcd_access: access.clone(),
        policy: Arc::new(policy),
        etcd_ca_bundle_pem,
        fleet_lifetime,
        auto_approve,
        reconciler,
        own_etcd_user: own_user,
    });
    control.set_fleet_cas(fleet_cas);
    let state = Arc::new(AppState::new(
        Arc::new(control),
        Arc::new(Metrics::new()),
        limits,
    ));
    let fleet_tls = Arc::new(fleet_tls);
    let tls = fleet_tls.live().config();
    state.set_fleet_tls(fleet_tls);
    if let Some(report) = release_of(&state).and_then(|m| m.latest()) {
        state.metrics.set_etcd_release(&report);
    }
    state.reload.persist_in(&state_dir);
    let election = match replicas {
        Some(setup) => {
            state.set_replicas(setup.replicas);
            Some(setup.election)
        }
        None => None,
    };
    put_file_policy_in_force(&state, policy_path, policy_hash, policy_text, now).await?;
    Ok(Server {
        state,
        listen: config
            .api
            .listen
            .clone()
            .unwrap_or_else(|| crate::config::DEFAULT_API_LISTEN.to_owned()),
        tls,
        reconcile_interval,
        policy_path: policy_path.to_path_buf(),
        metrics_listen: config.metrics.address(),
        election,
        connections,
    })
}

/// What a server that is one of several replicas starts besides the API.
struct ReplicaSetup {
    replicas: Arc<ha::Replicas>,
    election: ha::Election,
}

/// Opens the store `[store]` names: the embedded file, or etcd (then this server is one of
/// possibly several replicas: its etcd user gets the state role, and an election is set up).
async fn open_store(
    config: &ServerConfig,
    access: Option<&rbac::EtcdAccess>,
    policy: &policy::Policy,
) -> Result<(Arc<dyn Store>, Option<ReplicaSetup>)> {
    if config.store.backend()? == StoreBackend::Embedded {
        let path = config.state_dir().join("state.redb");
        let store = RedbStore::open(&path).with_context(|| format!("open {}", path.display()))?;
        return Ok((Arc::new(store), None));
    }
    let access = access.context(
        "[store] backend = \"etcd\" needs calseg's etcd credentials: [etcd] cert_file, key_file and ca_file",
    )?;
    let prefix = config.store.prefix()?;
    crate::policy::check_policy_stays_out(policy, &prefix)?;
    let user = ha::access::etcd_user_of(&access.cert_file)?;
    let mut client = rbac::connect(access).await?;
    ha::access::provision_state_role(&mut client, &prefix, &user).await?;
    let store = {
        let (access, at) = (access.clone(), prefix.clone());
        tokio::task::spawn_blocking(move || EtcdStore::connect(&access, &at))
            .await?
            .map_err(|e| anyhow!("open the store in etcd under {prefix}: {e}"))?
    };
    let ttl = parse_duration(
        "[store] leader_ttl",
        config
            .store
            .leader_ttl
            .as_deref()
            .unwrap_or(DEFAULT_LEADER_TTL),
    )?;
    let name = config.store.replica.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "calseg-server".to_owned());
        let listen = config
            .api
            .listen
            .as_deref()
            .unwrap_or(crate::config::DEFAULT_API_LISTEN);
        format!("{host} {listen}")
    });
    let (election, leading) = ha::Election::new(
        client.clone(),
        ha::ElectionSettings {
            prefix: prefix.clone(),
            replica: name.clone(),
            ttl,
        },
    );
    tracing::info!(replica = %name, prefix = %prefix, "state in etcd: this server is one replica of possibly several");
    let replicas = Arc::new(ha::Replicas::new(
        leading,
        ha::NodesChanged::new(client, &prefix),
        name,
        prefix,
    ));
    Ok((Arc::new(store), Some(ReplicaSetup { replicas, election })))
}

/// At start: numbers the policy file's text as a revision and puts it in force, resuming a
/// rollout in waves to it. One of several replicas whose file is an older revision than the
/// store's latest (a stale copy) serves the store's instead, rather than rolling the fleet back.
async fn put_file_policy_in_force(
    state: &AppState,
    policy_path: &Path,
    hash: String,
    text: String,
    now: OffsetDateTime,
) -> Result<()> {
    if state.replicas().is_some() {
        let lookup = hash.clone();
        let stale = state
            .control
            .store(move |s| {
                let revisions = s.policy_revisions(usize::MAX)?;
                let latest = revisions.first().map(|r| r.revision);
                Ok(revisions
                    .into_iter()
                    .find(|r| r.hash == lookup)
                    .filter(|r| Some(r.revision) != latest)
                    .map(|r| (r.revision, latest)))
            })
            .await
            .map_err(|e| anyhow!("read the policy revisions in the store: {}", e.message))?;
        if let Some((file_revision, Some(latest))) = stale {
            tracing::warn!(
                policy = %policy_path.display(),
                file_revision,
                latest,
                "the policy file is revision {file_revision}, older than the store's latest \
                 ({latest}): serving the store's; reload (SIGHUP) to put the file in force"
            );
            let _one_at_a_time = state.control.rollout_lock.lock().await;
            return ha::adopt_from_store(&state.control)
                .await
                .map_err(|e| anyhow!("put the store's policy in force: {}", e.message));
        }
    }
    let revision = state
        .control
        .store(move |s| {
            let revision = s.record_policy(&hash, now)?;
            s.save_policy_text(revision, &text)?;
            Ok(revision)
        })
        .await
        .map_err(|e| anyhow!("record the policy revision in the store: {}", e.message))?;
    state
        .control
        .set_policy(state.control.policy(), Some(revision));
    tracing::info!(policy = %policy_path.display(), revision, "policy loaded");
    crate::rollout::resume_after_restart(&state.control, revision)
        .await
        .map_err(|e| anyhow!("resume the rollout in waves: {}", e.message))?;
    ca_rotation::resume_after_restart(&state.control, now)
        .await
        .map_err(|e| anyhow!("resume the etcd client CA rotation: {}", e.message))
}

/// `[api] key`, refused when 0 (the server would refuse every request).
fn positive(key: &str, value: Option<usize>) -> Result<Option<usize>> {
    match value {
        Some(0) => Err(anyhow!(
            "[api] {key} = 0: the server would refuse every request; give at least 1"
        )),
        other => Ok(other),
    }
}

/// Runs the server until `shutdown` resolves.
pub async fn run(server: Server, shutdown: impl Future<Output = ()>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(&server.listen)
        .await
        .with_context(|| format!("listen on {}", server.listen))?;
    let limits = server.connections;
    tracing::info!(
        listen = %server.listen,
        max_connections = limits.max_connections,
        open_files = http::connections::open_file_limit().unwrap_or_default(),
        "calseg-server API listening: at most {} connections ([api] max_connections); TLS \
         handshake within {:?}, request headers within {:?}, idle connections closed after {:?}",
        limits.max_connections,
        limits.handshake_timeout,
        limits.header_read_timeout,
        limits.idle_timeout
    );
    let metrics_listener = match &server.metrics_listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| {
                    format!("[metrics] listen = {address:?}: cannot listen there (\"\" turns metrics off)")
                })?;
            tracing::info!(listen = %address, "metrics at http://{address}/metrics");
            Some(tokio::spawn(http::serve_metrics(
                listener,
                Arc::clone(&server.state),
            )))
        }
        None => None,
    };
    let reconcile = tokio::spawn(reconcile_loop(
        Arc::clone(&server.state),
        server.reconcile_interval,
    ));
    let reload = tokio::spawn(reload_on_sighup(
        Arc::clone(&server.state),
        server.policy_path.clone(),
        server.listen.clone(),
    ));
    let rollouts = tokio::spawn(rollout_controller(Arc::clone(&server.state)));
    let expire_pending = tokio::spawn(calseg_control::pending::expire_loop(
        Arc::clone(&server.state.control),
        server.state.enrollment.pending_ttl,
    ));
    let releases = tokio::spawn(watch_etcd_releases(
        Arc::clone(&server.state),
        server.listen.clone(),
    ));
    let (stop_election, election_stopped) = tokio::sync::oneshot::channel::<()>();
    let election = server.election.map(|election| {
        tokio::spawn(election.run(async {
            let _ = election_stopped.await;
        }))
    });
    let follow = server.state.replicas().map(|replicas| {
        tokio::spawn(ha::follow_store(
            Arc::clone(&server.state.control),
            Arc::clone(&server.state.metrics),
            Arc::clone(replicas),
        ))
    });
    notify::ready_with_status(&status_text(&server.state, &server.listen));
    // Watchdog pings only after READY=1: before it, systemd's start timeout is the guard.
    let watchdog = tokio::spawn(async {
        if let Some(every) = notify::watchdog_interval() {
            loop {
                notify::watchdog();
                tokio::time::sleep(every).await;
            }
        }
    });
    let served = http::serve_with(
        listener,
        server.tls,
        http::router(Arc::clone(&server.state)),
        server.connections,
        Arc::clone(&server.state.metrics),
        shutdown,
    )
    .await;
    notify::stopping();
    if let Some(follow) = follow {
        follow.abort();
    }
    // A leader gives the lead up (revokes its lease) so another replica takes over at once.
    let _ = stop_election.send(());
    if let Some(election) = election {
        let _ = tokio::time::timeout(Duration::from_secs(3), election).await;
    }
    reconcile.abort();
    reload.abort();
    rollouts.abort();
    expire_pending.abort();
    releases.abort();
    watchdog.abort();
    if let Some(task) = metrics_listener {
        task.abort();
    }
    served
}

/// The release check of the etcd this server manages, when it manages one.
fn release_of(state: &AppState) -> Option<&Arc<etcd_release::Monitor>> {
    state.control.reconciler.as_deref().map(Reconciler::release)
}

/// `systemctl status`'s line: where the server listens and, when it manages etcd, the
/// latest release check ("etcd 3.4.23 on 3/3 members: 5 known RBAC bypasses").
fn status_text(state: &AppState, listen: &str) -> String {
    let mut text = match release_of(state).and_then(|m| m.latest()) {
        Some(report) => format!("serving on {listen}; {}", report.status_line()),
        None => format!("serving on {listen}"),
    };
    if let Some(reload) = state.reload.last()
        && reload.outcome == crate::reload::Outcome::Refused
    {
        let reason = reload.error.as_deref().unwrap_or_default();
        let first = reason.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        text.push_str(&format!(
            "; last policy reload refused, old policy kept: {}",
            first.trim()
        ));
    }
    text
}

/// Re-checks etcd's releases (see [`etcd_release::Monitor::run`]), refreshing the metrics and
/// the status line after each check.
async fn watch_etcd_releases(state: Arc<AppState>, listen: String) {
    let Some(monitor) = release_of(&state).cloned() else {
        return;
    };
    monitor
        .run(|report| {
            state.metrics.set_etcd_release(report);
            notify::status(&status_text(&state, &listen));
        })
        .await;
}

/// Reconciles etcd RBAC on an interval and whenever the set of nodes changes.
async fn reconcile_loop(state: Arc<AppState>, interval: Duration) {
    let Some(reconciler) = state.control.reconciler.clone() else {
        return;
    };
    // etcd answering again after a failed pass is a reconnect: its members may have changed.
    let mut failing = false;
    loop {
        if !state.control.leads() {
            // Another replica leads and reconciles; taking the lead pokes this loop.
            reconciler.wait(interval).await;
            continue;
        }
        let enrolled = state.control.store(|s| s.nodes()).await;
        let outcome = match &enrolled {
            Ok(enrolled) => {
                reconciler
                    .apply_desired(&state.control.desired_rbac(enrolled), false)
                    .await
            }
            Err(error) => Err(anyhow!(error.message.clone())),
        };
        if let Ok(enrolled) = &enrolled
            && let Some(pending) = crate::revocation::count_pending(&state.control, enrolled).await
        {
            state.metrics.set_revocations_pending(pending);
        }
        match &outcome {
            Ok((plan, report)) => {
                state.metrics.reconciled(
                    plan.changes.len(),
                    report.applied,
                    OffsetDateTime::now_utc(),
                );
                state.metrics.set_rbac_conflicts(plan.conflicts.len());
                for conflict in &plan.conflicts {
                    tracing::warn!(
                        "etcd RBAC conflict, left alone (the rest is reconciled): {conflict}"
                    );
                }
                if std::mem::replace(&mut failing, false) {
                    reconciler.release().poke();
                }
            }
            Err(_) => {
                // Failing from now on: re-check etcd at once, so calseg_etcd_up shows it.
                if !std::mem::replace(&mut failing, true) {
                    reconciler.release().poke();
                }
                state.metrics.reconcile_failed();
            }
        }
        match outcome {
            Ok((_, report)) if report.applied > 0 => {
                tracing::info!(changes = report.applied, "etcd RBAC reconciled");
                state
                    .control
                    .audit(
                        "system",
                        AuditAction::RbacApply,
                        "etcd",
                        AuditOutcome::Ok,
                        format!("{} changes", report.applied),
                    )
                    .await;
            }
            Ok(_) => tracing::debug!("etcd RBAC matches the policy"),
            Err(error) => tracing::warn!("etcd RBAC reconcile failed (will retry): {error:#}"),
        }
        reconciler.wait(interval).await;
    }
}

/// Reloads the policy on SIGHUP; keeps the old one when the new one has errors. Each reload
/// is announced to systemd (`RELOADING=1` with `MONOTONIC_USEC=`, then `READY=1`) and its
/// result recorded ([`crate::reload`]) for `calseg-server reload` and metrics.
async fn reload_on_sighup(state: Arc<AppState>, path: PathBuf, listen: String) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    while hangup.recv().await.is_some() {
        notify::reloading();
        let generation = state.reload.begin(OffsetDateTime::now_utc());
        let result = reload_policy(&state, &path).await;
        notify::ready();
        if let Err(error) = &result {
            tracing::error!(
                policy = %path.display(),
                generation,
                "policy reload refused, keeping the old one: {error}"
            );
        }
        state.metrics.record_reload(result.is_ok());
        state
            .reload
            .finish(generation, result, OffsetDateTime::now_utc());
        notify::status(&status_text(&state, &listen));
    }
}

/// Loads, checks and puts in force the policy in `path`: the revision now in force, or why the
/// policy was refused.
async fn reload_policy(state: &AppState, path: &Path) -> Result<Option<u64>, String> {
    let (policy, hash, text) = load_policy(path).map_err(|errors| errors.to_string())?;
    // Nor render a user calseg does not own, nor grant the state's prefix (as at start).
    let prefix = state.replicas().map(|replicas| replicas.prefix.as_str());
    state.control.admits(&policy, prefix)?;
    let revision = record_policy(state, hash, text).await;
    match revision {
        Some(revision) => {
            tracing::info!(policy = %path.display(), revision, "policy reloaded");
        }
        None => tracing::info!(policy = %path.display(), "policy reloaded (no revision recorded)"),
    }
    put_in_force(state, Arc::new(policy), revision).await;
    state.control.poke_reconciler();
    Ok(revision)
}

/// Puts a reloaded policy in force: unchanged (same revision) keeps any rollout going; a new
/// revision with `[rollout] canary` or `wave` starts a rollout in waves; otherwise every node
/// gets it at once.
async fn put_in_force(state: &AppState, policy: Arc<policy::Policy>, revision: Option<u64>) {
    let in_force = state.control.policy_and_revision().1;
    if revision.is_some() && revision == in_force {
        if state.control.rollout().is_none() {
            state.control.set_policy(policy, revision);
        }
        return;
    }
    match (policy.rollout.waves.clone(), revision) {
        (Some(waves), Some(revision)) => {
            let now = OffsetDateTime::now_utc();
            if let Err(error) =
                crate::rollout::start(&state.control, Arc::clone(&policy), revision, &waves, now)
                    .await
            {
                tracing::error!(
                    "cannot start the rollout in waves ({}); every node gets revision {revision}",
                    error.message
                );
                state.control.set_policy(policy, Some(revision));
            }
        }
        _ => {
            if let Err(error) = crate::rollout::supersede(&state.control).await {
                tracing::error!(
                    "cannot mark the rollout in waves aborted: {}",
                    error.message
                );
            }
            state.control.set_policy(policy, revision);
        }
    }
}

/// Steps the rollout in waves and the etcd client CA rotation once a second. Every replica
/// first puts in force the rotation the store holds (another replica may have stepped it).
async fn rollout_controller(state: Arc<AppState>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let now = OffsetDateTime::now_utc();
        if state.control.has_replicas()
            && let Err(error) = ca_rotation::resume_after_restart(&state.control, now).await
        {
            tracing::warn!(kind = %error.kind, "CA rotation: {} (will retry)", error.message);
        }
        // Every replica follows its own fleet CA files, leader or not.
        if let Some(tls) = state.fleet_tls()
            && let Err(error) = tls.sync(&state.control, false, now)
        {
            tracing::warn!("fleet CA files: {error:#} (will retry)");
        }
        if !state.control.leads() {
            continue;
        }
        if let Err(error) = crate::rollout::tick(&state.control, now).await {
            tracing::warn!(kind = %error.kind, "rollout controller: {} (will retry)", error.message);
        }
        if let Err(error) = ca_rotation::tick(&state.control, now).await {
            tracing::warn!(kind = %error.kind, "CA rotation: {} (will retry)", error.message);
        }
    }
}
