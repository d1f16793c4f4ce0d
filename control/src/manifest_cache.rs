//! The manifest each node is served, computed and serialized once per node, enrollment
//! generation and policy epoch, so an unchanged pull (most of them) builds no JSON.
//!
//! Invariants:
//! - An entry is used only for the epoch it was computed in: every policy change, reload and
//!   rollout step bumps the epoch ([`crate::Control::policy_epoch`]), and a revocation raises the
//!   node's generation, which is part of the key. The epoch is read *before* the policy, so an
//!   entry may be older than its epoch says (and is recomputed) but never newer.
//! - The cache answers what the policy gives a node; whether the node may ask at all (its
//!   state, its fleet certificate) is checked on every pull, before the cache.
//! - Bounded: at most `capacity` entries. When full, entries of older epochs go first; if none
//!   are stale, a new node's manifest is computed per pull rather than evicting a fresh one.

use crate::ControlError;
use calseg_api::manifest::Manifest;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// How many nodes' manifests are kept by default (a 2 KB manifest each: about 40 MB).
pub const DEFAULT_CAPACITY: usize = 20_000;

/// A manifest as served: its revision, its HTTP entity tag (the revision quoted) and its JSON
/// body.
#[derive(Debug)]
pub struct Served {
    pub revision: String,
    pub etag: String,
    pub json: Arc<[u8]>,
}

struct Entry {
    epoch: u64,
    generation: u32,
    /// `None`: the policy gives the node no component.
    served: Option<Arc<Served>>,
}

/// Served manifests by node name.
pub struct ManifestCache {
    entries: RwLock<HashMap<String, Entry>>,
    capacity: usize,
}

impl ManifestCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    /// The manifest served to `node` in `generation` at `epoch`: the cached one, or
    /// `compute`d, serialized and kept.
    pub fn get_or_compute(
        &self,
        node: &str,
        generation: u32,
        epoch: u64,
        compute: impl FnOnce() -> Option<Manifest>,
    ) -> Result<Option<Arc<Served>>, ControlError> {
        if let Some(entry) = self.read().get(node)
            && entry.epoch == epoch
            && entry.generation == generation
        {
            return Ok(entry.served.clone());
        }
        let served = match compute() {
            Some(manifest) => Some(Arc::new(Served {
                json: serde_json::to_vec(&manifest)
                    .map_err(|e| ControlError::internal(&format!("serialize a manifest: {e}")))?
                    .into(),
                etag: format!("\"{}\"", manifest.revision),
                revision: manifest.revision,
            })),
            None => None,
        };
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(node) {
            entries.retain(|_, entry| entry.epoch >= epoch);
        }
        if entries.len() < self.capacity || entries.contains_key(node) {
            let entry = Entry {
                epoch,
                generation,
                served: served.clone(),
            };
            entries.insert(node.to_owned(), entry);
        }
        Ok(served)
    }

    /// How many nodes' manifests are kept now.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no manifest is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Entry>> {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn manifest(revision: &str) -> Manifest {
        serde_json::from_value(serde_json::json!({
            "node": "n1",
            "revision": revision,
            "etcd": {"endpoints": ["https://127.0.0.1:2379"], "ca_bundle_pem": ""},
            "identities": [],
            "lifetime_secs": 86400,
            "renew_after": 0.66,
        }))
        .unwrap()
    }

    #[test]
    fn computed_once_per_epoch_and_generation() {
        let cache = ManifestCache::new(10);
        let computed = Cell::new(0);
        let compute = |rev: &'static str| {
            let computed = &computed;
            move || {
                computed.set(computed.get() + 1);
                Some(manifest(rev))
            }
        };
        let a = cache
            .get_or_compute("n1", 0, 1, compute("r1"))
            .unwrap()
            .unwrap();
        let b = cache
            .get_or_compute("n1", 0, 1, compute("r1"))
            .unwrap()
            .unwrap();
        assert_eq!(
            computed.get(),
            1,
            "the second pull is served from the cache"
        );
        assert!(Arc::ptr_eq(&a, &b));
        let parsed: Manifest = serde_json::from_slice(&a.json).unwrap();
        assert_eq!(parsed.revision, "r1");
        // A new epoch (policy change, rollout step) and a new generation (revocation) recompute.
        let c = cache
            .get_or_compute("n1", 0, 2, compute("r2"))
            .unwrap()
            .unwrap();
        assert_eq!((computed.get(), c.revision.as_str()), (2, "r2"));
        let d = cache
            .get_or_compute("n1", 1, 2, compute("r3"))
            .unwrap()
            .unwrap();
        assert_eq!((computed.get(), d.revision.as_str()), (3, "r3"));
        // No component for the node is kept as such too.
        assert!(cache.get_or_compute("n2", 0, 2, || None).unwrap().is_none());
        assert!(
            cache
                .get_or_compute("n2", 0, 2, || panic!("recomputed"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn bounded_stale_entries_go_first_and_fresh_ones_stay() {
        let cache = ManifestCache::new(2);
        cache
            .get_or_compute("a", 0, 1, || Some(manifest("1")))
            .unwrap();
        cache
            .get_or_compute("b", 0, 2, || Some(manifest("1")))
            .unwrap();
        // Full: "a" (epoch 1) is stale at epoch 2 and goes.
        cache
            .get_or_compute("c", 0, 2, || Some(manifest("1")))
            .unwrap();
        assert_eq!(cache.len(), 2);
        // Full of fresh entries: "d" is served but not kept; "b" and "c" stay cached.
        let d = cache
            .get_or_compute("d", 0, 2, || Some(manifest("d")))
            .unwrap();
        assert_eq!(d.unwrap().revision, "d");
        assert_eq!(cache.len(), 2);
        cache
            .get_or_compute("b", 0, 2, || panic!("b was evicted"))
            .unwrap();
        let recomputed = Cell::new(false);
        cache
            .get_or_compute("d", 0, 2, || {
                recomputed.set(true);
                Some(manifest("d"))
            })
            .unwrap();
        assert!(recomputed.get(), "d was never kept");
    }
}
