//! What every request handler shares: the store, the two CAs, the current policy, and the
//! reconciler to poke when the set of nodes changes.

use super::errors::ApiFailure;
use crate::metrics::Metrics;
use crate::pki::{CertificateAuthority, CsrRules};
use crate::policy::Policy;
use crate::reconcile::Reconciler;
use crate::store::{AuditAction, AuditOutcome, NewAuditEntry, Store};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use time::OffsetDateTime;

/// Shared state of the API.
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Signs agent (fleet) certificates; never component identities.
    pub fleet_ca: Arc<CertificateAuthority>,
    /// Signs component identities; etcd trusts it.
    pub etcd_ca: Arc<CertificateAuthority>,
    policy: RwLock<Arc<Policy>>,
    /// PEM bundle components use to verify etcd's server certificate.
    pub etcd_ca_bundle_pem: String,
    pub csr_rules: CsrRules,
    pub fleet_lifetime: Duration,
    /// Node-name globs that are approved without a token or an operator.
    pub auto_approve: Vec<glob::Pattern>,
    /// Keeps etcd's users and roles in step with the nodes; `None` when etcd is not configured.
    pub reconciler: Option<Arc<Reconciler>>,
    /// Counters and histograms the handlers, the middleware and the reconcile loop feed.
    pub metrics: Arc<Metrics>,
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
    ) -> Self {
        Self {
            store,
            fleet_ca,
            etcd_ca,
            policy: RwLock::new(policy),
            etcd_ca_bundle_pem,
            csr_rules: CsrRules::default(),
            fleet_lifetime,
            auto_approve,
            reconciler,
            metrics,
        }
    }

    /// The policy in force now.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .map(|p| Arc::clone(&p))
            .unwrap_or_else(|poisoned| Arc::clone(&poisoned.into_inner()))
    }

    /// Replaces the policy (after a validated reload).
    pub fn set_policy(&self, policy: Arc<Policy>) {
        match self.policy.write() {
            Ok(mut guard) => *guard = policy,
            Err(poisoned) => *poisoned.into_inner() = policy,
        }
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

    /// Asks the reconciler to run soon (a node joined or left).
    pub fn poke_reconciler(&self) {
        if let Some(reconciler) = &self.reconciler {
            reconciler.poke();
        }
    }
}
