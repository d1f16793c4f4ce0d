//! The API listener's connection metrics: connections open and the cap, connections refused
//! at the cap, and connections the server closed, by why (made room for, handshake too slow,
//! idle). The listener (`crate::http::listener`) feeds them.

use super::text::{CounterVec, Exposition};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why the server closed a connection it had accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// A connection without a client certificate, closed to make room at the cap.
    Evicted,
    /// No TLS handshake (or no first byte) within `[api] handshake_timeout`.
    HandshakeTimeout,
    /// No request in flight for `[api] idle_timeout`.
    Idle,
}

impl Closed {
    fn label(self) -> &'static str {
        match self {
            Self::Evicted => "evicted",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::Idle => "idle_timeout",
        }
    }
}

/// Counters and gauges of the API's connections.
pub struct ConnectionMetrics {
    open: AtomicU64,
    limit: AtomicU64,
    refused: AtomicU64,
    closed: CounterVec<1>,
}

impl Default for ConnectionMetrics {
    fn default() -> Self {
        Self {
            open: AtomicU64::new(0),
            limit: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            closed: CounterVec::new(["reason"]),
        }
    }
}

impl ConnectionMetrics {
    /// Sets the connections open now and the cap.
    pub fn set_open(&self, open: usize, limit: usize) {
        self.open.store(open as u64, Ordering::Relaxed);
        self.limit.store(limit as u64, Ordering::Relaxed);
    }

    /// A new connection was closed at once: the cap was reached.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// How many connections were refused so far.
    pub fn refusals(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The server closed a connection, for `why`.
    pub fn closed(&self, why: Closed) {
        self.closed.inc([why.label()]);
    }

    /// How many connections were closed for `why` so far.
    pub fn closures(&self, why: Closed) -> u64 {
        self.closed.get([why.label()])
    }

    pub(super) fn render(&self, out: &mut Exposition) {
        for (name, kind, help, value) in [
            (
                "calseg_api_connections_open",
                "gauge",
                "Connections to the API open now (TLS handshake included).",
                &self.open,
            ),
            (
                "calseg_api_connections_limit",
                "gauge",
                "The most connections the API keeps open ([api] max_connections).",
                &self.limit,
            ),
            (
                "calseg_api_connections_refused_total",
                "counter",
                "New connections closed at once because the API had max_connections open.",
                &self.refused,
            ),
        ] {
            out.family(name, kind, help);
            out.sample(name, &[], value.load(Ordering::Relaxed) as f64);
        }
        out.counters(
            "calseg_api_connections_closed_total",
            "Connections the server closed, by reason: evicted (no client certificate, closed \
             to make room at the cap), handshake_timeout, idle_timeout.",
            &self.closed,
        );
    }
}
