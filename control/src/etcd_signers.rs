//! The etcd client CAs the server holds and which signs for which node ([`EtcdCas`],
//! [`IssuerWaves`]). Before a rotation's re-issuing waves start, and after the rotation, one
//! CA signs for everyone and manifests name none; while they run, nodes of opened waves (and
//! nodes outside every wave, which enrolled meanwhile) get the new CA and the others keep the
//! old one. `ca_rotation` decides; `state`, `manifest` and signing read it here.

use std::collections::HashSet;
use std::sync::Arc;

use calseg_api::ca::RotationPhase;
use calseg_api::rollout::RolloutState;

use crate::pki::CertificateAuthority;
use crate::store::CaRotationRecord;

/// The CA each node's identities come from while identities are re-issued in waves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerWaves {
    old: String,
    new: String,
    /// Nodes of the waves not opened yet: they keep the old CA, and their manifests name none
    /// (their certificates, also those issued before issuers were recorded, stay as they are).
    unopened: HashSet<String>,
    /// The waves were rolled back: every node goes back to the old CA.
    all_old: bool,
}

impl IssuerWaves {
    /// The view `record` gives, `None` when manifests name no CA (before every endpoint trusts
    /// the new one, and once the rotation is over).
    pub fn of(record: &CaRotationRecord) -> Option<Self> {
        if !matches!(
            record.phase,
            RotationPhase::Reissuing | RotationPhase::Reissued
        ) {
            return None;
        }
        let all_old = record
            .waves
            .as_ref()
            .is_some_and(|w| w.state == RolloutState::RolledBack);
        let unopened = match &record.waves {
            Some(waves) if record.phase == RotationPhase::Reissuing => {
                let opened = match waves.state {
                    RolloutState::Done => waves.waves.len(),
                    _ => waves.opened_waves,
                };
                waves.waves.iter().skip(opened).flatten().cloned().collect()
            }
            _ => HashSet::new(),
        };
        Some(Self {
            old: record.old_fingerprint.clone(),
            new: record.new_fingerprint.clone(),
            unopened,
            all_old,
        })
    }

    /// Whether `node` (`None`: a component-wide identity) gets the new CA.
    pub fn new_for(&self, node: Option<&str>) -> bool {
        !self.all_old && node.is_none_or(|node| !self.unopened.contains(node))
    }

    /// The fingerprint of the CA identities must come from at the end of these waves: the new
    /// one, or the old one after a rollback.
    pub fn target(&self) -> &str {
        if self.all_old { &self.old } else { &self.new }
    }

    /// The CA `node`'s manifest names: the target once its wave opened (or for a node outside
    /// every wave), none while its wave is closed, so nothing moves before its wave.
    pub fn issuer_for(&self, node: &str) -> Option<&str> {
        (!self.unopened.contains(node)).then(|| self.target())
    }
}

/// The etcd client CAs the server holds: the one in force, the new one during a rotation, and
/// which signs for whom.
#[derive(Debug, Clone)]
pub struct EtcdCas {
    pub current: Arc<CertificateAuthority>,
    /// The new CA from `begin` until `finish` (when it becomes `current`) or a rollback.
    pub next: Option<Arc<CertificateAuthority>>,
    pub issuers: Option<Arc<IssuerWaves>>,
}

impl EtcdCas {
    /// One CA, no rotation.
    pub fn single(current: Arc<CertificateAuthority>) -> Self {
        Self {
            current,
            next: None,
            issuers: None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::RolloutRecord;

    fn record(phase: RotationPhase, opened: usize) -> CaRotationRecord {
        CaRotationRecord {
            ca: "etcd-client".into(),
            old_fingerprint: "sha256:old".into(),
            new_fingerprint: "sha256:new".into(),
            phase,
            begun_at: 0,
            begun_by: "admin:a".into(),
            probes: Vec::new(),
            waves: Some(RolloutRecord {
                from_revision: 1,
                to_revision: 1,
                state: RolloutState::Running,
                opened_waves: opened,
                wave_opened_at: Vec::new(),
                wave_healthy_at: None,
                created_at: 0,
                waves: vec![vec!["a".into()], vec!["b".into(), "c".into()]],
            }),
            ended_at: None,
        }
    }

    #[test]
    fn nodes_of_opened_waves_and_newcomers_get_the_new_ca() {
        let waves = IssuerWaves::of(&record(RotationPhase::Reissuing, 1)).unwrap();
        assert_eq!(waves.issuer_for("a"), Some("sha256:new"));
        assert!(waves.new_for(Some("a")));
        // A closed wave's nodes are signed by the old CA and their manifests name none.
        assert_eq!(waves.issuer_for("b"), None);
        assert!(!waves.new_for(Some("c")));
        assert_eq!(waves.issuer_for("enrolled-later"), Some("sha256:new"));
        assert!(waves.new_for(None));
    }

    #[test]
    fn manifests_name_no_ca_outside_the_waves() {
        for phase in [
            RotationPhase::Trusting,
            RotationPhase::Finished,
            RotationPhase::RolledBack,
        ] {
            assert!(IssuerWaves::of(&record(phase, 2)).is_none(), "{phase}");
        }
        let all = IssuerWaves::of(&record(RotationPhase::Reissued, 1)).unwrap();
        assert_eq!(all.issuer_for("c"), Some("sha256:new"));
    }

    #[test]
    fn a_rolled_back_wave_record_gives_everyone_the_old_ca() {
        let mut rolled = record(RotationPhase::Reissuing, 2);
        rolled.waves.as_mut().unwrap().state = RolloutState::RolledBack;
        let waves = IssuerWaves::of(&rolled).unwrap();
        assert_eq!(waves.issuer_for("a"), Some("sha256:old"));
        assert_eq!(waves.issuer_for("c"), Some("sha256:old"));
        assert_eq!(waves.issuer_for("enrolled-later"), Some("sha256:old"));
        assert!(!waves.new_for(None));
        assert!(!waves.new_for(Some("a")));
        // Rolled back with a wave still closed: its nodes never moved, and nothing names a CA.
        let mut early = record(RotationPhase::Reissuing, 1);
        early.waves.as_mut().unwrap().state = RolloutState::RolledBack;
        let waves = IssuerWaves::of(&early).unwrap();
        assert_eq!(waves.issuer_for("a"), Some("sha256:old"));
        assert_eq!(waves.issuer_for("b"), None);
        assert_eq!(waves.target(), "sha256:old");
    }
}
