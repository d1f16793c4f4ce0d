//! Who may read the shared state in etcd: only calseg's own etcd user. At start the server
//! gives that user the role `calseg-server-state` (read-write on the store prefix, nothing
//! else), and refuses a policy whose grants reach into the prefix, so no Calico component's
//! identity can read tokens' hashes, nodes or the audit log.

use crate::policy::{Policy, prefix_end};
use anyhow::{Context, Result, bail};
use etcd_client::{Client, Permission, PermissionType};

/// The etcd role that holds the store prefix. Not `calseg.`-prefixed: the RBAC reconciler,
/// which owns those roles, leaves it alone.
pub const STATE_ROLE: &str = "calseg-server-state";

/// Gives `user` (calseg's own etcd user) read-write on `prefix` through [`STATE_ROLE`]. Safe to
/// repeat; a replica starting after another finds everything in place.
pub async fn provision_state_role(client: &mut Client, prefix: &str, user: &str) -> Result<()> {
    let roles = client.role_list().await.context("list etcd roles")?;
    if !roles.roles().iter().any(|r| r == STATE_ROLE)
        && let Err(error) = client.role_add(STATE_ROLE).await
        && !error.to_string().contains("already exists")
    {
        return Err(error).context(format!("create the etcd role {STATE_ROLE}"));
    }
    let end = prefix_end(prefix.as_bytes()).context("the store prefix has no end")?;
    let permission = Permission::new(PermissionType::Readwrite, prefix).with_range_end(end);
    client
        .role_grant_permission(STATE_ROLE, permission)
        .await
        .with_context(|| format!("grant {STATE_ROLE} read-write on {prefix}"))?;
    let has_role = client
        .user_get(user)
        .await
        .with_context(|| format!("read the etcd user {user} (calseg's own, [etcd] cert_file)"))?
        .roles()
        .iter()
        .any(|r| r == STATE_ROLE);
    if !has_role {
        client
            .user_grant_role(user, STATE_ROLE)
            .await
            .with_context(|| format!("grant {STATE_ROLE} to the etcd user {user}"))?;
    }
    Ok(())
}

/// The Common Name of the PEM certificate in `path`: the etcd user a client certificate is.
pub fn etcd_user_of(path: &std::path::Path) -> Result<String> {
    let pem = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem)
        .map_err(|e| anyhow::anyhow!("{}: not a PEM certificate: {e}", path.display()))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| anyhow::anyhow!("{}: not an X.509 certificate: {e}", path.display()))?;
    let user = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    user.with_context(|| format!("{}: the certificate has no Common Name", path.display()))
}

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
