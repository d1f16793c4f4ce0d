//! Exponential backoff with jitter for an unreachable server, as a pure function.

use std::time::Duration;

/// First retry delay after a failed call.
pub const BASE: Duration = Duration::from_secs(5);

/// The delay before retry number `attempt` (1 = first retry): `BASE * 2^(attempt-1)` capped
/// at `cap`, then "equal jitter": half of it fixed, half scaled by `random` in `[0, 1)`.
/// A server's `Retry-After` raises the result (never lowers it), still capped at `cap`.
pub fn delay(attempt: u32, cap: Duration, random: f64, retry_after: Option<Duration>) -> Duration {
    let exp = BASE.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20)));
    let full = exp.min(cap);
    let half = full / 2;
    let jittered = half + half.mul_f64(random.clamp(0.0, 1.0));
    retry_after
        .map_or(jittered, |after| jittered.max(after))
        .min(cap)
}

/// A random number in `[0, 1)` (fastrand: jitter is not security).
pub fn random_unit() -> f64 {
    fastrand::f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_honours_retry_after() {
        let cap = Duration::from_secs(300);
        assert_eq!(delay(1, cap, 0.0, None), Duration::from_millis(2500));
        assert_eq!(delay(1, cap, 0.999_999, None).as_secs(), 4);
        assert_eq!(delay(3, cap, 0.0, None), Duration::from_secs(10));
        assert_eq!(delay(30, cap, 0.0, None), Duration::from_secs(150));
        assert!(delay(30, cap, 0.99, None) <= cap);
        let after = Some(Duration::from_secs(120));
        assert_eq!(delay(1, cap, 0.0, after), Duration::from_secs(120));
        assert_eq!(delay(1, cap, 0.0, Some(Duration::from_secs(9999))), cap);
        let r = random_unit();
        assert!((0.0..1.0).contains(&r));
    }
}
