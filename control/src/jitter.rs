//! Random spread for retries and `Retry-After`, so that callers and replicas that failed
//! together do not come back together. Not security: `fastrand` (seeded per thread), never the
//! CSPRNG, which stays for keys, serials and tokens.

use std::time::Duration;

/// A uniform draw in `[0, 1)`.
pub fn unit() -> f64 {
    fastrand::f64()
}

/// A uniform pause in `[0, max)` (zero when `max` is zero).
pub fn up_to(max: Duration) -> Duration {
    let micros = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(if micros == 0 {
        0
    } else {
        fastrand::u64(..micros)
    })
}

/// A `Retry-After` of 1 to 5 whole seconds.
pub fn retry_after_secs() -> Duration {
    Duration::from_secs(fastrand::u64(1..=5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_stay_in_their_ranges() {
        for _ in 0..1000 {
            assert!((0.0..1.0).contains(&unit()));
            assert!(up_to(Duration::from_millis(10)) < Duration::from_millis(10));
            assert!((1..=5).contains(&retry_after_secs().as_secs()));
        }
        assert_eq!(up_to(Duration::ZERO), Duration::ZERO);
    }
}
