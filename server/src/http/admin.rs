//! The admin API (administrator certificates only): nodes, tokens, audit log, RBAC apply (the
//! plan is `fleet_plan`).

use super::caller::AdminCaller;
use super::errors::ApiFailure;
use super::node_routes::rfc3339;
use super::state::AppState;
use crate::inventory::{self, InventoryRow, NodeFilter};
use crate::store::{
    AuditAction, AuditEntry, AuditOutcome, NodeRecord, NodeState, TokenInfo, TokenScope,
};
use axum::Json;
use axum::extract::{Path, Query, State};
use calseg_api::admin::{RbacApplied, TokenCreate, TokenCreated, TokenDeleted};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::OffsetDateTime;

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
    let nodes = state.control.store(|s| s.nodes()).await?;
    let mut rows = inventory::select(nodes, &filter, OffsetDateTime::now_utc());
    crate::rollout::annotate(
        &mut rows,
        &|node| state.control.policy_for(node).0,
        &state.control.etcd_ca_bundle_pem,
    );
    Ok(Json(rows))
}

/// The query of a node action: how long `revoke` waits for the node's etcd users to go.
#[derive(Deserialize, Default)]
pub struct NodeActionQuery {
    wait_secs: Option<u64>,
}

/// POST approve | deny | revoke for one node. Approve needs the waiting key's fingerprint in
/// the body (`super::pending::approve`). `revoke` answers once the node's etcd users are
/// gone, or after `wait_secs` (default 20, at most 25) with `etcd_users_pending` naming those
/// still there and why.
pub async fn node_action(
    State(state): State<Arc<AppState>>,
    admin: AdminCaller,
    Path((node, action)): Path<(String, String)>,
    Query(query): Query<NodeActionQuery>,
    body: axum::body::Bytes,
) -> Result<Json<NodeActionAnswer>, ApiFailure> {
    let (target, audit_action) = match action.as_str() {
        "approve" => {
            let record = super::pending::approve(&state, &admin, &node, &body).await?;
            state.control.poke_reconciler();
            return Ok(Json(NodeActionAnswer {
                record,
                etcd_users_pending: None,
            }));
        }
        "deny" => (NodeState::Denied, AuditAction::Deny),
        "revoke" => (NodeState::Revoked, AuditAction::Revoke),
        other => {
            return Err(ApiFailure::not_found(
                "unknown_action",
                &format!("unknown node action {other:?}: use approve, deny or revoke"),
            ));
        }
    };
    let by = admin.actor();
    let (name, who) = (node.clone(), by.clone());
    let now = OffsetDateTime::now_utc();
    let record = state
        .control
        .store(move |s| s.set_node_state(&name, target, &who, now))
        .await?;
    state
        .control
        .audit(
            &by,
            audit_action,
            &node,
            AuditOutcome::Ok,
            format!("{action} by {by}"),
        )
        .await;
    state.control.poke_reconciler();
    let mut answer = NodeActionAnswer {
        record,
        etcd_users_pending: None,
    };
    if target == NodeState::Revoked {
        let wait = query.wait_secs.map_or(
            crate::revocation::DEFAULT_WAIT,
            std::time::Duration::from_secs,
        );
        let pending = crate::revocation::wait_until_gone(&state.control, &node, wait).await;
        answer.etcd_users_pending = Some(pending);
    }
    Ok(Json(answer))
}

/// POST a new enrollment token; the response carries the secret, the only time it is shown.
pub async fn create_token(
    State(state): State<Arc<AppState>>,
    admin: AdminCaller,
    Json(request): Json<TokenCreate>,
) -> Result<Json<TokenCreated>, ApiFailure> {
    let scope = match (&request.node, &request.glob) {
        (Some(node), None) => {
            // Also the name's length: a node's name is its fleet certificate's Common Name.
            crate::policy::check_node_name(node)
                .map_err(|m| ApiFailure::bad_request("invalid_node_name", &m))?;
            TokenScope::Node(node.clone())
        }
        (None, Some(glob)) => TokenScope::Match {
            glob: glob.clone(),
            uses_max: request.uses.unwrap_or(1),
        },
        _ => {
            return Err(ApiFailure::bad_request(
                "invalid_scope",
                "give exactly one of node (--node NAME) or glob (--match 'worker-*')",
            ));
        }
    };
    let ttl = time::Duration::seconds(i64::try_from(request.ttl_secs).unwrap_or(i64::MAX));
    let by = admin.actor();
    let who = by.clone();
    let now = OffsetDateTime::now_utc();
    let created = state
        .control
        .store(move |s| s.create_token(scope, ttl, now, &who))
        .await?;
    state
        .control
        .audit(
            &by,
            AuditAction::TokenCreate,
            &created.id,
            AuditOutcome::Ok,
            String::new(),
        )
        .await;
    Ok(Json(TokenCreated {
        id: created.id.clone(),
        token: created.token.clone(),
        expires_at: rfc3339(created.expires_at),
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
    let token_id = id.clone();
    let deleted = state
        .control
        .store(move |s| s.delete_token(&token_id))
        .await?;
    if deleted {
        let by = admin.actor();
        state
            .control
            .audit(
                &by,
                AuditAction::TokenDelete,
                &id,
                AuditOutcome::Ok,
                String::new(),
            )
            .await;
    }
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
    let reconciler = reconciler(&state)?;
    let enrolled = state.control.store(|s| s.nodes()).await?;
    let (plan, report) = reconciler
        .apply_desired(&state.control.desired_rbac(&enrolled), query.adopt)
        .await
        .map_err(etcd_failure)?;
    state.metrics.changes_applied(report.applied);
    if report.applied > 0 {
        let by = admin.actor();
        state
            .control
            .audit(
                &by,
                AuditAction::RbacApply,
                "etcd",
                AuditOutcome::Ok,
                format!("{} changes", report.applied),
            )
            .await;
    }
    Ok(Json(RbacApplied {
        applied: report.applied,
        etcd_warnings: etcd_warnings(reconciler),
        text: plan.render_text(),
        plan,
    }))
}

/// A plan or apply that failed on etcd's side: 409 when `refuse_known_bypasses` refused it,
/// 502 otherwise.
pub(super) fn etcd_failure(error: anyhow::Error) -> ApiFailure {
    if let Some(refused) = error.downcast_ref::<crate::etcd_release::KnownBypasses>() {
        return ApiFailure::new(
            axum::http::StatusCode::CONFLICT,
            "etcd_known_bypasses",
            &refused.to_string(),
        );
    }
    ApiFailure::new(
        axum::http::StatusCode::BAD_GATEWAY,
        "etcd",
        &format!("{error:#}"),
    )
}

/// The latest etcd release check's warnings, as `plan` and `apply` print them.
pub(super) fn etcd_warnings(reconciler: &crate::reconcile::Reconciler) -> Vec<String> {
    reconciler
        .release()
        .latest()
        .map(|report| crate::etcd_release::cli_lines(&report))
        .unwrap_or_default()
}

pub(super) fn reconciler(state: &AppState) -> Result<&crate::reconcile::Reconciler, ApiFailure> {
    state.control.reconciler.as_deref().ok_or_else(|| {
        ApiFailure::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "etcd_not_configured",
            "this server has no etcd credentials ([etcd] in server.toml), so it does not manage RBAC",
        )
    })
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
