//! Manifest long-polls: a request whose `If-None-Match` is current parks until the node's
//! manifest changes or its deadline passes. Parked requests hold no lock and no in-flight
//! permit; they wait on the policy epoch ([`AppState::watch_policy`]) and recompute the
//! manifest on every change, so a reload that leaves this node's manifest alone keeps it parked.
//!
//! [`AppState::watch_policy`]: super::AppState::watch_policy

use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How a parked request ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Woken<T> {
    /// The value changed: the new one (`None`: the node has no manifest any more).
    Changed(Option<T>),
    /// The deadline passed with the value unchanged.
    Deadline,
}

/// Waits until `current()` (re-evaluated after every epoch change) is `None` or no longer
/// `unchanged`, or until `deadline`. Subscribe `epochs` before computing the value the caller
/// compares against, so a change between the two is not missed.
pub async fn wait_for_change<T>(
    mut epochs: watch::Receiver<u64>,
    deadline: Instant,
    mut current: impl FnMut() -> Option<T>,
    unchanged: impl Fn(&T) -> bool,
) -> Woken<T> {
    loop {
        tokio::select! {
            changed = epochs.changed() => {
                if changed.is_err() {
                    // The state is going away; nothing can change any more.
                    tokio::time::sleep_until(deadline).await;
                    return Woken::Deadline;
                }
                match current() {
                    Some(value) if unchanged(&value) => continue,
                    other => return Woken::Changed(other),
                }
            }
            () = tokio::time::sleep_until(deadline) => return Woken::Deadline,
        }
    }
}

/// A `Retry-After` of 1 to 5 seconds, random, so refused callers do not come back in step.
pub fn jittered_retry_after() -> Duration {
    crate::jitter::retry_after_secs()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A "policy" (the revision each reload gives this node) and its epoch channel.
    fn setup(initial: &str) -> (watch::Sender<u64>, Arc<Mutex<Option<String>>>) {
        (
            watch::Sender::new(0),
            Arc::new(Mutex::new(Some(initial.into()))),
        )
    }

    fn reload(epoch: &watch::Sender<u64>, value: &Mutex<Option<String>>, next: Option<&str>) {
        *value.lock().unwrap() = next.map(str::to_owned);
        epoch.send_modify(|e| *e += 1);
    }

    async fn park(
        epoch: &watch::Sender<u64>,
        value: &Arc<Mutex<Option<String>>>,
        secs: u64,
    ) -> tokio::task::JoinHandle<Woken<String>> {
        let rx = epoch.subscribe();
        let value = Arc::clone(value);
        let deadline = Instant::now() + Duration::from_secs(secs);
        let task = tokio::spawn(async move {
            wait_for_change(
                rx,
                deadline,
                || value.lock().unwrap().clone(),
                |v| v == "r1",
            )
            .await
        });
        // Let it park.
        tokio::time::sleep(Duration::from_millis(10)).await;
        task
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_wakes_the_parked_request_at_once() {
        let (epoch, value) = setup("r1");
        let task = park(&epoch, &value, 30).await;
        let started = Instant::now();
        reload(&epoch, &value, Some("r2"));
        assert_eq!(task.await.unwrap(), Woken::Changed(Some("r2".into())));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_that_leaves_the_value_keeps_waiting_until_the_deadline() {
        let (epoch, value) = setup("r1");
        let started = Instant::now();
        let task = park(&epoch, &value, 30).await;
        reload(&epoch, &value, Some("r1"));
        tokio::time::sleep(Duration::from_secs(5)).await;
        reload(&epoch, &value, Some("r1"));
        assert!(!task.is_finished());
        assert_eq!(task.await.unwrap(), Woken::Deadline);
        assert!(started.elapsed() >= Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_change_after_an_unrelated_reload_still_wakes_it() {
        let (epoch, value) = setup("r1");
        let task = park(&epoch, &value, 30).await;
        reload(&epoch, &value, Some("r1"));
        tokio::time::sleep(Duration::from_secs(3)).await;
        reload(&epoch, &value, None);
        assert_eq!(task.await.unwrap(), Woken::Changed(None));
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_between_subscribing_and_parking_is_not_missed() {
        let (epoch, value) = setup("r1");
        let rx = epoch.subscribe();
        // The change lands after the subscription but before the wait begins.
        reload(&epoch, &value, Some("r2"));
        let deadline = Instant::now() + Duration::from_secs(30);
        let woken = wait_for_change(
            rx,
            deadline,
            || value.lock().unwrap().clone(),
            |v| v == "r1",
        );
        assert_eq!(woken.await, Woken::Changed(Some("r2".into())));
    }

    #[test]
    fn retry_after_is_one_to_five_seconds() {
        for _ in 0..100 {
            let after = jittered_retry_after().as_secs();
            assert!((1..=5).contains(&after), "{after}");
        }
    }
}
