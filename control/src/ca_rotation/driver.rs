//! The rotation's steps: the operator's (`begin`, `finish`, `pause`, `resume`, `rollback`,
//! through `POST /v1/admin/ca/etcd-client/{action}`), the leader's tick (probe the endpoints
//! while they do not all trust the new CA, then step the re-issuing waves), every replica's
//! [`resume_after_restart`] (put in force what the store says), and the status. Each change is
//! persisted first, then put in force (which wakes parked manifest long-polls).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use calseg_api::ca::{CaStatus, CaSummary, RotationAction, RotationPhase, RotationStatus};
use calseg_api::rollout::{RolloutAction, RolloutState, WaveRollout};
use time::OffsetDateTime;

use super::{ProbeTarget, RotationFiles, old_ca_identities, probe_endpoint};
use crate::ControlError;
use crate::etcd_signers::{EtcdCas, IssuerWaves};
use crate::node_calls::current_manifest;
use crate::pki::{CaKind, CertificateAuthority};
use crate::policy::{Budget, Canary, WaveSettings};
use crate::rollout::{
    Health, Step, apply_step, assign_waves, manual, next_step, node_health, wave_rollout,
};
use crate::state::Control;
use crate::store::{
    AuditAction, AuditOutcome, CaRotationRecord, IssuedRecord, NodeRecord, NodeState,
    RolloutRecord, Store, StoreError,
};

/// The CA calseg rotates here.
const CA: &str = calseg_api::ca::ETCD_CLIENT;

/// Lifetime of a new etcd client CA (as `init` makes one).
const NEW_CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);

/// How often the endpoints are probed while not all of them trust the new CA.
const PROBE_EVERY_SECS: i64 = 5;

/// How many identities a refusal lists before it counts the rest.
const LISTED: usize = 20;

/// The waves when the policy sets none for rollouts: a canary, then a tenth of the nodes at a
/// time, each wave healthy for 30 s before the next.
fn default_waves() -> WaveSettings {
    WaveSettings {
        canary: Some(Canary::Count(1)),
        wave: Some(Budget::Percent(10)),
        bake: Duration::from_secs(30),
        max_failures: 1,
    }
}

fn conflict(kind: &str, message: String) -> ControlError {
    ControlError::conflict(kind, &message)
}

fn files(control: &Control) -> Result<RotationFiles, ControlError> {
    control.rotation_ca_dir().map(RotationFiles::new)
}

/// The operator's `action` on the rotation of the etcd client CA, by `actor` (audited).
/// Returns what the operator should do next, when there is something.
pub async fn act(
    control: &Control,
    actor: &str,
    action: RotationAction,
    now: OffsetDateTime,
) -> Result<Option<String>, ControlError> {
    let _one_at_a_time = control.rotation_lock.lock().await;
    let record = control.store(|s| s.ca_rotation()).await?;
    let live = record.filter(|r| !r.phase.is_over());
    match (action, live) {
        (RotationAction::Begin, None) => begin(control, actor, now).await.map(Some),
        (RotationAction::Begin, Some(record)) => Err(conflict(
            "ca_rotation_in_progress",
            format!(
                "a rotation of the etcd client CA is already in progress (phase {}, begun by {} \
                 at {}): see `calseg-server ca status`; finish it or roll it back first",
                record.phase,
                record.begun_by,
                OffsetDateTime::from_unix_timestamp(record.begun_at).map_or_else(
                    |_| record.begun_at.to_string(),
                    |t| calseg_api::when::rfc3339(&t)
                )
            ),
        )),
        (_, None) => Err(conflict(
            "no_ca_rotation",
            "no rotation of the etcd client CA is in progress (`calseg-server ca rotate \
             etcd-client --begin` starts one)"
                .to_owned(),
        )),
        (RotationAction::Finish, Some(record)) => finish(control, actor, record, now).await,
        (RotationAction::Rollback, Some(record)) => rollback(control, actor, record, now).await,
        (RotationAction::Pause | RotationAction::Resume, Some(mut record)) => {
            let Some(waves) = &record.waves else {
                return Err(conflict(
                    "ca_rotation_state",
                    format!(
                        "the rotation is {}: there are no re-issuing waves to {} yet",
                        record.phase,
                        action.name()
                    ),
                ));
            };
            let wave_action = if action == RotationAction::Pause {
                RolloutAction::Pause
            } else {
                RolloutAction::Resume
            };
            record.waves = Some(
                manual(waves, wave_action)
                    .map_err(|m| conflict("ca_rotation_state", format!("the waves: {m}")))?,
            );
            audit(
                control,
                actor,
                AuditOutcome::Ok,
                format!("{}d", action.name()),
            )
            .await;
            save_and_apply(control, record).await?;
            Ok(None)
        }
    }
}

async fn begin(
    control: &Control,
    actor: &str,
    now: OffsetDateTime,
) -> Result<String, ControlError> {
    let files = files(control)?;
    let old = control.etcd_cas().current;
    let common_name = format!("calseg etcd client CA {}", now.date());
    let new =
        CertificateAuthority::generate(CaKind::EtcdClient, &common_name, NEW_CA_LIFETIME, now)
            .map_err(ControlError::internal_at(
                "generating the new etcd client CA",
            ))?;
    files
        .begin(&old, &new, &control.etcd_ca_bundle_pem)
        .map_err(ControlError::internal_at("writing the new etcd client CA"))?;
    let record = CaRotationRecord {
        ca: CA.to_owned(),
        old_fingerprint: old.fingerprint_sha256(),
        new_fingerprint: new.fingerprint_sha256(),
        phase: RotationPhase::Trusting,
        begun_at: now.unix_timestamp(),
        begun_by: actor.to_owned(),
        probes: Vec::new(),
        waves: None,
        ended_at: None,
    };
    let bundle = files.bundle();
    tracing::info!(new = %record.new_fingerprint, "etcd client CA rotation begun");
    audit(
        control,
        actor,
        AuditOutcome::Ok,
        format!("begun: new CA {}", record.new_fingerprint),
    )
    .await;
    let mut cas = control.etcd_cas();
    cas.next = Some(Arc::new(new));
    control.set_etcd_cas(cas);
    save_and_apply(control, record).await?;
    Ok(format!(
        "the new etcd client CA is made; nothing is issued from it until every etcd member \
         trusts it. Give each etcd member the bundle {} (old and new CA) as --trusted-ca-file \
         and restart the members one at a time; calseg probes them every {PROBE_EVERY_SECS} s \
         (`calseg-server ca status`). With several server replicas, copy {} and {} to each.",
        bundle.display(),
        files.next().cert.display(),
        files.next().key.display()
    ))
}

async fn finish(
    control: &Control,
    actor: &str,
    record: CaRotationRecord,
    now: OffsetDateTime,
) -> Result<Option<String>, ControlError> {
    match record.phase {
        RotationPhase::Reissued => {}
        RotationPhase::Trusting => {
            let untrusted = untrusted(&record);
            return Err(conflict(
                "ca_rotation_not_trusted",
                format!(
                    "not every etcd endpoint trusts the new CA yet ({}); nothing was issued \
                     from it, so there is nothing to finish",
                    if untrusted.is_empty() {
                        "not probed yet".to_owned()
                    } else {
                        untrusted.join(", ")
                    }
                ),
            ));
        }
        _ => {
            let waves = record.waves.as_ref();
            if waves.is_some_and(|w| w.state == RolloutState::RolledBack) {
                return Err(conflict(
                    "ca_rotation_rolled_back",
                    "the re-issuing waves were rolled back: finish the rollback with \
                     `--rollback` once no identity depends on the new CA"
                        .to_owned(),
                ));
            }
            return Err(conflict(
                "ca_rotation_waves_open",
                format!(
                    "identities are still being re-issued: {} of {} waves opened ({}); \
                     `calseg-server ca status` shows them",
                    waves.map_or(0, |w| w.opened_waves),
                    waves.map_or(0, |w| w.waves.len()),
                    waves.map_or("none".into(), |w| w.state.to_string())
                ),
            ));
        }
    }
    let pending = pending(control, &record.new_fingerprint, &record, now).await?;
    if !pending.is_empty() {
        return Err(conflict(
            "old_ca_still_in_use",
            format!(
                "{} live identities still depend on the old CA, so it is not retired: {}. \
                 Nodes re-issue on their next cycle; an agent older than this server does so \
                 at its next renewal (or now with `calseg-agent renew` on the node)",
                pending.len(),
                listed(&pending)
            ),
        ));
    }
    let files = files(control)?;
    let cas = control.etcd_cas();
    let Some(new) = cas.next.clone() else {
        return Err(missing_next());
    };
    let retired = files
        .finish(&cas.current, &new)
        .map_err(ControlError::internal_at("retiring the old etcd client CA"))?;
    control.set_etcd_cas(EtcdCas::single(new));
    let mut record = record;
    record.phase = RotationPhase::Finished;
    record.ended_at = Some(now.unix_timestamp());
    audit(
        control,
        actor,
        AuditOutcome::Ok,
        format!("finished: old CA {} retired", record.old_fingerprint),
    )
    .await;
    save_and_apply(control, record).await?;
    Ok(Some(format!(
        "the old etcd client CA is retired (its certificate kept as {}, its key deleted). Renew \
         component-wide identities (`calseg-server k8s secrets --renew`), which calseg does not \
         track, then drop the old CA from etcd's --trusted-ca-file: {} now holds the new CA \
         only; restart the etcd members one at a time.",
        retired.display(),
        files.bundle().display()
    )))
}

async fn rollback(
    control: &Control,
    actor: &str,
    mut record: CaRotationRecord,
    now: OffsetDateTime,
) -> Result<Option<String>, ControlError> {
    let files = files(control)?;
    let waves_rolled_back = record
        .waves
        .as_ref()
        .is_some_and(|w| w.state == RolloutState::RolledBack);
    if record.phase != RotationPhase::Trusting && !waves_rolled_back {
        // First, every node goes back to the old CA, under the restart budget.
        let waves = record
            .waves
            .get_or_insert_with(|| RolloutRecord::running(0, 0, Vec::new(), now.unix_timestamp()));
        waves.state = RolloutState::RolledBack;
        record.phase = RotationPhase::Reissuing;
        audit(
            control,
            actor,
            AuditOutcome::Ok,
            "rolling back: identities go back to the old CA".into(),
        )
        .await;
        save_and_apply(control, record).await?;
        return Ok(Some(
            "every node now re-issues its identities from the old CA. Run `--rollback` again \
             once no identity depends on the new CA (`calseg-server ca status`); only then \
             drop the new CA from etcd's --trusted-ca-file."
                .to_owned(),
        ));
    }
    if record.phase != RotationPhase::Trusting {
        let pending = pending(control, &record.old_fingerprint, &record, now).await?;
        if !pending.is_empty() {
            return Err(conflict(
                "new_ca_still_in_use",
                format!(
                    "{} live identities still depend on the new CA, so it is not dropped yet: {}",
                    pending.len(),
                    listed(&pending)
                ),
            ));
        }
    }
    files
        .drop_next()
        .and_then(|()| files.reset_bundle(&control.etcd_cas().current))
        .map_err(ControlError::internal_at("dropping the new etcd client CA"))?;
    control.set_etcd_cas(EtcdCas::single(control.etcd_cas().current));
    record.phase = RotationPhase::RolledBack;
    record.ended_at = Some(now.unix_timestamp());
    audit(
        control,
        actor,
        AuditOutcome::Ok,
        format!("rolled back: new CA {} dropped", record.new_fingerprint),
    )
    .await;
    save_and_apply(control, record).await?;
    Ok(Some(format!(
        "the new etcd client CA is dropped; {} holds the old CA only: give it back to etcd as \
         --trusted-ca-file.",
        files.bundle().display()
    )))
}

fn missing_next() -> ControlError {
    ControlError::unavailable(
        "new_etcd_ca_missing",
        "this server replica does not hold the new etcd client CA (etcd-client.next.pem and \
         its key in the CA directory): copy them from the replica that began the rotation, \
         then restart this one",
    )
}

fn untrusted(record: &CaRotationRecord) -> Vec<String> {
    record
        .probes
        .iter()
        .filter(|p| !p.trusted)
        .map(|p| format!("{}: {}", p.endpoint, p.detail))
        .collect()
}

fn listed(items: &[String]) -> String {
    let mut shown = items
        .iter()
        .take(LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > LISTED {
        shown.push_str(&format!(" and {} more", items.len() - LISTED));
    }
    shown
}

async fn audit(control: &Control, actor: &str, outcome: AuditOutcome, detail: String) {
    control
        .audit(actor, AuditAction::CaRotation, CA, outcome, detail)
        .await;
}

/// Every node with the certificates calseg issued it (approved nodes only: the others hold
/// no live identity), read in one pass.
pub type NodesWithIssued = Vec<(NodeRecord, Vec<IssuedRecord>)>;

/// Reads [`NodesWithIssued`].
pub fn read_nodes_with_issued(store: &dyn Store) -> Result<NodesWithIssued, StoreError> {
    store
        .nodes()?
        .into_iter()
        .map(|n| {
            let issued = if n.state == NodeState::Approved {
                store.issued_for_node(&n.name)?
            } else {
                Vec::new()
            };
            Ok((n, issued))
        })
        .collect()
}

/// The live identities not from CA `target` (`node/component`).
async fn pending(
    control: &Control,
    target: &str,
    record: &CaRotationRecord,
    now: OffsetDateTime,
) -> Result<Vec<String>, ControlError> {
    let nodes = control.store(read_nodes_with_issued).await?;
    Ok(old_ca_identities(
        &nodes,
        target,
        &record.old_fingerprint,
        now,
    ))
}

/// Persists `record` and puts in force which CA signs for whom.
async fn save_and_apply(control: &Control, record: CaRotationRecord) -> Result<(), ControlError> {
    let stored = record.clone();
    control.store(move |s| s.save_ca_rotation(&stored)).await?;
    apply(control, &record);
    Ok(())
}

/// Puts `record`'s view in force (only when it changes what nodes are served).
fn apply(control: &Control, record: &CaRotationRecord) {
    let issuers = IssuerWaves::of(record).map(Arc::new);
    let mut cas = control.etcd_cas();
    if cas.issuers != issuers {
        cas.issuers = issuers;
        control.set_etcd_cas(cas);
    }
}

/// At start, and on every replica every second: loads the new CA's files when a rotation needs
/// them, completes a `finish` or a rollback another replica (or this one, before a restart)
/// carried out, and puts in force who gets which CA.
pub async fn resume_after_restart(
    control: &Control,
    now: OffsetDateTime,
) -> Result<(), ControlError> {
    let Some(files) = control.ca_dir.as_deref().map(RotationFiles::new) else {
        return Ok(());
    };
    let Some(mut record) = control.store(|s| s.ca_rotation()).await? else {
        return Ok(());
    };
    let mut cas = control.etcd_cas();
    if cas.next.is_none() && cas.current.fingerprint_sha256() != record.new_fingerprint {
        let next = files
            .load_next(now)
            .map_err(ControlError::internal_at("loading the new etcd client CA"))?;
        cas.next = next
            .filter(|n| n.fingerprint_sha256() == record.new_fingerprint)
            .map(Arc::new);
    }
    match record.phase {
        RotationPhase::Finished if cas.current.fingerprint_sha256() != record.new_fingerprint => {
            let Some(new) = cas.next.clone() else {
                tracing::error!(
                    "the etcd client CA rotation finished, but this replica holds neither the new \
                     CA as etcd-client.pem nor as etcd-client.next.pem: copy the CA directory \
                     from the replica that finished it, then restart this one"
                );
                return Ok(());
            };
            files
                .finish(&cas.current, &new)
                .map_err(ControlError::internal_at("retiring the old etcd client CA"))?;
            cas = EtcdCas::single(new);
        }
        RotationPhase::RolledBack if cas.next.is_some() => {
            files
                .drop_next()
                .map_err(ControlError::internal_at("dropping the new etcd client CA"))?;
            cas = EtcdCas::single(cas.current);
        }
        phase if !phase.is_over() && cas.current.fingerprint_sha256() == record.new_fingerprint => {
            // `finish` swapped the files, then the server stopped before the store said so.
            record.phase = RotationPhase::Finished;
            record.ended_at = Some(now.unix_timestamp());
            let stored = record.clone();
            control.store(move |s| s.save_ca_rotation(&stored)).await?;
            cas.next = None;
        }
        _ => {}
    }
    cas.issuers = IssuerWaves::of(&record).map(Arc::new);
    control.set_etcd_cas(cas);
    Ok(())
}

/// The leader's step, every second: probes the endpoints while the new CA is not trusted
/// everywhere, starts the re-issuing waves once it is, and steps them.
pub async fn tick(control: &Control, now: OffsetDateTime) -> Result<(), ControlError> {
    let _one_at_a_time = control.rotation_lock.lock().await;
    let Some(record) = control.store(|s| s.ca_rotation()).await? else {
        return Ok(());
    };
    match record.phase {
        RotationPhase::Trusting => probe_all(control, record, now).await,
        RotationPhase::Reissuing => step_waves(control, record, now).await,
        _ => Ok(()),
    }
}

/// Every endpoint calseg and the components use.
fn endpoints(control: &Control) -> Vec<String> {
    let mut all: BTreeSet<String> = control.policy().etcd.endpoints.iter().cloned().collect();
    if let Some(access) = &control.etcd_access {
        all.extend(access.endpoints.iter().cloned());
    }
    all.into_iter().collect()
}

async fn probe_all(
    control: &Control,
    mut record: CaRotationRecord,
    now: OffsetDateTime,
) -> Result<(), ControlError> {
    let last = record.probes.iter().map(|p| p.checked_at).min();
    if last.is_some_and(|at| now.unix_timestamp() - at < PROBE_EVERY_SECS) {
        return Ok(());
    }
    let Some(next) = control.etcd_cas().next else {
        tracing::warn!(
            "the etcd client CA rotation waits: {}",
            missing_next().message
        );
        return Ok(());
    };
    let target = ProbeTarget::new(&next, &control.etcd_ca_bundle_pem, now)
        .map_err(ControlError::internal_at("making a probe identity"))?;
    let mut probes = Vec::new();
    for endpoint in endpoints(control) {
        probes.push(probe_endpoint(&target, &endpoint, now).await);
    }
    let changed = probes
        .iter()
        .map(|p| (&p.endpoint, p.trusted))
        .ne(record.probes.iter().map(|p| (&p.endpoint, p.trusted)));
    record.probes = probes;
    let untrusted = untrusted(&record);
    if !untrusted.is_empty() || record.probes.is_empty() {
        if changed {
            tracing::warn!(
                "etcd client CA rotation: waiting until every etcd endpoint trusts the new CA; \
                 not yet: {}",
                untrusted.join("; ")
            );
        }
        let stored = record.clone();
        return control.store(move |s| s.save_ca_rotation(&stored)).await;
    }
    // Every endpoint trusts it: re-issue in waves.
    let nodes: BTreeSet<String> = control
        .store(|s| s.nodes())
        .await?
        .into_iter()
        .filter(|r| {
            r.state == crate::store::NodeState::Approved
                && !control
                    .policy_for(&r.name)
                    .0
                    .components_for(&r.name)
                    .is_empty()
        })
        .map(|r| r.name)
        .collect();
    let policy = control.policy();
    let settings = policy.rollout.waves.clone().unwrap_or_else(default_waves);
    let seed = u64::from_str_radix(
        record
            .new_fingerprint
            .trim_start_matches("sha256:")
            .get(..12)
            .unwrap_or("0"),
        16,
    )
    .unwrap_or(0);
    let waves = assign_waves(&settings, seed, &nodes);
    let revision = control.policy_and_revision().1.unwrap_or(0);
    tracing::info!(
        waves = waves.len(),
        nodes = nodes.len(),
        "every etcd endpoint trusts the new etcd client CA: re-issuing identities in waves"
    );
    audit(
        control,
        "system",
        AuditOutcome::Ok,
        format!(
            "every etcd endpoint trusts the new CA: re-issuing {} nodes in {} waves",
            nodes.len(),
            waves.len()
        ),
    )
    .await;
    record.waves = Some(RolloutRecord::running(
        revision,
        revision,
        waves,
        now.unix_timestamp(),
    ));
    record.phase = RotationPhase::Reissuing;
    save_and_apply(control, record).await
}

/// The health of every node of the opened waves, against the manifest it is served now.
async fn opened_health(
    control: &Control,
    waves: &RolloutRecord,
) -> Result<HashMap<String, Health>, ControlError> {
    let nodes = control.store(|s| s.nodes()).await?;
    let opened: BTreeSet<&String> = waves
        .waves
        .iter()
        .take(waves.opened_waves)
        .flatten()
        .collect();
    Ok(nodes
        .iter()
        .filter(|r| opened.contains(&r.name))
        .map(|r| (r.name.clone(), health_now(control, r)))
        .collect())
}

fn health_now(control: &Control, record: &NodeRecord) -> Health {
    let target = current_manifest(control, &record.name, record.generation).map(|m| m.revision);
    node_health(record, target.as_deref())
}

async fn step_waves(
    control: &Control,
    mut record: CaRotationRecord,
    now: OffsetDateTime,
) -> Result<(), ControlError> {
    let Some(waves) = record.waves.clone() else {
        return Ok(());
    };
    if waves.state != RolloutState::Running {
        return Ok(());
    }
    let health = opened_health(control, &waves).await?;
    let settings = control
        .policy()
        .rollout
        .waves
        .clone()
        .unwrap_or_else(default_waves);
    let step = next_step(
        &waves,
        |node| health.get(node).copied().unwrap_or(Health::Healthy),
        settings.bake,
        settings.max_failures,
        now.unix_timestamp(),
    );
    let stepped = apply_step(&waves, &step, now.unix_timestamp());
    match &step {
        Step::Wait => return Ok(()),
        Step::OpenWave => {
            tracing::info!(
                wave = stepped.opened_waves,
                of = stepped.waves.len(),
                "etcd client CA rotation: wave opened"
            );
            audit(
                control,
                "system",
                AuditOutcome::Ok,
                format!(
                    "wave {} of {} opened",
                    stepped.opened_waves,
                    stepped.waves.len()
                ),
            )
            .await;
        }
        Step::Pause { failed } => {
            tracing::warn!(failed = %failed.join(" "), "etcd client CA rotation paused: failed nodes");
            audit(
                control,
                "system",
                AuditOutcome::Error,
                format!("paused: failed node(s): {}", failed.join(" ")),
            )
            .await;
        }
        Step::Finish => {
            tracing::info!("etcd client CA rotation: every wave re-issued and healthy");
            audit(
                control,
                "system",
                AuditOutcome::Ok,
                "every wave re-issued and healthy: `--finish` retires the old CA".into(),
            )
            .await;
            record.phase = RotationPhase::Reissued;
        }
        Step::MarkHealthy | Step::ClearHealthy => {}
    }
    record.waves = Some(stepped);
    save_and_apply(control, record).await
}

/// `GET /v1/admin/ca`: both CAs and the latest rotation.
pub async fn status(control: &Control, now: OffsetDateTime) -> Result<CaStatus, ControlError> {
    status_of(control, None, now).await
}

/// [`status`], with the nodes and their certificates when the caller has read them already
/// (the metrics scrape), else read here once when the rotation needs them.
pub async fn status_of(
    control: &Control,
    nodes: Option<&[(NodeRecord, Vec<IssuedRecord>)]>,
    now: OffsetDateTime,
) -> Result<CaStatus, ControlError> {
    let record = control.store(|s| s.ca_rotation()).await?;
    let cas = control.etcd_cas();
    let summary = |ca: &CertificateAuthority| CaSummary {
        fingerprint: ca.fingerprint_sha256(),
        not_after: ca.not_after().unix_timestamp(),
    };
    let mut out = CaStatus {
        etcd_client: summary(&cas.current),
        fleet: summary(&control.fleet_ca()),
        rotation: None,
        fleet_rotation: {
            let known: Option<Vec<&NodeRecord>> = nodes.map(|n| n.iter().map(|(r, _)| r).collect());
            crate::fleet_rotation::status_of(control, known.as_deref(), now).await?
        },
    };
    let Some(record) = record else {
        return Ok(out);
    };
    let has_waves = record.waves.as_ref().is_some_and(|w| !w.waves.is_empty());
    let read;
    let nodes = match nodes {
        Some(nodes) => nodes,
        None if has_waves || cas.issuers.is_some() => {
            read = control.store(read_nodes_with_issued).await?;
            &read
        }
        None => &[],
    };
    let old_ca_identities = match (&record.phase, &cas.issuers) {
        (RotationPhase::Reissuing | RotationPhase::Reissued, Some(issuers)) => {
            old_ca_identities(nodes, issuers.target(), &record.old_fingerprint, now)
        }
        _ => Vec::new(),
    };
    let waves = match &record.waves {
        Some(waves) if has_waves => Some(wave_status(control, waves, nodes)),
        _ => None,
    };
    let bundle_file = control
        .ca_dir
        .as_deref()
        .map(|dir| RotationFiles::new(dir).bundle().display().to_string())
        .unwrap_or_default();
    out.rotation = Some(RotationStatus {
        phase: record.phase,
        old_fingerprint: record.old_fingerprint.clone(),
        new_fingerprint: record.new_fingerprint.clone(),
        begun_at: record.begun_at,
        begun_by: record.begun_by.clone(),
        bundle_file,
        probes: record.probes.clone(),
        waves,
        old_ca_identities,
        new_ca_here: record.phase.is_over()
            || cas.next.is_some()
            || cas.current.fingerprint_sha256() == record.new_fingerprint,
    });
    Ok(out)
}

fn wave_status(
    control: &Control,
    record: &RolloutRecord,
    nodes: &[(NodeRecord, Vec<IssuedRecord>)],
) -> WaveRollout {
    let health = |_: &str, r: &NodeRecord| health_now(control, r);
    wave_rollout(record, Some(&health), nodes.iter().map(|(n, _)| n))
}
