//! The API listener's connection metrics: connections open and the cap, connections refused
//! at the cap, and connections the server closed, by why (made room for, handshake too slow,
//! idle). The API listener feeds them.

use super::exposition::{Labels, labels};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

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
#[derive(Default)]
pub struct ConnectionMetrics {
    open: Gauge,
    limit: Gauge,
    refused: Counter,
    closed: Family<Labels<1>, Counter>,
}

impl ConnectionMetrics {
    /// Sets the connections open now and the cap.
    pub fn set_open(&self, open: usize, limit: usize) {
        self.open.set(super::gauge(open));
        self.limit.set(super::gauge(limit));
    }

    /// A new connection was closed at once: the cap was reached.
    pub fn refused(&self) {
        self.refused.inc();
    }

    /// How many connections were refused so far.
    pub fn refusals(&self) -> u64 {
        self.refused.get()
    }

    /// The server closed a connection, for `why`.
    pub fn closed(&self, why: Closed) {
        self.closed
            .get_or_create(&labels(["reason"], [why.label()]))
            .inc();
    }

    /// How many connections were closed for `why` so far.
    pub fn closures(&self, why: Closed) -> u64 {
        self.closed
            .get(&labels(["reason"], [why.label()]))
            .map_or(0, |c| c.get())
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "calseg_api_connections_open",
            "Connections to the API open now (TLS handshake included)",
            self.open.clone(),
        );
        registry.register(
            "calseg_api_connections_limit",
            "The most connections the API keeps open ([api] max_connections)",
            self.limit.clone(),
        );
        registry.register(
            "calseg_api_connections_refused",
            "New connections closed at once because the API had max_connections open",
            self.refused.clone(),
        );
        registry.register(
            "calseg_api_connections_closed",
            "Connections the server closed, by reason: evicted (no client certificate, closed \
             to make room at the cap), handshake_timeout, idle_timeout",
            self.closed.clone(),
        );
    }
}
