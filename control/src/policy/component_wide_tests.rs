//! `component_identity = true`: one etcd user for a whole component (issue 21, point 1), refused
//! with its reason for components whose grants need `{node}`, and never the name of a node's
//! user.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const HEAD: &str = "calico_version = \"3.29\"\n[etcd]\nendpoints = [\"https://10.0.0.1:2379\"]\n";

/// A policy with `calico-node` on `match = "*"` under `template`, and `body` for a component
/// `kc` on no host.
fn with(template: &str, body: &str) -> String {
    format!(
        "{HEAD}[identity]\nuser = \"{template}\"\n[components.calico-node]\ngrants = \"calico-node\"\n\
         [components.kc]\n{body}\n[[hosts]]\nmatch = \"*\"\ncomponents = [\"calico-node\"]\n"
    )
}

fn refused(source: &str) -> String {
    match parse(source, "policy.toml") {
        Ok(policy) => panic!("expected errors, got {policy:#?}"),
        Err(errors) => errors.to_string(),
    }
}

#[test]
fn a_component_wide_identity_is_the_component_and_the_all_suffix() {
    let policy = parse(
        &with(
            "{component}.{node}",
            "grants = \"kube-controllers\"\ncomponent_identity = true",
        ),
        "policy.toml",
    )
    .unwrap();
    assert_eq!(policy.component_user("kc").as_deref(), Some("kc~all"));
    assert_eq!(policy.component_user("calico-node"), None);
    assert_eq!(policy.component_user("nope"), None);
    // A component on no host rule is not "unused" when it has its own identity.
    assert!(
        !policy
            .warnings
            .iter()
            .any(|w| w.message.contains("no host")),
        "{:?}",
        policy.warnings
    );
    // Its user names no node, whatever the template.
    assert_eq!(policy.owner_of("kc~all"), None);
}

#[test]
fn component_users_never_collide_with_a_node_s_user() {
    // Templates that glue component and node together, and node names that look like the
    // suffix: no node's user, in any generation, is ever a component-wide user.
    for template in [
        "{component}.{node}",
        "{component}-{node}",
        "{component}{node}",
        "{node}.{component}",
        "id:{node}:{component}",
    ] {
        let policy = parse(
            &with(
                template,
                "grants = \"kube-controllers\"\ncomponent_identity = true",
            ),
            "policy.toml",
        )
        .unwrap();
        for component in ["kc", "calico-node"] {
            let wide = component_user(component);
            assert_eq!(policy.owner_of(&wide), None, "{template}: {wide}");
            for node in ["all", "a", "kc", "all.kc", "g1", "kc-all", "x"] {
                for generation in [0, 1, 7] {
                    for owner in ["kc", "calico-node"] {
                        let user = policy.etcd_user(owner, node, generation);
                        assert_ne!(user, wide, "{template}: {owner} on {node}");
                    }
                }
            }
        }
    }
    // The one character that could make them meet is refused in templates.
    assert!(
        refused(&with(
            "{component}~{node}",
            "grants = \"kube-controllers\"\ncomponent_identity = true"
        ))
        .contains("contains '~'")
    );
}

#[test]
fn components_whose_grants_need_node_get_no_component_wide_identity() {
    let per_node = refused(&with(
        "{component}.{node}",
        "grants = \"calico-node-per-node\"\ncomponent_identity = true",
    ));
    assert!(
        per_node.contains("policy.toml:10:22: error: component kc has per-node grants"),
        "{per_node}"
    );
    assert!(per_node.contains("every pod would share every node's keys or none"));
    assert!(per_node.contains("grants = \"calico-node\" rather than \"calico-node-per-node\""));
    let node_grants = refused(&with(
        "{component}.{node}",
        "grants = \"kube-controllers\"\nnode_grants = [ { prefix = \"/calico/x/{node}/\", access = \"read\" } ]\ncomponent_identity = true",
    ));
    assert!(
        node_grants.contains("has per-node grants ({node} in \"/calico/x/{node}/\")"),
        "{node_grants}"
    );
    let empty = refused(&with("{component}.{node}", "component_identity = true"));
    assert!(empty.contains("component kc grants nothing"), "{empty}");
    // `false` is the same as leaving it out.
    let off = parse(
        &with(
            "{component}.{node}",
            "grants = \"calico-node-per-node\"\ncomponent_identity = false",
        ),
        "policy.toml",
    )
    .unwrap();
    assert_eq!(off.component_user("kc"), None);
}

#[test]
fn a_component_wide_user_must_fit_a_common_name_and_not_be_calseg_s_own() {
    let long = "k".repeat(61);
    let source = format!(
        "{HEAD}[components.{long}]\ngrants = \"kube-controllers\"\ncomponent_identity = true\n"
    );
    assert!(refused(&source).contains("65 characters"));
    let source = format!(
        "{HEAD}[components.kc]\ngrants = \"kube-controllers\"\ncomponent_identity = true\n"
    );
    let policy = parse(&source, "policy.toml").unwrap();
    let error = policy
        .check_reserved_users(&["kc~all".to_owned()])
        .unwrap_err();
    assert!(
        error.contains("component-wide identity of component kc"),
        "{error}"
    );
    assert!(policy.check_reserved_users(&["root".to_owned()]).is_ok());
}
