//! The pass itself, step by step (see [`super::Phase`]).

use super::report::{build_report, outcome_of, save_records};
use super::restart::restart_units;
use super::steps::{Work, decisions, identity_specs, issue, render_specs};
use super::{
    CycleContext, CycleResult, Installer, ManifestSource, Phase, Ports, Reporter, RestartLeases,
    Restarter, Signer, Verifier,
};
use crate::client::ManifestFetch;
use crate::decide::Action;
use crate::limits::Violation;
use crate::state::{CycleRecord, InstalledIdentity, Journal, Outcome};
use calseg_api::manifest::Manifest;
use calseg_api::report::{IdentityReport, IdentityStatus, Report, UnitReport};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use time::format_description::well_known::Rfc3339;

impl<M, S, V, I, R, P, L> Ports<M, S, V, I, R, P, L>
where
    M: ManifestSource,
    S: Signer,
    V: Verifier,
    I: Installer,
    R: Restarter,
    P: Reporter,
    L: RestartLeases,
{
    /// Runs one pass and records its result in the state directory (`last-cycle.json`).
    pub async fn run_cycle(&mut self, ctx: &CycleContext) -> CycleResult {
        let mut result = Self::pass(ctx, self).await;
        let record = CycleRecord {
            started_at: ctx.now,
            finished_at: time::OffsetDateTime::now_utc(),
            outcome: result.outcome,
            report: result.report.clone(),
            errors: result.errors.clone(),
        };
        if let Err(e) = ctx.state.save_last_cycle(&record) {
            result.errors.push(format!("cannot record the cycle: {e}"));
        }
        result
    }

    /// One pass: pull, issue, install, restart within the budget, report.
    async fn pass(ctx: &CycleContext, ports: &mut Self) -> CycleResult {
        let mut phase = Phase::Start;
        if let Err(e) = recover_journal(ctx, &mut ports.installer) {
            return failed(Outcome::Failed, e);
        }
        let installed = match ctx.state.installed() {
            Ok(installed) => installed,
            Err(e) => return failed(Outcome::Failed, e.to_string()),
        };

        // Pull.
        let manifest = match pull(ctx, &mut ports.manifest).await {
            Ok(manifest) => manifest,
            Err(mut result) => {
                if result.outcome == Outcome::Unreachable {
                    warn_expiries(&installed, ctx.now);
                }
                let _ = phase.advance(Phase::Done);
                result.report = None;
                return result;
            }
        };
        let step = |phase: &mut Phase, to| phase.advance(to).map_err(|e| e.to_string());
        if let Err(e) = step(&mut phase, Phase::Pulled) {
            return failed(Outcome::Failed, e);
        }

        // Limits: the whole manifest, before any managed file is read or anything is made.
        let violations = ctx.limits.check_manifest(ports.installer.root(), &manifest);
        if !violations.is_empty() {
            let _ = phase.advance(Phase::Done);
            return refused(&manifest, &installed, &violations, &mut ports.reporter).await;
        }

        // Decide.
        let decisions =
            match decisions(&manifest, &installed, &ports.installer, ctx.now, &ctx.renew) {
                Ok(decisions) => decisions,
                Err(e) => {
                    let _ = phase.advance(Phase::Done);
                    return failed(Outcome::Failed, e);
                }
            };
        let mut work: Vec<Work<'_>> = manifest
            .identities
            .iter()
            .zip(decisions)
            .map(|(identity, decision)| Work {
                identity,
                action: decision.action,
                record: installed.get(&identity.component).cloned(),
                issued: None,
                receipts: Vec::new(),
                status: IdentityStatus::Unchanged,
                errors: Vec::new(),
            })
            .collect();
        if let Err(e) = step(&mut phase, Phase::Decided) {
            return failed(Outcome::Failed, e);
        }

        // Issue: sign and verify every new certificate before touching a file.
        for w in &mut work {
            if let Action::Issue(reason) = &w.action {
                tracing::info!(component = %w.identity.component, %reason, "issuing a new certificate");
                match issue(
                    ctx,
                    &manifest,
                    w.identity,
                    &mut ports.signer,
                    &mut ports.verifier,
                )
                .await
                {
                    Ok(issued) => w.issued = Some(issued),
                    Err((st, e)) => w.fail(st, e),
                }
            }
        }
        if let Err(e) = step(&mut phase, Phase::Issued) {
            return failed(Outcome::Failed, e);
        }
        if ctx.stop.load(Ordering::SeqCst) {
            tracing::info!("stop requested before installing; nothing was changed");
            return failed(
                Outcome::Interrupted,
                "stopped before installing; nothing changed".into(),
            );
        }

        // Install and render.
        let mut journal = Journal::default();
        for w in &mut work {
            install_identity(&manifest, w, &mut ports.installer);
            if !w.receipts.is_empty() {
                journal
                    .receipts
                    .insert(w.identity.component.clone(), w.receipts.clone());
            }
        }
        let mut errors: Vec<String> = Vec::new();
        let any_change = journal.receipts.values().flatten().any(|r| r.changed());
        if let Err(e) = any_change
            .then(|| ctx.state.save_journal(&journal))
            .transpose()
        {
            errors.push(format!("cannot write the install journal: {e}"));
        }
        if let Err(e) = step(&mut phase, Phase::Installed) {
            errors.push(e);
        }

        // Restart under a restart lease, roll back what breaks its units (or gets no lease).
        let mut units = restart_units(
            ctx,
            &manifest.revision,
            &mut work,
            &mut ports.installer,
            &mut ports.restarter,
            &mut ports.leases,
            &mut errors,
        )
        .await;
        // The state of every other unit of the manifest, as it is now.
        for unit in manifest.identities.iter().flat_map(|id| id.restart.iter()) {
            if units.contains_key(unit) {
                continue;
            }
            if let Ok(status) = ports.restarter.status(unit).await {
                let active_state = if status.is_installed() {
                    status.active_state
                } else {
                    status.load_state
                };
                units.insert(
                    unit.clone(),
                    UnitReport {
                        unit: unit.clone(),
                        active_state,
                        n_restarts: status.n_restarts,
                        restarted: false,
                    },
                );
            }
        }
        if let Err(e) = step(&mut phase, Phase::Restarted) {
            errors.push(e);
        }
        save_records(ctx, &manifest, &work, installed, &mut errors);

        // Report.
        let report = build_report(&manifest, &work, units, &errors);
        let outcome = outcome_of(&work, &errors);
        let mut all_errors = report.errors.clone();
        if let Err(e) = ports.reporter.report(&report).await {
            tracing::warn!(error = %e, "report not delivered; it is kept in last-cycle.json");
            all_errors.push(format!("report not delivered: {e}"));
        }
        let _ = step(&mut phase, Phase::Reported);
        let _ = step(&mut phase, Phase::Done);
        CycleResult {
            outcome,
            report: Some(report),
            errors: all_errors,
            retry_after: None,
        }
    }
}

/// Ends a pass whose manifest is outside agent.toml's limits: nothing was touched; the report
/// keeps every identity as installed before, with status `refused`, and names each violation.
async fn refused<P: Reporter>(
    manifest: &Manifest,
    installed: &BTreeMap<String, InstalledIdentity>,
    violations: &[Violation],
    reporter: &mut P,
) -> CycleResult {
    for v in violations {
        tracing::error!(field = %v.field, value = %v.value, reason = %v.reason, "manifest refused by agent.toml limits");
    }
    let identities = manifest
        .identities
        .iter()
        .map(|id| {
            let record = installed.get(&id.component);
            IdentityReport {
                component: id.component.clone(),
                serial: record.map(|r| r.serial.clone()),
                not_after: record.and_then(|r| r.not_after.format(&Rfc3339).ok()),
                status: IdentityStatus::Refused,
            }
        })
        .collect();
    let mut errors: Vec<String> = violations.iter().map(ToString::to_string).collect();
    errors.push("nothing of this manifest was installed or restarted".into());
    let report = Report {
        revision: manifest.revision.clone(),
        identities,
        units: Vec::new(),
        errors: errors.clone(),
    };
    if let Err(e) = reporter.report(&report).await {
        tracing::warn!(error = %e, "report not delivered; it is kept in last-cycle.json");
        errors.push(format!("report not delivered: {e}"));
    }
    CycleResult {
        outcome: Outcome::Refused,
        report: Some(report),
        errors,
        retry_after: None,
    }
}

fn failed(outcome: Outcome, error: String) -> CycleResult {
    CycleResult {
        outcome,
        report: None,
        errors: vec![error],
        retry_after: None,
    }
}

/// Rolls back an install a previous run left unconfirmed (it died before its units were
/// handled), so the pass starts from the last good files.
fn recover_journal<I: Installer>(ctx: &CycleContext, installer: &mut I) -> Result<(), String> {
    let Some(journal) = ctx.state.journal().map_err(|e| e.to_string())? else {
        return Ok(());
    };
    for (component, receipts) in &journal.receipts {
        tracing::warn!(%component, "an earlier run stopped during an install; rolling it back");
        for receipt in receipts.iter().rev() {
            if let Err(e) = installer.rollback(receipt) {
                tracing::warn!(%component, error = %e, "rollback of an interrupted install failed");
            }
        }
    }
    ctx.state.clear_journal().map_err(|e| e.to_string())
}

/// The manifest: fresh, or the cached one when the server says it did not change.
async fn pull<M: ManifestSource>(
    ctx: &CycleContext,
    source: &mut M,
) -> Result<Manifest, CycleResult> {
    let cached = ctx.state.manifest().ok().flatten();
    let etag = cached.as_ref().map(|m| m.revision.clone());
    let unreachable = |e: crate::client::ClientError| {
        if e.is_revoked() {
            return super::revoked::revoked(ctx, &e);
        }
        let outcome = if e.is_transient() {
            Outcome::Unreachable
        } else {
            Outcome::Failed
        };
        let retry_after = e.retry_after();
        tracing::warn!(error = %e, "cannot get the manifest; keeping the installed state");
        CycleResult {
            outcome,
            report: None,
            errors: vec![format!("manifest: {e}")],
            retry_after,
        }
    };
    let fetched = source.fetch(etag.as_deref()).await.map_err(unreachable)?;
    super::revoked::served(ctx);
    let manifest = match (fetched, cached) {
        (ManifestFetch::Fresh { manifest, .. }, _) => manifest,
        (ManifestFetch::NotModified, Some(cached)) => return Ok(cached),
        (ManifestFetch::NotModified, None) => {
            match source.fetch(None).await.map_err(unreachable)? {
                ManifestFetch::Fresh { manifest, .. } => manifest,
                ManifestFetch::NotModified => {
                    return Err(failed(
                        Outcome::Failed,
                        "server answered 304 to an unconditional request".into(),
                    ));
                }
            }
        }
    };
    if manifest.node != ctx.node {
        let why = format!(
            "the manifest is for node {:?}, this is {:?}",
            manifest.node, ctx.node
        );
        return Err(failed(Outcome::Failed, why));
    }
    // Cached before the limits are checked, on purpose: a refused manifest's revision is the
    // ETag the long-poll waits on, so the agent refuses it once per interval rather than in a
    // loop, and wakes as soon as the server has another. Nothing is installed from the cache
    // without the same check.
    if let Err(e) = ctx.state.save_manifest(&manifest) {
        tracing::warn!(error = %e, "cannot cache the manifest");
    }
    Ok(manifest)
}

/// Warns, per installed certificate, how long the host can go on without the server (only
/// when the server cannot be reached: a refusal is not an outage).
pub(crate) fn warn_expiries(
    installed: &BTreeMap<String, InstalledIdentity>,
    now: time::OffsetDateTime,
) {
    for record in installed.values() {
        let left = record.not_after - now;
        let expires = calseg_api::when::rfc3339(&record.not_after);
        tracing::warn!(component = %record.component, %expires, hours_left = left.whole_hours(), "server unreachable; certificate keeps working until it expires");
    }
}

/// Installs a new identity's files (if any) and renders its config files.
fn install_identity<I: Installer>(manifest: &Manifest, w: &mut Work<'_>, installer: &mut I) {
    if let Some(issued) = &w.issued {
        match installer.install_set(&identity_specs(
            manifest,
            w.identity,
            issued.cert_pem.as_bytes(),
            issued.key.expose().as_bytes(),
        )) {
            Ok(receipt) => {
                w.receipts.push(receipt);
                w.status = IdentityStatus::Installed;
            }
            Err(e) => {
                w.issued = None;
                w.fail(
                    IdentityStatus::Error,
                    format!("install failed ({}): {e}", e.kind()),
                );
                return;
            }
        }
    }
    if !w.has_identity() {
        return;
    }
    let (specs, render_errors) = render_specs(manifest, w.identity, installer);
    for spec in &specs {
        match installer.install_file(spec) {
            Ok(receipt) => w.receipts.push(receipt),
            Err(e) => w.fail(
                IdentityStatus::Error,
                format!("{}: {e}", spec.path.display()),
            ),
        }
    }
    for error in render_errors {
        w.fail(IdentityStatus::Error, error);
    }
    if w.status == IdentityStatus::Unchanged && w.changed() {
        w.status = IdentityStatus::Installed;
    }
}
