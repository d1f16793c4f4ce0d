//! Reads users, their roles and those roles' permissions from etcd's live auth store (not
//! from the policy), with bounded parallelism and the reconciler's retries. Needs the root role.

use super::effective::{ROOT_ROLE, UserAccess};
use crate::rbac::{self, EtcdGrant, is_calseg_user, is_not_found, to_grant, with_retry};
use etcd_client::Client;
use futures::{StreamExt, TryStreamExt, stream};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// Why etcd's answer is not known.
#[derive(Debug, Error)]
pub enum AccessError {
    #[error(
        "etcd has no user {user:?}: a certificate with that Common Name is refused everything \
         (`etcdctl user list` shows the users that exist)"
    )]
    UserNotFound { user: String },
    #[error("cannot read {what} from etcd")]
    Etcd {
        what: String,
        #[source]
        source: etcd_client::Error,
    },
}

fn etcd(what: impl Into<String>) -> impl FnOnce(etcd_client::Error) -> AccessError {
    let what = what.into();
    move |source| AccessError::Etcd { what, source }
}

/// The live access of `user`.
pub async fn read_user(
    client: &Client,
    user: &str,
    parallelism: usize,
) -> Result<UserAccess, AccessError> {
    let fetched = with_retry(|| {
        let (mut c, u) = (client.clone(), user.to_owned());
        async move { c.user_get(u).await }
    })
    .await;
    let roles: BTreeSet<String> = match fetched {
        Ok(response) => response.roles().iter().cloned().collect(),
        Err(error) if is_not_found(&error) => {
            return Err(AccessError::UserNotFound {
                user: user.to_owned(),
            });
        }
        Err(error) => return Err(etcd(format!("user {user:?}"))(error)),
    };
    let permissions = read_roles(client, roles.iter().cloned(), parallelism).await?;
    Ok(UserAccess::new(user, &roles, &permissions))
}

/// The live access of every calseg identity (every user [`is_calseg_user`]), by name.
/// Reuses the reconciler's reading of the auth store, then fetches the roles calseg does not
/// own that those users hold.
pub async fn read_identities(
    client: &Client,
    parallelism: usize,
) -> Result<BTreeMap<String, UserAccess>, AccessError> {
    let live = rbac::read_live(client, parallelism)
        .await
        .map_err(etcd("the users and roles"))?;
    let mut permissions = live.owned.roles;
    let foreign: BTreeSet<String> = live
        .owned
        .users
        .values()
        .flatten()
        .filter(|role| !permissions.contains_key(*role))
        .cloned()
        .collect();
    permissions.extend(read_roles(client, foreign, parallelism).await?);
    Ok(live
        .owned
        .users
        .iter()
        .filter(|(_, roles)| is_calseg_user(roles))
        .map(|(user, roles)| (user.clone(), UserAccess::new(user, roles, &permissions)))
        .collect())
}

/// The permissions of `roles`, fetched `parallelism` at a time. Roles that do not exist are
/// left out (etcd skips them too); the root role is never fetched (it needs no permissions).
async fn read_roles(
    client: &Client,
    roles: impl IntoIterator<Item = String>,
    parallelism: usize,
) -> Result<BTreeMap<String, BTreeSet<EtcdGrant>>, AccessError> {
    let names: Vec<String> = roles.into_iter().filter(|r| r != ROOT_ROLE).collect();
    let fetched: Vec<(String, Option<BTreeSet<EtcdGrant>>)> = stream::iter(names)
        .map(|name| {
            let client = client.clone();
            async move {
                let got = with_retry(|| {
                    let (mut c, n) = (client.clone(), name.clone());
                    async move { c.role_get(n).await }
                })
                .await;
                match got {
                    Ok(response) => {
                        let grants = response.permissions().iter().filter_map(to_grant).collect();
                        Ok((name, Some(grants)))
                    }
                    Err(error) if is_not_found(&error) => Ok((name, None)),
                    Err(error) => Err(etcd(format!("role {name:?}"))(error)),
                }
            }
        })
        .buffer_unordered(parallelism.max(1))
        .try_collect()
        .await?;
    Ok(fetched
        .into_iter()
        .filter_map(|(name, grants)| Some((name, grants?)))
        .collect())
}
