//! The restart lease of a pass: asked for before any unit restarts, waited for while the
//! fleet's restart budget is full (as long as the server's `Retry-After` says, up to the
//! configured `lease_wait`, and never past a stop request), renewed while units settle, and
//! given back when they have.

use super::{CycleContext, RestartLeases};
use calseg_api::lease::{LeaseGrant, LeaseRequest};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// Wait when the server is unreachable or sends no `Retry-After`.
const DEFAULT_RETRY: Duration = Duration::from_secs(5);
/// Far enough in the future to never come during one pass.
const NEVER: Duration = Duration::from_secs(365 * 86_400);
/// How often a wait checks for a stop request.
const STOP_POLL: Duration = Duration::from_millis(100);

/// A lease this pass holds.
#[derive(Debug)]
pub(super) struct Held {
    pub id: String,
    /// When to renew: half-way through the lease's remaining lifetime.
    renew_at: Instant,
}

impl Held {
    fn new(grant: LeaseGrant) -> Self {
        let ttl = Duration::from_secs(grant.ttl_secs.max(1));
        Self {
            id: grant.lease_id,
            renew_at: Instant::now() + ttl / 2,
        }
    }
}

/// Asks for a lease until one is granted, the wait runs out, the server refuses for good, or a
/// stop is requested. `Err` says why there is none.
pub(super) async fn acquire<L: RestartLeases>(
    ctx: &CycleContext,
    leases: &mut L,
    units: &[String],
    revision: &str,
) -> Result<Held, String> {
    let request = LeaseRequest {
        units: units.to_vec(),
        revision: revision.to_owned(),
    };
    let deadline = Instant::now() + ctx.lease_wait;
    loop {
        let error = match leases.acquire(&request).await {
            Ok(grant) => {
                tracing::info!(lease = %grant.lease_id, units = %units.join(","), "restart lease granted");
                return Ok(Held::new(grant));
            }
            Err(e) if e.is_transient() => e,
            Err(e) => return Err(format!("restart lease refused: {e}")),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no restart lease within {:?} (the fleet's restart budget stayed full): {error}",
                ctx.lease_wait
            ));
        }
        let wait = error.retry_after().unwrap_or(DEFAULT_RETRY).min(left);
        tracing::info!(
            wait_ms = wait.as_millis() as u64,
            kind = error.kind(),
            "waiting for a restart lease"
        );
        if !sleep_unless_stopped(ctx, wait).await {
            return Err("stop requested while waiting for a restart lease".into());
        }
    }
}

/// Sleeps `wait`; false if a stop was requested meanwhile.
async fn sleep_unless_stopped(ctx: &CycleContext, wait: Duration) -> bool {
    let until = Instant::now() + wait;
    while Instant::now() < until {
        if ctx.stop.load(Ordering::SeqCst) {
            return false;
        }
        tokio::time::sleep(STOP_POLL.min(until - Instant::now())).await;
    }
    !ctx.stop.load(Ordering::SeqCst)
}

/// Runs `work`, renewing `held` whenever its renewal point passes before `work` is done. A
/// failed renewal is logged; the work goes on (a unit is not stopped half-way). A renewal the
/// server refuses for good (e.g. 409 `lease_life_exceeded`, the lease reached its longest
/// life) is not tried again: the lease ends by itself.
pub(super) async fn renewing<L: RestartLeases, F: Future>(
    leases: &mut L,
    held: &mut Held,
    work: F,
) -> F::Output {
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            () = tokio::time::sleep_until(held.renew_at) => {
                match leases.renew(&held.id).await {
                    Ok(grant) => *held = Held::new(grant),
                    Err(e) if !e.is_transient() => {
                        tracing::warn!(lease = %held.id, error = %e, "restart lease not renewed; it is not asked again and ends by itself while the units settle");
                        held.renew_at = Instant::now() + NEVER;
                    }
                    Err(e) => {
                        tracing::warn!(lease = %held.id, error = %e, "restart lease renewal failed");
                        // Try again later rather than in a tight loop.
                        held.renew_at = Instant::now() + DEFAULT_RETRY;
                    }
                }
            }
        }
    }
}

/// Gives the lease back; a failure only delays the slot until the lease expires.
pub(super) async fn release<L: RestartLeases>(leases: &mut L, held: Held) {
    match leases.release(&held.id).await {
        Ok(()) => tracing::debug!(lease = %held.id, "restart lease released"),
        Err(e) => {
            tracing::warn!(lease = %held.id, error = %e, "restart lease not released; it expires by itself")
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::client::ClientError;

    /// Renewals answer `status` (200: a new grant of 1 s); counts them.
    struct Renewals {
        status: u16,
        asked: u32,
    }

    impl RestartLeases for Renewals {
        async fn acquire(&mut self, _: &LeaseRequest) -> Result<LeaseGrant, ClientError> {
            unreachable!("not asked in these tests")
        }
        async fn renew(&mut self, lease_id: &str) -> Result<LeaseGrant, ClientError> {
            self.asked += 1;
            match self.status {
                200 => Ok(grant(lease_id)),
                status => Err(ClientError::Api {
                    url: "https://server/v1/restart-lease".into(),
                    status,
                    kind: "lease_life_exceeded".into(),
                    message: "refused".into(),
                    retry_after: None,
                }),
            }
        }
        async fn release(&mut self, _: &str) -> Result<(), ClientError> {
            Ok(())
        }
    }

    fn grant(id: &str) -> LeaseGrant {
        LeaseGrant {
            lease_id: id.into(),
            expires_at: String::new(),
            ttl_secs: 1,
        }
    }

    async fn renewals_while_units_settle_for_20s(status: u16) -> u32 {
        let mut leases = Renewals { status, asked: 0 };
        let mut held = Held::new(grant("l"));
        renewing(
            &mut leases,
            &mut held,
            tokio::time::sleep(Duration::from_secs(20)),
        )
        .await;
        leases.asked
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_refused_for_good_is_not_asked_again_but_a_transient_failure_is() {
        // Issue 17: the server refuses renewals past max_lease_life (409) for good.
        assert_eq!(renewals_while_units_settle_for_20s(409).await, 1);
        assert_eq!(
            renewals_while_units_settle_for_20s(503).await,
            4,
            "retried every 5 s"
        );
        assert!(
            renewals_while_units_settle_for_20s(200).await >= 30,
            "renewed every half second"
        );
    }
}
