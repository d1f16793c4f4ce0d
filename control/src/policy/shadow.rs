//! Refusing node grants that narrow nothing. A per-node grant exists to confine each node to
//! its own keys; when a shared grant of the same component already gives every node the same
//! or wider access to every key the node grant names, the node grant is shadowed: each node
//! can touch every other node's keys, and the policy only looks narrowed.

use std::ops::Range;

use calseg_api::access::Access;

use super::location::Diagnostics;
use super::model::GrantTable;
use super::model::{KeyRange, Permission, PermissionTemplate};

/// A shared grant and where the policy file says it.
pub(super) struct SharedOrigin {
    pub permission: Permission,
    pub span: Range<usize>,
    /// The built-in table it came from (`grants = "<table>"`), if any.
    pub table: Option<GrantTable>,
}

/// Reports an error at every node grant that a shared grant covers with the same or wider
/// access, naming both grants with their positions.
pub(super) fn refuse_shadowed(
    component: &str,
    shared: &[SharedOrigin],
    node_grants: &[(PermissionTemplate, Range<usize>)],
    diags: &mut Diagnostics<'_>,
) {
    for (template, span) in node_grants {
        let Some(cover) = shared.iter().find(|s| covers(&s.permission, template)) else {
            continue;
        };
        let where_shared = diags.position(cover.span.start);
        let shared_text = describe(&cover.permission);
        let source = match cover.table {
            Some(table) => format!(
                "grants = {:?} at {where_shared} gives every node {shared_text}",
                table.name()
            ),
            None => format!("the shared grant at {where_shared} gives every node {shared_text}"),
        };
        let hint = match cover.table.and_then(GrantTable::narrowed) {
            Some(narrowed) => format!(
                "use grants = {:?}, the built-in profile that keeps each node to its own keys, or drop this node grant",
                narrowed.name()
            ),
            None => format!(
                "narrow the shared grant so it does not cover {} (list narrower shared grants), or drop this node grant",
                template.key_template
            ),
        };
        diags.error(
            span.clone(),
            format!(
                "component {component}: node grant {} {} narrows nothing: {source}",
                template.access, template.key_template
            ),
            hint,
        );
    }
}

/// Whether `shared` gives every node at least `node`'s access on every key `node` names.
fn covers(shared: &Permission, node: &PermissionTemplate) -> bool {
    if !access_covers(shared.access, node.access) {
        return false;
    }
    // The part of the key before the first {node} is the same for every node.
    let (head, has_node) = match node.key_template.find("{node}") {
        Some(at) => (&node.key_template[..at], true),
        None => (node.key_template.as_str(), false),
    };
    match shared.range {
        KeyRange::Prefix => head.starts_with(shared.key.as_str()),
        KeyRange::Exact => {
            !has_node && node.range == KeyRange::Exact && node.key_template == shared.key
        }
    }
}

fn access_covers(shared: Access, node: Access) -> bool {
    shared == Access::ReadWrite || shared == node
}

fn describe(permission: &Permission) -> String {
    let what = match permission.range {
        KeyRange::Prefix => "prefix",
        KeyRange::Exact => "key",
    };
    format!("{} on {what} {}", permission.access, permission.key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn shared(key: &str, range: KeyRange, access: Access) -> Permission {
        Permission {
            key: key.into(),
            range,
            access,
        }
    }

    fn node(template: &str, range: KeyRange, access: Access) -> PermissionTemplate {
        PermissionTemplate {
            key_template: template.into(),
            range,
            access,
        }
    }

    #[test]
    fn a_shared_prefix_above_the_node_part_with_equal_or_wider_access_shadows() {
        let felix = node(
            "/calico/felix/v1/host/{node}/",
            KeyRange::Prefix,
            Access::ReadWrite,
        );
        let rw = shared("/calico/felix/v1/", KeyRange::Prefix, Access::ReadWrite);
        assert!(covers(&rw, &felix));
        let read_only = node(
            "/calico/felix/v1/host/{node}/",
            KeyRange::Prefix,
            Access::Read,
        );
        assert!(covers(&rw, &read_only));
        let exact = node(
            "/calico/resources/v3/projectcalico.org/nodes/{node}",
            KeyRange::Exact,
            Access::ReadWrite,
        );
        let all_nodes = shared(
            "/calico/resources/v3/projectcalico.org/nodes/",
            KeyRange::Prefix,
            Access::ReadWrite,
        );
        assert!(covers(&all_nodes, &exact));
    }

    #[test]
    fn narrower_access_or_a_disjoint_or_deeper_prefix_does_not_shadow() {
        let felix = node(
            "/calico/felix/v1/host/{node}/",
            KeyRange::Prefix,
            Access::ReadWrite,
        );
        // Read everywhere, write per node: the node grant adds the write.
        assert!(!covers(
            &shared("/calico/", KeyRange::Prefix, Access::Read),
            &felix
        ));
        assert!(!covers(
            &shared("/calico/felix/v1/", KeyRange::Prefix, Access::Write),
            &node(
                "/calico/felix/v1/host/{node}/",
                KeyRange::Prefix,
                Access::Read
            )
        ));
        assert!(!covers(
            &shared("/calico/felix/v2/", KeyRange::Prefix, Access::ReadWrite),
            &felix
        ));
        // A shared prefix reaching into the node part covers some nodes only, not every node.
        assert!(!covers(
            &shared(
                "/calico/felix/v1/host/node1/",
                KeyRange::Prefix,
                Access::ReadWrite
            ),
            &felix
        ));
        // A shared exact key never covers a templated key.
        assert!(!covers(
            &shared("/calico/felix/v1/host/", KeyRange::Exact, Access::ReadWrite),
            &felix
        ));
    }
}
