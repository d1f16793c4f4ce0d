//! Enrollment: a node proves itself with a token, an operator's approval or an auto-approve
//! glob, and receives a fleet certificate signed from its own CSR. Every refusal is audited
//! here with its whole reason; what an anonymous caller is told is the transport's choice.

use crate::signing_guard;
use crate::state::Control;
use crate::store::{AuditAction, AuditOutcome, NodeState, PendingAsk, PendingKey};
use crate::{CallFailure, ControlError};
use std::net::IpAddr;
use time::OffsetDateTime;

/// One enrollment request.
pub struct EnrollAsk {
    pub node: String,
    pub csr_pem: String,
    /// An enrollment token; without one the node waits for approval.
    pub token: Option<String>,
    /// Where the request came from (audited with a pending key).
    pub source: IpAddr,
    /// How many nodes may wait for approval at once (`[api] max_pending`).
    pub max_pending: usize,
}

/// What an enrollment gave.
pub enum Enrolled {
    /// The node's fleet certificate.
    Certificate { cert_pem: String },
    /// The node waits for an operator's approval.
    Pending,
}

/// Enrolls `ask.node` at `now`: checks the name, the etcd users it would hold, the CSR, then
/// the token or the approval; records and audits the fleet certificate and pokes the
/// reconciler. A bad CSR never uses a token up.
pub async fn enroll(
    control: &Control,
    ask: EnrollAsk,
    now: OffsetDateTime,
) -> Result<Enrolled, CallFailure> {
    let node = ask.node.clone();
    crate::policy::check_node_name(&node).map_err(|message| {
        CallFailure::Failed(ControlError::invalid("invalid_node_name", &message))
    })?;
    let refuse = |error: ControlError| async {
        let from = format!(" (from {})", ask.source);
        control
            .audit_refusal(&node, AuditAction::Enroll, &node, &error, &from)
            .await;
        CallFailure::Refused(error)
    };
    // No fleet certificate for a node whose etcd users calseg does not own (nor a used token).
    if let Err(error) = signing_guard::ensure_node_owned(control, &node).await {
        return Err(refuse(error).await);
    }
    // Check and sign the CSR first: a bad CSR must not consume a token.
    let signer = control.fleet_cas().signer().clone();
    let issued = match signer.sign_agent_csr(
        &ask.csr_pem,
        &control.csr_rules,
        &node,
        control.fleet_lifetime,
        now,
    ) {
        Ok(issued) => issued,
        Err(error) => return Err(refuse(error.into()).await),
    };
    let approved_by = match &ask.token {
        Some(token) => {
            let (token, name) = (token.clone(), node.clone());
            match control
                .store(move |s| s.redeem_token(&token, &name, now))
                .await
            {
                Ok(used) => format!("token:{}", used.token_id),
                Err(error) => return Err(refuse(error).await),
            }
        }
        None => match approve_without_token(control, &ask, now).await {
            Ok(Some(by)) => by,
            Ok(None) => return Ok(Enrolled::Pending),
            Err(error) => return Err(refuse(error).await),
        },
    };
    let detail = format!("fleet certificate {} ({approved_by})", issued.serial_hex);
    record_fleet_cert(
        control,
        &node,
        &issued,
        &signer,
        now,
        AuditAction::Enroll,
        detail,
    )
    .await
    .map_err(CallFailure::Failed)?;
    tracing::info!(%node, serial = %issued.serial_hex, %approved_by, "node enrolled");
    control.poke_reconciler();
    Ok(Enrolled::Certificate {
        cert_pem: issued.cert_pem,
    })
}

/// Without a token: `Some(approver)` when the node may have its certificate now, `None` when it
/// must wait for an operator. A new pending request is audited with its key and source; a
/// request with another key than the pending one is refused (409) and audited by the caller.
async fn approve_without_token(
    control: &Control,
    ask: &EnrollAsk,
    now: OffsetDateTime,
) -> Result<Option<String>, ControlError> {
    let node = ask.node.as_str();
    let fingerprint = crate::pki::csr_key_fingerprint(&ask.csr_pem, &control.csr_rules, node)?;
    let name = node.to_owned();
    let existing = control.store(move |s| s.node(&name)).await?;
    if let Some(record) = &existing
        && record.state == NodeState::Approved
    {
        // Approved by an operator while pending: only the key it approved gets a certificate.
        if record.pending_key.as_ref().map(|k| &k.fingerprint) == Some(&fingerprint) {
            return Ok(Some(
                record.approved_by.clone().unwrap_or_else(|| "admin".into()),
            ));
        }
        return Err(ControlError::forbidden(
            "already_enrolled",
            &format!(
                "node {node} is already enrolled; to enroll it again create a token for it \
                 (`calseg-server token create --node {node}`)"
            ),
        ));
    }
    let source = ask.source;
    let pending = PendingAsk {
        csr_pem: ask.csr_pem.clone(),
        key: PendingKey {
            fingerprint: fingerprint.clone(),
            source: source.to_string(),
        },
        max_pending: ask.max_pending,
    };
    let name = node.to_owned();
    control
        .store(move |s| s.upsert_pending_node(&name, &pending, now))
        .await?;
    if existing.is_none() {
        tracing::info!(%node, key = %fingerprint, %source, "enrollment pending approval");
        control
            .audit(
                node,
                AuditAction::Enroll,
                node,
                AuditOutcome::Ok,
                format!("pending approval: key {fingerprint} from {source}"),
            )
            .await;
    }
    let Some(glob) = control.auto_approve.iter().find(|g| g.matches(node)) else {
        return Ok(None);
    };
    let by = format!("auto:{}", glob.as_str());
    let (name, approver) = (node.to_owned(), by.clone());
    control
        .store(move |s| s.set_node_state(&name, NodeState::Approved, &approver, now))
        .await?;
    Ok(Some(by))
}

/// Records `issued` as `node`'s current fleet certificate (the one every later call must
/// show), then audits it as `action` with `detail`: at enrollment and at each renewal.
pub(crate) async fn record_fleet_cert(
    control: &Control,
    node: &str,
    issued: &crate::pki::IssuedCert,
    signer: &crate::pki::CertificateAuthority,
    now: OffsetDateTime,
    action: AuditAction,
    detail: String,
) -> Result<(), ControlError> {
    let (name, serial, not_after) = (node.to_owned(), issued.serial_hex.clone(), issued.not_after);
    let key = issued.key_fingerprint.clone();
    let issuer = signer.fingerprint_sha256();
    control
        .store(move |s| s.record_fleet_cert(&name, &serial, &key, &issuer, not_after, now))
        .await?;
    control
        .audit(node, action, node, AuditOutcome::Ok, detail)
        .await;
    Ok(())
}
