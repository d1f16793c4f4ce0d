//! Rollouts in waves with health gates: a reloaded policy goes to the canary first, then to
//! the other approved nodes a wave at a time, each wave opened only when the last one is healthy
//! and has baked. The server's controller task (`serve`) and the admin routes drive them; the
//! records they persist are [`RolloutRecord`]s.
//!
//! # Layout
//! - `budget`: a lease request's restart budget from the policy, and when a refused agent
//!   asks again.
//! - `waves`: which node is in which wave (canary first, then a stable hash order).
//! - `controller`: node health, the next step of a running rollout, and the operator's
//!   checked transitions (pause, resume, abort, rollback): pure functions.
//! - `driver`: starts, resumes and steps rollouts, and carries out the operator's actions:
//!   each change persisted, then put in force, then the reconciler poked.
//! - `status`: convergence of each approved node to its policy, and how the waves stand.
//!
//! [`RolloutRecord`]: crate::store::RolloutRecord

mod budget;
mod controller;
mod driver;
mod status;
mod waves;

pub use budget::{max_life_of, resolve_budget, retry_after, ttl_of};
pub use controller::{Health, Step, apply_step, manual, next_step, node_health, serves_new};
pub use driver::{act, resume_after_restart, start, supersede, tick};
pub use status::{
    annotate, convergence, current_status, status, status_of_nodes, wave_rollout, waves,
};
pub use waves::assign_waves;
