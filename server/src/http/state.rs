//! What every request handler shares: the store, the two CAs, the current policy (with its
//! revision number and an epoch that parked long-polls watch) and, during a rollout in waves,
//! the previous policy too (each node gets the one its wave says), the reconciler to poke when
//! the set of nodes changes, and the limits on concurrent requests.

use super::errors::ApiFailure;
use crate::metrics::Metrics;
use crate::pki::{CertificateAuthority, CsrRules};
use crate::policy::Policy;
use crate::reconcile::Reconciler;
use crate::store::{AuditAction, AuditOutcome, NewAuditEntry, RolloutRecord, Store};
use calseg_api::rollout::RolloutState;
use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{Semaphore, watch};

/// Default of `[api] max_in_flight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;
/// Default of `[api] max_long_polls`.
pub const DEFAULT_MAX_LONG_POLLS: usize = 20_000;

/// How many requests the API serves at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// Requests being worked on (parked long-polls excluded); more are refused with 429.
    pub max_in_flight: usize,
    /// Manifest long-polls parked at once; more get an immediate 304 with `Retry-After`.
    pub max_long_polls: usize,
    /// Enrolling without a token: pending cap and TTL, per-source rate.
    pub enrollment: super::enroll_limit::EnrollmentLimits,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_long_polls: DEFAULT_MAX_LONG_POLLS,
            enrollment: super::enroll_limit::EnrollmentLimits::default(),
        }
    }
}

/// The policy in force and its revision number.
struct InForce {
    policy: Arc<Policy>,
    /// `None` when the store could not record it.
    revision: Option<u64>,
    /// A rollout in waves from an earlier policy to `policy`, while it is not done.
    rollout: Option<ActiveRollout>,
}

/// A rollout in waves that is not done: the policy nodes of closed waves keep.
#[derive(Clone)]
pub struct ActiveRollout {
    pub from: Arc<Policy>,
    pub record: RolloutRecord,
    /// The nodes `record` gives the new policy, for fast lookups.
    new_nodes: HashSet<String>,
}

impl ActiveRollout {
    pub fn new(from: Arc<Policy>, record: RolloutRecord) -> Self {
        let opened = match record.state {
            RolloutState::Done => record.waves.len(),
            RolloutState::RolledBack => 0,
            RolloutState::Running | RolloutState::Paused | RolloutState::Aborted => {
                record.opened_waves
            }
        };
        // The same answer as `rollout::serves_new`, in one pass.
        let new_nodes = record
            .waves
            .iter()
            .take(opened)
            .flatten()
            .cloned()
            .collect();
        Self {
            from,
            record,
            new_nodes,
        }
    }

    /// Whether `node` gets the new policy. Nodes outside every wave (enrolled after the rollout
    /// started) keep the previous one until it is done.
    pub fn serves_new(&self, node: &str) -> bool {
        self.new_nodes.contains(node)
    }
}

/// Shared state of the API.
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Signs agent (fleet) certificates; never component identities.
    pub fleet_ca: Arc<CertificateAuthority>,
    /// Signs component identities; etcd trusts it.
    pub etcd_ca: Arc<CertificateAuthority>,
    policy: RwLock<InForce>,
    /// Bumped after every policy change; parked manifest long-polls wake on it and recompute.
    policy_epoch: watch::Sender<u64>,
    /// Permits for requests being worked on (`[api] max_in_flight`).
    pub in_flight: Arc<Semaphore>,
    /// Permits for parked manifest long-polls (`[api] max_long_polls`).
    pub long_polls: Arc<Semaphore>,
    /// PEM bundle components use to verify etcd's server certificate.
    pub etcd_ca_bundle_pem: String,
    pub csr_rules: CsrRules,
    pub fleet_lifetime: Duration,
    /// Node-name globs that are approved without a token or an operator.
    pub auto_approve: Vec<glob::Pattern>,
    /// Limits on enrolling without a token.
    pub enrollment: super::enroll_limit::EnrollmentLimits,
    /// Per-source buckets of `/v1/enroll` requests.
    pub enroll_limiter: super::enroll_limit::EnrollRateLimiter,
    /// Keeps etcd's users and roles in step with the nodes; `None` when etcd is not configured.
    pub reconciler: Option<Arc<Reconciler>>,
    /// Counters and histograms the handlers, the middleware and the reconcile loop feed.
    pub metrics: Arc<Metrics>,
    /// Held across every read-modify-write of the rollout (controller, admin actions, reload).
    pub rollout_lock: tokio::sync::Mutex<()>,
    /// Set when the store is etcd and several replicas may serve: leadership and signals.
    replicas: std::sync::OnceLock<Arc<crate::ha::Replicas>>,
    /// etcd users calseg never signs for: root, and calseg's own.
    reserved: crate::rbac::Reserved,
    /// The latest policy reload and its result (`systemctl reload`, metrics).
    pub reload: crate::reload::ReloadTracker,
}

impl AppState {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        fleet_ca: Arc<CertificateAuthority>,
        etcd_ca: Arc<CertificateAuthority>,
        policy: Arc<Policy>,
        etcd_ca_bundle_pem: String,
        fleet_lifetime: Duration,
        auto_approve: Vec<glob::Pattern>,
        reconciler: Option<Arc<Reconciler>>,
        metrics: Arc<Metrics>,
        limits: ApiLimits,
        own_etcd_user: Option<&str>,
    ) -> Self {
        Self {
            store,
            fleet_ca,
            etcd_ca,
            policy: RwLock::new(InForce {
                policy,
                revision: None,
                rollout: None,
            }),
            policy_epoch: watch::Sender::new(0),
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
            long_polls: Arc::new(Semaphore::new(limits.max_long_polls)),
            etcd_ca_bundle_pem,
            csr_rules: CsrRules::default(),
            fleet_lifetime,
            auto_approve,
            enrollment: limits.enrollment,
            enroll_limiter: super::enroll_limit::EnrollRateLimiter::new(
                limits.enrollment.enroll_burst,
                limits.enrollment.enroll_per_minute,
            ),
            reconciler,
            metrics,
            rollout_lock: tokio::sync::Mutex::new(()),
            replicas: std::sync::OnceLock::new(),
            reserved: crate::rbac::Reserved::new(own_etcd_user),
            reload: crate::reload::ReloadTracker::default(),
        }
    }

    /// The etcd users calseg never signs for: `root`, and its own etcd user.
    pub fn reserved(&self) -> &crate::rbac::Reserved {
        &self.reserved
    }

    /// Makes this server one replica of several (etcd store); set once, at start.
    pub fn set_replicas(&self, replicas: Arc<crate::ha::Replicas>) {
        let _ = self.replicas.set(replicas);
    }

    /// The replicas this server is one of, when the store is shared.
    pub fn replicas(&self) -> Option<&Arc<crate::ha::Replicas>> {
        self.replicas.get()
    }

    /// Whether this server runs the loops that must run once: always when it is alone, only
    /// while it leads when it is one of several replicas.
    pub fn leads(&self) -> bool {
        self.replicas.get().is_none_or(|r| r.leads())
    }

    /// The policy in force now (during a rollout in waves: the new one).
    pub fn policy(&self) -> Arc<Policy> {
        self.policy_and_revision().0
    }

    fn read_in_force<T>(&self, read: impl Fn(&InForce) -> T) -> T {
        self.policy
            .read()
            .map(|p| read(&p))
            .unwrap_or_else(|poisoned| read(&poisoned.into_inner()))
    }

    /// The policy in force now and its revision number (`None` if it could not be recorded).
    /// During a rollout in waves this is the new policy; see [`AppState::policy_for`].
    pub fn policy_and_revision(&self) -> (Arc<Policy>, Option<u64>) {
        self.read_in_force(|p| (Arc::clone(&p.policy), p.revision))
    }

    /// The policy `node` gets and its revision: during a rollout in waves, the new one once
    /// the node's wave opened, the previous one before.
    pub fn policy_for(&self, node: &str) -> (Arc<Policy>, Option<u64>) {
        self.read_in_force(|p| match &p.rollout {
            Some(rollout) if !rollout.serves_new(node) => (
                Arc::clone(&rollout.from),
                Some(rollout.record.from_revision),
            ),
            _ => (Arc::clone(&p.policy), p.revision),
        })
    }

    /// The rollout in waves in progress, if any.
    pub fn rollout(&self) -> Option<ActiveRollout> {
        self.read_in_force(|p| p.rollout.clone())
    }

    /// Replaces the policy (after a validated reload) and wakes the parked long-polls. Ends any
    /// rollout in waves: every node gets `policy`.
    pub fn set_policy(&self, policy: Arc<Policy>, revision: Option<u64>) {
        self.replace(InForce {
            policy,
            revision,
            rollout: None,
        });
    }

    /// Puts a rollout in waves to `policy` in force (a new one, or a changed record), and wakes
    /// the parked long-polls so nodes of a newly opened wave get the new policy at once.
    pub fn set_rollout(&self, policy: Arc<Policy>, revision: u64, rollout: ActiveRollout) {
        self.replace(InForce {
            policy,
            revision: Some(revision),
            rollout: Some(rollout),
        });
    }

    fn replace(&self, in_force: InForce) {
        match self.policy.write() {
            Ok(mut guard) => *guard = in_force,
            Err(poisoned) => *poisoned.into_inner() = in_force,
        }
        // After the lock is released: woken requests read the new policy.
        self.policy_epoch
            .send_modify(|epoch| *epoch = epoch.wrapping_add(1));
    }

    /// A receiver that sees every later policy change (the current epoch counts as seen).
    pub fn watch_policy(&self) -> watch::Receiver<u64> {
        self.policy_epoch.subscribe()
    }

    /// Runs a store operation on the blocking pool.
    pub async fn store<T, F>(&self, operation: F) -> Result<T, ApiFailure>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, crate::store::StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        Ok(tokio::task::spawn_blocking(move || operation(store.as_ref())).await??)
    }

    /// Runs a read on the store: inline when the store's reads never block (the embedded
    /// store; saves a thread hop on every request), else on the blocking pool.
    pub async fn store_read<T, F>(&self, read: F) -> Result<T, ApiFailure>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, crate::store::StoreError> + Send + 'static,
    {
        if self.store.reads_without_blocking() {
            Ok(read(self.store.as_ref())?)
        } else {
            self.store(read).await
        }
    }

    /// Appends to the audit log; a failure to audit is logged, never hidden.
    pub async fn audit(
        &self,
        actor: &str,
        action: AuditAction,
        subject: &str,
        outcome: AuditOutcome,
        detail: String,
    ) {
        let entry = NewAuditEntry {
            at: OffsetDateTime::now_utc(),
            actor: actor.to_owned(),
            action,
            subject: subject.to_owned(),
            outcome,
            detail,
        };
        if let Err(error) = self.store(move |s| s.append_audit(entry)).await {
            tracing::error!(kind = %error.kind, "audit log append failed: {}", error.message);
        }
    }

    /// The etcd RBAC the server wants now, given the enrolled nodes: during a rollout in
    /// waves, both policies' (see [`crate::reconcile::desired_rbac`]).
    pub fn desired_rbac(&self, enrolled: &[crate::store::NodeRecord]) -> crate::rbac::AuthState {
        let (to, _) = self.policy_and_revision();
        match self.rollout() {
            Some(active) => {
                let serves_new = |node: &str| active.serves_new(node);
                crate::reconcile::desired_rbac(&to, Some((&active.from, &serves_new)), enrolled)
            }
            None => crate::reconcile::desired_rbac(&to, None, enrolled),
        }
    }

    /// Asks the reconciler to run soon (a node joined or left): this server's, and, when it is
    /// one of several replicas, the leader's.
    pub fn poke_reconciler(&self) {
        self.poke_local_reconciler();
        if let Some(replicas) = self.replicas.get()
            && !replicas.leads()
        {
            replicas.nodes_changed.raise(&replicas.name);
        }
    }

    /// Asks this server's own reconciler to run soon.
    pub fn poke_local_reconciler(&self) {
        if let Some(reconciler) = &self.reconciler {
            reconciler.poke();
        }
    }
}
