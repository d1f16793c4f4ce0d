//! The server's own state prefix ([store] prefix, on a shared etcd store) is calseg's alone:
//! a policy whose grants reach into it is refused, so no Calico component's identity can read
//! tokens' hashes, nodes or the audit log.

use super::{Policy, prefix_end};
use anyhow::{Result, bail};

/// Refuses a policy that grants any component a key in the store prefix.
pub fn check_policy_stays_out(policy: &Policy, prefix: &str) -> Result<()> {
    // Per-node grants are checked with a probe name; `{node}` only fills a path segment.
    const PROBE_NODE: &str = "calseg-probe-node";
    for component in policy.components.values() {
        let grants = component
            .grants
            .iter()
            .cloned()
            .chain(component.node_permissions(PROBE_NODE));
        for grant in grants {
            let start = grant.key.as_bytes();
            let end = grant.range_end();
            if overlaps(start, end.as_deref(), prefix.as_bytes()) {
                bail!(
                    "the policy grants component {:?} {} {:?}, inside the server's state prefix \
                     {prefix:?} ([store] prefix): no component may read calseg's own state; \
                     remove the grant or move the prefix",
                    component.name,
                    grant.access,
                    grant.key
                );
            }
        }
    }
    Ok(())
}

/// Whether the key range `[start, end)` (a single key when `end` is `None`) meets keys that
/// start with `prefix`.
fn overlaps(start: &[u8], end: Option<&[u8]>, prefix: &[u8]) -> bool {
    let Some(end) = end else {
        return start.starts_with(prefix);
    };
    let prefix_end = prefix_end(prefix).unwrap_or_default();
    // [start, end) meets [prefix, prefix_end) unless one ends before the other starts.
    start < prefix_end.as_slice() && prefix < end
}

#[cfg(test)]
mod tests {
    use super::{check_policy_stays_out, overlaps};

    fn policy(grant: &str) -> crate::policy::Policy {
        let text = format!(
            r#"calico_version = "3.29"
[etcd]
endpoints = ["https://127.0.0.1:2379"]
[components.calico-node]
grants = [ {{ prefix = "/calico/ipam/v2/", access = "read" }} ]
node_grants = [ {{ {grant}, access = "read" }} ]
restart = ["calico-node.service"]
[[hosts]]
match = "*"
components = ["calico-node"]
"#
        );
        crate::policy::parse(&text, "policy.toml").unwrap()
    }

    #[test]
    fn a_policy_reaching_into_the_state_prefix_is_refused_by_name() {
        let ok = policy(r#"prefix = "/calico/felix/v1/host/{node}/""#);
        assert!(check_policy_stays_out(&ok, "/calseg/").is_ok());
        let bad = policy(r#"prefix = "/calseg/nodes/{node}/""#);
        let error = check_policy_stays_out(&bad, "/calseg/")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("calico-node") && error.contains("/calseg/"),
            "{error}"
        );
    }

    #[test]
    fn ranges_inside_around_or_beside_the_prefix() {
        let p = b"/calseg/";
        assert!(overlaps(b"/calseg/nodes/x", None, p));
        assert!(!overlaps(b"/calseg", None, p));
        assert!(
            overlaps(b"/", Some(b"0"), p),
            "the whole keyspace contains it"
        );
        assert!(overlaps(b"/calseg/a", Some(b"/calseg/b"), p));
        assert!(!overlaps(b"/calico/", Some(b"/calico0"), p));
        assert!(!overlaps(b"/calseg0", Some(b"/calseg1"), p));
    }
}
