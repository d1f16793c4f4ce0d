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
    let mut out = crate::cli::output::table(&["NODE", "WAVE", "FILES", "RESTART"], rows);
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
