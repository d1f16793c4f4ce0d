//! The admin API (administrator certificates only): nodes, tokens, audit log, RBAC apply (the
//! plan is `fleet_plan`), certificates of component-wide identities.

use super::caller::AdminCaller;
use super::errors::ApiFailure;
use super::state::AppState;
use crate::inventory::{InventoryRow, NodeFilter};
use crate::store::{AuditEntry, NodeRecord, TokenInfo};
use axum::Json;
use axum::extract::{Path, Query, State};
use calseg_api::admin::{
    ComponentSign, ComponentSigned, NodeAction, RbacApplied, TokenCreate, TokenCreated,
    TokenDeleted,
};
use calseg_api::when::rfc3339;
use calseg_control::approval::{self, Decision};
use calseg_control::{CallFailure, component_calls, node_listing, rbac_apply, tokens};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The answer of a node action: the node's record, and for `revoke` the etcd users of the
/// node still there (`calseg_api::admin::NodeListing` and `NodeRevoked` on the CLI's side).
#[derive(Serialize)]
pub struct NodeActionAnswer {
    #[serde(flatten)]
    record: NodeRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    etcd_users_pending: Option<Vec<crate::revocation::PendingUser>>,
}

/// GET the nodes the server knows that pass the query's filters ([`NodeFilter`]): each record
/// (state, fleet certificate, last report) with its inventory summary, the manifest revision the
/// current policy gives it and whether it converged to it.
pub async fn nodes(
    State(state): State<Arc<AppState>>,
    _: AdminCaller,
    Query(filter): Query<NodeFilter>,
) -> Result<Json<Vec<InventoryRow>>, ApiFailure> {
    Ok(Json(node_listing::list(&state.control, &filter).await?))
}

/// The query of a node action: how long `revoke` waits for the node's etcd users to go.
#[derive(Deserialize, Default)]
pub struct NodeActionQuery {
    wait_secs: Option<u64>,
}

/// POST approve | deny | revoke for one node ([`Decision`]). Approve needs the waiting key's
/// fingerprint in the body. `revoke` answers once the node's etcd users are gone, or after
/// `wait_secs` (default 20, at most 25) with `etcd_users_pending` naming those still there
/// and why.
pub async fn node_action(
    State(state): State<Arc<AppState>>,
    admin: AdminCaller,
    Path((node, action)): Path<(String, String)>,
    Query(query): Query<NodeActionQuery>,
    body: axum::body::Bytes,
) -> Result<Json<NodeActionAnswer>, ApiFailure> {
    let wait = query.wait_secs.map(std::time::Duration::from_secs);
    // Only approve reads a body; deny and revoke ignore theirs, as they always have.
    let fingerprint = match action.as_str() {
        "approve" => approve_body(&body)?.fingerprint,
        _ => None,
    };
    let decision = Decision::named(&action, fingerprint, wait)?;
    let decided = approval::decide(&state.control, &admin.actor(), &node, decision).await?;
    Ok(Json(NodeActionAnswer {
        record: decided.record,
        etcd_users_pending: decided.etcd_users_pending,
    }))
}

/// Approve's body: empty (refused later, naming the waiting key), or
/// `{"fingerprint": "sha256:..."}`.
fn approve_body(body: &[u8]) -> Result<NodeAction, ApiFailure> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(NodeAction::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiFailure::bad_request(
            "invalid_body",
            &format!("the approve body is not {{\"fingerprint\": \"sha256:...\"}}: {e}"),
        )
    })
}

/// POST a new enrollment token; the response carries the secret, the only time it is shown.
pub async fn create_token(
    State(state): State<Arc<AppState>>,
    admin: AdminCaller,
    Json(request): Json<TokenCreate>,
) -> Result<Json<TokenCreated>, ApiFailure> {
    let created = tokens::create(&state.control, &admin.actor(), &request).await?;
    Ok(Json(TokenCreated {
        id: created.id.clone(),
        token: created.token.clone(),
        expires_at: rfc3339(&created.expires_at),
    }))
}

/// GET tokens (never their secrets or hashes).
pub async fn tokens(
    State(state): State<Arc<AppState>>,
    _: AdminCaller,
) -> Result<Json<Vec<TokenInfo>>, ApiFailure> {
    let tokens = state.control.store(|s| s.list_tokens()).await?;
    Ok(Json(tokens))
}

/// DELETE a token.
pub async fn delete_token(
    State(state): State<Arc<AppState>>,
    admin: AdminCaller,
    Path(id): Path<String>,
) -> Result<Json<TokenDeleted>, ApiFailure> {
    let deleted = tokens::delete(&state.control, &admin.actor(), &id).await?;
    Ok(Json(TokenDeleted { deleted }))
}

#[derive(Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    since: u64,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    1000
}

/// GET audit entries after `since`, oldest first.
pub async fn audit(
    State(state): State<Arc<AppState>>,
    _: AdminCaller,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiFailure> {
    let limit = query.limit.min(10_000);
    let entries = state
        .control
        .store(move |s| s.audit(query.since, limit))
        .await?;
    Ok(Json(entries))
}

/// POST a CSR for a component's component-wide identity (`calseg-server k8s secrets`): the
/// certificate, the CA bundle and the etcd endpoints a Secret for the component needs.
pub async fn component_certificate(
    State(state): State<Arc<AppState>>,
    admin: AdminCaller,
    Path(component): Path<String>,
    Json(request): Json<ComponentSign>,
) -> Result<Json<ComponentSigned>, ApiFailure> {
    let signed = component_calls::sign_component(
        &state.control,
        &admin.actor(),
        &component,
        &request.csr_pem,
        time::OffsetDateTime::now_utc(),
    )
    .await
    .map_err(|failure| match failure {
        CallFailure::Refused(error) | CallFailure::Failed(error) => ApiFailure::from(error),
    })?;
    state.metrics.issued(crate::metrics::IssuedKind::Component);
    Ok(Json(ComponentSigned {
        etcd_user: signed.etcd_user,
        cert_pem: signed.issued.cert_pem,
        ca_pem: state.control.etcd_ca_bundle_pem.clone(),
        etcd_endpoints: signed.etcd_endpoints,
        table: signed.table.map(str::to_owned),
        serial: signed.issued.serial_hex,
        not_after: rfc3339(&signed.issued.not_after),
    }))
}

#[derive(Deserialize, Default)]
pub struct RbacQuery {
    #[serde(default)]
    adopt: bool,
}

/// POST: apply the RBAC plan now.
pub async fn rbac_apply(
    State(state): State<Arc<AppState>>,
    admin: AdminCaller,
    Query(query): Query<RbacQuery>,
) -> Result<Json<RbacApplied<crate::rbac::Plan>>, ApiFailure> {
    let applied = rbac_apply::apply_now(&state.control, &admin.actor(), query.adopt).await?;
    state.metrics.changes_applied(applied.applied);
    Ok(Json(RbacApplied {
        applied: applied.applied,
        etcd_warnings: applied.etcd_warnings,
        text: applied.plan.render_text(),
        plan: applied.plan,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use calseg_api::admin::NodeFilter;
    use serde_json::json;

    #[test]
    fn the_query_string_decodes_into_the_filter() {
        let filter: NodeFilter = serde_json::from_value(json!({})).unwrap();
        assert!(filter.expiring_within_secs.is_none() && !filter.failed);
        let uri: axum::http::Uri =
            "/v1/admin/nodes?expiring_within_secs=60&failed=true&not_seen_since_secs=5"
                .parse()
                .unwrap();
        let axum::extract::Query(filter) =
            axum::extract::Query::<NodeFilter>::try_from_uri(&uri).unwrap();
        assert_eq!(filter.expiring_within_secs, Some(60));
        assert!(filter.failed);
        assert_eq!(filter.not_seen_since_secs, Some(5));
        // The query the CLI builds from the same type decodes to the same filter.
        let uri: axum::http::Uri = format!("/v1/admin/nodes{}", filter.query())
            .parse()
            .unwrap();
        let axum::extract::Query(again) =
            axum::extract::Query::<NodeFilter>::try_from_uri(&uri).unwrap();
        assert_eq!(again, filter);
        assert_eq!(NodeFilter::default().query(), "");
    }
}
