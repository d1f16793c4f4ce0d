//! The fleet plan for people: the RBAC diff, a table of the nodes that change (node, wave,
//! files, units to restart), then one summary line. Unchanged nodes are counted; `all` lists
//! them and every changed file too.

use calseg_api::plan::{FileChangeKind, FleetPlan, NodePlan, PlanSource, RbacDiff};
use std::fmt::Write as _;

/// The whole plan as text.
pub fn render(plan: &FleetPlan, all: bool) -> String {
    let mut out = rbac_text(&plan.rbac);
    if !plan.nodes_known {
        out.push_str(
            "Nodes: not known to a direct plan (it sees only etcd); plan through the running \
             server, without --direct, for each node's files, units and wave.\n",
        );
    } else if !plan.nodes.is_empty() || (all && !plan.unchanged.is_empty()) {
        out.push('\n');
        out.push_str(&node_table(plan, all));
    }
    out.push_str(&summary(plan, all));
    out
}

fn rbac_text(rbac: &RbacDiff) -> String {
    let mut out = String::new();
    if rbac.changes.is_empty() && rbac.conflicts.is_empty() {
        out.push_str("No changes: etcd's users and roles match the policy.\n");
        return out;
    }
    let summary: Vec<String> = rbac
        .counts
        .iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    let _ = writeln!(out, "Plan: {}.", summary.join(", "));
    for change in &rbac.changes {
        let _ = writeln!(out, "  {}", change.text);
    }
    for conflict in &rbac.conflicts {
        let _ = writeln!(out, "  ! {}", conflict.text);
    }
    out
}

fn node_table(plan: &FleetPlan, all: bool) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for node in &plan.nodes {
        rows.push(vec![
            node.node.clone(),
            node.wave.map_or_else(|| "-".to_owned(), |w| w.to_string()),
            file_counts(node),
            if node.restart.is_empty() {
                "-".to_owned()
            } else {
                node.restart.join(",")
            },
        ]);
    }
    if all {
        for name in &plan.unchanged {
            rows.push(vec![
                name.clone(),
                "-".into(),
                "unchanged".into(),
                "-".into(),
            ]);
        }
    }
    let mut out = super::output::table(&["NODE", "WAVE", "FILES", "RESTART"], rows);
    // With --all, each changed node's files under its name, after the table.
    if all {
        for node in plan.nodes.iter().filter(|n| !n.files.is_empty()) {
            let _ = writeln!(out, "{}:", node.node);
            for file in &node.files {
                let _ = writeln!(out, "    {} {}", symbol(file.change), file.path);
            }
        }
    }
    out
}

fn symbol(change: FileChangeKind) -> &'static str {
    match change {
        FileChangeKind::Added => "+",
        FileChangeKind::Removed => "-",
        FileChangeKind::Changed => "~",
        FileChangeKind::Attributes => "m",
    }
}

/// e.g. `4 added, 1 changed`; `none` when only the manifest's revision changes.
fn file_counts(node: &NodePlan) -> String {
    let kinds = [
        (FileChangeKind::Added, "added"),
        (FileChangeKind::Changed, "changed"),
        (FileChangeKind::Attributes, "mode/owner"),
        (FileChangeKind::Removed, "removed"),
    ];
    let parts: Vec<String> = kinds
        .iter()
        .filter_map(|(kind, word)| {
            let n = node.files.iter().filter(|f| f.change == *kind).count();
            (n > 0).then(|| format!("{n} {word}"))
        })
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

fn summary(plan: &FleetPlan, all: bool) -> String {
    let rbac = plan.rbac.changes.len();
    let conflicts = match plan.rbac.conflicts.len() {
        0 => String::new(),
        n => format!(", {n} conflict(s)"),
    };
    if plan.source == PlanSource::Direct || !plan.nodes_known {
        return format!("Summary: {rbac} etcd RBAC change(s){conflicts}; nodes not known.\n");
    }
    let files: usize = plan.nodes.iter().map(|n| n.files.len()).sum();
    let units: usize = plan.nodes.iter().map(|n| n.restart.len()).sum();
    let waves: std::collections::BTreeSet<u32> = plan.nodes.iter().filter_map(|n| n.wave).collect();
    let waves = if waves.is_empty() {
        "at once".to_owned()
    } else {
        format!("in {} wave(s)", waves.len())
    };
    let unchanged = match plan.unchanged.len() {
        0 => String::new(),
        n if all => format!(" ({n} unchanged)"),
        n => format!(" ({n} unchanged, not listed; --all lists them)"),
    };
    format!(
        "Summary: {rbac} etcd RBAC change(s){conflicts}; {} of {} enrolled node(s) change{unchanged}: \
         {files} file(s), {units} unit restart(s), {waves}.\n",
        plan.nodes.len(),
        plan.nodes.len() + plan.unchanged.len(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::fleet_plan::{node_plans, rbac_diff};
    use crate::manifest::manifest_for;
    use crate::policy::Policy;
    use crate::store::{NodeRecord, NodeState};
    use calseg_api::plan::{FleetPlan, PlanSource};
    use time::OffsetDateTime;

    fn policy(components: &str) -> Policy {
        let text = format!(
            "calico_version = \"3.29\"\n[etcd]\nendpoints = [\"https://127.0.0.1:2379\"]\n\
             [components.calico-node]\ngrants = \"calico-node\"\n\
             restart = [\"calico-node.service\"]\n\
             [components.cni-plugin]\ngrants = \"cni-plugin\"\n\
             [[hosts]]\nmatch = \"w-*\"\ncomponents = [\"calico-node\"]\n\
             [[hosts]]\nnames = [\"w-1\"]\ncomponents = [{components}]\n"
        );
        crate::policy::parse(&text, "p.toml").unwrap()
    }

    #[test]
    fn the_rbac_part_keeps_each_change_and_the_text_lists_changed_nodes_only() {
        let now = policy("\"calico-node\"");
        let candidate = policy("\"calico-node\", \"cni-plugin\"");
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
            NodeRecord::new("w-1", NodeState::Approved, OffsetDateTime::UNIX_EPOCH),
            NodeRecord::new("w-2", NodeState::Approved, OffsetDateTime::UNIX_EPOCH),
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
}
