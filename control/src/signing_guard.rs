//! The API's signing guard: before a node enrolls, and again before every certificate, each
//! etcd user it would hold must be one calseg may sign for (not reserved, and not in etcd
//! holding roles none of which is calseg's: see `rbac::ownership`), as etcd holds it at that
//! moment.

use crate::ControlError;
use crate::pki::IssuedCert;
use crate::rbac::{self, NotOwned};
use crate::state::Control;
use std::time::Duration;
use time::OffsetDateTime;

/// The stable kind of a refusal to sign for a user calseg does not own.
pub const NOT_OWNED: &str = "etcd_user_not_owned";

/// Refuses `user` when calseg may not sign a certificate naming it.
pub async fn ensure_owned(control: &Control, user: &str) -> Result<(), ControlError> {
    let reserved = control.reserved();
    reserved.check(user).map_err(refused)?;
    let roles = match &control.reconciler {
        Some(reconciler) => reconciler.user_roles(user).await.map_err(|error| {
            ControlError::unavailable(
                "etcd_unavailable",
                &format!(
                    "cannot confirm that calseg owns the etcd user {user} ({error:#}); calseg \
                     signs only for users it owns: try again once etcd answers"
                ),
            )
        })?,
        None => None,
    };
    rbac::judge(user, reserved, roles.as_ref()).map_err(refused)
}

/// Signs `csr_pem` as a certificate naming `etcd_user` of `node` (`None`: a component-wide
/// identity), valid for `lifetime`, once the guard allows the user and the CSR passes the
/// server's rules, from the etcd client CA that signs for that node now (during a rotation, its
/// wave says which): the refusal otherwise, for the caller to audit.
pub async fn sign_owned(
    control: &Control,
    node: Option<&str>,
    etcd_user: &str,
    csr_pem: &str,
    lifetime: Duration,
    now: OffsetDateTime,
) -> Result<IssuedCert, ControlError> {
    // Never a certificate for a user calseg does not own, whatever the policy renders.
    ensure_owned(control, etcd_user).await?;
    let signer = control.etcd_signer_for(node)?;
    Ok(signer.sign_client_csr(csr_pem, &control.csr_rules, etcd_user, lifetime, now)?)
}

/// Refuses the enrollment of `node` when any etcd user the policy gives it (in its enrollment
/// generation) is one calseg may not sign for.
pub async fn ensure_node_owned(control: &Control, node: &str) -> Result<(), ControlError> {
    let name = node.to_owned();
    let generation = control
        .store_read(move |s| s.node(&name))
        .await?
        .map_or(0, |record| record.generation);
    let (policy, _) = control.policy_for(node);
    for component in policy.components_for(node) {
        let user = policy.etcd_user(&component.name, node, generation);
        fits_common_name(&component.name, node, &user)?;
        ensure_owned(control, &user).await?;
    }
    Ok(())
}

use crate::policy::MAX_COMMON_NAME;

/// Refuses a node whose etcd user for `component` could never be a certificate's Common Name,
/// at enrollment rather than as a failed signing later.
fn fits_common_name(component: &str, node: &str, user: &str) -> Result<(), ControlError> {
    let length = user.chars().count();
    if length <= MAX_COMMON_NAME {
        return Ok(());
    }
    Err(ControlError::invalid(
        "etcd_user_too_long",
        &format!(
            "node {node}'s etcd user for {component} would be {user:?}, {length} characters; \
             a certificate's Common Name holds at most {MAX_COMMON_NAME}: use a shorter node \
             name or a shorter [identity] user template"
        ),
    ))
}

fn refused(error: NotOwned) -> ControlError {
    ControlError::forbidden(NOT_OWNED, &error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_longer_than_a_common_name_are_refused_at_enrollment() {
        let node = "n".repeat(52);
        let user = format!("calico-node.{node}");
        assert_eq!(user.len(), 64);
        assert!(fits_common_name("calico-node", &node, &user).is_ok());
        let long = format!("{user}~g1");
        let failure = fits_common_name("calico-node", &node, &long).unwrap_err();
        assert_eq!(failure.kind, "etcd_user_too_long");
        assert!(
            failure.message.contains("67 characters"),
            "{}",
            failure.message
        );
    }
}
