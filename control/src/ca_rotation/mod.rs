//! Rotating the etcd client CA without an outage. `begin` makes the new CA and a bundle of old
//! and new for etcd's `--trusted-ca-file`; calseg then probes every etcd endpoint with a
//! throwaway identity of the new CA and issues nothing from it until all of them trust it;
//! then identities are re-issued from it in waves (the rollout's waves, health gate, pause and
//! rollback, and the restart budget every agent already asks); `finish` retires the old CA once
//! no live identity depends on it. Every step is stored ([`CaRotationRecord`]), so a restarted
//! server or a new leader carries on where the last one stopped.
//!
//! Which CA signs for which node lives in [`crate::etcd_signers`], read by signing and
//! manifests; this module only changes it.
//!
//! # Layout
//! - `files`: the new CA, the bundle and the retired CA in the CA directory.
//! - `probe`: does an etcd endpoint accept a client certificate of the new CA?
//! - `pending`: the live identities that still depend on the old CA.
//! - `own_identity`: calseg's own etcd certificate, re-issued from the new CA at `finish`.
//! - `driver`: the operator's steps, the controller's tick, and the status.
//!
//! [`CaRotationRecord`]: crate::store::CaRotationRecord

mod driver;
mod files;
mod own_identity;
mod pending;
mod probe;

pub use driver::{
    NodesWithIssued, act, read_nodes_with_issued, resume_after_restart, status, status_of, tick,
};
pub use files::RotationFiles;
pub use own_identity::{OwnIdentity, reissue_if_old};
pub use pending::old_ca_identities;
pub use probe::{ProbeTarget, probe_endpoint};
