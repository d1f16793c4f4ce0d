//! One scrape: a registry of every family, built per scrape from the long-lived handles of
//! [`Metrics`] (clones share their values) and the gauges computed from the store now (nodes
//! by state, expiring certificates, each identity's expiry, rollout progress), then encoded
//! in the format the scraper asked for.

use super::expiry::Expiry;
use super::exposition::{Format, Labels, labels};
use super::{EXPIRY_HORIZONS, Metrics, gauge};
use crate::inventory::Summary;
use crate::store::{NodeRecord, NodeState};
use calseg_api::ca::CaStatus;
use calseg_api::rollout::RolloutStatus;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;
use time::OffsetDateTime;

/// What a scrape reads from the store (everything but the long-lived handles).
pub struct Scrape<'a> {
    pub nodes: &'a [NodeRecord],
    pub now: OffsetDateTime,
    /// Each live identity's certificate (see `expiry`).
    pub expiries: &'a [Expiry],
    /// Rollout progress; `None` leaves its families out.
    pub rollout: Option<&'a RolloutStatus>,
    /// The CAs and the etcd client CA's rotation; `None` leaves their families out.
    pub ca: Option<&'a CaStatus>,
    /// Whether to read `/proc/self` (unit tests compare exact output without it).
    pub process: bool,
    /// Store transactions that recorded issued certificates (`calseg_control::group_commit`).
    pub issuance_commits: u64,
}

impl<'a> Scrape<'a> {
    /// A scrape of `nodes` at `now`, with process metrics and nothing else.
    pub fn of(nodes: &'a [NodeRecord], now: OffsetDateTime) -> Self {
        Self {
            nodes,
            now,
            expiries: &[],
            rollout: None,
            ca: None,
            process: true,
            issuance_commits: 0,
        }
    }
}

/// `family` with one gauge per `(label values, value)`.
fn gauges<const N: usize>(
    names: [&'static str; N],
    values: impl IntoIterator<Item = ([String; N], i64)>,
) -> Family<Labels<N>, Gauge> {
    let family = Family::<Labels<N>, Gauge>::default();
    for (label_values, value) in values {
        let label_values = label_values.each_ref().map(String::as_str);
        family
            .get_or_create(&labels(names, label_values))
            .set(value);
    }
    family
}

impl Metrics {
    /// The scrape answer in `format`.
    pub fn render(&self, scrape: &Scrape, format: Format) -> String {
        format.encode(&self.registry(scrape))
    }

    /// Every family of a scrape.
    pub fn registry(&self, scrape: &Scrape) -> Registry {
        let mut r = Registry::default();
        r.register(
            "calseg_build_info",
            "1, labelled with the version of calseg-server running",
            gauges(["version"], [([env!("CARGO_PKG_VERSION").to_owned()], 1)]),
        );
        let states = [
            NodeState::Pending,
            NodeState::Approved,
            NodeState::Denied,
            NodeState::Revoked,
        ];
        r.register(
            "calseg_nodes",
            "Nodes the server knows, by state",
            gauges(
                ["state"],
                states.map(|state| {
                    let count = scrape.nodes.iter().filter(|n| n.state == state).count();
                    ([state.to_string()], gauge(count))
                }),
            ),
        );
        let summaries: Vec<Summary> = scrape
            .nodes
            .iter()
            .filter(|n| n.state == NodeState::Approved)
            .map(crate::inventory::summary_of)
            .collect();
        r.register(
            "calseg_certificates_expiring",
            "Installed identities of approved nodes (from their agents' last reports) whose \
             certificate expires within the horizon, or has expired",
            gauges(
                ["within"],
                EXPIRY_HORIZONS.map(|(label, secs)| {
                    let count: usize = summaries
                        .iter()
                        .map(|s| s.expiring_within(secs, scrape.now))
                        .sum();
                    ([label.to_owned()], gauge(count))
                }),
            ),
        );
        r.register(
            "calseg_certificate_expiration_timestamp_seconds",
            "The notAfter (unix seconds) of the latest certificate the server issued for each \
             identity of each approved node; component fleet is the node's fleet certificate",
            gauges(
                ["node", "component"],
                scrape
                    .expiries
                    .iter()
                    .map(|e| ([e.node.clone(), e.component.clone()], e.not_after)),
            ),
        );
        r.register(
            "calseg_certificates_issued",
            "Certificates signed, by kind (component identity or fleet)",
            self.issued.clone(),
        );
        r.register(
            "calseg_issuance_commits",
            "Store transactions that recorded issued component certificates with their audit \
             entries; the signings in flight share one (group commit), so certificates issued \
             over this is the mean batch",
            prometheus_client::metrics::counter::ConstCounter::new(scrape.issuance_commits),
        );
        r.register(
            "calseg_requests_denied",
            "API calls refused, by the error kind returned",
            self.denied.clone(),
        );
        r.register(
            "calseg_http_request_duration_seconds",
            "API request latency, by route template and status class. A long-poll counts \
             until it parks; its wait is in calseg_http_long_poll_wait_seconds_total",
            self.requests.clone(),
        );
        r.register(
            "calseg_http_long_polls",
            "Long-polls that parked waiting for a change, by route and status class",
            self.long_polls.clone(),
        );
        r.register(
            "calseg_http_long_poll_wait_seconds",
            "Seconds long-polls spent parked, by route",
            self.long_poll_wait.clone(),
        );
        self.register_reconcile(&mut r);
        self.register_reload(&mut r);
        if self.leases_set.load(Ordering::Relaxed) {
            r.register(
                "calseg_leases_held",
                "Restart leases held now",
                self.leases_held.clone(),
            );
        }
        if self.leader_set.load(Ordering::Relaxed) {
            r.register(
                "calseg_leader",
                "1 while this replica leads (runs the reconciler and the rollout controller)",
                self.leader.clone(),
            );
        }
        self.etcd.register(&mut r);
        self.connections.register(&mut r);
        if let Some(status) = scrape.rollout {
            register_rollout(&mut r, status);
        }
        if let Some(status) = scrape.ca {
            register_ca(&mut r, status);
        }
        if scrape.process {
            super::process::register(&mut r);
        }
        r
    }

    fn register_reconcile(&self, r: &mut Registry) {
        r.register(
            "calseg_rbac_drift_changes",
            "etcd RBAC changes the last reconcile found, before applying them",
            self.rbac_drift.clone(),
        );
        r.register(
            "calseg_rbac_changes_applied",
            "etcd RBAC changes applied (reconcile loop and administrators)",
            self.rbac_applied.clone(),
        );
        r.register(
            "calseg_reconcile_errors",
            "Reconcile passes that failed",
            self.reconcile_errors.clone(),
        );
        r.register(
            "calseg_reconcile_last_success_timestamp_seconds",
            "Unix time of the last successful reconcile; 0 before the first",
            self.reconcile_last_success.clone(),
        );
        r.register(
            "calseg_rbac_conflicts",
            "etcd users the policy names that calseg does not own, left alone (and never \
             signed for) by the last reconcile",
            self.rbac_conflicts.clone(),
        );
        r.register(
            "calseg_revocations_pending",
            "Revoked nodes that still have an etcd user, as of the last reconcile",
            self.revocations_pending.clone(),
        );
    }

    fn register_reload(&self, r: &mut Registry) {
        r.register(
            "calseg_reload_last_success",
            "1 when the last policy load (the start, then each reload) put the file in force, \
             0 when it was refused and the previous policy stayed",
            self.reload_ok.clone(),
        );
        r.register(
            "calseg_reload_last_timestamp_seconds",
            "Unix time of the last policy load (the start, then each reload), refused or not",
            self.reload_at.clone(),
        );
    }
}

/// The CAs' expiry, and where the latest rotation of each CA stands.
fn register_ca(r: &mut Registry, status: &CaStatus) {
    r.register(
        "calseg_ca_expiry_timestamp_seconds",
        "When each of the server's CAs expires (Unix time)",
        gauges(
            ["ca"],
            [
                ("etcd-client", status.etcd_client.not_after),
                ("fleet", status.fleet.not_after),
            ]
            .map(|(ca, at)| ([ca.to_owned()], at)),
        ),
    );
    let mut phases: Vec<([String; 2], i64)> = Vec::new();
    let mut waiting: Vec<([String; 1], i64)> = Vec::new();
    if let Some(rotation) = &status.rotation {
        let ca = calseg_api::ca::ETCD_CLIENT.to_owned();
        phases.push(([ca.clone(), rotation.phase.to_string()], 1));
        waiting.push(([ca], gauge(rotation.old_ca_identities.len())));
    }
    if let Some(rotation) = &status.fleet_rotation {
        let ca = calseg_api::ca::FLEET.to_owned();
        phases.push(([ca.clone(), rotation.phase.name().to_owned()], 1));
        waiting.push(([ca], gauge(rotation.pending_nodes.len())));
    }
    if phases.is_empty() {
        return;
    }
    r.register(
        "calseg_ca_rotation_phase",
        "1 for the phase of the latest rotation of the etcd client CA, and of a fleet CA \
         rotation under way",
        gauges(["ca", "phase"], phases),
    );
    r.register(
        "calseg_ca_rotation_old_ca_identities",
        "Live identities (etcd client CA, during the re-issuing waves) or approved nodes' fleet \
         certificates (fleet CA) still on the CA a rotation replaces",
        gauges(["ca"], waiting),
    );
}

/// Rollout progress: the policy revision in force, approved nodes by convergence, and, for the
/// latest rollout in waves, its state and waves opened/total.
fn register_rollout(r: &mut Registry, status: &RolloutStatus) {
    let revision = status.policy_revision.unwrap_or(0);
    r.register(
        "calseg_policy_revision",
        "The policy revision in force (numbered by the server)",
        ConstGauge::new(i64::try_from(revision).unwrap_or(i64::MAX)),
    );
    r.register(
        "calseg_rollout_nodes",
        "Approved nodes by convergence to the manifest the policy in force gives them",
        gauges(
            ["convergence"],
            [
                ("converged", status.converged),
                ("pending", status.pending),
                ("failed", status.failed),
                ("unassigned", status.unassigned),
            ]
            .map(|(label, count)| ([label.to_owned()], gauge(count))),
        ),
    );
    if let Some(waves) = &status.waves {
        r.register(
            "calseg_rollout_waves",
            "Waves of the latest rollout: opened so far and in all",
            gauges(
                ["kind"],
                [("opened", waves.opened_waves), ("total", waves.total_waves)]
                    .map(|(label, count)| ([label.to_owned()], gauge(count))),
            ),
        );
        r.register(
            "calseg_rollout_state",
            "1 for the state the latest rollout is in",
            gauges(["state"], [([waves.state.to_string()], 1)]),
        );
    }
}
