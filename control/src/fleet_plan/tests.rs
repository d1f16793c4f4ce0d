use super::*;
use crate::policy::Policy;
use calseg_api::plan::FileChangeKind;
use time::OffsetDateTime;

fn policy(components: &str, rollout: &str) -> Policy {
    let text = format!(
        "calico_version = \"3.29\"\n[etcd]\nendpoints = [\"https://127.0.0.1:2379\"]\n\
         [components.calico-node]\ngrants = \"calico-node\"\nrestart = [\"calico-node.service\"]\n\
         [components.cni-plugin]\ngrants = \"cni-plugin\"\n\
         [[hosts]]\nmatch = \"w-*\"\ncomponents = [\"calico-node\"]\n\
         [[hosts]]\nnames = [\"w-1\"]\ncomponents = [{components}]\n{rollout}"
    );
    crate::policy::parse(&text, "p.toml").unwrap()
}

fn node(name: &str, state: NodeState) -> NodeRecord {
    NodeRecord::new(name, state, OffsetDateTime::UNIX_EPOCH)
}

#[test]
fn only_approved_nodes_whose_manifest_changes_are_listed_in_wave_order() {
    let now = policy("\"calico-node\"", "");
    let candidate = policy(
        "\"calico-node\", \"cni-plugin\"",
        "[rollout]\ncanary = [\"w-1\"]\n",
    );
    let enrolled = [
        node("w-2", NodeState::Approved),
        node("w-1", NodeState::Approved),
        node("w-3", NodeState::Pending),
        node("w-4", NodeState::Revoked),
    ];
    let served = |r: &NodeRecord| manifest_for(&now, &r.name, r.generation, "CA");
    let waves = vec![vec!["w-1".to_owned()], vec!["w-2".to_owned()]];
    let (changed, unchanged) = node_plans(&candidate, &enrolled, &served, "CA", Some(&waves));
    assert_eq!(unchanged, ["w-2"]);
    assert_eq!(changed.len(), 1, "{changed:?}");
    let w1 = &changed[0];
    assert_eq!((w1.node.as_str(), w1.wave), ("w-1", Some(1)));
    assert_eq!(w1.files.len(), 3);
    assert!(w1.files.iter().all(|f| f.change == FileChangeKind::Added));
    assert!(w1.restart.is_empty(), "cni-plugin restarts nothing");
    assert_ne!(w1.revision_now, w1.revision_planned);

    // Without waves every node lands at once.
    let (changed, _) = node_plans(&candidate, &enrolled, &served, "CA", None);
    assert_eq!(changed[0].wave, None);
    // The policy in force plans no node change.
    let (changed, unchanged) = node_plans(&now, &enrolled, &served, "CA", None);
    assert!(changed.is_empty());
    assert_eq!(unchanged, ["w-1", "w-2"]);
}
