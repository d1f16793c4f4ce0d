//! What an enrolled node asks with its fleet certificate: that it is still itself (approved, and
//! showing its current fleet certificate), the manifest its policy gives it, a certificate for
//! one of its identities, a report of its cycle, and a new fleet certificate. Refusals of a
//! certificate are audited here with their whole reason.

use crate::manifest::{etcd_user_for, manifest_for};
use crate::manifest_cache::Served;
use crate::pki::IssuedCert;
use crate::signing_guard::sign_owned;
use crate::state::Control;
use crate::store::{
    AuditAction, AuditOutcome, IssuedRecord, NewAuditEntry, NodeStanding, NodeState,
};
use crate::{CallFailure, ControlError};
use calseg_api::manifest::Manifest;
use calseg_api::report::{IdentityStatus, Report};
use std::sync::Arc;
use time::OffsetDateTime;

/// Refuses nodes that are not approved (a revoked one with its own kind,
/// [`calseg_api::error::NODE_REVOKED`]), and fleet certificates other than the current one
/// (`serial`). Returns the node's standing: read on every call, so a revocation acts at once
/// (on every replica), but only what this check needs is decoded.
pub async fn authorize(
    control: &Control,
    node: &str,
    serial: &str,
) -> Result<NodeStanding, ControlError> {
    let name = node.to_owned();
    // Every node call passes here: read the node inline when the store allows it.
    let record = control.store_read(move |s| s.node_standing(&name)).await?;
    let Some(record) = record else {
        return Err(ControlError::forbidden(
            "unknown_node",
            &format!("node {node} is not enrolled"),
        ));
    };
    if record.state == NodeState::Revoked {
        return Err(ControlError::forbidden(
            calseg_api::error::NODE_REVOKED,
            &format!(
                "node {node} was revoked by an operator: its etcd identities are gone; to bring it \
                 back, re-enroll it with a new node token (`calseg-server token create --node {node}`, \
                 then on the node `calseg-agent enroll --force --token ...`)"
            ),
        ));
    }
    if record.state != NodeState::Approved {
        return Err(ControlError::forbidden(
            "node_not_approved",
            &format!(
                "node {node} is {}: the server refuses it; an operator decides (`calseg-server nodes list`)",
                record.state
            ),
        ));
    }
    let current = record.fleet_cert.as_ref().map(|c| c.serial.as_str());
    if current != Some(serial) {
        return Err(ControlError::forbidden(
            "fleet_certificate_superseded",
            &format!(
                "this fleet certificate (serial {serial}) is no longer node {node}'s current one"
            ),
        ));
    }
    Ok(record)
}

/// The manifest the policy for `node` in enrollment `generation` gives it (during a rollout in
/// waves, the one its wave says), stamped with the policy revision.
pub fn current_manifest(control: &Control, node: &str, generation: u32) -> Option<Manifest> {
    let (policy, revision) = control.policy_for(node);
    let mut manifest = manifest_for(&policy, node, generation, control.trust())?;
    manifest.policy_revision = revision;
    Some(manifest)
}

/// The manifest `node` in enrollment `generation` is served now, as JSON with its revision:
/// [`current_manifest`], computed once per policy epoch (`crate::manifest_cache`). `None` when
/// the policy gives the node no component.
pub fn served_manifest(
    control: &Control,
    node: &str,
    generation: u32,
) -> Result<Option<Arc<Served>>, ControlError> {
    // The epoch before the policy: an entry is never newer than its epoch.
    let epoch = control.policy_epoch();
    control
        .manifests
        .get_or_compute(node, generation, epoch, || {
            current_manifest(control, node, generation)
        })
}

/// Signs `csr_pem` for `node`'s identity of `component` (enrollment `generation`), after the
/// policy and the signing guard allow it; the certificate and its audit entry are recorded in
/// one commit before it is returned.
pub async fn sign_identity(
    control: &Control,
    node: &str,
    generation: u32,
    component: &str,
    csr_pem: &str,
    now: OffsetDateTime,
) -> Result<IssuedCert, CallFailure> {
    let (policy, _) = control.policy_for(node);
    let Some(etcd_user) = etcd_user_for(&policy, node, generation, component) else {
        let error = ControlError::forbidden(
            "identity_not_assigned",
            &format!(
                "the policy gives node {node} no component {component:?}; it may only request its own identities"
            ),
        );
        return Err(deny(control, node, component, error).await);
    };
    let signed = sign_owned(
        control,
        Some(node),
        &etcd_user,
        csr_pem,
        policy.identity.lifetime,
        now,
    )
    .await;
    let issued = match signed {
        Ok(issued) => issued,
        Err(error) => return Err(deny(control, node, &etcd_user, error).await),
    };
    let record = IssuedRecord {
        serial: issued.serial_hex.clone(),
        cn: etcd_user.clone(),
        node: node.to_owned(),
        component: component.to_owned(),
        not_before: issued.not_before,
        not_after: issued.not_after,
        issued_at: now,
        issuer: Some(issued.issuer_fingerprint.clone()),
    };
    let entry = NewAuditEntry {
        at: now,
        actor: node.to_owned(),
        action: AuditAction::Issue,
        subject: etcd_user,
        outcome: AuditOutcome::Ok,
        detail: format!("serial {}", issued.serial_hex),
    };
    // One commit, shared with the signings in flight: a certificate handed out is always
    // recorded with its audit entry first.
    control
        .issuance
        .record(record, entry)
        .await
        .map_err(CallFailure::Failed)?;
    Ok(issued)
}

/// Keeps `node`'s report of a cycle, its certificate dates replaced by the ones calseg issued;
/// a manifest the node refused (outside its agent.toml limits) is audited for the operator.
pub async fn take_report(
    control: &Control,
    node: &str,
    report: Report,
    now: OffsetDateTime,
) -> Result<(), ControlError> {
    // Dates an operator sees are the ones this server issued, not the ones the node claims.
    let name = node.to_owned();
    let issued = control.store(move |s| s.issued_for_node(&name)).await?;
    let report = crate::vouch::vouch(report, node, &issued);
    let (name, stored) = (node.to_owned(), report.clone());
    control
        .store(move |s| s.record_report(&name, stored, now))
        .await?;
    if report
        .identities
        .iter()
        .any(|i| i.status == IdentityStatus::Refused)
    {
        tracing::warn!(%node, revision = %report.revision, "the node refused its manifest: it is outside the node's agent.toml limits");
        control
            .audit(
                node,
                AuditAction::Report,
                node,
                AuditOutcome::Denied,
                format!(
                    "manifest {} refused by the node's agent.toml limits: {}",
                    report.revision,
                    report.errors.join("; ")
                ),
            )
            .await;
    }
    Ok(())
}

/// Signs a new fleet certificate for `node` from `csr_pem`, records and audits it. A refused
/// CSR is [`CallFailure::Refused`] (not audited: the node is already known to be itself).
pub async fn renew_fleet(
    control: &Control,
    node: &str,
    csr_pem: &str,
    now: OffsetDateTime,
) -> Result<IssuedCert, CallFailure> {
    let signer = control.fleet_cas().signer().clone();
    let issued = signer
        .sign_agent_csr(
            csr_pem,
            &control.csr_rules,
            node,
            control.fleet_lifetime,
            now,
        )
        .map_err(|error| CallFailure::Refused(error.into()))?;
    let detail = format!("fleet certificate renewed: {}", issued.serial_hex);
    crate::enrollment::record_fleet_cert(
        control,
        node,
        &issued,
        &signer,
        now,
        AuditAction::Issue,
        detail,
    )
    .await
    .map_err(CallFailure::Failed)?;
    Ok(issued)
}

/// Logs and audits a refused certificate request; the refusal, to return.
async fn deny(control: &Control, node: &str, subject: &str, error: ControlError) -> CallFailure {
    tracing::warn!(%node, %subject, kind = %error.kind, "certificate request refused");
    control
        .audit_refusal(node, AuditAction::Issue, subject, &error, "")
        .await;
    CallFailure::Refused(error)
}
