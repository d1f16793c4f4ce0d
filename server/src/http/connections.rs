//! How many connections the API keeps open, and which one goes when it is full.
//!
//! Every accepted connection holds one of `[api] max_connections` slots until it closes. At
//! the cap, a new connection takes the slot of the oldest connection that has no verified
//! client certificate (still in its TLS handshake, or an anonymous one such as a health check
//! or an enrollment) and is older than [`EVICT_AFTER`]: that one is closed. A connection
//! with a fleet or admin certificate is never closed to make room. With nothing to evict, the
//! new connection is closed at once, so its file descriptor is freed, and counted; a rate-limited
//! warning says so. A flood of idle sockets therefore ends up closing its own oldest sockets,
//! and health checks, agents and administrators still get in.
//!
//! The cap defaults to [`DEFAULT_MAX_CONNECTIONS`], lowered to fit the process's open-file
//! limit (RLIMIT_NOFILE) with room kept for the store, etcd and logs: past that limit `accept`
//! fails with "Too many open files" and nothing gets in.

use crate::config::{ApiConfig, parse_duration};
use crate::metrics::{Closed, Metrics};
use anyhow::{Result, bail};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::time::Instant;

/// Default `[api] max_connections`: the default `max_long_polls` (one parked connection per
/// agent), `max_in_flight`, and room for administrators and enrollments.
pub const DEFAULT_MAX_CONNECTIONS: usize = 24_576;
/// Default `[api] handshake_timeout`: from accept to the end of the TLS handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: &str = "10s";
/// Default `[api] header_read_timeout`: to send a request's headers (HTTP/1.1).
pub const DEFAULT_HEADER_READ_TIMEOUT: &str = "10s";
/// Default `[api] idle_timeout`: with no request in flight.
pub const DEFAULT_IDLE_TIMEOUT: &str = "60s";
/// A connection without a client certificate may be closed to make room once this old: a real
/// client has finished its handshake and its request long before.
pub const EVICT_AFTER: Duration = Duration::from_secs(1);
/// How often the warning about refused connections may repeat.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The connection limits of the API listener, resolved from `[api]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionSettings {
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl ConnectionSettings {
    /// The settings of `api`, with the cap fitted to `open_files` (the soft RLIMIT_NOFILE,
    /// when known). A configured cap above what the limit allows is kept, with a warning.
    pub fn from_config(api: &ApiConfig, open_files: Option<u64>) -> Result<(Self, Option<String>)> {
        let timeout = |key: &str, value: &Option<String>, default: &str| {
            let text = value.as_deref().unwrap_or(default);
            let duration = parse_duration(&format!("[api] {key}"), text)?;
            if duration.is_zero() {
                bail!("[api] {key} = {text:?}: give a positive duration, e.g. {default:?}");
            }
            Ok(duration)
        };
        let usable = open_files.map(usable_connections);
        let (max_connections, warning) = match api.max_connections {
            Some(0) => bail!(
                "[api] max_connections = 0: the server would refuse every connection; give at least 1"
            ),
            Some(max) => {
                let warning = usable.filter(|&usable| max > usable).map(|usable| {
                    format!(
                        "[api] max_connections = {max}, but the open-file limit (RLIMIT_NOFILE {}) \
                         leaves room for about {usable}: past that, accept fails with \"Too many \
                         open files\"; raise LimitNOFILE= or lower max_connections",
                        open_files.unwrap_or_default()
                    )
                });
                (max, warning)
            }
            None => (
                DEFAULT_MAX_CONNECTIONS.min(usable.unwrap_or(usize::MAX)),
                None,
            ),
        };
        let settings = Self {
            max_connections,
            handshake_timeout: timeout(
                "handshake_timeout",
                &api.handshake_timeout,
                DEFAULT_HANDSHAKE_TIMEOUT,
            )?,
            header_read_timeout: timeout(
                "header_read_timeout",
                &api.header_read_timeout,
                DEFAULT_HEADER_READ_TIMEOUT,
            )?,
            idle_timeout: timeout("idle_timeout", &api.idle_timeout, DEFAULT_IDLE_TIMEOUT)?,
        };
        Ok((settings, warning))
    }
}

/// Connections that fit in `open_files` descriptors: an eighth of them, and at least 128, are
/// kept for the store, etcd clients, logs and the metrics listener.
pub fn usable_connections(open_files: u64) -> usize {
    let kept = (open_files / 8).max(128);
    usize::try_from(open_files.saturating_sub(kept))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// The soft open-file limit of this process, from /proc/self/limits.
pub fn open_file_limit() -> Option<u64> {
    parse_open_file_limit(&std::fs::read_to_string("/proc/self/limits").ok()?)
}

/// The soft limit of the "Max open files" line of a /proc/PID/limits text.
fn parse_open_file_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// One connection without a client certificate: its slot, and how to close it.
struct Anonymous {
    since: Instant,
    slot: OwnedSemaphorePermit,
    /// Dropped to tell the connection it was evicted.
    _evict: oneshot::Sender<()>,
}

/// The open connections: their slots and the anonymous ones, oldest first.
pub struct Admission {
    max: usize,
    slots: Arc<Semaphore>,
    anonymous: Mutex<BTreeMap<u64, Anonymous>>,
    next_id: AtomicU64,
    metrics: Arc<Metrics>,
    /// When the refusal warning was last given, and refusals since.
    warned: Mutex<(Option<Instant>, u64)>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Admission {
    pub fn new(max: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        metrics.connections.set_open(0, max);
        Arc::new(Self {
            max,
            slots: Arc::new(Semaphore::new(max)),
            anonymous: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
            metrics,
            warned: Mutex::new((None, 0)),
        })
    }

    /// A slot for a connection accepted at `now`, evicting the oldest anonymous connection
    /// older than [`EVICT_AFTER`] at the cap; `None`: refused (close it at once).
    pub fn admit(self: &Arc<Self>, now: Instant) -> Option<Ticket> {
        let slot = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => match self.evict_oldest(now) {
                Some(slot) => slot,
                None => {
                    self.refused(now);
                    return None;
                }
            },
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (evict, evicted) = oneshot::channel();
        let entry = Anonymous {
            since: now,
            slot,
            _evict: evict,
        };
        lock(&self.anonymous).insert(id, entry);
        self.update_gauge();
        Some(Ticket {
            id,
            own: None,
            evicted: Some(evicted),
            admission: Arc::clone(self),
        })
    }

    /// Takes the slot of the oldest anonymous connection, if it is old enough; that
    /// connection learns it was evicted.
    fn evict_oldest(&self, now: Instant) -> Option<OwnedSemaphorePermit> {
        let mut anonymous = lock(&self.anonymous);
        let (&id, oldest) = anonymous.iter().next()?;
        if now.saturating_duration_since(oldest.since) < EVICT_AFTER {
            return None;
        }
        let evicted = anonymous.remove(&id)?;
        self.metrics.connections.closed(Closed::Evicted);
        Some(evicted.slot)
    }

    fn refused(&self, now: Instant) {
        self.metrics.connections.refused();
        let mut warned = lock(&self.warned);
        warned.1 += 1;
        if warned
            .0
            .is_some_and(|at| now.saturating_duration_since(at) < WARN_EVERY)
        {
            return;
        }
        tracing::warn!(
            max_connections = self.max,
            refused = warned.1,
            "connection limit reached: {} connections open ([api] max_connections); refused {} \
             new connection(s) since the last warning (closed at once), and none without a \
             client certificate was old enough to close instead",
            self.max,
            warned.1
        );
        *warned = (Some(now), 0);
    }

    fn update_gauge(&self) {
        let open = self.max.saturating_sub(self.slots.available_permits());
        self.metrics.connections.set_open(open, self.max);
    }

    /// Resolves once every connection has closed.
    pub async fn drained(&self) {
        let all = u32::try_from(self.max).unwrap_or(u32::MAX);
        let _ = self.slots.acquire_many(all).await;
    }
}

/// One admitted connection's hold on its slot; dropping it frees the slot.
pub struct Ticket {
    id: u64,
    /// The slot, once the connection proved a client certificate (never evicted).
    own: Option<OwnedSemaphorePermit>,
    /// Fires when the connection is evicted; `None` once it cannot be.
    evicted: Option<oneshot::Receiver<()>>,
    admission: Arc<Admission>,
}

impl Ticket {
    /// Resolves when this connection is evicted to make room; never, once it is not evictable.
    pub async fn evicted(&mut self) {
        match self.evicted.as_mut() {
            Some(evicted) => {
                let _ = evicted.await;
            }
            None => std::future::pending().await,
        }
    }

    /// The connection proved a client certificate: it keeps its slot for good. False if it
    /// was evicted meanwhile (close it).
    pub fn certified(&mut self) -> bool {
        let entry = lock(&self.admission.anonymous).remove(&self.id);
        self.evicted = None;
        match entry {
            Some(entry) => {
                self.own = Some(entry.slot);
                true
            }
            None => false,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let entry = lock(&self.admission.anonymous).remove(&self.id);
        drop(entry);
        drop(self.own.take());
        self.admission.update_gauge();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn admission(max: usize) -> (Arc<Admission>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        (Admission::new(max, Arc::clone(&metrics)), metrics)
    }

    #[test]
    fn the_cap_fits_the_open_file_limit_with_room_kept() {
        assert_eq!(usable_connections(1024), 896);
        assert_eq!(usable_connections(256), 128);
        assert_eq!(usable_connections(32_768), 28_672);
        assert_eq!(usable_connections(10), 1);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             63459                63459                processes\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_open_file_limit(limits), Some(1024));
        assert_eq!(parse_open_file_limit("nothing"), None);
        let api = ApiConfig::default();
        let (low, warning) = ConnectionSettings::from_config(&api, Some(1024)).unwrap();
        assert_eq!((low.max_connections, warning), (896, None));
        let (high, _) = ConnectionSettings::from_config(&api, Some(65_536)).unwrap();
        assert_eq!(high.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert_eq!(high.handshake_timeout, Duration::from_secs(10));
        assert_eq!(high.idle_timeout, Duration::from_secs(60));
        let api = ApiConfig {
            max_connections: Some(5000),
            idle_timeout: Some("2m".into()),
            ..ApiConfig::default()
        };
        let (set, warning) = ConnectionSettings::from_config(&api, Some(1024)).unwrap();
        assert_eq!(set.max_connections, 5000, "an explicit cap is kept");
        assert_eq!(set.idle_timeout, Duration::from_secs(120));
        assert!(warning.unwrap().contains("raise LimitNOFILE="));
        for bad in [
            ApiConfig {
                max_connections: Some(0),
                ..ApiConfig::default()
            },
            ApiConfig {
                handshake_timeout: Some("0s".into()),
                ..ApiConfig::default()
            },
            ApiConfig {
                header_read_timeout: Some("ten".into()),
                ..ApiConfig::default()
            },
        ] {
            assert!(
                ConnectionSettings::from_config(&bad, None).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_packaged_example_shows_the_defaults_and_parses_uncommented() {
        let packaged = include_str!("../../../packaging/server/server.toml");
        let keys = [
            "max_connections",
            "handshake_timeout",
            "header_read_timeout",
            "idle_timeout",
        ];
        let api: String = packaged
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| keys.iter().any(|k| l.starts_with(&format!("{k} = "))))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(api.lines().count(), keys.len(), "{api}");
        let config: crate::config::ServerConfig = toml::from_str(&format!("[api]\n{api}")).unwrap();
        let shown = ConnectionSettings::from_config(&config.api, Some(65_536))
            .unwrap()
            .0;
        let default = ConnectionSettings::from_config(&ApiConfig::default(), Some(65_536))
            .unwrap()
            .0;
        assert_eq!(shown, default);
    }

    #[tokio::test]
    async fn at_the_cap_the_oldest_anonymous_connection_makes_room_or_the_new_one_is_refused() {
        let (admission, metrics) = admission(2);
        let t0 = Instant::now();
        let mut first = admission.admit(t0).unwrap();
        let mut certified = admission.admit(t0).unwrap();
        assert!(certified.certified());
        // Full, and the anonymous one is too young to evict.
        assert!(admission.admit(t0 + Duration::from_millis(500)).is_none());
        assert_eq!(metrics.connections.refusals(), 1);
        // Old enough: it is evicted and told so; the certified one never is.
        let later = t0 + EVICT_AFTER;
        let third = admission.admit(later).unwrap();
        tokio::time::timeout(Duration::from_secs(1), first.evicted())
            .await
            .expect("the evicted connection is told");
        assert!(!first.certified(), "an evicted connection cannot certify");
        assert_eq!(metrics.connections.closures(Closed::Evicted), 1);
        drop(third);
        let fourth = admission.admit(later + EVICT_AFTER * 5).unwrap();
        assert!(admission.admit(later + EVICT_AFTER * 5).is_none());
        assert!(
            tokio::time::timeout(Duration::from_millis(50), certified.evicted())
                .await
                .is_err(),
            "a certified connection is never evicted"
        );
        drop(first);
        drop(fourth);
        drop(certified);
        assert_eq!(admission.slots.available_permits(), 2);
        tokio::time::timeout(Duration::from_secs(1), admission.drained())
            .await
            .expect("drained");
    }
}
