//! Several `calseg-server` replicas on one etcd (`[store] backend = "etcd"`): every replica
//! serves the API from the shared store; one of them, the leader, runs the loops that must run
//! once (the RBAC reconciler and the rollout controller).
//!
//! - [`access`]: only calseg's own etcd user may read the store prefix.
//! - `election`: who leads, by a key under the store prefix held with an etcd lease.
//! - `signal`: how a replica that enrolled or changed a node tells the leader to reconcile.
//! - `follow`: every replica puts in force the policy revision and rollout the store holds,
//!   so a reload or an operator's action on one replica reaches all of them.
//!
//! Restart leases need no loop: they expire in the store by time and every grant counts only
//! live ones, in one etcd transaction.

pub mod access;
mod election;
mod follow;
mod signal;

pub use calseg_control::adopt::adopt_from_store;
pub use election::{Election, ElectionSettings};
pub use follow::follow_store;
pub use signal::NodesChanged;

use tokio::sync::watch;

/// This replica's view of the cluster of replicas, shared by the loops and the handlers.
pub struct Replicas {
    /// Whether this replica leads now.
    leading: watch::Receiver<bool>,
    /// Tells the leader that nodes changed.
    pub nodes_changed: NodesChanged,
    /// This replica's name (logs, the leader key).
    pub name: String,
    /// The store's key prefix, which no policy may grant (see [`access`]).
    pub prefix: String,
}

impl Replicas {
    pub fn new(
        leading: watch::Receiver<bool>,
        nodes_changed: NodesChanged,
        name: String,
        prefix: String,
    ) -> Self {
        Self {
            leading,
            nodes_changed,
            name,
            prefix,
        }
    }

    /// Whether this replica leads now.
    pub fn leads(&self) -> bool {
        *self.leading.borrow()
    }

    /// A receiver that sees each change of leadership.
    pub fn watch_leading(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }
}

impl calseg_control::Leadership for Replicas {
    fn leads(&self) -> bool {
        Replicas::leads(self)
    }

    fn nodes_changed(&self) {
        self.nodes_changed.raise(&self.name);
    }
}
