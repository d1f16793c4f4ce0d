//! The etcd release gauges: which release each endpoint runs and the known RBAC bypasses of
//! it, as the latest release check (`crate::etcd_release`) found them. Replaced whole at each
//! check, so an endpoint that changed release or stopped answering leaves no stale series.

use super::text::Exposition;
use std::sync::Mutex;

/// The series of the latest check; `None` before the first (the families are left out).
#[derive(Default)]
pub struct EtcdReleaseGauges {
    latest: Mutex<Option<Series>>,
}

struct Series {
    /// (endpoint, version) of each endpoint that answered; version "unknown" when unreadable.
    members: Vec<(String, String)>,
    /// (endpoint, advisory id) per known bypass of the endpoint's release.
    bypasses: Vec<(String, String)>,
}

impl EtcdReleaseGauges {
    /// Replaces the series with a new check's.
    pub fn set(&self, members: Vec<(String, String)>, bypasses: Vec<(String, String)>) {
        let series = Series { members, bypasses };
        match self.latest.lock() {
            Ok(mut latest) => *latest = Some(series),
            Err(poisoned) => *poisoned.into_inner() = Some(series),
        }
    }

    pub fn render(&self, out: &mut Exposition) {
        let latest = match self.latest.lock() {
            Ok(latest) => latest,
            Err(poisoned) => poisoned.into_inner(),
        };
        let Some(series) = latest.as_ref() else {
            return;
        };
        out.family(
            "calseg_etcd_member_info",
            "gauge",
            "1 per etcd endpoint that answered the last release check, labelled with the release \
             it reported (\"unknown\" when calseg cannot read it). Endpoints that did not answer \
             have no series.",
        );
        for (endpoint, version) in &series.members {
            out.sample(
                "calseg_etcd_member_info",
                &[("endpoint", endpoint), ("version", version)],
                1.0,
            );
        }
        out.family(
            "calseg_etcd_known_rbac_bypass",
            "gauge",
            "1 per published etcd RBAC bypass (advisory id) the endpoint's release has; an \
             unknown release has all of them.",
        );
        for (endpoint, advisory) in &series.bypasses {
            out.sample(
                "calseg_etcd_known_rbac_bypass",
                &[("endpoint", endpoint), ("advisory", advisory)],
                1.0,
            );
        }
    }
}
