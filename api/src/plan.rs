//! The fleet plan: what putting a policy in force would change, in etcd and on each node. One
//! shape for `calseg-server plan --json`, whether the server computed it (it knows the enrolled
//! nodes and what each is served) or the CLI did straight against etcd (`--direct`).

use crate::access::Access;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The body of `POST /v1/admin/rbac/plan`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// A candidate policy to plan instead of the one in force. The server validates it and
    /// plans it, and neither adopts, keeps nor logs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<CandidatePolicy>,
}

/// A policy file's text and the name its errors are reported under.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidatePolicy {
    /// The file's path on the operator's machine: error messages name it.
    pub name: String,
    pub text: String,
}

/// Who computed the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanSource {
    /// The running server: enrolled nodes and per-node changes are known.
    Server,
    /// The CLI straight against etcd: only the nodes the policy names, no per-node changes.
    Direct,
}

/// What putting a policy in force would change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetPlan {
    pub source: PlanSource,
    /// The policy planned: the candidate file's name, or "the policy in force".
    pub policy: String,
    /// etcd's users and roles: the changes that make etcd match the policy on every node.
    pub rbac: RbacDiff,
    /// Whether `nodes` and `unchanged` are known (false for `--direct`).
    pub nodes_known: bool,
    /// Nodes whose manifest would change, in wave order then by name.
    pub nodes: Vec<NodePlan>,
    /// Enrolled nodes whose manifest would stay as it is.
    pub unchanged: Vec<String>,
    /// The policy's own warnings (it is valid, but may not do what was meant).
    #[serde(default)]
    pub policy_warnings: Vec<String>,
    /// Warnings from the latest check of etcd's releases.
    #[serde(default)]
    pub etcd_warnings: Vec<String>,
}

impl FleetPlan {
    /// True when nothing would change: no RBAC change or conflict, and no node change.
    pub fn is_empty(&self) -> bool {
        self.rbac.changes.is_empty() && self.rbac.conflicts.is_empty() && self.nodes.is_empty()
    }
}

/// The etcd RBAC diff, in the order an apply runs it (everything that takes access away first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RbacDiff {
    pub changes: Vec<RbacChange>,
    /// Users the policy names that exist in etcd but calseg did not create: left alone.
    pub conflicts: Vec<RbacConflict>,
    /// How many changes of each kind ("users to delete", "roles to create", ...).
    pub counts: BTreeMap<String, usize>,
}

/// One operation on etcd's auth store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RbacChange {
    /// revoke_role, revoke_permission, narrow_permission, delete_user, delete_role,
    /// create_role, grant_permission, create_user or grant_role.
    pub op: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<RbacGrant>,
    /// The access the range had before, when a permission is narrowed or widened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub was: Option<Access>,
    /// The change as `plan` prints it, e.g. `+ role calseg.cni-plugin: grant read prefix /x/`.
    pub text: String,
}

/// A key range with its access, as etcd stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RbacGrant {
    pub key: String,
    /// Empty for a single key; otherwise the exclusive end of the range.
    pub range_end: String,
    /// True when the range is every key under `key`.
    pub prefix: bool,
    pub access: Access,
}

/// Something the plan leaves alone without the operator's say-so (`--adopt`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RbacConflict {
    /// foreign_user
    pub kind: String,
    pub user: String,
    pub roles: Vec<String>,
    /// What is wrong and what to do, as `plan` prints it.
    pub text: String,
}

/// What one node would be served differently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    pub node: String,
    /// The rollout wave it would land in (1 is the first, the canary when there is one);
    /// `None` when the policy has no `[rollout] canary` or `wave`: every node at once.
    #[serde(default)]
    pub wave: Option<u32>,
    /// The manifest revision served now (`None`: the node gets no manifest now).
    #[serde(default)]
    pub revision_now: Option<String>,
    /// The manifest revision it would be served (`None`: it would get no manifest).
    #[serde(default)]
    pub revision_planned: Option<String>,
    /// File changes, by path.
    pub files: Vec<FileChange>,
    /// systemd units the agent would restart (once each).
    pub restart: Vec<String>,
}

/// How a file would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileChangeKind {
    Added,
    Removed,
    /// The content changes (a new hash); owner and mode may change too.
    Changed,
    /// Same content; only owner or mode change.
    Attributes,
}

/// One file of a node's manifest that would change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    pub path: String,
    pub component: String,
    pub change: FileChangeKind,
    /// SHA-256 (hex) of what the file is made from: the CA bundle for ca.pem; for cert.pem and
    /// key.pem, everything the agent makes a new key and certificate for (etcd user, paths,
    /// owner, modes, endpoints, CA); for a rendered file, the endpoints and paths written in it.
    /// Keys never leave their host, so this is not a hash of the bytes on disk.
    #[serde(default)]
    pub hash_now: Option<String>,
    #[serde(default)]
    pub hash_planned: Option<String>,
    /// Mode (octal digits), for files with a mode in the manifest.
    #[serde(default)]
    pub mode_now: Option<String>,
    #[serde(default)]
    pub mode_planned: Option<String>,
    /// `owner:group`, for files with an owner in the manifest.
    #[serde(default)]
    pub owner_now: Option<String>,
    #[serde(default)]
    pub owner_planned: Option<String>,
}
