//! calseg-control: calseg's domain, with no HTTP in it.
//!
//! The segmentation policy and Calico's grant tables, the etcd RBAC reconciler, the two CAs and
//! signing, the server's store, node manifests and rollouts. `calseg-server` drives it: its
//! HTTPS API, replicas, metrics and command line are adapters over this crate, and nothing
//! here depends on them (dependencies point server → control → api).
//!
//! # Layout
//! - [`adopt`]: put in force the policy and rollout the shared store holds (replicas).
//! - [`state`]: [`Control`], the shared state the server's handlers and tasks work on.
//! - [`error`]: [`ControlError`], each refusal's class, stable kind and message.
//! - [`policy`]: the policy file → validated model: components, grants per Calico version, hosts.
//! - [`rbac`]: the etcd RBAC reconciler: desired vs live users and roles, plan, apply.
//! - [`etcd_release`]: which etcd release each endpoint runs, against the known RBAC bypasses.
//! - [`access`]: the access checker: what a user may read and write, from etcd's live roles.
//! - [`datastore`]: Calico's cluster-wide objects, created once so per-node identities need no
//!   cluster-wide write (`datastore init`).
//! - [`manifest`]: a node's manifest computed from the policy.
//! - [`manifest_cache`]: each node's served manifest (JSON and revision) per policy epoch.
//! - [`inventory`]: each node's inventory from its record and its agent's last report.
//! - [`component_calls`]: a certificate for a component's component-wide identity (one
//!   Kubernetes Secret per component), asked by an administrator.
//! - [`node_calls`]: what an enrolled node asks: its standing, manifest, certificates,
//!   reports, a new fleet certificate.
//! - [`leases`]: restart leases within the fleet's restart budget.
//! - [`pending`]: pending enrollments older than `[api] pending_ttl` are dropped and audited.
//! - [`enrollment`]: a node's enrollment by token, approval or auto-approve glob.
//! - [`approval`]: an operator's decisions about a node: approve its waiting key by
//!   fingerprint, deny, revoke, delete.
//! - [`tokens`]: enrollment tokens an operator makes and deletes.
//! - [`node_listing`]: `nodes list` and `nodes show`.
//! - [`signing_guard`]: no certificate for an etcd user calseg does not own (checked at
//!   enrollment and at every signing).
//! - [`revocation`]: a revoked node's etcd users, until the reconciler has deleted them.
//! - [`vouch`]: a report's certificate dates replaced by the ones calseg issued.
//! - [`fleet_plan`]: what a policy would change in etcd and on each node (`plan`).
//! - [`rbac_apply`]: an operator's `apply` now; etcd's failures and release warnings.
//! - [`reconcile`]: which nodes count, and the server's RBAC reconciler.
//! - [`rollout`]: rollouts in waves with health gates: wave assignment and the state machine.
//! - [`ca_rotation`]: rotating the etcd client CA: the new CA, probing etcd's trust in it,
//!   re-issuing in waves, retiring the old one.
//! - [`etcd_signers`]: the etcd client CAs in force and which signs for which node.
//! - [`group_commit`]: the signings in flight share one store commit.
//! - [`store`]: server state (nodes, tokens, issued certificates, audit log, leases, rollouts):
//!   the embedded redb file store or etcd, and snapshots to migrate between them.
//! - [`backup`]: the signed (optionally age-encrypted) backup of a server's state and CAs.
//! - [`pki`]: the fleet and etcd client CAs, CSR checks and signing, key files.
//! - [`jitter`]: random spread for retries and `Retry-After` (fastrand, not the CSPRNG).

/// What users may do, from etcd's live auth state: can-i, access, exposure.
pub mod access;
/// Putting in force the policy and rollout the shared store holds.
pub mod adopt;
/// An operator's decisions about one node: approve, deny, revoke, delete.
pub mod approval;
/// Backups of the server's store, CAs and TLS files: signed by the fleet CA, pinned, optionally
/// encrypted.
pub mod backup;
/// Rotating the etcd client CA in waves.
pub mod ca_rotation;
/// An administrator's certificate for a component's component-wide identity.
pub mod component_calls;
/// Calico's cluster-wide singletons, created once with calseg's own etcd identity.
pub mod datastore;
/// Enrollment by token, approval or auto-approve glob, and the fleet certificate.
pub mod enrollment;
/// Why the domain refused or failed an operation, without transport.
pub mod error;
/// etcd's releases per endpoint against the published RBAC bypasses: warnings, refusal.
pub mod etcd_release;
/// The etcd client CAs in force and which signs for which node.
pub mod etcd_signers;
/// The fleet CAs in force: which signs, which are trusted, the bundle agents get.
pub mod fleet_cas;
/// The fleet plan: RBAC diff, per-node files, units and waves.
pub mod fleet_plan;
/// Rotating the fleet CA: files, trust, the server's certificate, the operator's steps.
pub mod fleet_rotation;
/// Issued certificates of concurrent signings written in one commit.
pub mod group_commit;
/// Each node's inventory from its record and last report, and the `nodes list` filters.
pub mod inventory;
/// Random spread for retries.
pub mod jitter;
/// Restart leases: grants within the restart budget, renewals up to the longest life.
pub mod leases;
/// A node's manifest from the policy.
pub mod manifest;
/// Served manifests, computed once per node and policy epoch.
pub mod manifest_cache;
/// What an enrolled node asks: its standing, manifest, certificates, reports, renewal.
pub mod node_calls;
/// `nodes list` and `nodes show`: inventory rows and current identities.
pub mod node_listing;
/// Pending enrollments expire after `[api] pending_ttl`.
pub mod pending;
/// The two CAs, CSR intake checks, signing, chain verification and key files.
pub mod pki;
/// The segmentation policy: TOML → validated model, with Calico's grant tables per version.
pub mod policy;
/// Policy → etcd users, roles and permissions; diff, plan and apply.
pub mod rbac;
/// An operator's `apply` now, and etcd's failures and warnings as `plan` and `apply` show them.
pub mod rbac_apply;
/// RBAC reconciliation in the running server.
pub mod reconcile;
/// `nodes revoke` waits until the node's etcd users are gone, and counts those that are not.
pub mod revocation;
/// Rollouts in waves with health gates.
pub mod rollout;
/// The signing guard: no certificate for an etcd user calseg does not own.
pub mod signing_guard;
/// The domain's shared state: [`Control`].
pub mod state;
/// Server state: nodes, enrollment tokens, issued certificates, audit log.
pub mod store;
/// Enrollment tokens an operator makes and deletes.
pub mod tokens;
/// A report's certificate dates replaced by the ones calseg issued.
pub mod vouch;

pub use error::{CallFailure, Class, ControlError};
pub use state::{ActiveRollout, Control, ControlParts, Leadership};
