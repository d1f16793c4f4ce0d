//! Retries for the transient failures of an etcd under load or electing a leader, with
//! exponential backoff and jitter. Permanent errors (permission denied, not found, ...) return
//! at once. [`with_retry`] gives up after a few attempts (reads, one-off calls);
//! [`with_patience`] keeps going while etcd is only slow, so that an apply finishes later
//! instead of failing, and gives up soon only when etcd cannot be reached at all.

use std::future::Future;
use std::time::Duration;

/// Attempts per request, the first included.
const ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// True for errors that a later attempt may not see.
pub fn is_transient(error: &etcd_client::Error) -> bool {
    use tonic::Code;
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            matches!(
                status.code(),
                Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::ResourceExhausted
                    | Code::Aborted
            ) || status.message().contains("leader changed")
                || status.message().contains("too many requests")
                || status.message().contains("timed out")
                // The client's own request timeout (tonic reports it as cancelled).
                || status.message().contains("Timeout expired")
                // The connection broke under a request (etcd killed or restarted): every
                // change is idempotent, so it is tried again.
                || status.message().contains("transport error")
                || status.message().contains("connection reset")
                || status.message().contains("broken pipe")
                || status.message().contains("h2 protocol error")
                // etcd refuses a request checked against auth rules that changed meanwhile
                // (another replica's reconcile, an operator): the next attempt is checked anew.
                || status.message().contains("revision of auth store is old")
        }
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}

/// Runs `attempt` until it succeeds, fails permanently, or the attempts run out.
pub async fn with_retry<T, F, Fut>(mut attempt: F) -> Result<T, etcd_client::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(error) if tries < ATTEMPTS && is_transient(&error) => {
                tokio::time::sleep(backoff + jitter(backoff)).await;
                backoff *= 2;
                tries += 1;
            }
            outcome => return outcome,
        }
    }
}

/// How long [`with_patience`] retries one change through transient errors: long enough for an
/// etcd that is stopped, overloaded, restarting or electing to come back (a request caught in
/// it fails only after the client's 15 s timeout), short enough that an apply against an etcd
/// that is gone says so within a minute or two. (A stopped etcd and a dead one look the same to
/// a client whose requests wait for a connection: both time out.)
pub const PATIENCE: Duration = Duration::from_secs(60);
/// The longest pause between two attempts of [`with_patience`].
const LONGEST_BACKOFF: Duration = Duration::from_secs(4);
/// The longest one attempt of [`with_patience`] may take. The client's own request timeout
/// (15 s) does not cover a request waiting for a connection to an etcd that is gone: without
/// this, such a request waits for ever.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `attempt` until it succeeds or fails permanently, retrying transient errors with
/// backoff (at most [`LONGEST_BACKOFF`] apart) for up to [`PATIENCE`]. `on_transient` hears
/// of each transient error (the pacer shrinks its window on it).
pub async fn with_patience<T, F, Fut>(
    mut on_transient: impl FnMut(),
    mut attempt: F,
) -> Result<T, etcd_client::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, etcd_client::Error>>,
{
    let started = tokio::time::Instant::now();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let outcome = match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(etcd_client::Error::GRpcStatus(
                tonic::Status::deadline_exceeded(format!(
                    "etcd did not answer within {} s",
                    ATTEMPT_TIMEOUT.as_secs()
                )),
            )),
        };
        match outcome {
            Err(error) if is_transient(&error) && started.elapsed() < PATIENCE => {
                tracing::debug!(%error, "etcd answered with a transient error; retrying");
                on_transient();
                tokio::time::sleep(backoff + jitter(backoff)).await;
                backoff = (backoff * 2).min(LONGEST_BACKOFF);
            }
            outcome => return outcome,
        }
    }
}

/// Up to half of `base`, so that parallel retries spread out.
fn jitter(base: Duration) -> Duration {
    crate::jitter::up_to(base / 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_and_permanent_ones_are_not() {
        let calls = AtomicU32::new(0);
        let outcome = with_retry(|| async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(etcd_client::Error::GRpcStatus(tonic::Status::unavailable(
                    "down",
                )))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(outcome.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicU32::new(0);
        let outcome: Result<(), _> = with_retry(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(etcd_client::Error::GRpcStatus(
                tonic::Status::permission_denied("etcdserver: permission denied"),
            ))
        })
        .await;
        assert!(outcome.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn patience_outlasts_a_stopped_etcd_and_not_a_dead_one() {
        // Timeouts for 45 s (an etcd stopped for a while), then success: waited out.
        let heard = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let outcome = with_patience(
            || {
                heard.fetch_add(1, Ordering::SeqCst);
            },
            || async {
                if started.elapsed() < Duration::from_secs(45) {
                    Err(etcd_client::Error::GRpcStatus(tonic::Status::cancelled(
                        "Timeout expired",
                    )))
                } else {
                    Ok(1)
                }
            },
        )
        .await;
        assert_eq!(outcome.unwrap(), 1);
        assert!(heard.load(Ordering::SeqCst) >= 10, "{heard:?}");

        // An attempt that never returns (a request waiting for a connection to an etcd that
        // is gone) is cut off, retried, and given up with the rest.
        let started = tokio::time::Instant::now();
        let outcome: Result<(), _> =
            with_patience(|| {}, std::future::pending::<Result<(), _>>).await;
        let error = outcome.unwrap_err();
        assert!(is_transient(&error), "{error}");
        assert!(started.elapsed() >= PATIENCE, "{:?}", started.elapsed());

        // Never answering: given up once the patience is spent.
        let started = tokio::time::Instant::now();
        let outcome: Result<(), _> = with_patience(
            || {},
            || async {
                Err(etcd_client::Error::GRpcStatus(tonic::Status::unavailable(
                    "error trying to connect: tcp connect error: Connection refused",
                )))
            },
        )
        .await;
        assert!(outcome.is_err());
        let took = started.elapsed();
        assert!(took >= PATIENCE && took < PATIENCE * 2, "{took:?}");
    }
}
