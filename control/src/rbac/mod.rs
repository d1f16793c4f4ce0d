//! The etcd RBAC reconciler: what etcd's users and roles should be for a policy, what they are,
//! the difference between the two, and the operations that close it.
//!
//! calseg owns exactly two kinds of things in etcd's auth store: roles whose name starts with
//! [`OWNED_ROLE_PREFIX`], and users that hold at least one such role ([`is_calseg_user`]; any
//! other role they hold is drift, revoked). Everything else, `root` included, is read at most and never changed.
//!
//! # The objects of one identity, and what they cost
//! etcd (3.4.20+, 3.5.5+) rebuilds its whole range-permission cache, walking every user and
//! every role they hold, on every auth change except RoleAdd; auth changes cannot be batched.
//! So each such change costs O(users), and the objects are laid out to need few of them:
//! - `calseg.{component}`: the component's shared grants, one role for the whole fleet (made
//!   once; its permission grants are paid once per fleet, not per identity).
//! - `calseg.{component}.{node}`: the component's per-node grants, only for a component that has
//!   some. RoleAdd is free; each of its k permissions is one RoleGrantPermission.
//! - the user `{component}.{node}` (the certificate's CN): UserAdd, then one UserGrantRole per
//!   role above. No marker role: ownership is read from the roles themselves.
//!
//! Rebuilding changes per identity: **2** (UserAdd, grant the shared role) for a component
//! without per-node grants, **3 + k** with k per-node grants (k = 1 for a single node prefix,
//! 5 for `calico-node-per-node`). On a from-scratch apply the stages create every role and
//! grant every permission before the first user exists, so those rebuilds walk almost no
//! users, and the user adds come before any binding, when the new users hold nothing to walk;
//! the bindings (1 or 2 per identity) are what a from-scratch apply pays for. The k permission grants cannot go: each
//! is a key range only that node may write, and etcd has no role templates, nested roles or
//! batched grants; putting the shared grants into the per-node role instead would make a node
//! join cost every shared grant again. The layout before (a marker role `calseg-managed` bound
//! to every user) cost one more per identity; [`diff`] converges it by deleting that role (one
//! change for the whole fleet: etcd drops a deleted role from its users), and no user loses a
//! permission meanwhile, since the marker held none.
//!
//! # Layout
//! - `state`: [`AuthState`] and [`EtcdGrant`]; the desired state for a policy.
//! - `live`: reads the live state from etcd, with bounded parallelism.
//! - `plan`: the diff between desired and live, as ordered [`Change`]s, shown for people or JSON.
//! - `apply`: carries out a plan stage by stage, paced, idempotently.
//! - `pace`: how many auth changes may be in flight and how often one may start.
//! - `ownership`: which users are calseg's and which it may sign for.
//! - `preflight`: refuses to work on an etcd with auth disabled or without root credentials.
//! - `connect`: an etcd client from the server's TLS files.
//! - `retry`: retries with backoff for the transient errors an etcd under load returns.

mod apply;
mod connect;
mod live;
mod ownership;
mod pace;
mod plan;
mod preflight;
mod retry;
mod state;

pub use apply::{ApplyError, ApplyReport, apply};
pub use connect::{EtcdAccess, connect};
pub use live::{LiveAuth, read_live};
pub(crate) use live::{is_not_found, to_grant};
pub use ownership::{NotOwned, Reserved, is_calseg_user, is_foreign_user, judge};
pub use pace::{DEFAULT_AUTH_CHANGE_DUTY, Pacing};
pub use plan::{Change, Conflict, Plan, Stage, diff};
pub use preflight::{AuthMode, PreflightError, preflight};
pub use retry::{is_transient, with_patience, with_retry};
pub use state::{AuthState, EtcdGrant, NodeGenerations, desired_state, first_generation};

/// Prefix of every role calseg creates: `calseg.{component}` and `calseg.{component}.{node}`.
pub const OWNED_ROLE_PREFIX: &str = "calseg.";

/// The role without permissions that marked a user as calseg's in calseg's earlier layout.
/// Still calseg's (so users holding it stay calseg's), no longer wanted: an apply deletes it.
/// (No `calseg.` prefix: component names cannot contain dots, so no role calseg makes equals it.)
pub const LEGACY_MARKER_ROLE: &str = "calseg-managed";

/// How many etcd reads are in flight at once, and the most auth changes ever in flight (the
/// pacer usually allows fewer: etcd applies auth changes one at a time).
pub const DEFAULT_PARALLELISM: usize = 16;

/// True for a role name calseg owns.
pub fn is_owned_role(name: &str) -> bool {
    name.starts_with(OWNED_ROLE_PREFIX) || name == LEGACY_MARKER_ROLE
}
