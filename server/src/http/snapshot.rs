//! `GET /v1/admin/store/snapshot`: every record of the store, read in one consistent view,
//! for `calseg-server backup` while the server runs (a second process cannot open the
//! embedded store then). Administrators only. It carries token hashes, never their secrets,
//! and no key: the CA files are read from disk by `backup` itself, on the server host.

use super::caller::AdminCaller;
use super::errors::ApiFailure;
use super::state::AppState;
use crate::store::{AuditAction, AuditOutcome, StoreSnapshot};
use axum::Json;
use axum::extract::State;
use std::sync::Arc;

/// GET the store's snapshot.
pub async fn get(
    State(state): State<Arc<AppState>>,
    admin: AdminCaller,
) -> Result<Json<StoreSnapshot>, ApiFailure> {
    let snapshot = state.control.store(|s| s.export_snapshot()).await?;
    tracing::info!(
        actor = %admin.actor(),
        nodes = snapshot.nodes.len(),
        issued = snapshot.issued.len(),
        "store snapshot read for a backup"
    );
    // After the read: the entry is not in this backup, and says who took it.
    state
        .control
        .audit(
            &admin.actor(),
            AuditAction::Backup,
            "store",
            AuditOutcome::Ok,
            format!(
                "snapshot read for a backup: {} nodes, {} certificates, {} audit entries",
                snapshot.nodes.len(),
                snapshot.issued.len(),
                snapshot.audit.len()
            ),
        )
        .await;
    Ok(Json(snapshot))
}
