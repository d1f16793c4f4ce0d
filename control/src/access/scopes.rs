//! Which of Calico's etcd keys belong to one node, and which are shared by every node by
//! design, with the reason (reference notes §4: the keys a node writes in etcdv3 mode).

use super::effective::Op;
use super::ranges::KeyInterval;

/// `/calico/resources/v3/projectcalico.org`, where Calico keeps its v3 resources.
pub const R3: &str = "/calico/resources/v3/projectcalico.org";

/// A key or prefix that belongs to one node: `{node}` in `template` stands for the node name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeScoped {
    /// The key (or prefix), `R3` written out, with `{node}`.
    pub template: &'static str,
    /// True for every key under the expanded template, false for that one key.
    pub prefix: bool,
}

impl NodeScoped {
    /// The keys of `node`.
    pub fn instance(&self, node: &str) -> KeyInterval {
        let key = self.template.replace("{node}", node);
        if self.prefix {
            KeyInterval::prefix(key.as_bytes())
        } else {
            KeyInterval::point(key.as_bytes())
        }
    }

    /// What the keys of every node share: the template up to `{node}`.
    pub fn family(&self) -> &'static str {
        self.template
            .split_once("{node}")
            .map_or(self.template, |(head, _)| head)
    }
}

/// The node-scoped keys: each node writes its own and no other node's.
pub const NODE_SCOPED: &[NodeScoped] = &[
    NodeScoped {
        template: "/calico/resources/v3/projectcalico.org/nodes/{node}",
        prefix: false,
    },
    NodeScoped {
        template: "/calico/resources/v3/projectcalico.org/felixconfigurations/node.{node}",
        prefix: false,
    },
    NodeScoped {
        template: "/calico/felix/v1/host/{node}/",
        prefix: true,
    },
    NodeScoped {
        template: "/calico/felix/v2/no-region/host/{node}/",
        prefix: true,
    },
    NodeScoped {
        template: "/calico/ipam/v2/host/{node}/",
        prefix: true,
    },
];

/// Keys every node reaches because Calico works that way, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedByDesign {
    /// The prefix the keys lie under.
    pub prefix: &'static str,
    /// How the keys are shown: the prefix, or `{name}` for exact keys directly under it.
    pub keys: &'static str,
    /// The accesses this is by design for (reading and writing are separate reasons).
    pub read: bool,
    pub write: bool,
    pub reason: &'static str,
}

impl SharedByDesign {
    pub fn range(&self) -> KeyInterval {
        KeyInterval::prefix(self.prefix.as_bytes())
    }

    pub fn applies_to(&self, op: Op) -> bool {
        match op {
            Op::Read => self.read,
            Op::Write => self.write,
        }
    }
}

/// The one table of reasons. Order does not matter: the most specific entry (longest prefix)
/// that applies wins.
pub const SHARED_BY_DESIGN: &[SharedByDesign] = &[
    SharedByDesign {
        prefix: "/calico/ipam/v2/assignment/",
        keys: "/calico/ipam/v2/assignment/",
        read: true,
        write: true,
        reason: "any node may claim or borrow from a Calico IPAM block",
    },
    SharedByDesign {
        prefix: "/calico/ipam/v2/handle/",
        keys: "/calico/ipam/v2/handle/",
        read: true,
        write: true,
        reason: "IPAM handles are keyed by workload or tunnel, not by node",
    },
    SharedByDesign {
        prefix: "/calico/resources/v3/projectcalico.org/workloadendpoints/",
        keys: "/calico/resources/v3/projectcalico.org/workloadendpoints/",
        read: true,
        write: true,
        reason: "workload endpoints are keyed by namespace first: no per-node prefix exists",
    },
    SharedByDesign {
        prefix: "/calico/resources/v3/projectcalico.org/tiers/",
        keys: "/calico/resources/v3/projectcalico.org/tiers/{name}",
        read: false,
        write: true,
        reason: "Calico 3.29+ creates its tiers with a transaction at every start, and etcd \
                 checks write on that transaction even when the tier exists",
    },
    SharedByDesign {
        prefix: "/calico/resources/v3/projectcalico.org/",
        keys: "/calico/resources/v3/projectcalico.org/",
        read: true,
        write: false,
        reason: "Felix and confd list and watch whole resource prefixes",
    },
];

/// The entries that apply to `op`, most specific first.
pub fn shared_for(op: Op) -> Vec<&'static SharedByDesign> {
    let mut entries: Vec<&SharedByDesign> = SHARED_BY_DESIGN
        .iter()
        .filter(|s| s.applies_to(op))
        .collect();
    entries.sort_by_key(|s| (std::cmp::Reverse(s.prefix.len()), s.prefix));
    entries
}

/// Why reaching `keys` with `op` is by design, if it is: the most specific entry holding all
/// of them.
pub fn reason_for(op: Op, keys: &KeyInterval) -> Option<&'static str> {
    shared_for(op)
        .into_iter()
        .find(|s| s.range().contains(keys))
        .map(|s| s.reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_spell_r3_out_and_node_prefixes_end_in_a_slash() {
        for scoped in NODE_SCOPED {
            assert!(scoped.template.contains("{node}"), "{scoped:?}");
            assert!(!scoped.template.contains("R3"), "{scoped:?}");
            assert_eq!(scoped.prefix, scoped.template.ends_with('/'), "{scoped:?}");
        }
        for shared in SHARED_BY_DESIGN {
            assert!(shared.keys.starts_with(shared.prefix), "{shared:?}");
            assert!(shared.prefix.ends_with('/') && (shared.read || shared.write));
        }
        assert!(NODE_SCOPED[0].template.starts_with(R3));
    }

    #[test]
    fn reasons_go_by_access_and_the_most_specific_prefix() {
        let node = NODE_SCOPED[0].instance("node2");
        assert_eq!(
            reason_for(Op::Read, &node),
            Some("Felix and confd list and watch whole resource prefixes")
        );
        assert_eq!(reason_for(Op::Write, &node), None);
        let wep = KeyInterval::point(format!("{R3}/workloadendpoints/ns/x").as_bytes());
        assert!(reason_for(Op::Read, &wep).is_some_and(|r| r.contains("namespace")));
        let felix = NODE_SCOPED[2].instance("node2");
        assert_eq!(felix, KeyInterval::prefix(b"/calico/felix/v1/host/node2/"));
        assert_eq!(reason_for(Op::Read, &felix), None);
        assert_eq!(
            NODE_SCOPED[1].family(),
            format!("{R3}/felixconfigurations/node.")
        );
    }
}
