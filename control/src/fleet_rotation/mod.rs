//! Rotating the fleet CA (the CA of the agents' and administrators' certificates and of the
//! server's TLS certificate), the operator's steps and where it stands.
//!
//! - `begin` makes the new CA. From then on the server accepts client certificates of both,
//!   signs fleet and administrator certificates from the new one, gives agents both to trust,
//!   and names the new one in manifests so agents renew at once (older agents at their next
//!   due renewal). Renewing a fleet certificate restarts nothing, so there are no waves.
//! - `finish`, once every approved node's fleet certificate and the calling administrator's
//!   come from the new CA, makes it the only one: `fleet.pem`, the server's TLS certificate
//!   (re-issued from it by the server), and the pin of new enrollments.
//! - `rollback` signs from the old CA again while both stay trusted; a second `rollback` drops
//!   the new one once no node's certificate comes from it.
//!
//! The state is the CA directory's files ([`FleetFiles`]): restarts and every replica read it.

mod files;
mod server_leaf;

pub use crate::fleet_cas::FleetCas;
pub use files::FleetFiles;
pub use server_leaf::{Leaf, follow as follow_server_leaf};

use std::time::Duration;

use calseg_api::ca::{CaSummary, FleetRotationPhase, FleetRotationStatus, RotationAction};
use time::OffsetDateTime;

use crate::ControlError;
use crate::pki::{CaKind, CertificateAuthority};
use crate::state::Control;
use crate::store::{AuditAction, AuditOutcome, NodeRecord, NodeState};

/// A new fleet CA's lifetime, as `init`'s.
const NEW_CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);

/// The `{ca}` the audit log names.
const CA: &str = calseg_api::ca::FLEET;

fn files(control: &Control) -> Result<FleetFiles, ControlError> {
    control.rotation_ca_dir().map(FleetFiles::new)
}

/// The operator's `action` on the fleet CA, by `actor` (audited), whose own certificate is
/// `actor_cert_der` when known. Returns what the operator does next. The server reloads its
/// TLS settings from [`Control::fleet_cas`] afterwards.
pub async fn act(
    control: &Control,
    actor: &str,
    actor_cert_der: Option<&[u8]>,
    action: RotationAction,
    now: OffsetDateTime,
) -> Result<Option<String>, ControlError> {
    let _one_at_a_time = control.rotation_lock.lock().await;
    let files = files(control)?;
    let cas = files
        .load(now)
        .map_err(ControlError::internal_at("reading the fleet CA files"))?;
    control.set_fleet_cas(cas.clone());
    let step = match (action, cas.phase()) {
        (RotationAction::Begin, None) => begin(&files, now).map(Some),
        (RotationAction::Begin, Some(phase)) => Err(ControlError::conflict(
            "ca_rotation_state",
            &format!(
                "a rotation of the fleet CA is already under way (phase {}): finish or roll it back first",
                phase.name()
            ),
        )),
        (RotationAction::Finish, Some(FleetRotationPhase::Overlap)) => {
            finish(control, &files, &cas, actor_cert_der, now).await
        }
        (RotationAction::Rollback, Some(FleetRotationPhase::Overlap)) => {
            let next = cas.signer().clone();
            files
                .roll_back(&next)
                .map_err(ControlError::internal_at("rolling the fleet CA back"))?;
            Ok(Some(format!(
                "fleet certificates come from the old CA again; agents renew from it at once. \
                 Run `--rollback` again to drop the new CA {} once no node's certificate comes \
                 from it (`calseg-server ca status`).",
                next.fingerprint_sha256()
            )))
        }
        (RotationAction::Rollback, Some(FleetRotationPhase::RollingBack)) => {
            drop_rolled_back(control, &files, &cas, actor_cert_der, now).await
        }
        (RotationAction::Finish, Some(FleetRotationPhase::RollingBack)) => {
            Err(ControlError::conflict(
                "ca_rotation_state",
                "this rotation of the fleet CA was rolled back: end it with `--rollback`",
            ))
        }
        (RotationAction::Finish | RotationAction::Rollback, None) => Err(ControlError::conflict(
            "ca_rotation_state",
            "no rotation of the fleet CA is under way: begin one with `--begin`",
        )),
        (RotationAction::Pause | RotationAction::Resume, _) => Err(ControlError::conflict(
            "ca_rotation_state",
            "a rotation of the fleet CA has no waves to pause or resume: renewing a fleet \
             certificate restarts nothing",
        )),
    };
    let outcome = match &step {
        Ok(_) => AuditOutcome::Ok,
        Err(_) => AuditOutcome::Denied,
    };
    let detail = match &step {
        Ok(_) => action.name().to_owned(),
        Err(error) => format!("{} refused: {}", action.name(), error.message),
    };
    control
        .audit(actor, AuditAction::CaRotation, CA, outcome, detail)
        .await;
    let step = step?;
    let after = files
        .load(now)
        .map_err(ControlError::internal_at("reading the fleet CA files"))?;
    tracing::info!(action = action.name(), phase = ?after.phase(), "fleet CA rotation stepped");
    control.set_fleet_cas(after);
    Ok(step)
}

fn begin(files: &FleetFiles, now: OffsetDateTime) -> Result<String, ControlError> {
    // A name of its own: certificates tell the two CAs apart by their issuer.
    let at = crate::pki::whole_seconds(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string());
    let common_name = format!("calseg fleet CA {at}");
    let new = CertificateAuthority::generate(CaKind::Fleet, &common_name, NEW_CA_LIFETIME, now)
        .map_err(ControlError::internal_at("generating the new fleet CA"))?;
    files
        .begin(&new)
        .map_err(ControlError::internal_at("writing the new fleet CA"))?;
    Ok(format!(
        "the new fleet CA {fp} signs fleet certificates now; both CAs are trusted. Agents renew \
         their fleet certificates at once (agents of the previous release at their next due \
         renewal). Next:\n  1. re-issue every administrator certificate \
         (`calseg-server admin issue`): old ones stop working at --finish;\n  2. with several \
         server replicas, copy {cert} and {key} to each replica's CA directory now;\n  3. once \
         `calseg-server ca status` lists no pending node, run `ca rotate fleet --finish`. \
         Until then enroll with the old pin; after it, with the new one: {fp}",
        fp = new.fingerprint_sha256(),
        cert = files.next().cert.display(),
        key = files.next().key.display(),
    ))
}

async fn finish(
    control: &Control,
    files: &FleetFiles,
    cas: &FleetCas,
    actor_cert_der: Option<&[u8]>,
    now: OffsetDateTime,
) -> Result<Option<String>, ControlError> {
    nothing_depends_on(control, cas, &cas.current, actor_cert_der, "--finish", now).await?;
    let new = cas.signer().clone();
    let retired = files
        .finish(&cas.current, &new)
        .map_err(ControlError::internal_at(
            "putting the new fleet CA in force",
        ))?;
    Ok(Some(format!(
        "the fleet CA is now {} (fleet.pem); the old one is refused and its certificate kept as \
         {}. The server's TLS certificate is re-issued from the new CA. New enrollments use \
         --ca-hash {}. With several replicas, copy fleet.pem and fleet-key.pem to each.",
        new.fingerprint_sha256(),
        retired.display(),
        new.fingerprint_sha256()
    )))
}

/// The second `--rollback`: drops the rolled-back CA once no node and not the caller depend on it.
async fn drop_rolled_back(
    control: &Control,
    files: &FleetFiles,
    cas: &FleetCas,
    actor_cert_der: Option<&[u8]>,
    now: OffsetDateTime,
) -> Result<Option<String>, ControlError> {
    if let Some(dropped) = cas.other() {
        let step = "the second --rollback";
        nothing_depends_on(control, cas, dropped, actor_cert_der, step, now).await?;
    }
    files.drop_abandoned().map_err(ControlError::internal_at(
        "dropping the rolled-back fleet CA",
    ))?;
    Ok(None)
}

/// Refuses a `step` that stops trusting `dropping` while an approved node's fleet certificate
/// does not come from the signing CA, or the administrator asking holds a certificate of
/// `dropping`: the step would lock them out.
async fn nothing_depends_on(
    control: &Control,
    cas: &FleetCas,
    dropping: &CertificateAuthority,
    actor_cert_der: Option<&[u8]>,
    step: &str,
    now: OffsetDateTime,
) -> Result<(), ControlError> {
    let waiting = pending_nodes(control, cas, now).await?;
    if !waiting.is_empty() {
        return Err(refused_while_pending(step, &waiting));
    }
    let Some(der) = actor_cert_der else {
        return Ok(());
    };
    let from_dropped = cas
        .issuer_of(der)
        .is_none_or(|ca| ca.fingerprint_sha256() == dropping.fingerprint_sha256());
    if !from_dropped {
        return Ok(());
    }
    Err(ControlError::conflict(
        "admin_certificate_from_old_ca",
        &format!(
            "your administrator certificate comes from the fleet CA that {step} stops trusting: \
             issue a new one (`calseg-server admin issue`), point server.toml's [admin] at it, \
             and run it again"
        ),
    ))
}

fn refused_while_pending(step: &str, waiting: &[String]) -> ControlError {
    const SHOWN: usize = 20;
    let mut names = waiting
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if waiting.len() > SHOWN {
        names.push_str(&format!(" and {} more", waiting.len() - SHOWN));
    }
    ControlError::conflict(
        "fleet_ca_pending",
        &format!(
            "{step} refused for now: {} approved node(s) still hold a fleet certificate from the \
             other CA: {names}. Agents renew at their next pass; an agent of the previous \
             release when its fleet certificate is due (at 2/3 of its life)",
            waiting.len()
        ),
    )
}

/// Approved nodes whose unexpired fleet certificate does not come from the signing CA. A
/// record from before issuers were recorded came from the CA in force.
async fn pending_nodes(
    control: &Control,
    cas: &FleetCas,
    now: OffsetDateTime,
) -> Result<Vec<String>, ControlError> {
    let nodes = control.store(|s| s.nodes()).await?;
    Ok(pending_of(&nodes, cas, now))
}

fn pending_of<'a>(
    nodes: impl IntoIterator<Item = &'a NodeRecord>,
    cas: &FleetCas,
    now: OffsetDateTime,
) -> Vec<String> {
    let signer = cas.signer().fingerprint_sha256();
    let current = cas.current.fingerprint_sha256();
    nodes
        .into_iter()
        .filter(|n| n.state == NodeState::Approved)
        .filter(|n| {
            n.fleet_cert.as_ref().is_some_and(|cert| {
                cert.not_after > now && *cert.issuer.as_ref().unwrap_or(&current) != signer
            })
        })
        .map(|n| n.name.clone())
        .collect()
}

/// Where a rotation of the fleet CA stands; `None` when none runs.
pub async fn status(
    control: &Control,
    now: OffsetDateTime,
) -> Result<Option<FleetRotationStatus>, ControlError> {
    status_of(control, None, now).await
}

/// [`status`], with the nodes when the caller has read them already (the metrics scrape).
pub async fn status_of(
    control: &Control,
    nodes: Option<&[&NodeRecord]>,
    now: OffsetDateTime,
) -> Result<Option<FleetRotationStatus>, ControlError> {
    let cas = control.fleet_cas();
    let (Some(phase), Some(other)) = (cas.phase(), cas.other()) else {
        return Ok(None);
    };
    let summary = |ca: &CertificateAuthority| CaSummary {
        fingerprint: ca.fingerprint_sha256(),
        not_after: ca.not_after().unix_timestamp(),
    };
    Ok(Some(FleetRotationStatus {
        phase,
        signing: summary(cas.signer()),
        other: summary(other),
        pending_nodes: match nodes {
            Some(nodes) => pending_of(nodes.iter().copied(), &cas, now),
            None => pending_nodes(control, &cas, now).await?,
        },
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::FleetCert;
    use std::sync::Arc;

    fn ca(name: &str) -> Arc<CertificateAuthority> {
        let now = OffsetDateTime::now_utc();
        Arc::new(CertificateAuthority::generate(CaKind::Fleet, name, NEW_CA_LIFETIME, now).unwrap())
    }

    #[test]
    fn pending_nodes_are_the_approved_ones_with_a_live_certificate_from_the_other_ca() {
        let now = OffsetDateTime::now_utc();
        let (old, new) = (ca("old"), ca("new"));
        let cas = FleetCas {
            current: old.clone(),
            rotation: Some((FleetRotationPhase::Overlap, new.clone())),
        };
        let node = |name: &str, state, issuer: Option<&Arc<CertificateAuthority>>, days: i64| {
            let mut r = NodeRecord::new(name, state, now);
            r.fleet_cert = Some(FleetCert {
                serial: "01".into(),
                not_after: now + time::Duration::days(days),
                key_fingerprint: None,
                issuer: issuer.map(|ca| ca.fingerprint_sha256()),
            });
            r
        };
        let nodes = [
            node("renewed", NodeState::Approved, Some(&new), 30),
            node("old", NodeState::Approved, Some(&old), 30),
            node("unrecorded", NodeState::Approved, None, 30),
            node("expired", NodeState::Approved, Some(&old), -1),
            node("revoked", NodeState::Revoked, Some(&old), 30),
        ];
        assert_eq!(pending_of(&nodes, &cas, now), ["old", "unrecorded"]);
        // Rolling back: the ones from the new CA wait.
        let back = FleetCas {
            current: old,
            rotation: Some((FleetRotationPhase::RollingBack, new)),
        };
        assert_eq!(pending_of(&nodes, &back, now), ["renewed"]);
    }
}
