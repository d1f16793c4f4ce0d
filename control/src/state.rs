//! [`Control`]: the domain's shared state, what the API's handlers and the server's background
//! tasks work on: the store, the two CAs, the policy in force (with its revision number and an
//! epoch that waiters watch) and, during a rollout in waves, the previous policy too (each node
//! gets the one its wave says), and the reconciler to poke when the set of nodes changes.
//! Nothing here knows about HTTP: failures are [`ControlError`]s.

use crate::ControlError;
use crate::etcd_signers::EtcdCas;
use crate::fleet_cas::FleetCas;
use crate::manifest::Trust;
use crate::pki::{CertificateAuthority, CsrRules};
use crate::policy::Policy;
use crate::rbac::EtcdAccess;
use crate::rbac::Reserved;
use crate::reconcile::Reconciler;
use crate::store::{AuditAction, AuditOutcome, NewAuditEntry, RolloutRecord, Store};
use calseg_api::rollout::RolloutState;
use std::collections::HashSet;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::watch;

/// Whether this server leads its replicas, and how it tells the leader that nodes changed.
/// The server's replica set implements it; a server alone has none and always leads.
pub trait Leadership: Send + Sync {
    /// Whether this replica leads now.
    fn leads(&self) -> bool;
    /// Tells the leader that the set of nodes changed (its reconciler should run soon).
    fn nodes_changed(&self);
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

/// The domain's shared state.
pub struct Control {
    pub store: Arc<dyn Store>,
    /// Signs agent (fleet) certificates; never component identities.
    /// Signs fleet certificates, and during a rotation the other one both sides trust.
    fleet_cas: RwLock<FleetCas>,
    /// Signs component identities (etcd trusts them), and during a rotation the new one and
    /// which node gets which.
    etcd_cas: RwLock<EtcdCas>,
    /// The CA directory, where a rotation writes its files; `None`: CAs are not rotated.
    pub ca_dir: Option<std::path::PathBuf>,
    /// calseg's own way into etcd, for probing endpoints during a rotation.
    pub etcd_access: Option<EtcdAccess>,
    /// Held across every read-modify-write of the CA rotation.
    pub rotation_lock: tokio::sync::Mutex<()>,
    policy: RwLock<InForce>,
    /// Bumped after every policy change; parked manifest long-polls wake on it and recompute.
    policy_epoch: watch::Sender<u64>,
    /// PEM bundle components use to verify etcd's server certificate.
    pub etcd_ca_bundle_pem: String,
    pub csr_rules: CsrRules,
    pub fleet_lifetime: Duration,
    /// Node-name globs that are approved without a token or an operator.
    pub auto_approve: Vec<glob::Pattern>,
    /// Keeps etcd's users and roles in step with the nodes; `None` when etcd is not configured.
    pub reconciler: Option<Arc<Reconciler>>,
    /// Held across every read-modify-write of the rollout (controller, admin actions, reload).
    pub rollout_lock: tokio::sync::Mutex<()>,
    /// Set when the store is etcd and several replicas may serve.
    leadership: OnceLock<Arc<dyn Leadership>>,
    /// etcd users calseg never signs for: root, and calseg's own.
    reserved: Reserved,
    /// Each node's served manifest for the current policy epoch.
    pub manifests: crate::manifest_cache::ManifestCache,
    /// Issued certificates of the signings in flight, written in one commit.
    pub issuance: Arc<crate::group_commit::GroupCommit>,
}

/// What [`Control::new`] is made of.
pub struct ControlParts {
    pub store: Arc<dyn Store>,
    pub fleet_ca: Arc<CertificateAuthority>,
    pub etcd_ca: Arc<CertificateAuthority>,
    /// The CA directory, where a rotation writes the new CA; `None`: CAs are not rotated.
    pub ca_dir: Option<std::path::PathBuf>,
    pub etcd_access: Option<EtcdAccess>,
    pub policy: Arc<Policy>,
    pub etcd_ca_bundle_pem: String,
    pub fleet_lifetime: Duration,
    pub auto_approve: Vec<glob::Pattern>,
    pub reconciler: Option<Arc<Reconciler>>,
    /// calseg's own etcd user (the CN of `[etcd] cert_file`), which it never signs for.
    pub own_etcd_user: Option<String>,
}

impl Control {
    pub fn new(parts: ControlParts) -> Self {
        let issuance = Arc::new(crate::group_commit::GroupCommit::new(Arc::clone(
            &parts.store,
        )));
        Self {
            store: parts.store,
            fleet_cas: RwLock::new(FleetCas::single(parts.fleet_ca)),
            etcd_cas: RwLock::new(EtcdCas::single(parts.etcd_ca)),
            ca_dir: parts.ca_dir,
            etcd_access: parts.etcd_access,
            rotation_lock: tokio::sync::Mutex::new(()),
            policy: RwLock::new(InForce {
                policy: parts.policy,
                revision: None,
                rollout: None,
            }),
            policy_epoch: watch::Sender::new(0),
            etcd_ca_bundle_pem: parts.etcd_ca_bundle_pem,
            csr_rules: CsrRules::default(),
            fleet_lifetime: parts.fleet_lifetime,
            auto_approve: parts.auto_approve,
            reconciler: parts.reconciler,
            rollout_lock: tokio::sync::Mutex::new(()),
            leadership: OnceLock::new(),
            reserved: Reserved::new(parts.own_etcd_user.as_deref()),
            manifests: crate::manifest_cache::ManifestCache::new(
                crate::manifest_cache::DEFAULT_CAPACITY,
            ),
            issuance,
        }
    }

    /// The etcd client CAs: the one in force, a rotation's new one, who gets which.
    pub fn etcd_cas(&self) -> EtcdCas {
        self.etcd_cas
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// The etcd client CA in force.
    pub fn etcd_ca(&self) -> Arc<CertificateAuthority> {
        self.etcd_cas().current
    }

    /// Replaces the etcd client CAs; wakes the parked long-polls when who gets which changed.
    pub fn set_etcd_cas(&self, cas: EtcdCas) {
        let changed = {
            let mut guard = match self.etcd_cas.write() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            let changed = guard.issuers != cas.issuers
                || guard.current.fingerprint_sha256() != cas.current.fingerprint_sha256();
            *guard = cas;
            changed
        };
        if changed {
            self.policy_epoch
                .send_modify(|epoch| *epoch = epoch.wrapping_add(1));
        }
    }

    /// What manifests say about etcd's CAs now.
    pub fn trust(&self) -> Trust<'_> {
        Trust {
            ca_bundle_pem: &self.etcd_ca_bundle_pem,
            issuers: self.etcd_cas().issuers,
            fleet_ca: self.fleet_cas().manifest_fleet_ca(),
        }
    }

    /// The CA directory a rotation writes its files in; refused when this server has none.
    pub fn rotation_ca_dir(&self) -> Result<&std::path::Path, ControlError> {
        self.ca_dir.as_deref().ok_or_else(|| {
            ControlError::unavailable(
                "no_ca_directory",
                "this server was started without a CA directory it may write: it cannot rotate CAs",
            )
        })
    }

    /// The fleet CAs now (a copy: a rotation step may replace them meanwhile).
    pub fn fleet_cas(&self) -> FleetCas {
        self.fleet_cas
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// The fleet CA in force (`fleet.pem`).
    pub fn fleet_ca(&self) -> Arc<CertificateAuthority> {
        self.fleet_cas().current
    }

    /// Replaces the fleet CAs; wakes the parked long-polls when manifests name another one.
    pub fn set_fleet_cas(&self, cas: FleetCas) {
        let changed = {
            let mut guard = match self.fleet_cas.write() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            let changed = guard.manifest_fleet_ca() != cas.manifest_fleet_ca();
            *guard = cas;
            changed
        };
        if changed {
            self.policy_epoch
                .send_modify(|epoch| *epoch = epoch.wrapping_add(1));
        }
    }

    /// The CA that signs the identities of `node` (`None`: a component-wide identity) now.
    pub fn etcd_signer_for(
        &self,
        node: Option<&str>,
    ) -> Result<Arc<CertificateAuthority>, ControlError> {
        let cas = self.etcd_cas();
        match &cas.issuers {
            Some(issuers) if issuers.new_for(node) => cas.next.clone().ok_or_else(|| {
                ControlError::unavailable(
                    "new_etcd_ca_missing",
                    "this server replica does not hold the new etcd client CA                      (etcd-client.next.pem and its key in the CA directory): copy them from the                      replica that began the rotation, then restart this one",
                )
            }),
            _ => Ok(cas.current),
        }
    }

    /// The etcd users calseg never signs for: `root`, and its own etcd user.
    pub fn reserved(&self) -> &Reserved {
        &self.reserved
    }

    /// Whether this server may put `policy` in force, as a reload or a plan's candidate asks:
    /// it renders no etcd user calseg never signs for, and, with the state in etcd under
    /// `state_prefix`, grants no key there. The refusal says why.
    pub fn admits(&self, policy: &Policy, state_prefix: Option<&str>) -> Result<(), String> {
        policy
            .check_reserved_users(&self.reserved.names())
            .map_err(|error| error.to_string())?;
        if let Some(prefix) = state_prefix {
            crate::policy::check_policy_stays_out(policy, prefix)
                .map_err(|error| format!("{error:#}"))?;
        }
        Ok(())
    }

    /// Makes this server one replica of several (etcd store); set once, at start.
    pub fn set_leadership(&self, leadership: Arc<dyn Leadership>) {
        let _ = self.leadership.set(leadership);
    }

    /// Whether this server is one of several replicas on a shared store.
    pub fn has_replicas(&self) -> bool {
        self.leadership.get().is_some()
    }

    /// Whether this server runs the loops that must run once: always when it is alone, only
    /// while it leads when it is one of several replicas.
    pub fn leads(&self) -> bool {
        self.leadership.get().is_none_or(|l| l.leads())
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
    /// During a rollout in waves this is the new policy; see [`Control::policy_for`].
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

    /// The policy epoch now: bumped after every change of what any node is served.
    pub fn policy_epoch(&self) -> u64 {
        *self.policy_epoch.borrow()
    }

    /// A receiver that sees every later policy change (the current epoch counts as seen).
    pub fn watch_policy(&self) -> watch::Receiver<u64> {
        self.policy_epoch.subscribe()
    }

    /// Runs a store operation on the blocking pool.
    pub async fn store<T, F>(&self, operation: F) -> Result<T, ControlError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, crate::store::StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        Ok(tokio::task::spawn_blocking(move || operation(store.as_ref())).await??)
    }

    /// Runs a read on the store: inline when the store's reads never block (the embedded
    /// store; saves a thread hop on every request), else on the blocking pool.
    pub async fn store_read<T, F>(&self, read: F) -> Result<T, ControlError>
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

    /// Audits a refusal of `actor`'s `action` on `subject` with its whole reason (the error's
    /// kind and message) and `context` after it, e.g. " (from 192.0.2.1)".
    pub async fn audit_refusal(
        &self,
        actor: &str,
        action: AuditAction,
        subject: &str,
        error: &ControlError,
        context: &str,
    ) {
        let detail = format!("{}: {}{context}", error.kind, error.message);
        self.audit(actor, action, subject, AuditOutcome::Denied, detail)
            .await;
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
        if let Some(leadership) = self.leadership.get()
            && !leadership.leads()
        {
            leadership.nodes_changed();
        }
    }

    /// Asks this server's own reconciler to run soon.
    pub fn poke_local_reconciler(&self) {
        if let Some(reconciler) = &self.reconciler {
            reconciler.poke();
        }
    }
}
