//! Pending enrollments (a node that asked without a token) expire: those older than
//! `[api] pending_ttl` are dropped and audited by the leading replica.

use crate::state::Control;
use crate::store::{AuditAction, AuditOutcome, NodeRecord};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// Drops pending requests older than `pending_ttl`, auditing each, every quarter of the TTL
/// (at least every second, at most every minute). Only the leading replica scans (each drop
/// is one store transaction, so a change of leader never drops or audits a request twice).
pub async fn expire_loop(control: Arc<Control>, ttl: Duration) {
    let every = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let Ok(store_ttl) = time::Duration::try_from(ttl) else {
        return;
    };
    loop {
        tokio::time::sleep(every).await;
        if !control.leads() {
            continue;
        }
        let now = OffsetDateTime::now_utc();
        match control
            .store(move |s| s.expire_pending(now, store_ttl))
            .await
        {
            Ok(dropped) => {
                for record in dropped {
                    let key = fingerprint_of(&record);
                    tracing::info!(node = %record.name, %key, "pending enrollment expired");
                    let detail = format!(
                        "pending enrollment (key {key}) expired: not approved within {} \
                         ([api] pending_ttl)",
                        calseg_api::duration::format(ttl)
                    );
                    control
                        .audit(
                            "system",
                            AuditAction::NodeDelete,
                            &record.name,
                            AuditOutcome::Ok,
                            detail,
                        )
                        .await;
                }
            }
            Err(error) => {
                tracing::warn!(kind = %error.kind, "expiring pending enrollments failed: {}", error.message)
            }
        }
    }
}

/// The fingerprint of the key a pending node waits with, or `unknown`.
pub fn fingerprint_of(record: &NodeRecord) -> String {
    record
        .pending_key
        .as_ref()
        .map_or_else(|| "unknown".to_owned(), |k| k.fingerprint.clone())
}
