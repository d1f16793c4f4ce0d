//! Phase 5 and the `run` mode refresh: Felix's status reporting (felix `statusrep` through
//! libcalico-go's Apply with a TTL, which grants a lease and puts with it): the live report
//! `/calico/felix/v2/no-region/host/<node>/status` on a lease of 90 s (ReportingTTLSecs), its
//! copy `last_reported_status` without one, and a host endpoint's status under
//! `/calico/felix/v1/host/<node>/`.

use super::Report;
use crate::replay::datastore::{Datastore, KeptLease};
use crate::replay::error::ReplayError;
use crate::replay::keys;
use crate::replay::values;
use std::time::Instant;
use time::OffsetDateTime;

/// Felix's default ReportingTTLSecs.
pub const LEASE_TTL_SECONDS: i64 = 90;
/// The host endpoint whose status the replay reports.
pub const HOST_ENDPOINT: &str = "replay-hep";

/// The node's live status report, kept fresh on a lease.
pub struct Reporter {
    node: String,
    lease: KeptLease,
    started: Instant,
}

/// Phase 5: grants the lease, writes the three status keys, and starts keeping the lease.
pub async fn report(
    ds: &mut Datastore,
    node: &str,
    now: OffsetDateTime,
) -> Result<(Report, Reporter), ReplayError> {
    let started = Instant::now();
    let status = keys::felix_status(node);
    let lease = ds.lease_grant(LEASE_TTL_SECONDS, &status).await?;
    let value = values::status_report(now, 0.0, true);
    ds.put(&status, &value, Some(lease)).await?;
    ds.put(&keys::felix_last_status(node), &value, None).await?;
    let endpoint = keys::host_endpoint_status(node, HOST_ENDPOINT);
    ds.put(&endpoint, &values::host_endpoint_status(), None)
        .await?;
    let lease = ds.keep_lease(lease, &status).await?;
    let report = Report::new(
        5,
        "status",
        format!("lease {LEASE_TTL_SECONDS}s; put {status}, last_reported_status, {endpoint}"),
    );
    Ok((
        report,
        Reporter {
            node: node.to_owned(),
            lease,
            started,
        },
    ))
}

impl Reporter {
    /// One refresh: keeps the lease alive (a new one when it was lost) and rewrites the live
    /// report and its copy. Returns the lease's remaining TTL.
    pub async fn refresh(
        &mut self,
        ds: &mut Datastore,
        now: OffsetDateTime,
    ) -> Result<i64, ReplayError> {
        let status = keys::felix_status(&self.node);
        let ttl = match self.lease.refresh().await {
            Ok(ttl) if ttl > 0 => ttl,
            Err(e) if e.is_permission_denied() => return Err(e),
            // Expired, or its keep-alive stream broke: a new lease, as Felix's next report gets.
            _ => {
                let id = ds.lease_grant(LEASE_TTL_SECONDS, &status).await?;
                self.lease = ds.keep_lease(id, &status).await?;
                LEASE_TTL_SECONDS
            }
        };
        let value = values::status_report(now, self.started.elapsed().as_secs_f64(), false);
        ds.put(&status, &value, Some(self.lease.id())).await?;
        ds.put(&keys::felix_last_status(&self.node), &value, None)
            .await?;
        Ok(ttl)
    }
}
