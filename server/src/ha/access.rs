//! Who may read the shared state in etcd: only calseg's own etcd user. At start the server
//! gives that user the role `calseg-server-state` (read-write on the store prefix, nothing
//! else); `calseg_control::policy::check_policy_stays_out` refuses a policy whose grants reach
//! into the prefix, so no Calico component's identity can read tokens' hashes, nodes or the
//! audit log.

use crate::policy::prefix_end;
use anyhow::{Context, Result};
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
