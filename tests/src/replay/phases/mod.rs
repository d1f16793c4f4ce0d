//! The six phases, in the order the replay runs them. Each performs one part of what
//! calico-node and Felix do against etcd, and returns a report line, or the first failed
//! operation.
//!
//! # Layout
//! - [`startup`]: phase 1, the cluster-wide singletons; phase 2, the tiers.
//! - [`node`]: phase 3, the node's own Node and FelixConfiguration.
//! - [`sync`]: phase 4, the list-then-watch of every prefix Felix and confd follow.
//! - [`status`]: phase 5, Felix's status reports with a lease, and their refresh in `run` mode.
//! - [`ipam`]: phase 6, a block affinity, the block, the tunnel handle, the tunnel address.

/// Phase 6.
pub mod ipam;
/// Phase 3.
pub mod node;
/// Phases 1 and 2.
pub mod startup;
/// Phase 5 and the status refresh.
pub mod status;
/// Phase 4.
pub mod sync;

use std::fmt;

/// What a phase did, for its line of output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// 1 to 6.
    pub number: usize,
    pub name: &'static str,
    /// What it performed, briefly.
    pub summary: String,
    /// What it had to do beyond the narrowed minimum (creating or updating a cluster-wide
    /// object), which a narrowed identity cannot.
    pub notes: Vec<String>,
}

/// The number of phases, for "phase N/6".
pub const COUNT: usize = 6;

impl Report {
    pub fn new(number: usize, name: &'static str, summary: impl Into<String>) -> Self {
        Self {
            number,
            name,
            summary: summary.into(),
            notes: Vec::new(),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "phase {}/{COUNT} {}: ok: {}",
            self.number, self.name, self.summary
        )?;
        for note in &self.notes {
            write!(f, "; {note}")?;
        }
        Ok(())
    }
}
