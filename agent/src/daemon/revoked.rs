//! The daemon while this node is revoked: it stops asking the server (one pass per
//! [`RECHECK`], not a long-poll or a backoff loop), and starts a pass as soon as a new
//! enrollment (`calseg-agent enroll --force --token ...`) removes the recorded revocation,
//! which it notices by looking at the state directory, not the network.

use crate::state::StateDir;
use std::time::Duration;
use tokio::time::Instant;

/// How often a revoked node asks the server again (at least the configured interval).
pub const RECHECK: Duration = Duration::from_secs(3600);

/// How often the state directory is looked at for a new enrollment.
pub const LOOK_EVERY: Duration = Duration::from_secs(2);

/// Sleeps until `until`, or until `revoked.json` is gone from `state` (re-enrolled).
pub async fn wait(state: &StateDir, until: Instant, look_every: Duration) {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(look_every)).await;
        if matches!(state.revoked(), Ok(None)) {
            tracing::info!("this node was enrolled again; starting a pass");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::state::RevokedRecord;

    #[tokio::test(start_paused = true)]
    async fn waits_the_whole_time_while_revoked_and_stops_at_a_new_enrollment() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        state
            .save_revoked(&RevokedRecord {
                learned_at: time::OffsetDateTime::UNIX_EPOCH,
                server: "https://a".into(),
                message: "m".into(),
            })
            .unwrap();
        let started = Instant::now();
        wait(&state, started + Duration::from_secs(60), LOOK_EVERY).await;
        assert!(started.elapsed() >= Duration::from_secs(60));

        let clearer = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(7)).await;
            clearer.clear_revoked().unwrap();
        });
        let started = Instant::now();
        wait(&state, started + RECHECK, LOOK_EVERY).await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(7) && waited <= Duration::from_secs(10),
            "{waited:?}"
        );
    }
}
