//! Which component and node an etcd user stands for: the user name matched against the
//! policy's user template (`{component}.{node}` by default) for each of its components.

use crate::policy::{Policy, check_node_name};

/// The component and node a user name was made for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Owner {
    pub component: String,
    pub node: String,
}

/// Matches `user` against `policy`'s template for each component. When several components
/// match (only possible with templates like `{component}-{node}`), the longest component name
/// wins, so `calico-node-w1` is calico-node on `w1`, not `calico` on `node-w1`.
pub fn owner_of(policy: &Policy, user: &str) -> Option<Owner> {
    let template = &policy.identity.user_template;
    let mut found: Vec<Owner> = policy
        .components
        .keys()
        .filter_map(|component| {
            let node = node_in(&template.replace("{component}", component), user)?;
            Some(Owner {
                component: component.clone(),
                node,
            })
        })
        .collect();
    found.sort_by_key(|o| (std::cmp::Reverse(o.component.len()), o.component.clone()));
    found.into_iter().next()
}

/// The node name `N` for which `template` (with `{node}` placeholders only) spells `user`, if
/// it is a valid node name.
fn node_in(template: &str, user: &str) -> Option<String> {
    let parts: Vec<&str> = template.split("{node}").collect();
    let holes = parts.len().checked_sub(1).filter(|&n| n > 0)?;
    let fixed: usize = parts.iter().map(|p| p.len()).sum();
    let spare = user.len().checked_sub(fixed)?;
    if spare == 0 || spare % holes != 0 {
        return None;
    }
    let start = parts.first()?.len();
    let node = user.get(start..start + spare / holes)?;
    (template.replace("{node}", node) == user && check_node_name(node).is_ok())
        .then(|| node.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn policy(template: Option<&str>) -> Policy {
        let identity = template
            .map(|t| format!("[identity]\nuser = \"{t}\"\n"))
            .unwrap_or_default();
        let text = format!(
            r#"calico_version = "3.29"
[etcd]
endpoints = ["https://127.0.0.1:2379"]
{identity}
[components.calico-node]
grants = "calico-node"
[components.calico]
grants = "calicoctl-read-only"
[[hosts]]
names = ["node1"]
components = ["calico-node"]
"#
        );
        crate::policy::parse(&text, "policy.toml").expect("policy")
    }

    fn owner(component: &str, node: &str) -> Option<Owner> {
        Some(Owner {
            component: component.into(),
            node: node.into(),
        })
    }

    #[test]
    fn the_default_template_splits_at_the_first_dot_after_the_component() {
        let p = policy(None);
        assert_eq!(
            owner_of(&p, "calico-node.node1"),
            owner("calico-node", "node1")
        );
        assert_eq!(
            owner_of(&p, "calico-node.w1.rack2"),
            owner("calico-node", "w1.rack2")
        );
        assert_eq!(owner_of(&p, "calico.node1"), owner("calico", "node1"));
        assert_eq!(owner_of(&p, "felix.node1"), None);
        assert_eq!(owner_of(&p, "calico-node."), None);
        assert_eq!(owner_of(&p, "root"), None);
    }

    #[test]
    fn other_templates_and_the_longest_component_first() {
        let p = policy(Some("{component}-{node}"));
        assert_eq!(owner_of(&p, "calico-node-w1"), owner("calico-node", "w1"));
        assert_eq!(owner_of(&p, "calico-w1"), owner("calico", "w1"));
        let p = policy(Some("id:{node}:{component}:{node}"));
        assert_eq!(owner_of(&p, "id:w1:calico:w1"), owner("calico", "w1"));
        assert_eq!(owner_of(&p, "id:w1:calico:w2"), None);
    }
}
