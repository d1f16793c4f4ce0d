//! Which etcd users are calseg's, and whether calseg may sign a certificate whose CN names
//! one: never a reserved name (`root`, calseg's own etcd user), never a user that holds roles
//! but none of calseg's (one that existed before calseg, or that someone else made). Checked
//! when a node enrolls and again at every signing, against etcd as it is then.
//!
//! A user is calseg's when it holds at least one of calseg's roles ([`is_owned_role`]): only
//! calseg creates `calseg.` roles and only etcd's root can bind them, and every identity holds
//! its component's role. Any other role such a user holds is drift that the reconciler revokes
//! (`root` bound by hand included). There is no marker binding: it would cost every identity one
//! more rebuild of etcd's permission cache (see the module doc of [`crate::rbac`]). An operator
//! takes a user out of calseg's hands by revoking calseg's roles from it; a user with no role
//! holds nothing and is calseg's to take (an apply cut off between creating a user and binding
//! its roles leaves one).

use super::is_owned_role;
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

/// True for the roles of a user calseg owns: at least one of them is calseg's.
pub fn is_calseg_user(roles: &BTreeSet<String>) -> bool {
    roles.iter().any(|role| is_owned_role(role))
}

/// True for the roles of a user someone else owns: roles, none of them calseg's.
pub fn is_foreign_user(roles: &BTreeSet<String>) -> bool {
    !roles.is_empty() && !is_calseg_user(roles)
}

/// Refuses `user` when it is reserved, or when it exists in etcd (`live_roles`: its roles, or
/// `None` when there is no such user) holding roles, none of them calseg's. A user that does
/// not exist yet is calseg's to create; one with no role at all holds nothing and is calseg's
/// to take (the reconciler creates a user a moment before it binds its roles).
pub fn judge(
    user: &str,
    reserved: &Reserved,
    live_roles: Option<&BTreeSet<String>>,
) -> Result<(), NotOwned> {
    reserved.check(user)?;
    match live_roles {
        Some(roles) if is_foreign_user(roles) => Err(NotOwned::Foreign {
            user: user.to_owned(),
            roles: roles.iter().cloned().collect::<Vec<_>>().join(", "),
        }),
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
        assert!(
            judge(
                "c.n1",
                &reserved,
                Some(&roles(&["calseg.c", "calseg.c.n1"]))
            )
            .is_ok()
        );
        // The marker role of calseg's earlier layout is calseg's too (an apply removes it).
        assert!(
            judge(
                "c.n1",
                &reserved,
                Some(&roles(&[super::super::LEGACY_MARKER_ROLE, "calseg.c"]))
            )
            .is_ok()
        );
        assert!(judge("c.n1", &reserved, None).is_ok());
        assert!(judge("c.n1", &reserved, Some(&roles(&[]))).is_ok());
        assert!(judge("c.n1", &reserved, Some(&roles(&["handmade"]))).is_err());
        // A role bound by hand beside calseg's (root even) is drift, not a new owner.
        assert!(judge("c.n1", &reserved, Some(&roles(&["calseg.c", "root"]))).is_ok());
        assert!(is_calseg_user(&roles(&["calseg.c", "root"])));
        assert!(!is_calseg_user(&roles(&[])));
        assert!(!is_foreign_user(&roles(&[])));
        assert!(is_foreign_user(&roles(&["root"])));
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
