//! Retries of a request that raced an etcd auth change.
//!
//! etcd refuses a request whose auth revision is older than its auth store's when the request
//! is applied ("revision of auth store is old"): any user, role or permission change that lands
//! between the request's arrival and its apply invalidates it. While the server reconciles
//! many identities (a fleet joining), that is likely for the very check that a new identity
//! works, made right after its user was created. Go's etcd client (Calico's) retries such a
//! request after a short backoff; the agent does the same, within the check's time limit, so a
//! concurrent reconcile delays the check instead of failing it. A refusal of any other kind
//! (permission denied, bad certificate) returns at once.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// What etcd says to a request that raced an auth change.
const AUTH_RACE: &str = "revision of auth store is old";

/// The first wait before a retry; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(25);
const MAX_BACKOFF: Duration = Duration::from_millis(400);

/// True when `error` says the request raced an auth change.
pub fn raced_auth_change(error: &str) -> bool {
    error.contains(AUTH_RACE)
}

/// Runs `attempt` until it succeeds, fails otherwise than by racing an auth change, or
/// `deadline` passes (then the last error).
pub async fn retry_auth_races<T, F, Fut>(deadline: Instant, mut attempt: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        match attempt().await {
            Err(error) if raced_auth_change(&error) && Instant::now() + backoff < deadline => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            outcome => return outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const RACED: &str = "grpc request error: etcdserver: revision of auth store is old";

    #[tokio::test(start_paused = true)]
    async fn a_request_that_raced_auth_changes_is_sent_again_until_it_passes() {
        let calls = Cell::new(0);
        let outcome = retry_auth_races(Instant::now() + Duration::from_secs(10), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { if n < 4 { Err(RACED.to_owned()) } else { Ok(n) } }
        })
        .await;
        assert_eq!(outcome, Ok(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_of_another_kind_returns_at_once() {
        let calls = Cell::new(0);
        let outcome: Result<(), String> =
            retry_auth_races(Instant::now() + Duration::from_secs(10), || {
                calls.set(calls.get() + 1);
                async { Err("etcdserver: permission denied".to_owned()) }
            })
            .await;
        assert_eq!(outcome, Err("etcdserver: permission denied".to_owned()));
        assert_eq!(calls.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn racing_for_longer_than_the_deadline_gives_the_last_error() {
        let started = Instant::now();
        let outcome: Result<(), String> =
            retry_auth_races(started + Duration::from_secs(2), || async {
                Err(RACED.to_owned())
            })
            .await;
        assert_eq!(outcome, Err(RACED.to_owned()));
        let waited = started.elapsed();
        assert!(
            waited <= Duration::from_secs(2) && waited >= Duration::from_millis(1500),
            "{waited:?}"
        );
    }
}
