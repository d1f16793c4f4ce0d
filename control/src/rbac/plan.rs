//! The difference between the desired and the live auth state, as ordered changes.
//!
//! Changes run in stages (see [`Stage`]): everything that takes access away comes before
//! anything that gives access, so an apply cut off at any point leaves each calseg identity with
//! at most what the old or the new policy grants, never more than both.

use super::live::LiveAuth;
use super::state::{AuthState, EtcdGrant};
use calseg_api::access::Access;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

/// When a change runs; stages run in this order, changes within one stage in parallel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Revoke roles from users, revoke or narrow permissions.
    Revoke,
    /// Delete users no longer in the policy: their certificates stop working here.
    DeleteUsers,
    DeleteRoles,
    CreateRoles,
    GrantPermissions,
    /// Create users. Before any binding: etcd's cache rebuild walks every user's roles and
    /// permissions, and a user without a role costs it next to nothing, so on a from-scratch
    /// apply the creations are cheap when no new user holds a role yet.
    CreateUsers,
    /// Bind roles to users, the roles with fewest permissions first (see [`diff`]).
    BindRoles,
}

/// One operation on etcd's auth store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    RevokeRole {
        user: String,
        role: String,
    },
    RevokePermission {
        role: String,
        grant: EtcdGrant,
    },
    /// Re-grant the same range with less access (etcd replaces the access in place).
    NarrowPermission {
        role: String,
        from: Access,
        grant: EtcdGrant,
    },
    DeleteUser {
        user: String,
    },
    DeleteRole {
        role: String,
    },
    CreateRole {
        role: String,
    },
    /// Grant a range; `replaces` is the access it had before when this widens it.
    GrantPermission {
        role: String,
        grant: EtcdGrant,
        replaces: Option<Access>,
    },
    CreateUser {
        user: String,
    },
    GrantRole {
        user: String,
        role: String,
    },
}

impl Change {
    /// The stage this change belongs to.
    pub fn stage(&self) -> Stage {
        match self {
            Self::RevokeRole { .. }
            | Self::RevokePermission { .. }
            | Self::NarrowPermission { .. } => Stage::Revoke,
            Self::DeleteUser { .. } => Stage::DeleteUsers,
            Self::DeleteRole { .. } => Stage::DeleteRoles,
            Self::CreateRole { .. } => Stage::CreateRoles,
            Self::GrantPermission { .. } => Stage::GrantPermissions,
            Self::CreateUser { .. } => Stage::CreateUsers,
            Self::GrantRole { .. } => Stage::BindRoles,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RevokeRole { user, role } => write!(f, "- user {user}: revoke role {role}"),
            Self::RevokePermission { role, grant } => write!(f, "- role {role}: revoke {grant}"),
            Self::NarrowPermission { role, from, grant } => {
                write!(f, "~ role {role}: narrow {grant} (was {from})")
            }
            Self::DeleteUser { user } => write!(f, "- user {user}"),
            Self::DeleteRole { role } => write!(f, "- role {role}"),
            Self::CreateRole { role } => write!(f, "+ role {role}"),
            Self::GrantPermission {
                role,
                grant,
                replaces: None,
            } => {
                write!(f, "+ role {role}: grant {grant}")
            }
            Self::GrantPermission {
                role,
                grant,
                replaces: Some(from),
            } => {
                write!(f, "~ role {role}: widen {grant} (was {from})")
            }
            Self::CreateUser { user } => write!(f, "+ user {user}"),
            Self::GrantRole { user, role } => write!(f, "+ user {user}: grant role {role}"),
        }
    }
}

/// Something the plan will not do without the operator's say-so. A conflict holds back only
/// its own user: the rest of the plan is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Conflict {
    /// The policy names a user that exists in etcd but that calseg did not create.
    ForeignUser {
        user: String,
        roles: BTreeSet<String>,
    },
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ForeignUser { user, roles } => write!(
                f,
                "user {user} exists in etcd but calseg did not create it (roles: {}): calseg \
                 leaves it alone and signs no certificate for it (everything else is reconciled); \
                 delete it with etcdctl if it is stale, or pass --adopt to let calseg manage it \
                 (its other roles are then revoked)",
                roles.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// The ordered changes that make etcd match the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Sorted by stage; within a stage, by name (role bindings: by the role's permission
    /// count, then by name).
    pub changes: Vec<Change>,
    pub conflicts: Vec<Conflict>,
}

impl Plan {
    /// True when etcd already matches.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// How many changes of each kind, for the summary line and metrics.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for change in &self.changes {
            let kind = match change {
                Change::RevokeRole { .. } => "role bindings to remove",
                Change::RevokePermission { .. } => "permissions to revoke",
                Change::NarrowPermission { .. } => "permissions to narrow",
                Change::DeleteUser { .. } => "users to delete",
                Change::DeleteRole { .. } => "roles to delete",
                Change::CreateRole { .. } => "roles to create",
                Change::GrantPermission { replaces: None, .. } => "permissions to grant",
                Change::GrantPermission { .. } => "permissions to widen",
                Change::CreateUser { .. } => "users to create",
                Change::GrantRole { .. } => "role bindings to add",
            };
            *counts.entry(kind).or_insert(0) += 1;
        }
        counts
    }

    /// The plan for people: a summary line, then one line per change and conflict.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        if self.is_empty() && self.conflicts.is_empty() {
            out.push_str("No changes: etcd's users and roles match the policy.\n");
            return out;
        }
        let summary: Vec<String> = self
            .counts()
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        let _ = writeln!(out, "Plan: {}.", summary.join(", "));
        for change in &self.changes {
            let _ = writeln!(out, "  {change}");
        }
        for conflict in &self.conflicts {
            let _ = writeln!(out, "  ! {conflict}");
        }
        out
    }
}

/// The changes from `live` to `desired`. With `adopt`, users the policy names that exist but
/// are not calseg's are taken over (their other roles revoked, calseg's bound) instead of
/// reported as conflicts; such users without any role are taken over always.
pub fn diff(desired: &AuthState, live: &LiveAuth, adopt: bool) -> Plan {
    let mut plan = Plan::default();
    let current = &live.owned;
    // etcd drops a deleted role from every user that holds it, in the same change: revoking
    // it user by user first would cost one cache rebuild per user for nothing (the marker role
    // of the earlier layout is the large case: one change instead of one per identity).
    let deleted: BTreeSet<&String> = current
        .roles
        .keys()
        .filter(|role| !desired.roles.contains_key(*role))
        .collect();

    for (role, live_grants) in &current.roles {
        match desired.roles.get(role) {
            None => plan.changes.push(Change::DeleteRole { role: role.clone() }),
            Some(wanted) => diff_grants(role, live_grants, wanted, &mut plan.changes),
        }
    }
    for (role, wanted) in &desired.roles {
        if !current.roles.contains_key(role) {
            plan.changes.push(Change::CreateRole { role: role.clone() });
            diff_grants(role, &BTreeSet::new(), wanted, &mut plan.changes);
        }
    }

    for (user, live_roles) in &current.users {
        match desired.users.get(user) {
            None => plan.changes.push(Change::DeleteUser { user: user.clone() }),
            Some(wanted) => {
                let kept: BTreeSet<String> = live_roles
                    .iter()
                    .filter(|role| !deleted.contains(role))
                    .cloned()
                    .collect();
                diff_bindings(user, &kept, wanted, &mut plan.changes)
            }
        }
    }
    for (user, wanted) in &desired.users {
        if current.users.contains_key(user) {
            continue;
        }
        match live.foreign_users.get(user) {
            None => {
                plan.changes.push(Change::CreateUser { user: user.clone() });
                diff_bindings(user, &BTreeSet::new(), wanted, &mut plan.changes);
            }
            // No role at all: it holds nothing, so taking it gives no one anything (and it is
            // what an apply cut off between creating a user and binding its roles leaves).
            Some(their_roles) if adopt || their_roles.is_empty() => {
                // Its other roles go (an adopted user holds what the policy gives, nothing
                // else), then ours are bound.
                diff_bindings(user, their_roles, wanted, &mut plan.changes);
            }
            Some(their_roles) => plan.conflicts.push(Conflict::ForeignUser {
                user: user.clone(),
                roles: their_roles.clone(),
            }),
        }
    }
    // Each binding makes etcd rebuild over every (user, permission) pair bound so far: binding
    // the lightest roles first keeps the pairs few for as long as possible.
    let weight = |change: &Change| match change {
        Change::GrantRole { role, .. } => desired.roles.get(role).map_or(0, BTreeSet::len),
        _ => 0,
    };
    plan.changes
        .sort_by_key(|change| (change.stage(), weight(change)));
    plan
}

/// Permission changes for one role that exists on both sides (or is about to be created).
fn diff_grants(
    role: &str,
    live: &BTreeSet<EtcdGrant>,
    wanted: &BTreeSet<EtcdGrant>,
    changes: &mut Vec<Change>,
) {
    // etcd keys a role's permissions by range: the same range holds one access at a time.
    let live_by_range: BTreeMap<_, _> = live.iter().map(|g| (g.range(), g)).collect();
    let wanted_by_range: BTreeMap<_, _> = wanted.iter().map(|g| (g.range(), g)).collect();
    for (range, have) in &live_by_range {
        match wanted_by_range.get(range) {
            None => changes.push(Change::RevokePermission {
                role: role.to_owned(),
                grant: (*have).clone(),
            }),
            Some(want) if want.access == have.access => {}
            Some(want) if covers(have.access, want.access) => {
                changes.push(Change::NarrowPermission {
                    role: role.to_owned(),
                    from: have.access,
                    grant: (*want).clone(),
                })
            }
            Some(want) if covers(want.access, have.access) => {
                changes.push(Change::GrantPermission {
                    role: role.to_owned(),
                    grant: (*want).clone(),
                    replaces: Some(have.access),
                })
            }
            Some(want) => {
                // read <-> write: neither covers the other; take away first, then give.
                changes.push(Change::RevokePermission {
                    role: role.to_owned(),
                    grant: (*have).clone(),
                });
                changes.push(Change::GrantPermission {
                    role: role.to_owned(),
                    grant: (*want).clone(),
                    replaces: None,
                });
            }
        }
    }
    for (range, want) in &wanted_by_range {
        if !live_by_range.contains_key(range) {
            changes.push(Change::GrantPermission {
                role: role.to_owned(),
                grant: (*want).clone(),
                replaces: None,
            });
        }
    }
}

fn diff_bindings(
    user: &str,
    live: &BTreeSet<String>,
    wanted: &BTreeSet<String>,
    changes: &mut Vec<Change>,
) {
    for role in live.difference(wanted) {
        changes.push(Change::RevokeRole {
            user: user.to_owned(),
            role: role.clone(),
        });
    }
    for role in wanted.difference(live) {
        changes.push(Change::GrantRole {
            user: user.to_owned(),
            role: role.clone(),
        });
    }
}

/// True when access `wide` allows everything `narrow` allows.
fn covers(wide: Access, narrow: Access) -> bool {
    wide == narrow || wide == Access::ReadWrite
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::LEGACY_MARKER_ROLE;

    fn grant(key: &str, access: Access) -> EtcdGrant {
        EtcdGrant {
            key: key.as_bytes().to_vec(),
            range_end: crate::policy::prefix_end(key.as_bytes()).unwrap(),
            access,
        }
    }

    fn state(roles: &[(&str, Vec<EtcdGrant>)], users: &[(&str, &[&str])]) -> AuthState {
        AuthState {
            roles: roles
                .iter()
                .map(|(r, g)| (r.to_string(), g.iter().cloned().collect()))
                .collect(),
            users: users
                .iter()
                .map(|(u, r)| (u.to_string(), r.iter().map(|s| s.to_string()).collect()))
                .collect(),
        }
    }

    #[test]
    fn from_nothing_creates_then_grants_then_binds() {
        let desired = state(
            &[
                ("calseg.c", vec![grant("/a/", Access::Read)]),
                ("calseg.c.n1", vec![grant("/n/n1/", Access::ReadWrite)]),
            ],
            &[("c.n1", &["calseg.c", "calseg.c.n1"])],
        );
        let plan = diff(&desired, &LiveAuth::default(), false);
        let stages: Vec<Stage> = plan.changes.iter().map(Change::stage).collect();
        let mut sorted = stages.clone();
        sorted.sort();
        assert_eq!(stages, sorted);
        // 2 role adds (free), 2 permissions (before any user exists), then the identity's
        // own: a user add and one binding per role, nothing else.
        assert_eq!(plan.changes.len(), 2 + 2 + 1 + 2);
        let counts = plan.counts();
        assert_eq!(counts["users to create"], 1);
        assert_eq!(counts["role bindings to add"], 2);
        assert!(
            plan.render_text()
                .contains("+ role calseg.c: grant read prefix /a/")
        );
    }

    #[test]
    fn the_earlier_layout_converges_with_one_role_deletion_and_nothing_lost() {
        let desired = state(
            &[("calseg.c", vec![grant("/a/", Access::Read)])],
            &[("c.n1", &["calseg.c"]), ("c.n2", &["calseg.c"])],
        );
        let live = LiveAuth {
            owned: state(
                &[
                    (LEGACY_MARKER_ROLE, vec![]),
                    ("calseg.c", vec![grant("/a/", Access::Read)]),
                ],
                &[
                    ("c.n1", &[LEGACY_MARKER_ROLE, "calseg.c"]),
                    ("c.n2", &[LEGACY_MARKER_ROLE, "calseg.c"]),
                ],
            ),
            ..LiveAuth::default()
        };
        let plan = diff(&desired, &live, false);
        assert_eq!(
            plan.changes,
            vec![Change::DeleteRole {
                role: LEGACY_MARKER_ROLE.into()
            }]
        );
    }

    #[test]
    fn equal_states_plan_nothing() {
        let desired = state(
            &[("calseg.c", vec![grant("/a/", Access::Read)])],
            &[("c.n1", &["calseg.c"])],
        );
        let live = LiveAuth {
            owned: desired.clone(),
            ..LiveAuth::default()
        };
        assert!(diff(&desired, &live, false).is_empty());
    }

    #[test]
    fn access_changes_narrow_widen_or_swap_in_the_safe_stage() {
        let desired = state(
            &[(
                "calseg.c",
                vec![
                    grant("/rw-to-r/", Access::Read),
                    grant("/r-to-rw/", Access::ReadWrite),
                    grant("/r-to-w/", Access::Write),
                ],
            )],
            &[],
        );
        let live = LiveAuth {
            owned: state(
                &[(
                    "calseg.c",
                    vec![
                        grant("/rw-to-r/", Access::ReadWrite),
                        grant("/r-to-rw/", Access::Read),
                        grant("/r-to-w/", Access::Read),
                    ],
                )],
                &[],
            ),
            ..LiveAuth::default()
        };
        let plan = diff(&desired, &live, false);
        let text = plan.render_text();
        assert!(
            text.contains("~ role calseg.c: narrow read prefix /rw-to-r/ (was readwrite)"),
            "{text}"
        );
        assert!(
            text.contains("~ role calseg.c: widen readwrite prefix /r-to-rw/ (was read)"),
            "{text}"
        );
        assert!(
            text.contains("- role calseg.c: revoke read prefix /r-to-w/"),
            "{text}"
        );
        assert!(
            text.contains("+ role calseg.c: grant write prefix /r-to-w/"),
            "{text}"
        );
        for change in &plan.changes {
            match change {
                Change::NarrowPermission { .. } | Change::RevokePermission { .. } => {
                    assert_eq!(change.stage(), Stage::Revoke)
                }
                Change::GrantPermission { .. } => {
                    assert_eq!(change.stage(), Stage::GrantPermissions)
                }
                other => panic!("unexpected {other}"),
            }
        }
    }

    #[test]
    fn removed_users_and_roles_go_and_stray_bindings_are_revoked() {
        let desired = state(&[("calseg.c", vec![])], &[("c.n1", &["calseg.c"])]);
        let live = LiveAuth {
            owned: state(
                &[("calseg.c", vec![]), ("calseg.c.n3", vec![])],
                &[("c.n1", &["calseg.c", "root"]), ("c.n3", &["calseg.c.n3"])],
            ),
            ..LiveAuth::default()
        };
        let plan = diff(&desired, &live, false);
        assert_eq!(
            plan.changes,
            vec![
                Change::RevokeRole {
                    user: "c.n1".into(),
                    role: "root".into()
                },
                Change::DeleteUser {
                    user: "c.n3".into()
                },
                Change::DeleteRole {
                    role: "calseg.c.n3".into()
                },
            ]
        );
    }

    #[test]
    fn a_foreign_user_is_a_conflict_unless_adopted() {
        let desired = state(&[("calseg.c", vec![])], &[("c.n1", &["calseg.c"])]);
        let mut live = LiveAuth::default();
        live.owned.roles.insert("calseg.c".into(), BTreeSet::new());
        live.foreign_users
            .insert("c.n1".into(), BTreeSet::from(["handmade".to_owned()]));
        let plan = diff(&desired, &live, false);
        assert!(plan.changes.is_empty());
        assert_eq!(plan.conflicts.len(), 1);
        let mut roleless = live.clone();
        roleless
            .foreign_users
            .insert("c.n1".into(), BTreeSet::new());
        let taken = diff(&desired, &roleless, false);
        assert!(taken.conflicts.is_empty());
        assert_eq!(taken.changes.len(), 1, "{:?}", taken.changes);
        let adopted = diff(&desired, &live, true);
        assert!(adopted.conflicts.is_empty());
        // Adopted: its own role goes first (stage Revoke), then calseg's is bound.
        assert_eq!(
            adopted.changes,
            vec![
                Change::RevokeRole {
                    user: "c.n1".into(),
                    role: "handmade".into()
                },
                Change::GrantRole {
                    user: "c.n1".into(),
                    role: "calseg.c".into()
                }
            ]
        );
    }
}
