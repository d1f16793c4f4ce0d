//! Retries for the transient failures of an etcd under load or electing a leader, with
//! exponential backoff and jitter. Permanent errors (permission denied, not found, ...) return
//! at once.

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
}
