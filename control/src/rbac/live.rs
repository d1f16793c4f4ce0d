//! Reads etcd's auth store: every user and role name, the permissions of the roles calseg owns,
//! and the roles of every user (to know which users are calseg's), with bounded parallelism.
//! A user with no role at all is listed with the foreign ones: it holds nothing, and the plan
//! takes it only when the policy names it. A user holding one of calseg's roles is calseg's,
//! with all its roles (the others are drift the plan revokes).

use super::is_owned_role;
use super::ownership::is_calseg_user;
use super::retry::with_retry;
use super::state::{AuthState, EtcdGrant};
use calseg_api::access::Access;
use etcd_client::{Client, PermissionType};
use futures::{StreamExt, TryStreamExt, stream};
use std::collections::{BTreeMap, BTreeSet};

/// etcd's auth store as calseg sees it.
#[derive(Debug, Clone, Default)]
pub struct LiveAuth {
    /// Roles calseg owns, with permissions; users calseg owns, with all the roles they hold.
    pub owned: AuthState,
    /// Users calseg does not own (`root` among them), with their roles: never changed.
    pub foreign_users: BTreeMap<String, BTreeSet<String>>,
    /// Roles calseg does not own: never changed.
    pub foreign_roles: BTreeSet<String>,
}

/// Reads the auth store. Needs the root role.
pub async fn read_live(
    client: &Client,
    parallelism: usize,
) -> Result<LiveAuth, etcd_client::Error> {
    let mut live = LiveAuth::default();
    let role_names = with_retry(|| {
        let mut c = client.clone();
        async move { c.role_list().await }
    })
    .await?
    .roles()
    .to_vec();
    let (owned_roles, foreign_roles): (Vec<String>, Vec<String>) =
        role_names.into_iter().partition(|name| is_owned_role(name));
    live.foreign_roles = foreign_roles.into_iter().collect();

    let roles: Vec<(String, Option<BTreeSet<EtcdGrant>>)> = stream::iter(owned_roles)
        .map(|name| {
            let client = client.clone();
            async move {
                let fetched = with_retry(|| {
                    let (mut c, n) = (client.clone(), name.clone());
                    async move { c.role_get(n).await }
                })
                .await;
                match fetched {
                    Ok(response) => {
                        let grants = response.permissions().iter().filter_map(to_grant).collect();
                        Ok((name, Some(grants)))
                    }
                    Err(error) if is_not_found(&error) => Ok((name, None)),
                    Err(error) => Err(error),
                }
            }
        })
        .buffer_unordered(parallelism.max(1))
        .try_collect()
        .await?;
    for (name, grants) in roles {
        if let Some(grants) = grants {
            live.owned.roles.insert(name, grants);
        }
    }

    let user_names = with_retry(|| {
        let mut c = client.clone();
        async move { c.user_list().await }
    })
    .await?
    .users()
    .to_vec();
    let users: Vec<(String, Option<BTreeSet<String>>)> = stream::iter(user_names)
        .map(|name| {
            let client = client.clone();
            async move {
                let fetched = with_retry(|| {
                    let (mut c, n) = (client.clone(), name.clone());
                    async move { c.user_get(n).await }
                })
                .await;
                match fetched {
                    Ok(response) => Ok((name, Some(response.roles().iter().cloned().collect()))),
                    Err(error) if is_not_found(&error) => Ok((name, None)),
                    Err(error) => Err(error),
                }
            }
        })
        .buffer_unordered(parallelism.max(1))
        .try_collect()
        .await?;
    for (name, roles) in users {
        match roles {
            Some(roles) if is_calseg_user(&roles) => {
                live.owned.users.insert(name, roles);
            }
            Some(roles) => {
                live.foreign_users.insert(name, roles);
            }
            None => {}
        }
    }
    Ok(live)
}

/// Converts etcd's permission; `None` for a type calseg does not know (never seen in 3.4/3.5).
pub(crate) fn to_grant(permission: &etcd_client::Permission) -> Option<EtcdGrant> {
    let access = match PermissionType::try_from(permission.get_type()).ok()? {
        PermissionType::Read => Access::Read,
        PermissionType::Write => Access::Write,
        PermissionType::Readwrite => Access::ReadWrite,
    };
    Some(EtcdGrant {
        key: permission.key().to_vec(),
        range_end: permission.range_end().to_vec(),
        access,
    })
}

/// True for etcd's "user/role name not found" (a concurrent delete between list and get).
pub(crate) fn is_not_found(error: &etcd_client::Error) -> bool {
    error.to_string().contains("not found")
}
