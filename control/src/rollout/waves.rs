//! Wave assignment: the canary first (named nodes, or the first `canary` nodes of the stable
//! order), then the other nodes sorted by a hash of (target revision, node name), `wave` at a
//! time. The same nodes and revision always give the same waves; another revision reshuffles
//! them, so the same nodes are not always first.

use crate::policy::{Canary, WaveSettings};
use std::collections::BTreeSet;

/// The waves of a rollout to `to_revision` over `nodes`; no empty wave.
pub fn assign_waves(
    settings: &WaveSettings,
    to_revision: u64,
    nodes: &BTreeSet<String>,
) -> Vec<Vec<String>> {
    let mut order: Vec<(u64, &String)> = nodes
        .iter()
        .map(|node| (stable_hash(to_revision, node), node))
        .collect();
    order.sort();
    let order: Vec<String> = order.into_iter().map(|(_, node)| node.clone()).collect();
    let canary: Vec<String> = match &settings.canary {
        None => Vec::new(),
        Some(Canary::Count(n)) => order
            .iter()
            .take(usize::try_from(*n).unwrap_or(usize::MAX))
            .cloned()
            .collect(),
        Some(Canary::Nodes(names)) => {
            let mut seen = BTreeSet::new();
            names
                .iter()
                .filter(|n| nodes.contains(*n) && seen.insert(n.as_str()))
                .cloned()
                .collect()
        }
    };
    let rest: Vec<String> = order.into_iter().filter(|n| !canary.contains(n)).collect();
    let size = settings
        .wave
        .map_or(rest.len(), |wave| {
            usize::try_from(wave.limit(nodes.len())).unwrap_or(usize::MAX)
        })
        .max(1);
    let mut waves = Vec::new();
    if !canary.is_empty() {
        waves.push(canary);
    }
    waves.extend(rest.chunks(size).map(<[String]>::to_vec));
    waves
}

/// The first 8 bytes of SHA-256("{revision}/{node}").
fn stable_hash(revision: u64, node: &str) -> u64 {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{revision}/{node}").as_bytes(),
    );
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::policy::Budget;
    use std::time::Duration;

    fn settings(canary: Option<Canary>, wave: Option<Budget>) -> WaveSettings {
        WaveSettings {
            canary,
            wave,
            bake: Duration::ZERO,
            max_failures: 1,
        }
    }

    fn fleet(n: usize) -> BTreeSet<String> {
        (0..n).map(|i| format!("sim-{i:03}")).collect()
    }

    #[test]
    fn the_canary_goes_first_and_later_waves_have_the_wave_size() {
        let nodes = fleet(200);
        let waves = assign_waves(
            &settings(Some(Canary::Count(1)), Some(Budget::Percent(25))),
            2,
            &nodes,
        );
        let sizes: Vec<usize> = waves.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 50, 50, 50, 49]);
        let all: BTreeSet<String> = waves.iter().flatten().cloned().collect();
        assert_eq!(all, nodes, "every node exactly once");

        let named = assign_waves(
            &settings(
                Some(Canary::Nodes(vec![
                    "sim-007".into(),
                    "absent".into(),
                    "sim-007".into(),
                ])),
                Some(Budget::Count(60)),
            ),
            2,
            &nodes,
        );
        assert_eq!(named[0], ["sim-007"]);
        let sizes: Vec<usize> = named.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 60, 60, 60, 19]);
    }

    #[test]
    fn assignment_is_deterministic_and_depends_on_the_revision() {
        let nodes = fleet(50);
        let s = settings(Some(Canary::Count(2)), Some(Budget::Count(10)));
        assert_eq!(assign_waves(&s, 3, &nodes), assign_waves(&s, 3, &nodes));
        assert_ne!(assign_waves(&s, 3, &nodes), assign_waves(&s, 4, &nodes));
        let mut sorted = assign_waves(&s, 3, &nodes)[1].clone();
        sorted.sort();
        assert_ne!(sorted, assign_waves(&s, 3, &nodes)[1], "not name order");
    }

    #[test]
    fn without_a_wave_size_everyone_after_the_canary_is_one_wave_and_no_wave_is_empty() {
        let waves = assign_waves(&settings(Some(Canary::Count(3)), None), 1, &fleet(10));
        assert_eq!(waves.iter().map(Vec::len).collect::<Vec<_>>(), [3, 7]);
        let waves = assign_waves(&settings(Some(Canary::Count(5)), None), 1, &fleet(2));
        assert_eq!(waves.iter().map(Vec::len).collect::<Vec<_>>(), [2]);
        assert!(assign_waves(&settings(None, Some(Budget::Count(5))), 1, &fleet(0)).is_empty());
    }
}
