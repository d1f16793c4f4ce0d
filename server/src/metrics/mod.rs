//! calseg-server's Prometheus metrics: counters bumped where things happen (issuance, denials,
//! requests, reconciles), gauges read from the store at scrape time (nodes by state, installed
//! certificates expiring soon), written in the text exposition format on a plain-HTTP listener
//! of their own (`[metrics] listen` in server.toml), so Prometheus scrapes without a client
//! certificate while the API stays mTLS-only.
//!
//! Hand-written rather than a client crate: a dozen series of two kinds, and the format is a
//! page of text; `text` is the whole of it.
//!
//! # Layout
//! - `text`: the exposition format, counter and histogram vectors.
//! - `listener`: the `/metrics` listener and the request-latency middleware of the API.
//! - `connections`: the API's connections: open, refused at the cap, closed and why.
//! - `etcd`: the etcd release gauges (each endpoint's release, its known RBAC bypasses).

mod connections;
mod etcd;
mod listener;
mod text;

pub use connections::{Closed, ConnectionMetrics};

pub use listener::{serve, track_requests};
pub use text::CONTENT_TYPE;

use crate::http::inventory::Summary;
use crate::store::{NodeRecord, NodeState};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use text::{CounterVec, Exposition, HistogramVec};
use time::OffsetDateTime;

/// The default `[metrics] listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// Request-latency bucket bounds in seconds (Prometheus' defaults; the API times out at 30 s).
const LATENCY_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Expiry horizons of `calseg_certificates_expiring`, as (label, seconds).
const EXPIRY_HORIZONS: [(&str, u64); 2] = [("7d", 7 * 86_400), ("1d", 86_400)];

/// What was signed: a component identity or an agent's fleet certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuedKind {
    Component,
    Fleet,
}

/// Every metric of the server; shared through [`crate::http::AppState`].
pub struct Metrics {
    issued: CounterVec<1>,
    denied: CounterVec<1>,
    requests: HistogramVec<2>,
    rbac_drift: AtomicU64,
    rbac_applied: AtomicU64,
    reconcile_errors: AtomicU64,
    /// Unix seconds of the last successful reconcile; 0 before the first.
    reconcile_last_success: AtomicI64,
    /// Conflicts (users calseg does not own) the last reconcile left alone.
    rbac_conflicts: AtomicU64,
    /// Revoked nodes with an etcd user still present, as of the last reconcile.
    revocations_pending: AtomicU64,
    /// Restart leases held; negative until [`Metrics::set_leases_held`] is first called, and
    /// the series is left out until then (no leases yet is not "zero leases").
    leases_held: AtomicI64,
    /// 1 while this replica leads, 0 while it follows; negative for a server that is alone.
    leader: AtomicI64,
    /// etcd's releases and their known RBAC bypasses, from the latest release check.
    etcd_release: etcd::EtcdReleaseGauges,
    /// The API listener's connections (`crate::http::listener` feeds them).
    pub connections: ConnectionMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            issued: CounterVec::new(["kind"]),
            denied: CounterVec::new(["kind"]),
            requests: HistogramVec::new(["route", "status"], LATENCY_BOUNDS),
            rbac_drift: AtomicU64::new(0),
            rbac_applied: AtomicU64::new(0),
            reconcile_errors: AtomicU64::new(0),
            reconcile_last_success: AtomicI64::new(0),
            rbac_conflicts: AtomicU64::new(0),
            revocations_pending: AtomicU64::new(0),
            leases_held: AtomicI64::new(-1),
            leader: AtomicI64::new(-1),
            etcd_release: etcd::EtcdReleaseGauges::default(),
            connections: ConnectionMetrics::default(),
        }
    }

    /// A certificate was signed.
    pub fn issued(&self, kind: IssuedKind) {
        self.issued.inc([match kind {
            IssuedKind::Component => "component",
            IssuedKind::Fleet => "fleet",
        }]);
    }

    /// A caller was refused; `kind` is the stable `ApiFailure` kind.
    pub fn denied(&self, kind: &str) {
        self.denied.inc([kind]);
    }

    /// How many refusals of `kind` so far.
    pub fn denials(&self, kind: &str) -> u64 {
        self.denied.get([kind])
    }

    /// One API request: its route template (never the raw path), status and latency.
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        let class = match status {
            100..=599 => format!("{}xx", status / 100),
            _ => "other".to_owned(),
        };
        self.requests.observe([route, &class], seconds);
    }

    /// A reconcile pass succeeded: `found` changes planned, `applied` made.
    pub fn reconciled(&self, found: usize, applied: usize, at: OffsetDateTime) {
        self.rbac_drift.store(found as u64, Ordering::Relaxed);
        self.changes_applied(applied);
        self.reconcile_last_success
            .store(at.unix_timestamp(), Ordering::Relaxed);
    }

    /// RBAC changes made outside the reconcile loop (an administrator's apply).
    pub fn changes_applied(&self, applied: usize) {
        self.rbac_applied
            .fetch_add(applied as u64, Ordering::Relaxed);
    }

    /// The last reconcile's conflicts (each holds back its own user only).
    pub fn set_rbac_conflicts(&self, n: usize) {
        self.rbac_conflicts.store(n as u64, Ordering::Relaxed);
    }

    /// Revoked nodes whose etcd users still exist.
    pub fn set_revocations_pending(&self, n: usize) {
        self.revocations_pending.store(n as u64, Ordering::Relaxed);
    }

    /// A reconcile pass failed.
    pub fn reconcile_failed(&self) {
        self.reconcile_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets `calseg_leases_held`, the restart leases held now. For the restart-lease code: call
    /// it whenever the number of live leases changes (or on each grant, release and expiry
    /// sweep); the gauge appears in scrapes from the first call on.
    pub fn set_leases_held(&self, n: u64) {
        self.leases_held
            .store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// Sets `calseg_leader`: whether this replica leads (only servers on a shared etcd store
    /// report it).
    pub fn set_leader(&self, leads: bool) {
        self.leader.store(i64::from(leads), Ordering::Relaxed);
    }

    /// Sets `calseg_etcd_member_info` ((endpoint, version) of each endpoint that answered) and
    /// `calseg_etcd_known_rbac_bypass` ((endpoint, advisory) per known bypass), replacing the
    /// series of the previous check; the families appear from the first call on.
    pub fn set_etcd_release(
        &self,
        members: Vec<(String, String)>,
        bypasses: Vec<(String, String)>,
    ) {
        self.etcd_release.set(members, bypasses);
    }

    /// The scrape answer: every metric, with gauges computed from `nodes` at `now`.
    pub fn render(&self, nodes: &[NodeRecord], now: OffsetDateTime) -> String {
        let mut out = Exposition::default();
        out.family("calseg_nodes", "gauge", "Nodes the server knows, by state.");
        for state in [
            NodeState::Pending,
            NodeState::Approved,
            NodeState::Denied,
            NodeState::Revoked,
        ] {
            let count = nodes.iter().filter(|n| n.state == state).count();
            out.sample(
                "calseg_nodes",
                &[("state", &state.to_string())],
                count as f64,
            );
        }
        out.family(
            "calseg_certificates_expiring",
            "gauge",
            "Installed identities of approved nodes (from their agents' last reports) whose \
             certificate expires within the horizon, or has expired.",
        );
        let summaries: Vec<Summary> = nodes
            .iter()
            .filter(|n| n.state == NodeState::Approved)
            .map(Summary::of)
            .collect();
        for (label, secs) in EXPIRY_HORIZONS {
            let count: usize = summaries.iter().map(|s| s.expiring_within(secs, now)).sum();
            out.sample(
                "calseg_certificates_expiring",
                &[("within", label)],
                count as f64,
            );
        }
        out.counters(
            "calseg_certificates_issued_total",
            "Certificates signed, by kind (component identity or fleet).",
            &self.issued,
        );
        out.counters(
            "calseg_requests_denied_total",
            "API calls refused, by the error kind returned.",
            &self.denied,
        );
        out.histograms(
            "calseg_http_request_duration_seconds",
            "API request latency, by route template and status class.",
            &self.requests,
        );
        self.render_reconcile(&mut out);
        let leases = self.leases_held.load(Ordering::Relaxed);
        if leases >= 0 {
            out.family("calseg_leases_held", "gauge", "Restart leases held now.");
            out.sample("calseg_leases_held", &[], leases as f64);
        }
        let leader = self.leader.load(Ordering::Relaxed);
        if leader >= 0 {
            out.family(
                "calseg_leader",
                "gauge",
                "1 while this replica leads (runs the reconciler and the rollout controller).",
            );
            out.sample("calseg_leader", &[], leader as f64);
        }
        self.etcd_release.render(&mut out);
        self.connections.render(&mut out);
        out.finish()
    }

    /// Rollout progress, appended to the scrape: the policy revision in force, approved nodes
    /// by convergence, and, for the latest rollout in waves, its state and waves opened/total.
    pub fn render_rollout(status: &calseg_api::rollout::RolloutStatus) -> String {
        let mut out = Exposition::default();
        out.family(
            "calseg_policy_revision",
            "gauge",
            "The policy revision in force (numbered by the server).",
        );
        out.sample(
            "calseg_policy_revision",
            &[],
            status.policy_revision.unwrap_or(0) as f64,
        );
        out.family(
            "calseg_rollout_nodes",
            "gauge",
            "Approved nodes by convergence to the manifest the policy in force gives them.",
        );
        for (label, count) in [
            ("converged", status.converged),
            ("pending", status.pending),
            ("failed", status.failed),
            ("unassigned", status.unassigned),
        ] {
            out.sample(
                "calseg_rollout_nodes",
                &[("convergence", label)],
                count as f64,
            );
        }
        if let Some(waves) = &status.waves {
            out.family(
                "calseg_rollout_waves",
                "gauge",
                "Waves of the latest rollout: opened so far and in all.",
            );
            out.sample(
                "calseg_rollout_waves",
                &[("kind", "opened")],
                waves.opened_waves as f64,
            );
            out.sample(
                "calseg_rollout_waves",
                &[("kind", "total")],
                waves.total_waves as f64,
            );
            out.family(
                "calseg_rollout_state",
                "gauge",
                "1 for the state the latest rollout is in.",
            );
            out.sample(
                "calseg_rollout_state",
                &[("state", &waves.state.to_string())],
                1.0,
            );
        }
        out.finish()
    }

    fn render_reconcile(&self, out: &mut Exposition) {
        let scalars = [
            (
                "calseg_rbac_drift_changes",
                "gauge",
                "etcd RBAC changes the last reconcile found, before applying them.",
                self.rbac_drift.load(Ordering::Relaxed) as f64,
            ),
            (
                "calseg_rbac_changes_applied_total",
                "counter",
                "etcd RBAC changes applied (reconcile loop and administrators).",
                self.rbac_applied.load(Ordering::Relaxed) as f64,
            ),
            (
                "calseg_reconcile_errors_total",
                "counter",
                "Reconcile passes that failed.",
                self.reconcile_errors.load(Ordering::Relaxed) as f64,
            ),
            (
                "calseg_reconcile_last_success_timestamp_seconds",
                "gauge",
                "Unix time of the last successful reconcile; 0 before the first.",
                self.reconcile_last_success.load(Ordering::Relaxed) as f64,
            ),
            (
                "calseg_rbac_conflicts",
                "gauge",
                "etcd users the policy names that calseg does not own, left alone (and never \
                 signed for) by the last reconcile.",
                self.rbac_conflicts.load(Ordering::Relaxed) as f64,
            ),
            (
                "calseg_revocations_pending",
                "gauge",
                "Revoked nodes that still have an etcd user, as of the last reconcile.",
                self.revocations_pending.load(Ordering::Relaxed) as f64,
            ),
        ];
        for (name, kind, help, value) in scalars {
            out.family(name, kind, help);
            out.sample(name, &[], value);
        }
    }
}

#[cfg(test)]
mod tests;
