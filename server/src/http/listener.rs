//! The API's accept loop and connections, bounded so that nobody without a certificate can
//! exhaust the server's file descriptors (issue 17): at most `[api] max_connections` open
//! ([`super::connections`]); the first byte and the TLS handshake within `handshake_timeout`;
//! request headers within `header_read_timeout` (hyper also counts the wait for an HTTP/1.1
//! connection's next request as header reading); and a connection with no request in flight
//! for `idle_timeout` is closed. A parked manifest long-poll is a request in flight, so it is
//! never cut as idle. Accept errors (e.g. "Too many open files") back off instead of spinning.

use super::caller::Caller;
use super::connections::{Admission, ConnectionSettings, Ticket};
use crate::metrics::{Closed, Metrics};
use anyhow::{Result, anyhow, bail};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::ServiceExt;

/// How long in-flight connections may finish after shutdown began.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The pause after a failed accept, so a persistent error does not spin the loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// The most an HTTP/1.1 connection's read buffer holds (hyper's least; its default is about
/// 400 KiB). hyper grows the buffer when a read fills it, and TLS hands it up to 16 KiB at
/// once, so without a cap every connection that once carried a larger request kept a buffer of
/// up to 32 KiB while it idled or long-polled: the largest heap consumer with 3,000 agents
/// (heaptrack: 83 of 120 MB at the peak). Request heads beyond this are refused; calseg's are
/// well under 1 KiB, and bodies stream through the buffer in pieces.
const MAX_READ_BUFFER: usize = 8192;
/// How often the accept-failure warning may repeat.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);

/// [`serve_with`] the default settings (fitted to this process's open-file limit), counting
/// into metrics of its own.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let (settings, _) = ConnectionSettings::from_config(
        &crate::config::ApiConfig::default(),
        super::connections::open_file_limit(),
    )?;
    let metrics = Arc::new(Metrics::new());
    serve_with(listener, tls, router, settings, metrics, shutdown).await
}

/// Serves `router` over TLS on `listener` within `settings` until `shutdown` resolves, then
/// drains.
pub async fn serve_with(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    settings: ConnectionSettings,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let admission = Admission::new(settings.max_connections, Arc::clone(&metrics));
    let (stop, stopping) = watch::channel(false);
    let mut failures: (Option<Instant>, u64) = (None, 0);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    failures.1 += 1;
                    if failures.0.is_none_or(|at| at.elapsed() >= ACCEPT_WARN_EVERY) {
                        tracing::warn!(%error, failures = failures.1, "accept failed ({} time(s) since the last warning); \"Too many open files\" means [api] max_connections is above what LimitNOFILE= allows", failures.1);
                        failures = (Some(Instant::now()), 0);
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Refused: dropping the socket closes it at once and frees its descriptor.
        let Some(ticket) = admission.admit(Instant::now()) else {
            continue;
        };
        let connection = Connection {
            acceptor: acceptor.clone(),
            router: router.clone(),
            settings,
            metrics: Arc::clone(&metrics),
            stopping: stopping.clone(),
        };
        tokio::spawn(async move {
            if let Err(error) = connection.serve(tcp, peer, ticket).await {
                tracing::debug!(%peer, "connection ended: {error:#}");
            }
        });
    }
    let _ = stop.send(true);
    tokio::select! {
        () = admission.drained() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("connections still open after the drain deadline"),
    }
    Ok(())
}

/// What one connection needs.
struct Connection {
    acceptor: tokio_rustls::TlsAcceptor,
    router: Router,
    settings: ConnectionSettings,
    metrics: Arc<Metrics>,
    /// Becomes true when the server shuts down.
    stopping: watch::Receiver<bool>,
}

impl Connection {
    async fn serve(
        mut self,
        tcp: TcpStream,
        peer: std::net::SocketAddr,
        mut ticket: Ticket,
    ) -> Result<()> {
        let deadline = self.settings.handshake_timeout;
        let handshake = tokio::time::timeout(deadline, handshake(tcp, &self.acceptor));
        let tls = tokio::select! {
            done = handshake => match done {
                Ok(Ok(Some(tls))) => tls,
                Ok(Ok(None)) => return Ok(()),
                Ok(Err(error)) => return Err(error),
                Err(_) => {
                    self.metrics.connections.closed(Closed::HandshakeTimeout);
                    bail!("no TLS handshake within {deadline:?} ([api] handshake_timeout)");
                }
            },
            () = ticket.evicted() => bail!("closed to make room for a new connection at [api] max_connections"),
            _ = self.stopping.changed() => return Ok(()),
        };
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|cert| cert.as_ref().to_vec());
        // rustls verified the chain: a certificate here is a fleet-CA one, never evicted.
        if leaf.is_some() && !ticket.certified() {
            bail!("closed to make room for a new connection at [api] max_connections");
        }
        let caller = Caller::from_certificate(leaf.as_deref());
        let certificate = leaf.map(|der| super::caller::PeerCertificate {
            der: der.into(),
            verified_at: std::time::Instant::now(),
        });
        let activity = Arc::new(Activity::default());
        let service = {
            let (router, activity) = (self.router.clone(), Arc::clone(&activity));
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let busy = activity.begin();
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(caller.clone());
                if let Some(certificate) = &certificate {
                    request.extensions_mut().insert(certificate.clone());
                }
                // The client's address: per-source limits (enrollment) key on it.
                request.extensions_mut().insert(super::Peer(peer));
                let router = router.clone();
                async move {
                    let response = router.oneshot(request).await;
                    drop(busy);
                    response
                }
            })
        };
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.settings.header_read_timeout)
            .max_buf_size(MAX_READ_BUFFER);
        builder.http2().timer(TokioTimer::new());
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
        tokio::pin!(conn);
        let idle = self.settings.idle_timeout;
        let mut closing = false;
        loop {
            tokio::select! {
                served = conn.as_mut() => return served.map_err(|e| anyhow!("{e}")),
                () = activity.idle_for(idle), if !closing => {
                    self.metrics.connections.closed(Closed::Idle);
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                _ = self.stopping.changed(), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = ticket.evicted() => bail!("closed to make room for a new connection at [api] max_connections"),
            }
        }
    }
}

/// Peeks at the first byte and does the TLS handshake; `None` when the client spoke plain
/// HTTP (it was told to use https:// and the connection closed).
async fn handshake(
    mut tcp: TcpStream,
    acceptor: &tokio_rustls::TlsAcceptor,
) -> Result<Option<tokio_rustls::server::TlsStream<TcpStream>>> {
    // A TLS connection starts with a handshake record (0x16); anything else is plain HTTP or
    // noise: say how to reach us and close.
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await? == 1 && first[0] != 0x16 {
        let body = "this is calseg-server's HTTPS API: use https://\n";
        let reply = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(reply.as_bytes()).await?;
        tcp.shutdown().await?;
        return Ok(None);
    }
    Ok(Some(acceptor.accept(tcp).await?))
}

/// Requests in flight on one connection, and when the last one ended.
struct Activity {
    in_flight: AtomicUsize,
    last_end: Mutex<Instant>,
    changed: Notify,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            last_end: Mutex::new(Instant::now()),
            changed: Notify::new(),
        }
    }
}

/// A request in flight; dropping it ends it.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        *self
            .0
            .last_end
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

impl Activity {
    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
        Busy(Arc::clone(self))
    }

    /// Resolves once no request has been in flight for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) > 0 {
                changed.await;
                continue;
            }
            let until = *self.last_end.lock().unwrap_or_else(PoisonError::into_inner) + idle;
            if Instant::now() >= until {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(until) => {}
                () = changed => {}
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_never_idle_and_the_clock_restarts_after_it() {
        let activity = Arc::new(Activity::default());
        let idle = Duration::from_secs(60);
        let started = Instant::now();
        let busy = activity.begin();
        let waiter = {
            let activity = Arc::clone(&activity);
            tokio::spawn(async move { activity.idle_for(idle).await })
        };
        // A long-poll parked for two minutes: not idle meanwhile.
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert!(!waiter.is_finished());
        drop(busy);
        let ended = Instant::now();
        waiter.await.unwrap();
        assert!(Instant::now() - ended >= idle);
        assert!(Instant::now() - started >= Duration::from_secs(180));
    }

    #[tokio::test(start_paused = true)]
    async fn an_untouched_connection_is_idle_after_the_timeout() {
        let activity = Arc::new(Activity::default());
        let started = Instant::now();
        activity.idle_for(Duration::from_secs(5)).await;
        let waited = Instant::now() - started;
        assert!(waited >= Duration::from_secs(5) && waited < Duration::from_secs(6));
    }
}
