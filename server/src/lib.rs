//! calseg-server: the control plane of calseg.
//!
//! It holds the segmentation policy, turns it into etcd v3 RBAC (users, roles, key-prefix
//! permissions) and signs component certificates whose Common Name is the etcd user. The
//! `calseg-server` binary is a thin command line over this library.
//!
//! # Layout
//! - [`policy`]: the policy file → validated model: components, grants per Calico version, hosts.
//! - [`rbac`]: the etcd RBAC reconciler: desired vs live users and roles, plan, apply.
//! - [`etcd_release`]: which etcd release each endpoint runs, against the known RBAC bypasses.
//! - [`access`]: the access checker: what a user may read and write, from etcd's live roles.
//! - [`datastore`]: Calico's cluster-wide objects, created once so per-node identities need no
//!   cluster-wide write (`datastore init`).
//! - [`config`]: the server's own configuration file (server.toml).
//! - [`manifest`]: a node's manifest computed from the policy.
//! - [`fleet_plan`]: what a policy would change in etcd and on each node (`plan`).
//! - [`reconcile`]: which nodes count, and the server's RBAC reconciler.
//! - [`jitter`]: random spread for retries and `Retry-After` (fastrand, not the CSPRNG).
//! - [`rollout`]: rollouts in waves with health gates: wave assignment and the state machine.
//! - [`http`]: the HTTPS API (enrollment, manifests, signing, reports, admin).
//! - [`serve`]: the running server (API, reconciler, policy reload); sd_notify and logging
//!   come from `calseg_service`.
//! - [`reload`]: the result of each policy reload, for `systemctl reload` and metrics.
//! - [`metrics`]: Prometheus metrics and their plain-HTTP `/metrics` listener.
//! - [`init`]: first-time setup: CAs, TLS and admin certificates, server.toml.
//! - [`admin_client`]: the admin commands' HTTPS client.
//! - [`cli`]: the `calseg-server` commands and their output.
//! - [`store`]: server state (nodes, tokens, issued certificates, audit log, leases, rollouts):
//!   the embedded redb file store or etcd, and snapshots to migrate between them.
//! - [`ha`]: several replicas on one etcd store: the leader election, following the store.
//! - [`pki`]: the fleet and etcd client CAs, CSR checks and signing, key files.

/// What users may do, from etcd's live auth state: can-i, access, exposure.
pub mod access;
/// The admin API client.
pub mod admin_client;
/// The command line of `calseg-server`.
pub mod cli;
/// server.toml.
pub mod config;
/// server.toml's drop-in directory, merged over it.
pub mod config_files;
/// Calico's cluster-wide singletons, created once with calseg's own etcd identity.
pub mod datastore;
/// etcd's releases per endpoint against the published RBAC bypasses: warnings, refusal.
pub mod etcd_release;
/// The fleet plan: RBAC diff, per-node files, units and waves.
pub mod fleet_plan;
/// Several replicas on one etcd store: leader election, signals, following the store.
pub mod ha;
/// The HTTPS API.
pub mod http;
/// First-time setup.
pub mod init;
/// Random spread for retries.
pub mod jitter;
/// A node's manifest from the policy.
pub mod manifest;
/// Prometheus metrics: counters, latency histograms, store gauges, the `/metrics` listener.
pub mod metrics;
/// The two CAs, CSR intake checks, signing, chain verification and key files.
pub mod pki;
/// The segmentation policy: TOML → validated model, with Calico's grant tables per version.
pub mod policy;
/// Policy → etcd users, roles and permissions; diff, plan and apply.
pub mod rbac;
/// RBAC reconciliation in the running server.
pub mod reconcile;
/// The result of policy reloads: `systemctl reload`'s answer and metrics' source.
pub mod reload;
/// Rollouts in waves with health gates.
pub mod rollout;
/// The running server.
pub mod serve;
/// Server state: nodes, enrollment tokens, issued certificates, audit log.
pub mod store;
