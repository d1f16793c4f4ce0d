//! The shape of a policy file's tables, used to report every unknown key at once (with a
//! "did you mean") and to drop it before serde sees the table, so one typo does not hide the
//! rest of the section. serde's `deny_unknown_fields` on the raw structs stays as a backstop.

use std::borrow::Cow;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::location::Diagnostics;

/// What a value should look like, as far as key names go.
enum Shape {
    /// Anything; its type is serde's business.
    Leaf,
    /// A table with these keys.
    Table(&'static [(&'static str, Shape)]),
    /// A table whose keys are names chosen by the user, each value of this shape.
    Map(&'static Shape),
    /// An array whose elements have this shape (other types are left to serde).
    ArrayOf(&'static Shape),
}

const GRANT: Shape = Shape::Table(&[
    ("prefix", Shape::Leaf),
    ("key", Shape::Leaf),
    ("access", Shape::Leaf),
]);
const GRANTS: Shape = Shape::ArrayOf(&GRANT);
const COMPONENT: Shape = Shape::Table(&[
    ("grants", GRANTS),
    ("extra_grants", GRANTS),
    ("node_grants", GRANTS),
    ("restart", Shape::Leaf),
    ("env_file", Shape::Leaf),
    ("cni_conflist", Shape::Leaf),
    ("calicoctl_cfg", Shape::Leaf),
    ("cert_dir", Shape::Leaf),
    ("owner", Shape::Leaf),
    ("group", Shape::Leaf),
    ("key_mode", Shape::Leaf),
    ("cert_mode", Shape::Leaf),
    ("component_identity", Shape::Leaf),
]);
const HOST: Shape = Shape::Table(&[
    ("name", Shape::Leaf),
    ("names", Shape::Leaf),
    ("match", Shape::Leaf),
    ("components", Shape::Leaf),
    ("max_unavailable", Shape::Leaf),
]);
const POLICY: &[(&str, Shape)] = &[
    ("calico_version", Shape::Leaf),
    (
        "etcd",
        Shape::Table(&[("endpoints", Shape::Leaf), ("ca_file", Shape::Leaf)]),
    ),
    (
        "identity",
        Shape::Table(&[
            ("user", Shape::Leaf),
            ("lifetime", Shape::Leaf),
            ("renew_after", Shape::Leaf),
        ]),
    ),
    ("components", Shape::Map(&COMPONENT)),
    ("hosts", Shape::ArrayOf(&HOST)),
    (
        "datastore",
        Shape::Table(&[
            ("calico_release", Shape::Leaf),
            ("cluster_type", Shape::Leaf),
            ("default_pool", Shape::Leaf),
            ("ipv4_pool_cidr", Shape::Leaf),
            ("ipip_mode", Shape::Leaf),
            ("vxlan_mode", Shape::Leaf),
            ("nat_outgoing", Shape::Leaf),
            ("block_size", Shape::Leaf),
            ("as_number", Shape::Leaf),
            ("node_to_node_mesh", Shape::Leaf),
            ("log_severity", Shape::Leaf),
        ]),
    ),
    (
        "rollout",
        Shape::Table(&[
            ("max_unavailable", Shape::Leaf),
            ("lease_ttl", Shape::Leaf),
            ("max_lease_life", Shape::Leaf),
            ("canary", Shape::Leaf),
            ("wave", Shape::Leaf),
            ("bake", Shape::Leaf),
            ("max_failures", Shape::Leaf),
        ]),
    ),
];

/// Reports and removes every key the policy schema does not know, at any depth.
pub(super) fn prune_unknown_keys(root: &mut DeTable<'_>, diags: &mut Diagnostics<'_>) {
    prune_table(root, POLICY, "the top level", diags);
}

fn prune_table(
    table: &mut DeTable<'_>,
    keys: &'static [(&'static str, Shape)],
    place: &str,
    diags: &mut Diagnostics<'_>,
) {
    let names: Vec<&str> = keys.iter().map(|(known, _)| *known).collect();
    let unknown: Vec<(String, std::ops::Range<usize>)> = table
        .keys()
        .filter(|key| !names.contains(&key.get_ref().as_ref()))
        .map(|key| (key.get_ref().to_string(), key.span()))
        .collect();
    for (name, span) in unknown {
        let near = closest(&name, &names);
        let hint = match near {
            Some(near) => format!("did you mean `{near}`?"),
            None => format!("keys allowed here: {}", names.join(", ")),
        };
        diags.error(
            span.clone(),
            format!("unknown key `{name}` in {place}"),
            hint,
        );
        let value = table.remove(name.as_str());
        // Check the value as if the suggestion had been taken: no "missing field" echo, and
        // the value's own problems still show.
        if let (Some(near), Some(value)) = (near, value)
            && !table.contains_key(near)
        {
            table.insert(Spanned::new(span, Cow::Borrowed(near)), value);
        }
    }
    for (key, value) in table.iter_mut() {
        let name: &str = key.get_ref();
        if let Some((_, shape)) = keys.iter().find(|(known, _)| *known == name) {
            let place = match name {
                "components" | "hosts" => name.to_string(),
                _ if place == "the top level" => format!("[{name}]"),
                _ => format!("`{name}` of {place}"),
            };
            prune_value(value, shape, &place, diags);
        }
    }
}

fn prune_value(
    value: &mut Spanned<DeValue<'_>>,
    shape: &'static Shape,
    place: &str,
    diags: &mut Diagnostics<'_>,
) {
    match (shape, value.get_mut()) {
        (Shape::Table(keys), DeValue::Table(table)) => prune_table(table, keys, place, diags),
        (Shape::Map(inner), DeValue::Table(table)) => {
            for (key, value) in table.iter_mut() {
                let place = format!("[{place}.{}]", key.get_ref());
                prune_value(value, inner, &place, diags);
            }
        }
        (Shape::ArrayOf(inner), DeValue::Array(items)) => {
            let place = match place {
                "hosts" => "[[hosts]]".to_string(),
                _ => format!("an entry of {place}"),
            };
            for item in items.iter_mut() {
                prune_value(item, inner, &place, diags);
            }
        }
        _ => {}
    }
}

/// The candidate nearest to `word` by edit distance, if it is near enough to be a typo.
pub(super) fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(distance, c)| *distance <= (c.len() / 3).max(1) && *distance < c.len())
        .min()
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row.first().copied().unwrap_or(0);
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or(0);
            let left = row.get(j).copied().unwrap_or(0);
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = above;
            if let Some(cell) = row.get_mut(j + 1) {
                *cell = substitute.min(above + 1).min(left + 1);
            }
        }
    }
    row.last().copied().unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_keys_only() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            closest("endpoint", &["endpoints", "ca_file"]),
            Some("endpoints")
        );
        assert_eq!(
            closest("node_grant", &["grants", "node_grants"]),
            Some("node_grants")
        );
        assert_eq!(closest("zebra", &["endpoints", "ca_file"]), None);
    }
}
