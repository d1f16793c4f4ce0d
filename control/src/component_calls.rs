//! What an administrator asks for a component's component-wide identity (issue 21, Calico's
//! "per component" set-up): a certificate for the etcd user the policy declares for the
//! component (`component_identity = true`), signed from a CSR made where the key stays. The
//! same CSR checks and the same signing guard as a node's identity; every refusal and every
//! certificate is audited under the administrator's name, the certificate before it is handed
//! out.

use crate::pki::IssuedCert;
use crate::policy::Policy;
use crate::signing_guard::sign_owned;
use crate::state::Control;
use crate::store::{AuditAction, AuditOutcome, NewAuditEntry};
use crate::{CallFailure, ControlError};
use calseg_api::when::rfc3339;
use time::OffsetDateTime;

/// A signed component-wide identity and what a Secret for it needs besides.
#[derive(Debug)]
pub struct ComponentIssued {
    pub etcd_user: String,
    pub issued: IssuedCert,
    /// The policy's etcd endpoints.
    pub etcd_endpoints: Vec<String>,
    /// The built-in grant table of the component, if any.
    pub table: Option<&'static str>,
}

/// Signs `csr_pem` for `component`'s component-wide identity on behalf of the administrator
/// `actor` (`admin:NAME`), when the policy in force declares one and the signing guard allows
/// its user.
pub async fn sign_component(
    control: &Control,
    actor: &str,
    component: &str,
    csr_pem: &str,
    now: OffsetDateTime,
) -> Result<ComponentIssued, CallFailure> {
    let (policy, _) = control.policy_and_revision();
    let etcd_user = match component_user(&policy, component) {
        Ok(user) => user,
        Err(error) => return Err(deny(control, actor, component, error).await),
    };
    let issued = match sign_owned(
        control,
        None,
        &etcd_user,
        csr_pem,
        policy.identity.lifetime,
        now,
    )
    .await
    {
        Ok(issued) => issued,
        Err(error) => return Err(deny(control, actor, &etcd_user, error).await),
    };
    let entry = NewAuditEntry {
        at: now,
        actor: actor.to_owned(),
        action: AuditAction::Issue,
        subject: etcd_user.clone(),
        outcome: AuditOutcome::Ok,
        detail: format!(
            "serial {}, component-wide identity of {component}, valid until {}",
            issued.serial_hex,
            rfc3339(&issued.not_after)
        ),
    };
    // Never a certificate that is not on record: the audit entry first.
    control
        .store(move |s| s.append_audit(entry))
        .await
        .map_err(CallFailure::Failed)?;
    // The user may not exist yet (a policy just reloaded): the reconciler makes it.
    control.poke_reconciler();
    let table = policy.components.get(component).and_then(|c| c.table);
    Ok(ComponentIssued {
        etcd_user,
        issued,
        etcd_endpoints: policy.etcd.endpoints.clone(),
        table: table.map(|t| t.name()),
    })
}

/// The component-wide user of `component` under `policy`, or why there is none.
pub fn component_user(policy: &Policy, component: &str) -> Result<String, ControlError> {
    let Some(found) = policy.components.get(component) else {
        let declared: Vec<&str> = policy.components.keys().map(String::as_str).collect();
        return Err(ControlError::not_found(
            "unknown_component",
            &format!(
                "the policy has no component {component:?} (declared: {})",
                declared.join(", ")
            ),
        ));
    };
    if let Some(template) = found.node_grants.first() {
        let from = found.table.map_or(String::new(), |t| {
            format!(", from grants = \"{}\"", t.name())
        });
        return Err(ControlError::forbidden(
            "component_needs_node",
            &format!(
                "component {component}'s grants need {{node}} ({:?}{from}): its identities are \
                 per node, and one Secret shared by every pod cannot hold per-node grants; give \
                 each node its own identity (calseg-agent on the node), or declare a component \
                 whose grants have no {{node}} (e.g. grants = \"calico-node\") with \
                 component_identity = true",
                template.key_template
            ),
        ));
    }
    policy.component_user(component).ok_or_else(|| {
        ControlError::forbidden(
            "no_component_identity",
            &format!(
                "the policy declares no component-wide identity for component {component}: add \
                 `component_identity = true` under [components.{component}] and reload the \
                 policy (`calseg-server reload`)"
            ),
        )
    })
}

/// Logs and audits a refused request; the refusal, to return.
async fn deny(control: &Control, actor: &str, subject: &str, error: ControlError) -> CallFailure {
    tracing::warn!(%actor, %subject, kind = %error.kind, "component certificate refused");
    control
        .audit_refusal(actor, AuditAction::Issue, subject, &error, "")
        .await;
    CallFailure::Refused(error)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_a_declared_component_without_node_grants_has_a_user() {
        let text = "calico_version = \"3.29\"\n[etcd]\nendpoints = [\"https://127.0.0.1:2379\"]\n\
                    [components.calico-node]\ngrants = \"calico-node-per-node\"\n\
                    [components.kc]\ngrants = \"kube-controllers\"\ncomponent_identity = true\n\
                    [components.ro]\ngrants = \"calicoctl-read-only\"\n\
                    [[hosts]]\nmatch = \"*\"\ncomponents = [\"calico-node\", \"ro\"]\n";
        let policy = crate::policy::parse(text, "p.toml").unwrap();
        assert_eq!(component_user(&policy, "kc").unwrap(), "kc~all");
        let per_node = component_user(&policy, "calico-node").unwrap_err();
        assert_eq!(per_node.kind, "component_needs_node");
        assert!(
            per_node
                .message
                .contains("from grants = \"calico-node-per-node\""),
            "{}",
            per_node.message
        );
        let undeclared = component_user(&policy, "ro").unwrap_err();
        assert_eq!(undeclared.kind, "no_component_identity");
        assert!(undeclared.message.contains("[components.ro]"));
        let unknown = component_user(&policy, "../kc").unwrap_err();
        assert_eq!(unknown.kind, "unknown_component");
        assert!(unknown.message.contains("declared: calico-node, kc, ro"));
    }
}
