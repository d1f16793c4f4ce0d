//! Waiting between passes by long-polling the server: the next pass comes as soon as the
//! server says this node's manifest changed, or at the routine deadline (interval + jitter),
//! whichever is first. A server that answers at once (too many requests parked, or one that
//! does not long-poll) or cannot be reached is retried with exponential backoff and jitter,
//! never sooner than its `Retry-After`, and never past the deadline: the agent never spins.

use crate::client::{ApiClient, ClientError, LongPoll, backoff};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// The server's long-poll, as the wait loop sees it (the real one is [`ApiClient`]).
pub trait ManifestWatch {
    /// Asks the server to answer when the manifest is no longer `etag`, or after `wait`.
    fn wait(
        &mut self,
        etag: &str,
        wait: Duration,
    ) -> impl Future<Output = Result<LongPoll, ClientError>> + Send;
}

impl ManifestWatch for ApiClient {
    async fn wait(&mut self, etag: &str, wait: Duration) -> Result<LongPoll, ClientError> {
        self.manifest_wait(etag, wait).await
    }
}

/// The durations of the wait loop (a parameter, so tests run in milliseconds).
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Longest single long-poll (below the server's cap of 60 s and proxies' idle timeouts).
    pub max_wait: Duration,
    /// With less than this left before the deadline, sleep instead of asking.
    pub min_wait: Duration,
    /// A 304 sooner than the requested wait minus this was an immediate answer, not a
    /// completed wait.
    pub early_slack: Duration,
}

impl Schedule {
    pub const DEFAULT: Self = Self {
        max_wait: Duration::from_secs(55),
        min_wait: Duration::from_secs(1),
        early_slack: Duration::from_secs(1),
    };
}

/// How the wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parked {
    /// The server has a new manifest for this node: run a pass now.
    Changed,
    /// The routine deadline came.
    Deadline,
    /// The server says this node was revoked: run a pass now, which records it (and the
    /// daemon then stops asking).
    Revoked,
}

/// Long-polls with `etag` until the manifest changes or `until`.
pub async fn park<W: ManifestWatch>(
    watch: &mut W,
    etag: &str,
    until: Instant,
    schedule: Schedule,
) -> Parked {
    let mut setbacks = 0u32;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left < schedule.min_wait {
            tokio::time::sleep(left).await;
            return Parked::Deadline;
        }
        let wait = left.min(schedule.max_wait);
        let asked = Instant::now();
        let retry_after = match watch.wait(etag, wait).await {
            Ok(LongPoll::Changed) => return Parked::Changed,
            Ok(LongPoll::NotModified { .. }) if asked.elapsed() + schedule.early_slack >= wait => {
                setbacks = 0;
                continue;
            }
            Ok(LongPoll::NotModified { retry_after }) => {
                match retry_after {
                    Some(after) => tracing::debug!(
                        retry_after_secs = after.as_secs(),
                        "the server did not hold the long-poll"
                    ),
                    None => tracing::debug!("the server did not hold the long-poll"),
                }
                retry_after
            }
            Err(e) if e.is_revoked() => return Parked::Revoked,
            Err(e) if e.is_transient() => {
                tracing::debug!(error = %e, "long-poll failed; backing off");
                e.retry_after()
            }
            Err(e) => {
                // Refused (not approved, no identities, ...): asking again will not help
                // before the next pass, which reports it.
                tracing::warn!(error = %e, "long-poll refused; waiting for the next pass");
                tokio::time::sleep_until(until).await;
                return Parked::Deadline;
            }
        };
        setbacks = setbacks.saturating_add(1);
        let left = until.saturating_duration_since(Instant::now());
        let pause = backoff::delay(setbacks, left, backoff::random_unit(), retry_after);
        tokio::time::sleep(pause.min(left)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::VecDeque;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn schedule() -> Schedule {
        Schedule {
            max_wait: MS(100),
            min_wait: MS(20),
            early_slack: MS(10),
        }
    }

    /// A scripted server: each answer after its delay (`None` delay: the full wait asked).
    #[derive(Default)]
    struct Fake {
        script: VecDeque<(Option<Duration>, Result<LongPoll, ClientError>)>,
        /// When nothing is scripted: answer 304 at once.
        asked: Vec<Duration>,
    }

    impl ManifestWatch for Fake {
        async fn wait(&mut self, etag: &str, wait: Duration) -> Result<LongPoll, ClientError> {
            assert_eq!(etag, "rev-1");
            self.asked.push(wait);
            let (delay, answer) = self.script.pop_front().unwrap_or((
                Some(Duration::ZERO),
                Ok(LongPoll::NotModified { retry_after: None }),
            ));
            tokio::time::sleep(delay.unwrap_or(wait)).await;
            answer
        }
    }

    fn not_modified() -> Result<LongPoll, ClientError> {
        Ok(LongPoll::NotModified { retry_after: None })
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_ends_the_wait_at_once() {
        let mut fake = Fake::default();
        fake.script.push_back((Some(MS(5)), Ok(LongPoll::Changed)));
        let started = Instant::now();
        let parked = park(
            &mut fake,
            "rev-1",
            started + Duration::from_secs(10),
            schedule(),
        )
        .await;
        assert_eq!(parked, Parked::Changed);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(fake.asked, [MS(100)], "one long-poll, capped at max_wait");
    }

    #[tokio::test(start_paused = true)]
    async fn full_waits_are_chained_up_to_the_deadline_then_it_returns() {
        let mut fake = Fake::default();
        for _ in 0..10 {
            fake.script.push_back((None, not_modified()));
        }
        let started = Instant::now();
        let parked = park(&mut fake, "rev-1", started + MS(250), schedule()).await;
        assert_eq!(parked, Parked::Deadline);
        assert!(started.elapsed() >= MS(250));
        // 100 + 100 + the rest (about 50): never past the deadline.
        assert_eq!(fake.asked.len(), 3, "{:?}", fake.asked);
        assert!(fake.asked[2] <= MS(50), "{:?}", fake.asked);
    }

    #[tokio::test(start_paused = true)]
    async fn immediate_answers_are_backed_off_not_spun_on() {
        // Every answer is an immediate 304 (a server over its long-poll limit, or one that
        // does not long-poll): the loop must not hammer it.
        let mut fake = Fake::default();
        let started = Instant::now();
        let parked = park(&mut fake, "rev-1", started + MS(400), schedule()).await;
        assert_eq!(parked, Parked::Deadline);
        assert!(started.elapsed() >= MS(400));
        // Each pause is at least half of what is left (equal jitter, capped at the deadline):
        // a handful of asks (log2(400 / 20) + 1), where spinning would make thousands.
        assert!(
            (1..=6).contains(&fake.asked.len()),
            "{} asks: {:?}",
            fake.asked.len(),
            fake.asked
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_and_a_change_after_a_setback_still_counts() {
        let mut fake = Fake::default();
        let overloaded = ClientError::Api {
            url: "u".into(),
            status: 429,
            kind: "overloaded".into(),
            message: String::new(),
            retry_after: Some(Duration::from_secs(1)),
        };
        fake.script
            .push_back((Some(Duration::ZERO), Err(overloaded)));
        fake.script.push_back((Some(MS(5)), Ok(LongPoll::Changed)));
        let started = Instant::now();
        // Room after the jittered backoff (at most backoff::BASE) for the second long-poll.
        let parked = park(
            &mut fake,
            "rev-1",
            started + 2 * crate::client::backoff::BASE,
            schedule(),
        )
        .await;
        assert_eq!(parked, Parked::Changed);
        // Not before the server's Retry-After.
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(fake.asked.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_revocation_ends_the_wait_at_once() {
        let mut fake = Fake::default();
        let revoked = ClientError::Api {
            url: "u".into(),
            status: 403,
            kind: calseg_api::error::NODE_REVOKED.into(),
            message: String::new(),
            retry_after: None,
        };
        fake.script.push_back((Some(Duration::ZERO), Err(revoked)));
        let started = Instant::now();
        let parked = park(&mut fake, "rev-1", started + MS(200), schedule()).await;
        assert_eq!(parked, Parked::Revoked);
        assert!(started.elapsed() < MS(20));
        assert_eq!(fake.asked.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_waits_for_the_deadline_without_asking_again() {
        let mut fake = Fake::default();
        let refused = ClientError::Api {
            url: "u".into(),
            status: 403,
            kind: "node_not_approved".into(),
            message: String::new(),
            retry_after: None,
        };
        fake.script.push_back((Some(Duration::ZERO), Err(refused)));
        let started = Instant::now();
        let parked = park(&mut fake, "rev-1", started + MS(200), schedule()).await;
        assert_eq!(parked, Parked::Deadline);
        assert!(started.elapsed() >= MS(200));
        assert_eq!(fake.asked.len(), 1);
    }
}
