//! calseg-server's Prometheus metrics: counters bumped where things happen (issuance, denials,
//! requests, reconciles, reloads), gauges read from the store at scrape time (nodes by state,
//! each live identity's certificate expiry, rollout progress) and from `/proc` (process
//! metrics), served on a plain-HTTP listener of their own (`[metrics] listen` in server.toml),
//! so Prometheus scrapes without a client certificate while the API stays mTLS-only.
//!
//! The metric types and the OpenMetrics encoding are `prometheus-client`'s; calseg adds the
//! text format 0.0.4 for scrapers that do not ask for OpenMetrics (`exposition`).
//!
//! # Layout
//! - `exposition`: the two text formats, label values and label sets.
//! - `scrape`: the scrape-time registry: every family, with the gauges computed per scrape.
//! - `expiry`: the certificate of each live identity, whose expiry is exposed.
//! - `process`: `process_*` metrics read from `/proc/self`.
//! - `listener`: the `/metrics` listener and the request-latency middleware of the API.
//! - `connections`: the API's connections: open, refused at the cap, closed and why.
//! - `etcd`: the etcd gauges (each endpoint's reachability, release, known RBAC bypasses).

mod connections;
mod etcd;
mod expiry;
mod exposition;
mod process;
mod scrape;

pub use connections::{Closed, ConnectionMetrics};
pub use expiry::live_identities;
pub use exposition::{Format, OPENMETRICS, TEXT, text_of};
pub use scrape::Scrape;

use exposition::{Labels, labels};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use time::OffsetDateTime;

/// A response extension: the handler parked this long (a long-poll) before answering. The
/// latency histogram leaves the park out; the long-poll counters take it.
#[derive(Debug, Clone, Copy)]
pub struct LongPollWait(pub Duration);

/// Request-latency bucket bounds in seconds (Prometheus' defaults; the API times out at 30 s).
const LATENCY_BOUNDS: [f64; 11] = [
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

type Requests = Family<Labels<2>, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BOUNDS)
}

/// Every metric of the server; shared through the API's state (`http::AppState`). The handles are
/// `prometheus-client`'s (shared by clone), registered anew at each scrape (`scrape`).
pub struct Metrics {
    issued: Family<Labels<1>, Counter>,
    denied: Family<Labels<1>, Counter>,
    /// Latency of API requests; a long-poll's park is left out (see [`LongPollWait`]).
    requests: Requests,
    /// `requests`' histograms already made, by route and [`CLASSES`] index (shared handles).
    latency_by_route: std::sync::RwLock<std::collections::HashMap<String, [Option<Histogram>; 6]>>,
    /// Long-polls that parked, by route and status class, and the seconds they waited.
    long_polls: Family<Labels<2>, Counter>,
    long_poll_wait: Family<Labels<1>, Counter<f64, AtomicU64>>,
    rbac_drift: Gauge,
    rbac_applied: Counter,
    reconcile_errors: Counter,
    /// Unix seconds of the last successful reconcile; 0 before the first.
    reconcile_last_success: Gauge,
    /// Conflicts (users calseg does not own) the last reconcile left alone.
    rbac_conflicts: Gauge,
    /// Revoked nodes with an etcd user still present, as of the last reconcile.
    revocations_pending: Gauge,
    /// Restart leases held; the series is left out until first set (no leases yet is not
    /// "zero leases").
    leases_held: Gauge,
    leases_set: AtomicBool,
    /// 1 while this replica leads, 0 while it follows; left out for a server that is alone.
    leader: Gauge,
    leader_set: AtomicBool,
    /// 1 when the last policy load (the start, then each reload) put the file in force.
    reload_ok: Gauge,
    /// Unix seconds of that load.
    reload_at: Gauge,
    /// etcd's reachability, releases and known RBAC bypasses, from the latest release check.
    etcd: etcd::EtcdGauges,
    /// The API listener's connections (the API listener feeds them).
    pub connections: ConnectionMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The metrics of a server that has just loaded its policy (a successful load, now).
    pub fn new() -> Self {
        let metrics = Self {
            issued: Family::default(),
            denied: Family::default(),
            requests: Family::new_with_constructor(latency_histogram),
            latency_by_route: std::sync::RwLock::default(),
            long_polls: Family::default(),
            long_poll_wait: Family::default(),
            rbac_drift: Gauge::default(),
            rbac_applied: Counter::default(),
            reconcile_errors: Counter::default(),
            reconcile_last_success: Gauge::default(),
            rbac_conflicts: Gauge::default(),
            revocations_pending: Gauge::default(),
            leases_held: Gauge::default(),
            leases_set: AtomicBool::new(false),
            leader: Gauge::default(),
            leader_set: AtomicBool::new(false),
            reload_ok: Gauge::default(),
            reload_at: Gauge::default(),
            etcd: etcd::EtcdGauges::default(),
            connections: ConnectionMetrics::default(),
        };
        metrics.record_reload(true);
        metrics
    }

    /// A certificate was signed.
    pub fn issued(&self, kind: IssuedKind) {
        let kind = match kind {
            IssuedKind::Component => "component",
            IssuedKind::Fleet => "fleet",
        };
        self.issued.get_or_create(&labels(["kind"], [kind])).inc();
    }

    /// A caller was refused; `kind` is the stable `ApiFailure` kind.
    pub fn denied(&self, kind: &str) {
        self.denied.get_or_create(&labels(["kind"], [kind])).inc();
    }

    /// How many refusals of `kind` so far.
    pub fn denials(&self, kind: &str) -> u64 {
        self.denied
            .get(&labels(["kind"], [kind]))
            .map_or(0, |c| c.get())
    }

    /// One API request: its route template (never the raw path), status and latency. The
    /// histogram of a (route, class) seen before is found without allocating.
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        let class = class(status);
        let index = CLASSES.iter().position(|c| *c == class).unwrap_or(0);
        let seen = self
            .latency_by_route
            .read()
            .ok()
            .and_then(|routes| routes.get(route).and_then(|h| h[index].clone()));
        let histogram = seen.unwrap_or_else(|| {
            let histogram = self
                .requests
                .get_or_create(&labels(["route", "status"], [route, class]))
                .clone();
            if let Ok(mut routes) = self.latency_by_route.write() {
                routes.entry(route.to_owned()).or_default()[index] = Some(histogram.clone());
            }
            histogram
        });
        histogram.observe(seconds);
    }

    /// One long-poll that parked for `waited`: counted apart, its wait kept out of the latency.
    pub fn long_poll(&self, route: &str, status: u16, waited: Duration) {
        self.long_polls
            .get_or_create(&labels(["route", "status"], [route, class(status)]))
            .inc();
        self.long_poll_wait
            .get_or_create(&labels(["route"], [route]))
            .inc_by(waited.as_secs_f64());
    }

    /// A reconcile pass succeeded: `found` changes planned, `applied` made.
    pub fn reconciled(&self, found: usize, applied: usize, at: OffsetDateTime) {
        self.rbac_drift.set(gauge(found));
        self.changes_applied(applied);
        self.reconcile_last_success.set(at.unix_timestamp());
    }

    /// RBAC changes made outside the reconcile loop (an administrator's apply).
    pub fn changes_applied(&self, applied: usize) {
        self.rbac_applied.inc_by(applied as u64);
    }

    /// The last reconcile's conflicts (each holds back its own user only).
    pub fn set_rbac_conflicts(&self, n: usize) {
        self.rbac_conflicts.set(gauge(n));
    }

    /// Revoked nodes whose etcd users still exist.
    pub fn set_revocations_pending(&self, n: usize) {
        self.revocations_pending.set(gauge(n));
    }

    /// A reconcile pass failed.
    pub fn reconcile_failed(&self) {
        self.reconcile_errors.inc();
    }

    /// Sets `calseg_leases_held`, the restart leases held now; the gauge appears in scrapes
    /// from the first call on.
    pub fn set_leases_held(&self, n: u64) {
        self.leases_held.set(i64::try_from(n).unwrap_or(i64::MAX));
        self.leases_set.store(true, Ordering::Relaxed);
    }

    /// Sets `calseg_leader`: whether this replica leads (only servers on a shared etcd store
    /// report it).
    pub fn set_leader(&self, leads: bool) {
        self.leader.set(i64::from(leads));
        self.leader_set.store(true, Ordering::Relaxed);
    }

    /// A policy reload (SIGHUP) put the new policy in force (`ok`) or was refused, now.
    pub fn record_reload(&self, ok: bool) {
        self.reload_ok.set(i64::from(ok));
        self.reload_at
            .set(OffsetDateTime::now_utc().unix_timestamp());
    }

    /// Sets the etcd gauges from a release check: `calseg_etcd_up` per endpoint,
    /// `calseg_etcd_member_info` ((endpoint, version) of each endpoint that answered) and
    /// `calseg_etcd_known_rbac_bypass` ((endpoint, advisory) per known bypass), replacing the
    /// series of the previous check; the families appear from the first call on.
    pub fn set_etcd_release(&self, report: &crate::etcd_release::ReleaseReport) {
        self.etcd.set(
            report.up_series(),
            report.member_series(),
            report.bypass_series(),
        );
    }
}

/// `2xx`, `3xx`… of a status code.
/// The status classes requests are counted by.
const CLASSES: [&str; 6] = ["other", "1xx", "2xx", "3xx", "4xx", "5xx"];

fn class(status: u16) -> &'static str {
    match status {
        100..=599 => CLASSES[usize::from(status / 100)],
        _ => CLASSES[0],
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_exposition;
