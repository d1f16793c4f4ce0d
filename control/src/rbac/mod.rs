//! The etcd RBAC reconciler: what etcd's users and roles should be for a policy, what they are,
//! the difference between the two, and the operations that close it.
//!
//! calseg owns exactly two kinds of things in etcd's auth store: roles whose name starts with
//! [`OWNED_ROLE_PREFIX`], and users that hold the marker role [`MARKER_ROLE`]. Everything else,
//! `root` included, is read at most and never changed.
//!
//! # Layout
//! - `state`: [`AuthState`] and [`EtcdGrant`]; the desired state for a policy.
//! - `live`: reads the live state from etcd, with bounded parallelism.
//! - `plan`: the diff between desired and live, as ordered [`Change`]s, shown for people or JSON.
//! - `apply`: carries out a plan stage by stage, in parallel within a stage, idempotently.
//! - `ownership`: which users calseg may sign for: never reserved ones or ones it does not own.
//! - `preflight`: refuses to work on an etcd with auth disabled or without root credentials.
//! - `connect`: an etcd client from the server's TLS files.
//! - `retry`: retries with backoff for the transient errors an etcd under load returns.

mod apply;
mod connect;
mod live;
mod ownership;
mod plan;
mod preflight;
mod retry;
mod state;

pub use apply::{ApplyError, ApplyReport, apply};
pub use connect::{EtcdAccess, connect};
pub use live::{LiveAuth, read_live};
pub(crate) use live::{is_not_found, to_grant};
pub use ownership::{NotOwned, Reserved, judge};
pub use plan::{Change, Conflict, Plan, Stage, diff};
pub use preflight::{AuthMode, PreflightError, preflight};
pub use retry::{is_transient, with_retry};
pub use state::{AuthState, EtcdGrant, NodeGenerations, desired_state, first_generation};

/// Prefix of every role calseg creates: `calseg.{component}` and `calseg.{component}.{node}`.
pub const OWNED_ROLE_PREFIX: &str = "calseg.";

/// A role without permissions that marks a user as calseg's. (No `calseg.` prefix: component
/// names cannot contain dots, so `calseg.{component}` never equals it.)
pub const MARKER_ROLE: &str = "calseg-managed";

/// How many etcd requests are in flight at once. etcd applies auth changes one at a time, so
/// more buys little and a large burst makes etcd refuse requests.
pub const DEFAULT_PARALLELISM: usize = 16;

/// True for a role name calseg owns.
pub fn is_owned_role(name: &str) -> bool {
    name.starts_with(OWNED_ROLE_PREFIX) || name == MARKER_ROLE
}
