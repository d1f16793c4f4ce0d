//! Which component and node an etcd user stands for: the user name matched against the
//! policy's user template (`{component}.{node}` by default) for each of its components.

use crate::policy::Policy;

pub use crate::policy::Owner;

/// Matches `user` against `policy`'s template for each component: [`Policy::owner_of`], the
/// inverse of the one function that renders user names.
pub fn owner_of(policy: &Policy, user: &str) -> Option<Owner> {
    policy.owner_of(user)
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
            generation: 0,
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
        let re_enrolled = owner_of(&p, "id:w1:calico:w1~g3").map(|o| o.generation);
        assert_eq!(re_enrolled, Some(3));
    }
}
