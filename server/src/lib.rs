//! calseg-server: the control plane of calseg.
//!
//! It holds the segmentation policy, turns it into etcd v3 RBAC (users, roles, key-prefix
//! permissions) and signs component certificates whose Common Name is the etcd user. The
//! `calseg-server` binary is a thin command line over this library.
//!
//! # Layout
//! - [`policy`]: the policy file → validated model: components, grants per Calico version, hosts.
//!
//! (modules arrive with their issues: policy, rbac, pki, store, http, rollout)

/// The segmentation policy: TOML → validated model, with Calico's grant tables per version.
pub mod policy;
/// Policy → etcd users, roles and permissions; diff, plan and apply.
pub mod rbac;
