//! Which etcd calseg configures: every endpoint's release, read from the member itself, against
//! a table of the published etcd RBAC bypasses. calseg's isolation is only as strong as etcd's
//! RBAC, so `plan`, `apply` and `serve` say which members have known bypasses (and the first
//! release that fixes them), and `[etcd] refuse_known_bypasses = true` makes `apply` and the
//! running server refuse to manage RBAC on such a cluster.
//!
//! # Layout
//! - `version`: parsing and ordering etcd versions; an unreadable one is "unknown" (affected).
//! - `advisories`: the table of known bypasses (ranges, fixed releases, effect, sources).
//! - `probe`: asks each endpoint for its version, one connection per endpoint.
//! - `report`: one check's outcome: warnings, status line, metric series, the refusal.
//! - `monitor`: the running server's latest check, when to re-check, and the refusal gate.

mod advisories;
mod monitor;
mod probe;
mod report;
mod version;

pub use advisories::{ADVISORIES, Advisory, Fix, Line, Verdict, affecting};
pub use monitor::{Monitor, RECHECK_INTERVAL, SILENT_RECHECK_INTERVAL};
pub use probe::{Answer, PROBE_TIMEOUT, probe_all};
pub use report::{KnownBypasses, MemberRelease, ReleaseReport};
pub use version::{EtcdVersion, Reported};

use crate::rbac::EtcdAccess;

/// Checks every endpoint of `access` once.
pub async fn check(access: &EtcdAccess) -> ReleaseReport {
    ReleaseReport::from_answers(probe_all(access).await)
}

/// Logs a check's warnings, and at info what the bypasses found let an identity do (`serve`
/// at start).
pub fn log_at_start(report: &ReleaseReport) {
    for warning in report.warnings() {
        tracing::warn!("{warning}");
    }
    for effect in report.effects() {
        tracing::info!("known etcd RBAC bypass {effect}");
    }
}

/// The lines `plan` and `apply` print to stderr: each warning, then what each bypass found
/// lets an identity do. Empty when there is nothing to say.
pub fn cli_lines(report: &ReleaseReport) -> Vec<String> {
    let mut lines: Vec<String> = report
        .warnings()
        .into_iter()
        .map(|w| format!("warning: {w}"))
        .collect();
    let effects = report.effects();
    if !effects.is_empty() {
        lines.push(
            "  calseg's isolation is only as strong as etcd's RBAC; with these bypasses a Calico \
             identity can go beyond its roles:"
                .to_owned(),
        );
        lines.extend(effects.into_iter().map(|e| format!("  - {e}")));
    }
    lines
}
