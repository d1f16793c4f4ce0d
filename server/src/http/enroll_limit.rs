//! The limits on enrolling without a token ([`EnrollmentLimits`], `[api]` in server.toml), and
//! per-source rate limiting of `/v1/enroll`: a token bucket per client address (IPv6 by its
//! /64, which one host usually holds whole). `[api] enroll_burst` requests at once, refilled at
//! `[api] enroll_per_minute`; one more is refused with 429 `enroll_rate_limited` and a
//! `Retry-After` saying when the next one is allowed. Time is a parameter ([`Instant`]).

use crate::config::{ApiConfig, parse_duration};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limits on enrolling without a token (`[api]` in server.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnrollmentLimits {
    /// Pending nodes held at most; one more new name is refused with 503 `too_many_pending`.
    pub max_pending: usize,
    /// A pending request not approved this long after it was first seen is dropped (audited).
    pub pending_ttl: Duration,
    /// `/v1/enroll` requests one source address may make at once...
    pub enroll_burst: u32,
    /// ...and how many more per minute.
    pub enroll_per_minute: u32,
}

impl Default for EnrollmentLimits {
    fn default() -> Self {
        Self {
            max_pending: 100,
            pending_ttl: Duration::from_secs(24 * 3600),
            enroll_burst: 20,
            enroll_per_minute: 60,
        }
    }
}

impl EnrollmentLimits {
    /// From `[api]`, with the defaults above for what it leaves out.
    pub fn from_config(api: &ApiConfig) -> anyhow::Result<Self> {
        let d = Self::default();
        let positive = |key: &str, value: Option<u64>, default: u64| match value {
            Some(0) => Err(anyhow::anyhow!(
                "[api] {key} = 0: nothing could enroll without a token; give at least 1 (enrolling \
                 with tokens is not limited by it)"
            )),
            Some(v) => Ok(v),
            None => Ok(default),
        };
        let max_pending = positive("max_pending", api.max_pending, d.max_pending as u64)?;
        let burst = positive("enroll_burst", api.enroll_burst, d.enroll_burst.into())?;
        let per_minute = positive("enroll_per_minute", api.enroll_per_minute, 60)?;
        let pending_ttl = match &api.pending_ttl {
            Some(text) => parse_duration("[api] pending_ttl", text)?,
            None => d.pending_ttl,
        };
        if pending_ttl.is_zero() {
            anyhow::bail!("[api] pending_ttl = \"0s\": give a positive duration, e.g. \"24h\"");
        }
        let narrow = |key: &str, v: u64| {
            u32::try_from(v).map_err(|_| anyhow::anyhow!("[api] {key} = {v}: too large"))
        };
        Ok(Self {
            max_pending: usize::try_from(max_pending).unwrap_or(usize::MAX),
            pending_ttl,
            enroll_burst: narrow("enroll_burst", burst)?,
            enroll_per_minute: narrow("enroll_per_minute", per_minute)?,
        })
    }
}

/// Addresses tracked at most; beyond it, buckets that have refilled are forgotten (a full
/// bucket is the same as none), and if all are in use the oldest half goes.
const MAX_TRACKED: usize = 100_000;

/// One bucket per source.
pub struct EnrollRateLimiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl EnrollRateLimiter {
    /// `burst` requests at once (at least 1), refilled at `per_minute` (at least 1).
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            per_second: f64::from(per_minute.max(1)) / 60.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token of `source`'s bucket, or says how long until one is there.
    pub fn check(&self, source: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = match self.buckets.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let source = key(source);
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&source) {
            self.forget_idle(&mut buckets, now);
        }
        let bucket = buckets.entry(source).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refilled = now.saturating_duration_since(bucket.at).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refilled).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            Err(Duration::from_secs_f64(wait.ceil().max(1.0)))
        }
    }

    fn forget_idle(&self, buckets: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        let full_after = Duration::from_secs_f64(self.burst / self.per_second);
        buckets.retain(|_, b| now.saturating_duration_since(b.at) < full_after);
        if buckets.len() >= MAX_TRACKED {
            let mut ages: Vec<Instant> = buckets.values().map(|b| b.at).collect();
            ages.sort();
            let cut = ages[ages.len() / 2];
            buckets.retain(|_, b| b.at > cut);
        }
    }
}

/// IPv4 addresses as they are; IPv6 by their /64 (IPv4-mapped ones as IPv4).
fn key(source: IpAddr) -> IpAddr {
    match source {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn limits_default_parse_and_refuse_zero() {
        let api = |text: &str| -> ApiConfig { toml::from_str(text).unwrap() };
        assert_eq!(
            EnrollmentLimits::from_config(&api("")).unwrap(),
            EnrollmentLimits::default()
        );
        let set = EnrollmentLimits::from_config(&api(
            "max_pending = 5\npending_ttl = \"90s\"\nenroll_burst = 3\nenroll_per_minute = 1",
        ))
        .unwrap();
        assert_eq!(
            (
                set.max_pending,
                set.pending_ttl.as_secs(),
                set.enroll_burst,
                set.enroll_per_minute
            ),
            (5, 90, 3, 1)
        );
        for bad in [
            "max_pending = 0",
            "enroll_burst = 0",
            "pending_ttl = \"0s\"",
            "pending_ttl = \"1y\"",
        ] {
            let err = EnrollmentLimits::from_config(&api(bad))
                .unwrap_err()
                .to_string();
            assert!(err.contains("[api]"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_burst_then_one_per_refill_interval_per_source() {
        let limiter = EnrollRateLimiter::new(3, 6); // one every 10 s
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(ip("192.0.2.1"), t0), Ok(()));
        }
        assert_eq!(
            limiter.check(ip("192.0.2.1"), t0),
            Err(Duration::from_secs(10))
        );
        // Another source has its own bucket.
        assert_eq!(limiter.check(ip("192.0.2.2"), t0), Ok(()));
        let later = t0 + Duration::from_secs(4);
        assert_eq!(
            limiter.check(ip("192.0.2.1"), later),
            Err(Duration::from_secs(6))
        );
        let refilled = t0 + Duration::from_secs(10);
        assert_eq!(limiter.check(ip("192.0.2.1"), refilled), Ok(()));
        assert!(limiter.check(ip("192.0.2.1"), refilled).is_err());
    }

    #[test]
    fn ipv6_sources_share_their_slash_64() {
        let limiter = EnrollRateLimiter::new(1, 1);
        let t0 = Instant::now();
        assert_eq!(limiter.check(ip("2001:db8:1:2::1"), t0), Ok(()));
        assert!(limiter.check(ip("2001:db8:1:2:ffff::9"), t0).is_err());
        assert_eq!(limiter.check(ip("2001:db8:1:3::1"), t0), Ok(()));
        assert_eq!(limiter.check(ip("::ffff:192.0.2.7"), t0), Ok(()));
        assert!(limiter.check(ip("192.0.2.7"), t0).is_err());
    }

    #[test]
    fn the_table_stays_bounded() {
        let limiter = EnrollRateLimiter::new(1, 60);
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            let source = IpAddr::V4(std::net::Ipv4Addr::from(i));
            let _ = limiter.check(source, t0 + Duration::from_micros(u64::from(i)));
        }
        assert!(limiter.buckets.lock().unwrap().len() <= MAX_TRACKED);
    }
}
