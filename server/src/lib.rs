//! calseg-server: the control plane of calseg.
//!
//! It holds the segmentation policy, turns it into etcd v3 RBAC (users, roles, key-prefix
//! permissions) and signs component certificates whose Common Name is the etcd user. The
//! `calseg-server` binary is a thin command line over this library.
//!
//! The domain (policy, RBAC, PKI, store, manifests, rollouts) is `calseg-control`; this crate is
//! the running server and its adapters over it. The domain's modules are re-exported here under
//! their own names, so `crate::policy` is `calseg_control::policy`.
//!
//! # Layout
//! - [`config`]: the server's own configuration file (server.toml), with [`config_files`]'s
//!   drop-ins.
//! - [`http`]: the HTTPS API (enrollment, manifests, signing, reports, admin).
//! - [`serve`]: the running server (API, reconciler, policy reload); sd_notify and logging
//!   come from `calseg_service`.
//! - [`reload`]: the result of each policy reload, for `systemctl reload` and metrics.
//! - [`metrics`]: Prometheus metrics and their plain-HTTP `/metrics` listener.
//! - [`init`]: first-time setup: CAs, TLS and admin certificates, server.toml.
//! - [`k8s`]: the Secret of a component-wide identity and its pod snippet, with the names of
//!   Calico's hosted manifest.
//! - [`admin_client`]: the admin commands' HTTPS client.
//! - [`cli`]: the `calseg-server` commands and their output.
//! - [`ha`]: several replicas on one etcd store: the leader election, following the store.

pub use calseg_control::{
    access, backup, datastore, etcd_release, fleet_plan, inventory, jitter, manifest, pki, policy,
    rbac, reconcile, revocation, rollout, store, vouch,
};

/// The admin API client.
pub mod admin_client;
/// The command line of `calseg-server`.
pub mod cli;
/// server.toml.
pub mod config;
/// server.toml's drop-in directory, merged over it.
pub mod config_files;
/// Several replicas on one etcd store: leader election, signals, following the store.
pub mod ha;
/// The HTTPS API.
pub mod http;
/// First-time setup.
pub mod init;
/// Kubernetes Secrets and pod snippets for Calico's hosted manifest.
pub mod k8s;
/// Prometheus metrics: counters, latency histograms, store gauges, the `/metrics` listener.
pub mod metrics;
/// The result of policy reloads: `systemctl reload`'s answer and metrics' source.
pub mod reload;
/// The running server.
pub mod serve;
