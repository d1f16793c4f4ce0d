//! An operator's `apply`: the RBAC plan of the nodes enrolled now, applied to live etcd at once
//! (the reconciler does the same on its own schedule), audited when it changed anything; and
//! how etcd's failures and release warnings reach the operator of `plan` and `apply`.

use crate::ControlError;
use crate::rbac::Plan;
use crate::reconcile::Reconciler;
use crate::state::Control;
use crate::store::{AuditAction, AuditOutcome};

/// What an apply did.
pub struct Applied {
    pub plan: Plan,
    /// How many changes reached etcd.
    pub applied: usize,
    /// The latest etcd release check's warnings.
    pub etcd_warnings: Vec<String>,
}

/// Plans and applies now, as `by` asked; `adopt` takes over etcd users that look like
/// calseg's but lack its marker.
pub async fn apply_now(control: &Control, by: &str, adopt: bool) -> Result<Applied, ControlError> {
    let reconciler = reconciler_of(control)?;
    let enrolled = control.store(|s| s.nodes()).await?;
    let (plan, report) = reconciler
        .apply_desired(&control.desired_rbac(&enrolled), adopt)
        .await
        .map_err(etcd_failure)?;
    if report.applied > 0 {
        let detail = format!("{} changes", report.applied);
        control
            .audit(by, AuditAction::RbacApply, "etcd", AuditOutcome::Ok, detail)
            .await;
    }
    Ok(Applied {
        plan,
        applied: report.applied,
        etcd_warnings: etcd_warnings(reconciler),
    })
}

/// The reconciler, or `etcd_not_configured` when server.toml has no `[etcd]`.
pub fn reconciler_of(control: &Control) -> Result<&Reconciler, ControlError> {
    control.reconciler.as_deref().ok_or_else(|| {
        ControlError::unavailable(
            "etcd_not_configured",
            "this server has no etcd credentials ([etcd] in server.toml), so it does not manage RBAC",
        )
    })
}

/// A plan or apply that failed on etcd's side: a conflict when `refuse_known_bypasses`
/// refused it, etcd's own failure otherwise.
pub fn etcd_failure(error: anyhow::Error) -> ControlError {
    if let Some(refused) = error.downcast_ref::<crate::etcd_release::KnownBypasses>() {
        return ControlError::conflict("etcd_known_bypasses", &refused.to_string());
    }
    ControlError::new(crate::Class::Upstream, "etcd", &format!("{error:#}"))
}

/// The latest etcd release check's warnings, as `plan` and `apply` print them.
pub fn etcd_warnings(reconciler: &Reconciler) -> Vec<String> {
    reconciler
        .release()
        .latest()
        .map(|report| crate::etcd_release::cli_lines(&report))
        .unwrap_or_default()
}
