//! Whether calseg may sign a certificate whose CN names an etcd user: never a reserved name
//! (`root`, calseg's own etcd user), never a user that exists in etcd without calseg's marker
//! role (one that existed before calseg, or that someone else made). Checked when a node
//! enrolls and again at every signing, against etcd as it is then.

use super::MARKER_ROLE;
use crate::policy::RESERVED_USERS;
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// Why calseg refuses to sign for a user.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NotOwned {
    #[error(
        "etcd user {user:?} is {why}: calseg never signs a certificate for it; use an identity \
         template that cannot render it (e.g. \"{{component}}.{{node}}\"), or enroll the node under \
         another name"
    )]
    Reserved { user: String, why: &'static str },
    #[error(
        "etcd user {user:?} exists in etcd but calseg does not own it (roles: {roles}): calseg \
         signs no certificate for it; if it is stale, delete it (`etcdctl user delete {user}`), \
         or let calseg manage it (`calseg-server apply --adopt`, its other roles are revoked), \
         or enroll the node under another name"
    )]
    Foreign { user: String, roles: String },
}

/// The names calseg never signs for: [`RESERVED_USERS`] and calseg's own etcd user.
#[derive(Debug, Clone, Default)]
pub struct Reserved {
    names: BTreeMap<String, &'static str>,
}

impl Reserved {
    /// `own_user`: calseg's own etcd user (the CN of `[etcd] cert_file`), when it has one.
    pub fn new(own_user: Option<&str>) -> Self {
        let mut names: BTreeMap<String, &'static str> = RESERVED_USERS
            .iter()
            .map(|name| (name.to_string(), "etcd's superuser"))
            .collect();
        if let Some(user) = own_user {
            names
                .entry(user.to_owned())
                .or_insert("calseg's own etcd user ([etcd] cert_file)");
        }
        Self { names }
    }

    /// Every reserved name.
    pub fn names(&self) -> Vec<String> {
        self.names.keys().cloned().collect()
    }

    /// Refuses a reserved `user`.
    pub fn check(&self, user: &str) -> Result<(), NotOwned> {
        match self.names.get(user) {
            Some(why) => Err(NotOwned::Reserved {
                user: user.to_owned(),
                why,
            }),
            None => Ok(()),
        }
    }
}

/// Refuses `user` when it is reserved, or when it exists in etcd (`live_roles`: its roles, or
/// `None` when there is no such user) with roles but without calseg's marker role. A user that
/// does not exist yet is calseg's to create; one with no role at all holds nothing and is
/// calseg's to take (the reconciler creates a user a moment before it binds the marker role).
pub fn judge(
    user: &str,
    reserved: &Reserved,
    live_roles: Option<&BTreeSet<String>>,
) -> Result<(), NotOwned> {
    reserved.check(user)?;
    match live_roles {
        Some(roles) if !roles.is_empty() && !roles.contains(MARKER_ROLE) => {
            Err(NotOwned::Foreign {
                user: user.to_owned(),
                roles: roles.iter().cloned().collect::<Vec<_>>().join(", "),
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn roles(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reserved_and_foreign_users_are_refused_and_calseg_s_own_are_not() {
        let reserved = Reserved::new(Some("calseg"));
        for name in ["root", "calseg"] {
            let refused = judge(name, &reserved, None).unwrap_err();
            assert!(matches!(refused, NotOwned::Reserved { .. }), "{refused}");
        }
        let foreign = judge(
            "calico-node.worker-legacy",
            &reserved,
            Some(&roles(&["root"])),
        )
        .unwrap_err();
        let text = foreign.to_string();
        assert!(text.contains("calico-node.worker-legacy"), "{text}");
        assert!(text.contains("roles: root"), "{text}");
        assert!(text.contains("etcdctl user delete"), "{text}");
        assert!(judge("c.n1", &reserved, Some(&roles(&[MARKER_ROLE, "calseg.c"]))).is_ok());
        assert!(judge("c.n1", &reserved, None).is_ok());
        assert!(judge("c.n1", &reserved, Some(&roles(&[]))).is_ok());
        assert!(judge("c.n1", &reserved, Some(&roles(&["handmade"]))).is_err());
    }

    #[test]
    fn the_guard_refuses_what_a_crafted_policy_would_render() {
        // A policy model that skipped validation: its template renders root for node "root".
        let text = "calico_version = \"3.29\"\n[etcd]\nendpoints = [\"https://127.0.0.1:2379\"]\n\
                    [components.c]\ngrants = \"calicoctl-read-only\"\n[[hosts]]\nmatch = \"*\"\n\
                    components = [\"c\"]\n";
        let mut policy = crate::policy::parse(text, "p.toml").unwrap();
        policy.identity.user_template = "{node}".into();
        let reserved = Reserved::new(Some("calseg-server"));
        for node in ["root", "calseg-server"] {
            let user = policy.etcd_user("c", node, 0);
            assert!(judge(&user, &reserved, None).is_err(), "{user}");
        }
    }
}
