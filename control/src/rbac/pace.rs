//! Pacing of auth changes: how many may be in flight, and when the next may start.
//!
//! etcd applies auth changes one at a time, each rebuilding its permission cache (O(users)),
//! and while it does, every permission check on that member waits, and writes queue behind it
//! in the same apply. Two limits follow:
//! - **a window** of changes in flight, grown by one per window of answers within
//!   [`LATENCY_TARGET`] and halved when an answer takes longer or fails transiently (AIMD). A
//!   queue calseg builds in etcd therefore drains within the target, far inside etcd's request
//!   timeout (5 s + 2 × election timeout, 7 s by default), at any fleet size: the cost of a
//!   change is measured by its answer time, not assumed.
//! - **a duty cycle** ([`Pacing::duty`], `[etcd] auth_change_duty`): the fraction of wall time
//!   during which calseg may have auth changes in flight. After a burst of at most [`BURST`]
//!   beyond its share, calseg starts nothing until the share is back, so etcd has the rest of
//!   the time for the datastore traffic Calico depends on. A small change (a node joining)
//!   fits in one burst and is not slowed; a large apply takes about 1/duty of its full-speed
//!   time. At 1.0 only the window limits.
//!
//! The pacer is plain state with the clock passed in, so it is tested without sleeping.

use std::time::{Duration, Instant};

/// The default `[etcd] auth_change_duty`: calseg's changes in flight half of the time at most,
/// so etcd is free at least half the time for Calico. Chosen from the trade-off measured by
/// `scripts/bench.sh --large` (docs/benchmarks-large.md, section 1: 200 simulated calico-node
/// clients while 1,000 nodes join a fleet of 1,000): at 1 the clients' calls failed (every
/// auth change refuses the requests in flight, and with changes always in flight their
/// retries never got through) and waited seconds; at 0.5 none failed, their p99 stayed in the
/// hundreds of milliseconds, and the join took about twice as long. A node joining (a few
/// changes, well inside one burst) is not slowed at all.
pub const DEFAULT_AUTH_CHANGE_DUTY: f64 = 0.5;

/// The longest a change may take, queueing in etcd included, before the window shrinks.
pub const LATENCY_TARGET: Duration = Duration::from_millis(1000);

/// How far ahead of its duty share an apply may run before it pauses.
pub const BURST: Duration = Duration::from_millis(250);

/// The window a pacer starts with (it grows from there while answers are fast).
const FIRST_WINDOW: f64 = 4.0;

/// How an apply paces its auth changes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    /// The most changes ever in flight (the window stays at or below it).
    pub max_in_flight: usize,
    /// Fraction of etcd's apply time calseg's changes may take, in (0, 1].
    pub duty: f64,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            max_in_flight: super::DEFAULT_PARALLELISM,
            duty: DEFAULT_AUTH_CHANGE_DUTY,
        }
    }
}

impl Pacing {
    /// `max_in_flight` at least 1; `duty` checked by [`Pacing::check_duty`].
    pub fn new(max_in_flight: usize, duty: f64) -> Result<Self, String> {
        Ok(Self {
            max_in_flight: max_in_flight.max(1),
            duty: Self::check_duty(duty)?,
        })
    }

    /// A duty must be a number in (0, 1].
    pub fn check_duty(duty: f64) -> Result<f64, String> {
        if duty.is_finite() && duty > 0.0 && duty <= 1.0 {
            Ok(duty)
        } else {
            Err(format!(
                "[etcd] auth_change_duty = {duty}: must be above 0 and at most 1 (the fraction \
                 of etcd's apply time calseg's auth changes may take), e.g. \
                 {DEFAULT_AUTH_CHANGE_DUTY}"
            ))
        }
    }
}

/// The pacing state of one apply.
#[derive(Debug)]
pub(super) struct Pacer {
    pacing: Pacing,
    window: f64,
    in_flight: usize,
    /// When the first change started.
    origin: Option<Instant>,
    /// Wall time with changes in flight, up to `busy_since`.
    busy: Duration,
    /// Since when changes are in flight, while some are.
    busy_since: Option<Instant>,
    last_cut: Option<Instant>,
}

impl Pacer {
    pub fn new(pacing: Pacing) -> Self {
        Self {
            pacing,
            window: FIRST_WINDOW.min(pacing.max_in_flight as f64),
            in_flight: 0,
            origin: None,
            busy: Duration::ZERO,
            busy_since: None,
            last_cut: None,
        }
    }

    /// How many changes may be in flight now.
    pub fn window(&self) -> usize {
        (self.window.floor() as usize).clamp(1, self.pacing.max_in_flight)
    }

    /// When the next change may start, if not now (the duty cycle).
    pub fn not_before(&self, now: Instant) -> Option<Instant> {
        let origin = self.origin?;
        if self.pacing.duty >= 1.0 {
            return None;
        }
        let busy = self.busy + self.busy_since.map_or(Duration::ZERO, |s| now - s);
        let share = now.duration_since(origin).mul_f64(self.pacing.duty) + BURST;
        (busy > share).then(|| origin + (busy - BURST).div_f64(self.pacing.duty))
    }

    /// A change starts at `now`.
    pub fn started(&mut self, now: Instant) {
        self.origin.get_or_insert(now);
        if self.in_flight == 0 {
            self.busy_since = Some(now);
        }
        self.in_flight += 1;
    }

    /// A change ended at `now`: answered after `latency`, or failed (`None`).
    pub fn finished(&mut self, now: Instant, latency: Option<Duration>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0
            && let Some(since) = self.busy_since.take()
        {
            self.busy += now.duration_since(since);
        }
        match latency {
            Some(latency) if latency <= LATENCY_TARGET => {
                self.window =
                    (self.window + 1.0 / self.window).min(self.pacing.max_in_flight as f64);
            }
            _ => {
                self.cut(now);
                self.forget(now);
            }
        }
    }

    /// A change met a transient error (etcd timed out, refused or was electing); it is retried.
    pub fn failed(&mut self, now: Instant) {
        self.cut(now);
        self.forget(now);
    }

    /// Starts the duty's accounting afresh: time spent waiting on a stalled etcd was not
    /// time etcd spent on calseg's changes, and must not be paid back by a pause afterwards.
    fn forget(&mut self, now: Instant) {
        self.origin = Some(now);
        self.busy = Duration::ZERO;
        self.busy_since = (self.in_flight > 0).then_some(now);
    }

    /// Halves the window, at most once per [`LATENCY_TARGET`]: the slow answers of one burst
    /// are one signal, not many.
    fn cut(&mut self, now: Instant) {
        if self
            .last_cut
            .is_none_or(|at| now.duration_since(at) >= LATENCY_TARGET)
        {
            self.window = (self.window / 2.0).max(1.0);
            self.last_cut = Some(now);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_window_grows_while_fast_and_halves_when_slow_or_failing() {
        let mut pacer = Pacer::new(Pacing::new(16, 1.0).unwrap());
        let mut now = Instant::now();
        assert_eq!(pacer.window(), 4);
        for _ in 0..200 {
            pacer.started(now);
            now += ms(5);
            pacer.finished(now, Some(ms(5)));
        }
        assert_eq!(pacer.window(), 16, "capped at max_in_flight");
        // A burst of slow answers halves once, not once per answer.
        for _ in 0..10 {
            pacer.started(now);
            pacer.finished(now, Some(ms(1500)));
        }
        assert_eq!(pacer.window(), 8);
        now += LATENCY_TARGET;
        pacer.failed(now);
        assert_eq!(pacer.window(), 4);
        for _ in 0..10 {
            now += LATENCY_TARGET;
            pacer.failed(now);
        }
        assert_eq!(pacer.window(), 1, "never below one");
        // At duty 1.0 nothing waits, however busy.
        assert_eq!(pacer.not_before(now), None);
    }

    #[test]
    fn the_duty_lets_a_burst_through_then_keeps_the_share() {
        let mut pacer = Pacer::new(Pacing::new(16, 0.25).unwrap());
        let origin = Instant::now();
        assert_eq!(pacer.not_before(origin), None, "nothing ran yet");
        // A short change (a node joining) is within the burst: no pause after it.
        pacer.started(origin);
        pacer.finished(origin + ms(100), Some(ms(100)));
        assert_eq!(pacer.not_before(origin + ms(100)), None);
        // Changes in flight for another 400 ms: 500 ms busy against a share of
        // 0.25 x 500 ms + 250 ms; the next may start once 0.25 x elapsed + 250 ms reaches 500 ms.
        pacer.started(origin + ms(100));
        let now = origin + ms(500);
        assert_eq!(pacer.not_before(now), Some(origin + ms(1000)));
        pacer.finished(now, Some(ms(400)));
        assert_eq!(pacer.not_before(now), Some(origin + ms(1000)));
        assert_eq!(pacer.not_before(origin + ms(1000)), None);
        // A stall (etcd stopped: a change answered late, or retried) is not paid back.
        pacer.started(origin + ms(1000));
        let later = origin + ms(21_000);
        pacer.failed(later);
        pacer.finished(later, None);
        assert_eq!(pacer.not_before(later), None);
    }

    #[test]
    fn a_duty_outside_zero_to_one_is_refused_with_the_key_and_a_fix() {
        for bad in [0.0, -0.5, 1.5, f64::NAN] {
            let message = Pacing::new(16, bad).unwrap_err();
            assert!(message.contains("auth_change_duty"), "{message}");
            assert!(message.contains("at most 1"), "{message}");
        }
        assert_eq!(Pacing::new(0, 1.0).unwrap().max_in_flight, 1);
    }
}
