//! What every request handler shares: the domain's [`Control`], and what only the API has: the
//! limits on concurrent requests and enrollments, the metrics, the replica set and the reload
//! tracker.

use crate::ha::Replicas;
use crate::metrics::Metrics;
use calseg_control::Control;
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

/// Default of `[api] max_in_flight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;
/// Default of `[api] max_long_polls`.
pub const DEFAULT_MAX_LONG_POLLS: usize = 20_000;

/// How many requests the API serves at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// Requests being worked on (parked long-polls excluded); more are refused with 429.
    pub max_in_flight: usize,
    /// Manifest long-polls parked at once; more get an immediate 304 with `Retry-After`.
    pub max_long_polls: usize,
    /// Enrolling without a token: pending cap and TTL, per-source rate.
    pub enrollment: super::enroll_limit::EnrollmentLimits,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_long_polls: DEFAULT_MAX_LONG_POLLS,
            enrollment: super::enroll_limit::EnrollmentLimits::default(),
        }
    }
}

/// Shared state of the API.
pub struct AppState {
    /// The domain: store, CAs, policy in force, rollout, reconciler.
    pub control: Arc<Control>,
    /// Permits for requests being worked on (`[api] max_in_flight`).
    pub in_flight: Arc<Semaphore>,
    /// Permits for parked manifest long-polls (`[api] max_long_polls`).
    pub long_polls: Arc<Semaphore>,
    /// Limits on enrolling without a token.
    pub enrollment: super::enroll_limit::EnrollmentLimits,
    /// Per-source buckets of `/v1/enroll` requests.
    pub enroll_limiter: super::enroll_limit::EnrollRateLimiter,
    /// Counters and histograms the handlers, the middleware and the reconcile loop feed.
    pub metrics: Arc<Metrics>,
    /// Set when the store is etcd and several replicas may serve: leadership and signals.
    replicas: OnceLock<Arc<Replicas>>,
    /// The latest policy reload and its result (`systemctl reload`, metrics).
    pub reload: crate::reload::ReloadTracker,
    /// The API's TLS, following the fleet CA files; unset when the router runs without it.
    fleet_tls: OnceLock<Arc<super::fleet_tls::FleetTls>>,
}

impl AppState {
    pub fn new(control: Arc<Control>, metrics: Arc<Metrics>, limits: ApiLimits) -> Self {
        Self {
            control,
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
            long_polls: Arc::new(Semaphore::new(limits.max_long_polls)),
            enrollment: limits.enrollment,
            enroll_limiter: super::enroll_limit::EnrollRateLimiter::new(
                limits.enrollment.enroll_burst,
                limits.enrollment.enroll_per_minute,
            ),
            metrics,
            replicas: OnceLock::new(),
            reload: crate::reload::ReloadTracker::default(),
            fleet_tls: OnceLock::new(),
        }
    }

    /// Gives the router the TLS it is served with; set once, at start.
    pub fn set_fleet_tls(&self, tls: Arc<super::fleet_tls::FleetTls>) {
        let _ = self.fleet_tls.set(tls);
    }

    /// The TLS the router is served with, when known.
    pub fn fleet_tls(&self) -> Option<&Arc<super::fleet_tls::FleetTls>> {
        self.fleet_tls.get()
    }

    /// Makes this server one replica of several (etcd store); set once, at start.
    pub fn set_replicas(&self, replicas: Arc<Replicas>) {
        self.control.set_leadership(replicas.clone());
        let _ = self.replicas.set(replicas);
    }

    /// The replicas this server is one of, when the store is shared.
    pub fn replicas(&self) -> Option<&Arc<Replicas>> {
        self.replicas.get()
    }
}
