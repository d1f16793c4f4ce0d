//! The etcd gauges: whether each endpoint answered, which release it runs and the known RBAC
//! bypasses of it, as the latest release check (`crate::etcd_release`) found them. Replaced
//! whole at each check, so an endpoint that changed release leaves no stale series.

use super::exposition::{Labels, labels};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Mutex;

/// The series of the latest check; `None` before the first (the families are left out).
#[derive(Default)]
pub struct EtcdGauges {
    latest: Mutex<Option<Series>>,
}

struct Series {
    /// (endpoint, answered) of every endpoint asked.
    up: Vec<(String, bool)>,
    /// (endpoint, version) of each endpoint that answered; version "unknown" when unreadable.
    members: Vec<(String, String)>,
    /// (endpoint, advisory id) per known bypass of the endpoint's release.
    bypasses: Vec<(String, String)>,
}

impl EtcdGauges {
    /// Replaces the series with a new check's.
    pub fn set(
        &self,
        up: Vec<(String, bool)>,
        members: Vec<(String, String)>,
        bypasses: Vec<(String, String)>,
    ) {
        let series = Series {
            up,
            members,
            bypasses,
        };
        match self.latest.lock() {
            Ok(mut latest) => *latest = Some(series),
            Err(poisoned) => *poisoned.into_inner() = Some(series),
        }
    }

    pub fn register(&self, registry: &mut Registry) {
        let latest = match self.latest.lock() {
            Ok(latest) => latest,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some(series) = latest.as_ref() else {
            return;
        };
        let up = Family::<Labels<1>, Gauge>::default();
        for (endpoint, answered) in &series.up {
            up.get_or_create(&labels(["endpoint"], [endpoint]))
                .set(i64::from(*answered));
        }
        registry.register(
            "calseg_etcd_up",
            "1 per etcd endpoint that answered the last check, 0 per endpoint that did not. \
             Checked every 10 minutes, every 30 seconds while an endpoint is silent, and when \
             a reconcile pass starts or stops failing",
            up,
        );
        let info = Family::<Labels<2>, Gauge>::default();
        for (endpoint, version) in &series.members {
            info.get_or_create(&labels(["endpoint", "version"], [endpoint, version]))
                .set(1);
        }
        registry.register(
            "calseg_etcd_member_info",
            "1 per etcd endpoint that answered the last release check, labelled with the \
             release it reported (unknown when calseg cannot read it). Endpoints that did not \
             answer have no series",
            info,
        );
        let bypass = Family::<Labels<2>, Gauge>::default();
        for (endpoint, advisory) in &series.bypasses {
            bypass
                .get_or_create(&labels(["endpoint", "advisory"], [endpoint, advisory]))
                .set(1);
        }
        registry.register(
            "calseg_etcd_known_rbac_bypass",
            "1 per published etcd RBAC bypass (advisory id) the endpoint's release has; an \
             unknown release has all of them",
            bypass,
        );
    }
}
