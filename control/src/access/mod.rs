//! The access checker: what a user may do in etcd, answered from etcd's live auth state (the
//! roles and permissions etcd holds now, not what the policy says they should be), with the
//! range logic etcd itself uses.
//!
//! # Layout
//! - `ranges`: [`KeyInterval`] and [`RangeSet`]: etcd's key intervals, their merged unions,
//!   cover and overlap.
//! - `effective`: [`UserAccess`]: one user's merged read and write ranges, and [`Answer`], etcd's
//!   answer to "may it read or write this key or range?".
//! - `live`: reads a user, or every calseg identity, with their roles' permissions from etcd.
//! - `identity`: the component and node a user name stands for, by the policy's user template.
//! - `scopes`: [`NODE_SCOPED`] keys and the one table of keys [`SHARED_BY_DESIGN`], with reasons.
//! - `exposure`: [`Exposure`]: which other nodes' keys and which shared keys each identity
//!   reaches.

mod effective;
mod exposure;
mod identity;
mod live;
mod ranges;
mod scopes;

pub use effective::{AccessReport, Answer, Op, ROOT_ROLE, UserAccess};
pub use exposure::{Exposure, IdentityExposure, Reach, Row, Scope, exposure};
pub use identity::{Owner, owner_of};
pub use live::{AccessError, read_identities, read_user};
pub use ranges::{End, KeyInterval, Kind, Merged, RangeSet};
pub use scopes::{NODE_SCOPED, NodeScoped, R3, SHARED_BY_DESIGN, SharedByDesign};
