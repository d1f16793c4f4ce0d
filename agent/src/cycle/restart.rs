//! Restarting the units of changed identities, once each and under a restart lease, and
//! rolling back the identities behind a unit that does not come back healthy (or whose units
//! got no lease).

use super::lease::{self, Held};
use super::steps::Work;
use super::{CycleContext, Installer, RestartLeases, Restarter};
use calseg_api::report::{IdentityStatus, UnitReport};
use std::collections::{BTreeMap, BTreeSet};

/// Restarts each unit of a changed identity once, holding a restart lease; on failure rolls
/// back every identity that restarts that unit and restarts its units again. Without a lease,
/// rolls back every changed identity that has units and restarts nothing. Returns the unit
/// reports.
pub(super) async fn restart_units<I: Installer, R: Restarter, L: RestartLeases>(
    ctx: &CycleContext,
    revision: &str,
    work: &mut [Work<'_>],
    installer: &mut I,
    restarter: &mut R,
    leases: &mut L,
    errors: &mut Vec<String>,
) -> BTreeMap<String, UnitReport> {
    let mut reports = BTreeMap::new();
    let mut affected: Vec<String> = Vec::new();
    for w in work.iter().filter(|w| w.changed()) {
        for unit in &w.identity.restart {
            if !affected.contains(unit) {
                affected.push(unit.clone());
            }
        }
    }
    if affected.is_empty() {
        return reports;
    }
    let mut held = match lease::acquire(ctx, leases, &affected, revision).await {
        Ok(held) => held,
        Err(why) => {
            tracing::warn!(
                %why,
                "no restart lease; rolling back the identities behind {}",
                affected.join(", ")
            );
            for w in work
                .iter_mut()
                .filter(|w| w.changed() && !w.identity.restart.is_empty())
            {
                roll_back(w, installer, IdentityStatus::LeaseDenied, &why);
            }
            return reports;
        }
    };
    let mut failed_units = BTreeSet::new();
    for unit in &affected {
        let restarted = restart_one(ctx, unit, restarter, errors, &mut failed_units);
        if let Some(report) = lease::renewing(leases, &mut held, restarted).await {
            reports.insert(unit.clone(), report);
        }
    }
    if !failed_units.is_empty() {
        restart_failed(
            ctx,
            work,
            installer,
            restarter,
            leases,
            &mut held,
            &failed_units,
            errors,
            &mut reports,
        )
        .await;
    }
    lease::release(leases, held).await;
    reports
}

/// Rolls back every changed identity behind a failed unit, then restarts its units again.
#[allow(clippy::too_many_arguments)]
async fn restart_failed<I: Installer, R: Restarter, L: RestartLeases>(
    ctx: &CycleContext,
    work: &mut [Work<'_>],
    installer: &mut I,
    restarter: &mut R,
    leases: &mut L,
    held: &mut Held,
    failed_units: &BTreeSet<String>,
    errors: &mut Vec<String>,
    reports: &mut BTreeMap<String, UnitReport>,
) {
    let mut again: Vec<String> = Vec::new();
    for w in work.iter_mut().filter(|w| w.changed()) {
        if !w.identity.restart.iter().any(|u| failed_units.contains(u)) {
            continue;
        }
        let failed_list: Vec<&String> = w
            .identity
            .restart
            .iter()
            .filter(|u| failed_units.contains(*u))
            .collect();
        let why =
            format!("unit(s) {failed_list:?} failed with the new files; previous files restored");
        roll_back(w, installer, IdentityStatus::RolledBack, &why);
        for unit in &w.identity.restart {
            if !again.contains(unit) {
                again.push(unit.clone());
            }
        }
    }
    for unit in &again {
        let mut ignored = BTreeSet::new();
        let restarted = restart_one(ctx, unit, restarter, errors, &mut ignored);
        if let Some(report) = lease::renewing(leases, held, restarted).await {
            reports.insert(unit.clone(), report);
        }
    }
}

/// Restores the files an identity had before this pass; marks it `status` with `why`, or as an
/// error when the rollback itself failed.
fn roll_back<I: Installer>(w: &mut Work<'_>, installer: &mut I, status: IdentityStatus, why: &str) {
    let mut rollback_errors = Vec::new();
    for receipt in w.receipts.iter().rev() {
        if let Err(e) = installer.rollback(receipt) {
            rollback_errors.push(e.to_string());
        }
    }
    w.receipts.clear();
    w.issued = None;
    if rollback_errors.is_empty() {
        w.fail(status, why.to_owned());
    } else {
        w.fail(
            IdentityStatus::Error,
            format!("{why}; rollback failed: {}", rollback_errors.join("; ")),
        );
    }
}

async fn restart_one<R: Restarter>(
    ctx: &CycleContext,
    unit: &str,
    restarter: &mut R,
    errors: &mut Vec<String>,
    failed_units: &mut BTreeSet<String>,
) -> Option<UnitReport> {
    let status = match restarter.status(unit).await {
        Ok(status) => status,
        Err(e) => {
            errors.push(format!("{unit}: {e}"));
            return None;
        }
    };
    if !status.is_installed() {
        errors.push(format!("{unit} is not installed (load state {}); its files were installed but it was not restarted", status.load_state));
        return Some(UnitReport {
            unit: unit.into(),
            active_state: status.load_state,
            n_restarts: 0,
            restarted: false,
        });
    }
    tracing::info!(%unit, "restarting");
    match restarter.restart_and_wait(unit, ctx.restart_timeout).await {
        Ok(status) => Some(UnitReport {
            unit: unit.into(),
            active_state: status.active_state,
            n_restarts: status.n_restarts,
            restarted: true,
        }),
        Err(failure) => {
            tracing::warn!(%unit, reason = %failure.reason, "unit unhealthy after restart");
            errors.push(format!("{unit}: {}", failure.reason));
            failed_units.insert(unit.to_owned());
            let (active_state, n_restarts) = failure
                .status
                .map_or(("unknown".into(), 0), |s| (s.active_state, s.n_restarts));
            Some(UnitReport {
                unit: unit.into(),
                active_state,
                n_restarts,
                restarted: true,
            })
        }
    }
}
