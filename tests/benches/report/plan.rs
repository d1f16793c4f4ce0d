//! The sizes of a run. The full run fits 15 minutes on 2 cores; the quick run is a smoke test
//! of every code path (about two minutes).

use calseg_tests::bench::rbac::Sizes;

/// What one run measures.
#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: &'static str,
    pub rbac: Sizes,
    /// Signing and manifest requests per measurement, and how many in flight.
    pub requests: usize,
    pub concurrency: usize,
    /// Repeats of each measured agent cycle and floor (the median is reported).
    pub agent_repeats: usize,
    /// Simulated fleet sizes.
    pub fleet: Vec<usize>,
}

impl Plan {
    /// The report's sizes.
    pub fn full() -> Self {
        Self {
            mode: "full",
            // 10,000 nodes do not fit: see the report's provisioning section.
            rbac: Sizes {
                nodes: vec![10, 100, 1000],
                manual_full_max: 100,
                sample: 10,
            },
            requests: 2000,
            concurrency: 8,
            agent_repeats: 5,
            fleet: vec![1000, 10_000],
        }
    }

    /// Small sizes that exercise every path, the manual sampling included.
    pub fn quick() -> Self {
        Self {
            mode: "quick",
            rbac: Sizes {
                nodes: vec![5, 20],
                manual_full_max: 5,
                sample: 2,
            },
            requests: 300,
            concurrency: 8,
            agent_repeats: 3,
            fleet: vec![50, 200],
        }
    }
}
