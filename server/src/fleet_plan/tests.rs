use super::*;
use crate::policy::Policy;
use calseg_api::plan::{FileChangeKind, FleetPlan, PlanSource};
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

#[test]
fn the_rbac_part_keeps_each_change_and_the_text_lists_changed_nodes_only() {
    let now = policy("\"calico-node\"", "");
    let candidate = policy("\"calico-node\", \"cni-plugin\"", "");
    let nodes = crate::rbac::first_generation(["w-1".to_owned()].into_iter().collect());
    let live = crate::rbac::LiveAuth::default();
    let rbac = crate::rbac::diff(
        &crate::rbac::desired_state(&candidate, &nodes),
        &live,
        false,
    );
    let diff = rbac_diff(&rbac);
    assert_eq!(diff.changes.len(), rbac.changes.len());
    let user = diff.changes.iter().find(|c| c.op == "create_user").unwrap();
    assert_eq!(user.user.as_deref(), Some("calico-node.w-1"));
    assert_eq!(user.text, "+ user calico-node.w-1");
    assert!(diff.changes.iter().any(|c| c.grant.is_some()));

    let enrolled = [
        node("w-1", NodeState::Approved),
        node("w-2", NodeState::Approved),
    ];
    let served = |r: &NodeRecord| manifest_for(&now, &r.name, r.generation, "CA");
    let (nodes, unchanged) = node_plans(&candidate, &enrolled, &served, "CA", None);
    let plan = FleetPlan {
        source: PlanSource::Server,
        policy: "p.toml".into(),
        rbac: diff,
        nodes_known: true,
        nodes,
        unchanged,
        policy_warnings: Vec::new(),
        etcd_warnings: Vec::new(),
    };
    let text = render(&plan, false);
    assert!(text.contains("+ user calico-node.w-1\n"), "{text}");
    assert!(text.contains("NODE  WAVE  FILES    RESTART\n"), "{text}");
    assert!(text.contains("w-1   -     3 added  -\n"), "{text}");
    assert!(!text.contains("w-2"), "{text}");
    assert!(
        text.ends_with("1 of 2 enrolled node(s) change (1 unchanged, not listed; --all lists them): 3 file(s), 0 unit restart(s), at once.\n"),
        "{text}"
    );
    let wide = render(&plan, true);
    assert!(wide.contains("w-2   -     unchanged"), "{wide}");
    assert!(
        wide.contains("w-1:\n    + /etc/calico/certs/cni-plugin/ca.pem\n")
            && wide.contains("    + /etc/calico/certs/cni-plugin/key.pem\n"),
        "{wide}"
    );
    // JSON round trip: the CLI reads what the server writes.
    let json = serde_json::to_string(&plan).unwrap();
    assert_eq!(serde_json::from_str::<FleetPlan>(&json).unwrap(), plan);
}
