//! The end of a pass: records of what stuck, the report, the outcome.

use super::CycleContext;
use super::steps::Work;
use crate::state::{InstalledIdentity, Outcome};
use calseg_api::manifest::Manifest;
use calseg_api::report::{IdentityReport, Report, UnitReport};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;

/// Keeps the records of identities whose new files stuck; clears the journal.
pub(super) fn save_records(
    ctx: &CycleContext,
    manifest: &Manifest,
    work: &[Work<'_>],
    mut installed: BTreeMap<String, InstalledIdentity>,
    errors: &mut Vec<String>,
) {
    for w in work {
        if let Some(record) = w.new_record(manifest) {
            installed.insert(record.component.clone(), record);
        }
    }
    if let Err(e) = ctx.state.save_installed(&installed) {
        errors.push(format!("cannot record installed identities: {e}"));
    }
    if let Err(e) = ctx.state.clear_journal() {
        errors.push(format!("cannot clear the install journal: {e}"));
    }
}

pub(super) fn build_report(
    manifest: &Manifest,
    work: &[Work<'_>],
    mut units: BTreeMap<String, UnitReport>,
    errors: &[String],
) -> Report {
    let identities = work
        .iter()
        .map(|w| {
            let (serial, not_after) = match (&w.issued, &w.record) {
                (Some(issued), _) => (
                    Some(issued.info.serial.clone()),
                    Some(issued.info.not_after),
                ),
                (None, Some(record)) => (Some(record.serial.clone()), Some(record.not_after)),
                (None, None) => (None, None),
            };
            IdentityReport {
                component: w.identity.component.clone(),
                serial,
                not_after: not_after.and_then(|t| t.format(&Rfc3339).ok()),
                status: w.status.clone(),
            }
        })
        .collect();
    let mut unit_list = Vec::new();
    for w in work {
        for unit in &w.identity.restart {
            if let Some(report) = units.remove(unit) {
                unit_list.push(report);
            }
        }
    }
    let mut all_errors: Vec<String> = work.iter().flat_map(|w| w.errors.iter().cloned()).collect();
    all_errors.extend(errors.iter().cloned());
    Report {
        revision: manifest.revision.clone(),
        identities,
        units: unit_list,
        errors: all_errors,
    }
}

pub(super) fn outcome_of(work: &[Work<'_>], errors: &[String]) -> Outcome {
    if !errors.is_empty() || work.iter().any(|w| !w.errors.is_empty()) {
        Outcome::Failed
    } else if work.iter().any(Work::changed) {
        Outcome::Changed
    } else {
        Outcome::Unchanged
    }
}
