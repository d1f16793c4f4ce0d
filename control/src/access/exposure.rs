//! What each calseg identity reaches beyond its own node: other nodes' node-scoped keys
//! ([`NODE_SCOPED`]) and the keys shared by design ([`SHARED_BY_DESIGN`], with reasons).
//!
//! The fleet is every node that has a calseg user in etcd (a user holding a `calseg.` role,
//! `rbac::is_calseg_user`, whose name the policy's user template spells). Reading is checked
//! apart from writing; a range is reached wholly ("all": a list or watch of it is allowed) or
//! in part ("some").

use super::effective::{Op, UserAccess};
use super::identity::{Owner, owner_of};
use super::ranges::{KeyInterval, RangeSet};
use super::scopes::{NODE_SCOPED, SHARED_BY_DESIGN, reason_for, shared_for};
use crate::policy::Policy;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// `exposure`: `{"nodes": [...], "identities": [{"user", "component", "node", "root",
/// "rows": [{"prefix", "keys", "access", "scope", "reach", "nodes", "reason"}]}]}`, sorted by
/// user, rows by prefix, keys, access, scope and reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exposure {
    /// Every node with a calseg user, sorted.
    pub nodes: Vec<String>,
    pub identities: Vec<IdentityExposure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityExposure {
    pub user: String,
    /// `None` when the name does not match the user template for any component of the policy.
    pub component: Option<String>,
    pub node: Option<String>,
    /// Holds etcd's root role: reaches every key of every node (no rows are listed).
    pub root: bool,
    pub rows: Vec<Row>,
}

/// Keys of one family an identity reaches with one access.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Row {
    /// What the keys of the row share, e.g. `/calico/felix/v1/host/`.
    pub prefix: String,
    /// The keys, e.g. `/calico/felix/v1/host/{node}/` or `/calico/ipam/v2/assignment/`.
    pub keys: String,
    pub access: Op,
    pub scope: Scope,
    pub reach: Reach,
    /// The other nodes whose keys are reached (scope `node`); empty for scope `shared`.
    pub nodes: Vec<String>,
    /// Why this is so by design; `null` when it is not.
    pub reason: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Other nodes' node-scoped keys.
    Node,
    /// Keys no node owns.
    Shared,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reach {
    /// Every key of the range (a list or watch of it is allowed).
    All,
    /// Some keys of the range.
    Some,
}

/// The exposure of every identity in `identities` (by user name), or of those of `component`.
pub fn exposure(
    policy: &Policy,
    identities: &BTreeMap<String, UserAccess>,
    component: Option<&str>,
) -> Exposure {
    let owners: BTreeMap<&str, Option<Owner>> = identities
        .keys()
        .map(|user| (user.as_str(), owner_of(policy, user)))
        .collect();
    let nodes: BTreeSet<&str> = owners.values().flatten().map(|o| o.node.as_str()).collect();
    let node_keys = RangeSet::of(
        nodes
            .iter()
            .flat_map(|node| NODE_SCOPED.iter().map(|s| s.instance(node))),
    );
    let identities = identities
        .iter()
        .filter_map(|(user, access)| {
            let owner = owners.get(user.as_str()).cloned().flatten();
            if component.is_some() && owner.as_ref().map(|o| o.component.as_str()) != component {
                return None;
            }
            let own = owner.as_ref().map(|o| o.node.as_str());
            let mut rows = Vec::new();
            if !access.root {
                rows.extend(node_rows(access, own, &nodes));
                rows.extend(shared_rows(access, &node_keys));
                rows.sort();
            }
            Some(IdentityExposure {
                user: user.clone(),
                component: owner.as_ref().map(|o| o.component.clone()),
                node: owner.map(|o| o.node),
                root: access.root,
                rows,
            })
        })
        .collect();
    Exposure {
        nodes: nodes.into_iter().map(str::to_owned).collect(),
        identities,
    }
}

/// Other nodes' node-scoped keys that `access` reaches.
fn node_rows(access: &UserAccess, own: Option<&str>, nodes: &BTreeSet<&str>) -> Vec<Row> {
    let mut rows = Vec::new();
    for scoped in NODE_SCOPED {
        for op in [Op::Read, Op::Write] {
            let ranges = access.ranges(op);
            let mut reached: BTreeMap<Reach, Vec<String>> = BTreeMap::new();
            for node in nodes.iter().filter(|n| Some(**n) != own) {
                let keys = scoped.instance(node);
                let reach = if ranges.covers(&keys) {
                    Reach::All
                } else if ranges.intersects(&keys) {
                    Reach::Some
                } else {
                    continue;
                };
                reached.entry(reach).or_default().push((*node).to_owned());
            }
            for (reach, nodes) in reached {
                let reason = nodes
                    .first()
                    .and_then(|node| reason_for(op, &scoped.instance(node)));
                rows.push(Row {
                    prefix: scoped.family().to_owned(),
                    keys: scoped.template.to_owned(),
                    access: op,
                    scope: Scope::Node,
                    reach,
                    nodes,
                    reason,
                });
            }
        }
    }
    rows
}

/// Shared-by-design ranges that `access` reaches outside every node's own keys. Each key
/// counts once, for the most specific entry holding it.
fn shared_rows(access: &UserAccess, node_keys: &RangeSet) -> Vec<Row> {
    debug_assert!(!SHARED_BY_DESIGN.is_empty());
    let mut rows = Vec::new();
    for op in [Op::Read, Op::Write] {
        let ranges = access.ranges(op);
        let mut claimed: Vec<KeyInterval> = node_keys
            .merged()
            .iter()
            .map(|m| m.interval.clone())
            .collect();
        for shared in shared_for(op) {
            let range = shared.range();
            let excluded = RangeSet::of(claimed.iter().cloned());
            let outside = ranges
                .intersection(&range)
                .iter()
                .any(|piece| !excluded.covers(piece));
            if outside {
                rows.push(Row {
                    prefix: shared.prefix.to_owned(),
                    keys: shared.keys.to_owned(),
                    access: op,
                    scope: Scope::Shared,
                    reach: if ranges.covers(&range) {
                        Reach::All
                    } else {
                        Reach::Some
                    },
                    nodes: Vec::new(),
                    reason: Some(shared.reason),
                });
            }
            claimed.push(range);
        }
    }
    rows
}

impl Exposure {
    /// For people: one block per identity, one line per row.
    pub fn render_text(&self) -> String {
        let mut out = format!(
            "{} calseg identities on {} nodes: {}\n",
            self.identities.len(),
            self.nodes.len(),
            self.nodes.join(", ")
        );
        for identity in &self.identities {
            match (&identity.component, &identity.node) {
                (Some(c), Some(n)) => out.push_str(&format!("{} ({c} on {n})\n", identity.user)),
                _ => out.push_str(&format!(
                    "{} (node unknown: the name does not match the policy's user template)\n",
                    identity.user
                )),
            }
            if identity.root {
                out.push_str("  holds etcd's root role: every key of every node\n");
            } else if identity.rows.is_empty() {
                out.push_str("  no other node's keys\n");
            }
            for row in &identity.rows {
                let reach = match row.reach {
                    Reach::All => "all keys",
                    Reach::Some => "some keys",
                };
                let nodes = row.nodes.join(", ");
                let whose = match (row.scope, row.reason) {
                    (Scope::Node, None) => format!("{reach} of {nodes}"),
                    (Scope::Node, Some(r)) => format!("{reach} of {nodes}, by design: {r}"),
                    (Scope::Shared, None) => format!("{reach}, shared"),
                    (Scope::Shared, Some(r)) => format!("{reach}, shared by design: {r}"),
                };
                out.push_str(&format!("  {:<5}  {}  {whose}\n", row.access, row.keys));
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::access::scopes::R3;
    use crate::rbac::EtcdGrant;
    use calseg_api::access::Access;

    const POLICY: &str = r#"calico_version = "3.29"
[etcd]
endpoints = ["https://127.0.0.1:2379"]
[components.calico-node]
grants = "calico-node"
[[hosts]]
names = ["node1"]
components = ["calico-node"]
"#;

    fn prefix(key: &str, access: Access) -> EtcdGrant {
        EtcdGrant {
            key: key.as_bytes().to_vec(),
            range_end: crate::policy::prefix_end(key.as_bytes()).unwrap(),
            access,
        }
    }

    fn identity(user: &str, grants: Vec<EtcdGrant>) -> (String, UserAccess) {
        let roles = BTreeSet::from([format!("r.{user}")]);
        let permissions = BTreeMap::from([(format!("r.{user}"), grants.into_iter().collect())]);
        (user.to_owned(), UserAccess::new(user, &roles, &permissions))
    }

    #[test]
    fn other_nodes_keys_and_shared_ranges_each_get_a_row() {
        let policy = crate::policy::parse(POLICY, "policy.toml").unwrap();
        let identities = BTreeMap::from([
            // No trailing slash: node10's felix keys too.
            identity(
                "calico-node.node1",
                vec![prefix("/calico/felix/v1/host/node1", Access::Write)],
            ),
            identity("calico-node.node10", vec![]),
            // Reads all of R3 (own and other nodes' Node objects included).
            identity(
                "calico-node.node2",
                vec![prefix(&format!("{R3}/"), Access::Read)],
            ),
            identity("stray", vec![prefix("/", Access::ReadWrite)]),
        ]);
        let report = exposure(&policy, &identities, None);
        assert_eq!(report.nodes, ["node1", "node10", "node2"]);
        let rows = |user: &str| {
            report
                .identities
                .iter()
                .find(|i| i.user == user)
                .unwrap()
                .rows
                .iter()
                .map(|r| {
                    format!(
                        "{} {} {:?} {:?} {} {}",
                        r.access,
                        r.keys,
                        r.scope,
                        r.reach,
                        r.nodes.join(","),
                        r.reason.is_some()
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            rows("calico-node.node1"),
            ["write /calico/felix/v1/host/{node}/ Node All node10 false"]
        );
        assert!(rows("calico-node.node10").is_empty());
        assert_eq!(
            rows("calico-node.node2"),
            [
                format!("read {R3}/ Shared All  true"),
                format!("read {R3}/felixconfigurations/node.{{node}} Node All node1,node10 true"),
                format!("read {R3}/nodes/{{node}} Node All node1,node10 true"),
                format!("read {R3}/workloadendpoints/ Shared All  true"),
            ]
        );
        // A user the template does not spell: every node is another node.
        let stray = report
            .identities
            .iter()
            .find(|i| i.user == "stray")
            .unwrap();
        assert_eq!(stray.node, None);
        assert!(
            stray
                .rows
                .iter()
                .any(|r| r.nodes == ["node1", "node10", "node2"])
        );
        let only = exposure(&policy, &identities, Some("calico-node"));
        assert_eq!(only.identities.len(), 3);
        assert!(
            report
                .render_text()
                .contains("  write  /calico/felix/v1/host/{node}/  all keys of node10\n")
        );
    }

    #[test]
    fn own_node_keys_alone_are_no_exposure() {
        let policy = crate::policy::parse(POLICY, "policy.toml").unwrap();
        let identities = BTreeMap::from([
            identity(
                "calico-node.node1",
                vec![
                    prefix("/calico/felix/v1/host/node1/", Access::ReadWrite),
                    prefix("/calico/ipam/v2/host/node1/", Access::ReadWrite),
                    EtcdGrant {
                        key: format!("{R3}/nodes/node1").into_bytes(),
                        range_end: Vec::new(),
                        access: Access::ReadWrite,
                    },
                ],
            ),
            identity("calico-node.node2", vec![]),
        ]);
        let report = exposure(&policy, &identities, None);
        assert!(
            report.identities.iter().all(|i| i.rows.is_empty()),
            "{report:?}"
        );
        assert!(report.render_text().contains("no other node's keys"));
    }
}
