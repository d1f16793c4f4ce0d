//! One user's effective access: its roles' permissions merged into a read and a write union
//! (readwrite counts for both), and etcd's answer to "may it do this?".

use super::ranges::{KeyInterval, Merged, RangeSet, show_key};
use crate::rbac::EtcdGrant;
use calseg_api::access::Access;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// etcd's own role that may do everything, checked before any permission.
pub const ROOT_ROLE: &str = "root";

/// The two kinds of request etcd checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Range (get, list) and watch.
    Read,
    /// Put, delete (a delete of a range needs write on the whole range).
    Write,
}

impl Op {
    /// True when a permission of this access allows the operation.
    pub fn granted_by(self, access: Access) -> bool {
        matches!(
            (self, access),
            (_, Access::ReadWrite) | (Op::Read, Access::Read) | (Op::Write, Access::Write)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What a user may do in etcd, as etcd's auth store computes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAccess {
    pub user: String,
    /// Every role the user holds.
    pub roles: BTreeSet<String>,
    /// Roles the user holds that do not exist: etcd skips them.
    pub missing_roles: BTreeSet<String>,
    /// Holds etcd's root role: may do everything, whatever the permissions say.
    pub root: bool,
    /// Each role's permissions (of the roles that exist).
    grants: Vec<(String, EtcdGrant)>,
    read: RangeSet,
    write: RangeSet,
}

impl UserAccess {
    /// `user` holding `roles`; `permissions` has the roles that exist (others are missing).
    pub fn new(
        user: &str,
        roles: &BTreeSet<String>,
        permissions: &BTreeMap<String, BTreeSet<EtcdGrant>>,
    ) -> Self {
        let grants: Vec<(String, EtcdGrant)> = roles
            .iter()
            .filter_map(|role| Some((role, permissions.get(role)?)))
            .flat_map(|(role, grants)| grants.iter().map(|g| (role.clone(), g.clone())))
            .collect();
        let union = |op: Op| {
            RangeSet::new(
                grants
                    .iter()
                    .filter(|(_, g)| op.granted_by(g.access))
                    .map(|(role, g)| (KeyInterval::from_etcd(&g.key, &g.range_end), role.clone())),
            )
        };
        Self {
            user: user.to_owned(),
            roles: roles.clone(),
            missing_roles: roles
                .iter()
                .filter(|r| !permissions.contains_key(*r) && *r != ROOT_ROLE)
                .cloned()
                .collect(),
            root: roles.contains(ROOT_ROLE),
            read: union(Op::Read),
            write: union(Op::Write),
            grants,
        }
    }

    /// The merged intervals of one access, with the roles each comes from.
    pub fn ranges(&self, op: Op) -> &RangeSet {
        match op {
            Op::Read => &self.read,
            Op::Write => &self.write,
        }
    }

    /// etcd's answer for `op` on `query` (a single key for put and get, a range for list,
    /// watch and delete of a range).
    pub fn check(&self, op: Op, query: &KeyInterval) -> Answer {
        let ranges = self.ranges(op);
        let roles = if self.root {
            BTreeSet::from([ROOT_ROLE.to_owned()])
        } else {
            self.grants
                .iter()
                .filter(|(_, g)| {
                    op.granted_by(g.access)
                        && KeyInterval::from_etcd(&g.key, &g.range_end).overlaps(query)
                })
                .map(|(role, _)| role.clone())
                .collect()
        };
        Answer {
            user: self.user.clone(),
            access: op,
            query: query.clone(),
            allowed: self.root || ranges.covers(query),
            root: self.root,
            roles,
            uncovered: if self.root {
                Vec::new()
            } else {
                ranges.uncovered(query)
            },
        }
    }

    /// The `access` report.
    pub fn report(&self) -> AccessReport<'_> {
        AccessReport {
            user: &self.user,
            root: self.root,
            roles: &self.roles,
            missing_roles: &self.missing_roles,
            read: self.read.merged(),
            write: self.write.merged(),
        }
    }
}

/// `can-i`: `{"user", "access", "key", "range_end", "kind", "allowed", "root", "roles",
/// "uncovered"}`; `roles` are those with a permission of this access touching the range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    pub user: String,
    pub access: Op,
    #[serde(flatten)]
    pub query: KeyInterval,
    pub allowed: bool,
    pub root: bool,
    pub roles: BTreeSet<String>,
    /// The parts of the range no permission covers (empty when allowed).
    pub uncovered: Vec<KeyInterval>,
}

impl Answer {
    /// One line: "yes: ..." or "no: ...".
    pub fn render_text(&self) -> String {
        let what = format!("{} {} {}", self.user, self.access, self.query);
        let roles = self.roles.iter().cloned().collect::<Vec<_>>().join(", ");
        if self.root {
            format!(
                "yes: {what}: {} holds etcd's root role, which may do everything\n",
                self.user
            )
        } else if self.allowed {
            format!("yes: {what}: granted by {roles}\n")
        } else if self.roles.is_empty() {
            format!("no: {what}: no role grants {} on any of it\n", self.access)
        } else {
            let gaps: Vec<String> = self.uncovered.iter().map(ToString::to_string).collect();
            format!(
                "no: {what}: only partly granted (by {roles}); not covered: {}\n",
                gaps.join(", ")
            )
        }
    }
}

/// `access`: `{"user", "root", "roles", "missing_roles", "read": [...], "write": [...]}`, each
/// range `{"key", "range_end", "kind", "roles"}`, in key order.
#[derive(Debug, Serialize)]
pub struct AccessReport<'a> {
    pub user: &'a str,
    pub root: bool,
    pub roles: &'a BTreeSet<String>,
    pub missing_roles: &'a BTreeSet<String>,
    pub read: &'a [Merged],
    pub write: &'a [Merged],
}

impl AccessReport<'_> {
    pub fn render_text(&self) -> String {
        let mut out = format!("user {}: roles {}\n", self.user, join(self.roles));
        if self.root {
            out.push_str(
                "  holds etcd's root role: may read and write every key and administer etcd\n",
            );
        }
        if !self.missing_roles.is_empty() {
            out.push_str(&format!(
                "  roles that do not exist (etcd skips them): {}\n",
                join(self.missing_roles)
            ));
        }
        for (op, ranges) in [(Op::Read, self.read), (Op::Write, self.write)] {
            out.push_str(&format!("{op}:\n"));
            if self.root {
                out.push_str("  every key (etcd's root role)\n");
            } else if ranges.is_empty() {
                out.push_str("  (nothing)\n");
            }
            for range in ranges {
                out.push_str(&format!(
                    "  {}  from {}\n",
                    range.interval,
                    join(&range.sources)
                ));
            }
        }
        out
    }
}

fn join(names: &BTreeSet<String>) -> String {
    if names.is_empty() {
        return "(none)".to_owned();
    }
    names
        .iter()
        .map(|n| show_key(n.as_bytes()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn grant(key: &str, range_end: &[u8], access: Access) -> EtcdGrant {
        EtcdGrant {
            key: key.as_bytes().to_vec(),
            range_end: range_end.to_vec(),
            access,
        }
    }

    fn user(roles: &[(&str, Vec<EtcdGrant>)], extra: &[&str]) -> UserAccess {
        let names: BTreeSet<String> = roles
            .iter()
            .map(|(r, _)| (*r).to_owned())
            .chain(extra.iter().map(|r| (*r).to_owned()))
            .collect();
        let permissions = roles
            .iter()
            .map(|(r, g)| ((*r).to_owned(), g.iter().cloned().collect()))
            .collect();
        UserAccess::new("u", &names, &permissions)
    }

    #[test]
    fn readwrite_counts_for_both_and_read_or_write_for_one() {
        let u = user(
            &[
                ("rw", vec![grant("/rw/", b"/rw0", Access::ReadWrite)]),
                ("r", vec![grant("/r", b"", Access::Read)]),
                ("w", vec![grant("/w/", b"\0", Access::Write)]),
            ],
            &[],
        );
        let key = |k: &str| KeyInterval::point(k.as_bytes());
        assert!(u.check(Op::Read, &key("/rw/x")).allowed);
        assert!(u.check(Op::Write, &key("/rw/x")).allowed);
        assert!(u.check(Op::Read, &key("/r")).allowed);
        assert!(!u.check(Op::Write, &key("/r")).allowed);
        assert!(u.check(Op::Write, &key("/w/z/z")).allowed);
        assert!(!u.check(Op::Read, &key("/w/z/z")).allowed);
        assert_eq!(
            u.check(Op::Write, &key("/rw/x")).roles,
            BTreeSet::from(["rw".to_owned()])
        );
    }

    #[test]
    fn a_list_needs_the_merged_union_of_all_roles_to_cover_it() {
        let u = user(
            &[
                ("a", vec![grant("/m/", b"/m/5", Access::Read)]),
                ("b", vec![grant("/m/5", b"/m0", Access::ReadWrite)]),
            ],
            &["gone"],
        );
        let list = KeyInterval::prefix(b"/m/");
        let answer = u.check(Op::Read, &list);
        assert!(answer.allowed, "{answer:?}");
        assert_eq!(answer.roles.len(), 2);
        let partly = u.check(Op::Write, &list);
        assert!(!partly.allowed);
        assert_eq!(
            partly.uncovered,
            vec![KeyInterval::from_etcd(b"/m/", b"/m/5")]
        );
        assert!(
            partly
                .render_text()
                .starts_with("no: u write prefix /m/: only partly")
        );
        assert_eq!(u.missing_roles, BTreeSet::from(["gone".to_owned()]));
        let report = serde_json::to_value(u.report()).unwrap();
        assert_eq!(
            report["read"],
            serde_json::json!([{"key": "/m/", "range_end": "/m0", "kind": "prefix", "roles": ["a", "b"]}])
        );
    }

    #[test]
    fn the_root_role_may_do_everything() {
        let u = user(&[], &[ROOT_ROLE]);
        let answer = u.check(Op::Write, &KeyInterval::prefix(b"/"));
        assert!(answer.allowed && answer.root);
        assert!(u.missing_roles.is_empty());
        assert!(answer.render_text().contains("root role"));
        let none = user(&[], &[]);
        assert!(!none.check(Op::Read, &KeyInterval::point(b"/a")).allowed);
    }
}
