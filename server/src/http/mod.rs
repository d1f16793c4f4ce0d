//! The HTTPS API: rustls with the fleet CA as the only client trust root, axum routes, the
//! caller's identity taken from the verified client certificate of each connection.
//!
//! # Layout
//! - `tls`: the rustls server configuration.
//! - `caller`: who is calling ([`Caller`]), and extractors that require a node or an admin.
//! - `errors`: [`ApiFailure`], the one mapping of errors to status codes and bodies.
//! - `state`: [`AppState`], what handlers share.
//! - `enroll`: enrollment and the fleet CA for pinning.
//! - `node_routes`: manifest, certificates, report, fleet renewal.
//! - `admin`: nodes, tokens, audit, RBAC plan/apply.
//! - `leases`: restart leases, the fleet's restart budget.
//! - [`inventory`]: per-node summaries of the last report and the `nodes list` filters.
//! - `rollout`: convergence of the approved nodes to the current policy, and wave status.
//! - [`rollout_ctl`]: starts, resumes and steps rollouts in waves; the operator's actions.
//! - `long_poll`: parking manifest requests until the node's manifest changes.
//! - `rejections`: axum's and tower-http's plain-text refusals (400, 413, 415, 422, …) as JSON
//!   `ApiError`s.
//! - `limit`: load shedding, at most `[api] max_in_flight` requests worked on at once.

mod admin;
mod caller;
mod enroll;
mod errors;
pub mod inventory;
mod leases;
mod limit;
mod long_poll;
mod node_routes;
mod rejections;
mod rollout;
pub mod rollout_ctl;
mod state;
pub mod tls;

pub use caller::{ADMIN_PREFIX, Caller};
pub use errors::ApiFailure;
pub use rollout::{current_status as rollout_status, status_of_nodes as rollout_status_of_nodes};
pub use state::{ActiveRollout, ApiLimits, AppState};

use anyhow::Result;
use axum::Router;
use axum::routing::{delete, get, post};
use calseg_api::paths;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a manifest request may take: the longest long-poll and then some to answer.
const LONG_POLL_TIMEOUT: Duration = Duration::from_secs(paths::MAX_LONG_POLL_SECS + 10);
/// How long in-flight connections may finish after shutdown began.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Every route of the API.
pub fn router(state: Arc<AppState>) -> Router {
    // The manifest may be long-polled: its own, longer timeout.
    let long_polled = Router::new()
        .route(paths::MANIFEST, get(node_routes::manifest))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            paths::MAX_BODY_BYTES,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            LONG_POLL_TIMEOUT,
        ));
    Router::new()
        .route(paths::HEALTH, get(|| async { "ok" }))
        .route(paths::FLEET_CA, get(enroll::fleet_ca))
        .route(paths::ENROLL, post(enroll::enroll))
        .route(paths::CERTIFICATES, post(node_routes::certificates))
        .route(paths::REPORT, post(node_routes::report))
        .route(paths::FLEET_RENEW, post(node_routes::fleet_renew))
        .route(paths::RESTART_LEASE, post(leases::acquire))
        .route(&paths::lease("{id}"), delete(leases::release))
        .route(&paths::lease_renew("{id}"), post(leases::renew))
        .route(paths::ADMIN_LEASES, get(leases::list))
        .route(paths::ADMIN_NODES, get(admin::nodes))
        .route(
            &format!("{}/{{node}}/{{action}}", paths::ADMIN_NODES),
            post(admin::node_action),
        )
        .route(
            paths::ADMIN_TOKENS,
            get(admin::tokens).post(admin::create_token),
        )
        .route(
            &format!("{}/{{id}}", paths::ADMIN_TOKENS),
            delete(admin::delete_token),
        )
        .route(paths::ADMIN_AUDIT, get(admin::audit))
        .route(paths::ADMIN_PLAN, post(admin::rbac_plan))
        .route(paths::ADMIN_APPLY, post(admin::rbac_apply))
        .route(paths::ADMIN_ROLLOUT, get(rollout::get))
        .route(
            &paths::admin_rollout_action("{action}"),
            post(rollout_ctl::action),
        )
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            paths::MAX_BODY_BYTES,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .merge(long_polled)
        // Outside the body limit and the timeouts, so their plain-text refusals are rewritten too.
        .layer(axum::middleware::from_fn(rejections::as_api_errors))
        // Refuses (429) rather than queues beyond `[api] max_in_flight`; inside the metrics
        // layer so refusals are counted.
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            limit::limit_in_flight,
        ))
        // Outermost, so timeouts and refused bodies are timed too; per route, so it sees the
        // route template (MatchedPath).
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state.metrics),
            crate::metrics::track_requests,
        ))
        .with_state(state)
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            if let Err(error) = connection(tcp, acceptor, router, watcher).await {
                tracing::debug!(%peer, "connection ended: {error:#}");
            }
        });
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("connections still open after the drain deadline"),
    }
    Ok(())
}

async fn connection(
    mut tcp: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    router: Router,
    watcher: hyper_util::server::graceful::Watcher,
) -> Result<()> {
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
        return Ok(());
    }
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await??;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.as_ref().to_vec());
    let caller = Caller::from_certificate(leaf.as_deref());
    let service = router.map_request(move |request: hyper::Request<hyper::body::Incoming>| {
        let mut request = request.map(axum::body::Body::new);
        request.extensions_mut().insert(caller.clone());
        request
    });
    let service = hyper_util::service::TowerToHyperService::new(service);
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
    watcher
        .watch(conn.into_owned())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
