//! The HTTPS API: rustls with the fleet CA (both CAs during its rotation) as the only client
//! trust root, axum routes, the caller's identity taken from the verified client certificate of
//! each connection. Handlers are adapters: they extract the caller and the request, call
//! `calseg_control`, and turn its answer or [`ControlError`](calseg_control::ControlError) into
//! HTTP; nothing is decided here but transport (limits, long-polls, what an anonymous caller is
//! told).
//!
//! # Layout
//! - `tls`: the rustls server configuration, whose certificate and trusted CAs are replaced
//!   live.
//! - [`fleet_tls`]: that configuration following the fleet CA files (start, rotation steps,
//!   files copied onto a replica).
//! - `listener`: the accept loop and each connection's TLS, HTTP and timeouts.
//! - [`connections`]: the cap on open connections, and which one goes when it is reached.
//! - `caller`: who is calling ([`Caller`]), extractors that require a node or an admin, and
//!   the refusal of a kept-alive connection whose certificate's CA is no longer trusted.
//! - `errors`: [`ApiFailure`], the one mapping of errors to status codes and bodies.
//! - `state`: [`AppState`], what handlers share.
//! - `enroll`: enrollment and the fleet CA for pinning.
//! - `enroll_limit`: per-source rate limiting of `/v1/enroll`.
//! - `pending`: `nodes show` and `nodes delete`.
//! - `node_routes`: manifest, certificates, report, fleet renewal.
//! - `admin`: `nodes list`, node decisions (approve, deny, revoke), tokens, audit, RBAC apply,
//!   certificates of component-wide identities (`k8s secrets`).
//! - `snapshot`: every record of the store in one view, for `calseg-server backup`.
//! - `fleet_plan`: the fleet plan of the policy in force or of a candidate policy (`plan`).
//! - `leases`: restart leases, the fleet's restart budget.
//! - `ca`: both CAs, and the steps of their rotations (`calseg_control::ca_rotation`,
//!   `calseg_control::fleet_rotation`).
//! - `rollout`, `rollout_actions`: the rollout status and the operator's actions on a rollout
//!   in waves (driven by `calseg_control::rollout`).
//! - `long_poll`: parking manifest requests until the node's manifest changes.
//! - `every_request`: the one middleware around every route: latency, in-flight limit, JSON
//!   refusals.
//! - `metrics_listener`: the plain-HTTP `/metrics` listener, and each API request's latency.
//! - `rejections`: axum's and tower-http's plain-text refusals (400, 413, 415, 422, …) as JSON
//!   `ApiError`s.
//! - `limit`: load shedding, at most `[api] max_in_flight` requests worked on at once.

mod admin;
mod ca;
mod caller;
pub mod connections;
mod enroll;
mod enroll_limit;
mod errors;
mod every_request;
mod fleet_plan;
pub mod fleet_tls;
mod leases;
mod limit;
mod listener;
mod long_poll;
mod metrics_listener;
mod node_routes;
mod pending;
mod rejections;
mod rollout;
mod rollout_actions;
mod snapshot;
mod state;
pub mod tls;

pub use caller::{ADMIN_PREFIX, Caller};
pub use calseg_control::ActiveRollout;
pub use connections::ConnectionSettings;
pub use enroll_limit::EnrollmentLimits;
pub use errors::ApiFailure;
pub use listener::{serve, serve_with};
pub use metrics_listener::serve as serve_metrics;
pub use state::{ApiLimits, AppState};

use axum::Router;
use axum::routing::{delete, get, post};
use calseg_api::paths;
use std::sync::Arc;
use std::time::Duration;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a manifest request may take: the longest long-poll and then some to answer.
const LONG_POLL_TIMEOUT: Duration = Duration::from_secs(paths::MAX_LONG_POLL_SECS + 10);

/// The client's address (the TCP peer), in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

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
            &format!("{}/{{node}}", paths::ADMIN_NODES),
            get(pending::show).delete(pending::delete),
        )
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
        .route(paths::ADMIN_PLAN, post(fleet_plan::plan))
        .route(paths::ADMIN_APPLY, post(admin::rbac_apply))
        .route(
            &paths::admin_component_certificate("{component}"),
            post(admin::component_certificate),
        )
        .route(paths::ADMIN_CA, get(ca::get))
        .route(
            &paths::admin_ca_action("{ca}", "{action}"),
            post(ca::action),
        )
        .route(paths::ADMIN_ROLLOUT, get(rollout::get))
        .route(paths::ADMIN_STORE_SNAPSHOT, get(snapshot::get))
        .route(
            &paths::admin_rollout_action("{action}"),
            post(rollout_actions::action),
        )
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            paths::MAX_BODY_BYTES,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .merge(long_polled)
        // Outside the body limit and the timeouts, so their plain-text refusals are rewritten
        // and timed too; per route, so it sees the route template (MatchedPath).
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            every_request::every_request,
        ))
        .with_state(state)
}
