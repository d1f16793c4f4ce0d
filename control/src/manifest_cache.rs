//! The manifest each node is served, computed and serialized once per node, enrollment
//! generation and policy epoch, so an unchanged pull (most of them) builds no JSON.
//!
//! Invariants:
//! - The cache holds the entries of one policy epoch. Every policy change, reload and rollout
//!   step bumps the epoch ([`crate::Control::policy_epoch`]), and the first entry of a newer
//!   epoch drops all older ones (none could be served again). A revocation raises the node's
//!   generation, which an entry must match. The epoch is read *before* the policy, so an entry
//!   may be older than its epoch says (and is recomputed after the next bump) but never newer.
//! - The cache answers what the policy gives a node; whether the node may ask at all (its
//!   state, its fleet certificate) is checked on every pull, before the cache.
//! - Bounded: at most `capacity` nodes. When full, another node's manifest is computed on each
//!   of its pulls rather than evicting one that is kept.

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

/// One node's entry; `None`: the policy gives the node no component.
struct Entry {
    generation: u32,
    served: Option<Arc<Served>>,
}

/// The entries of one epoch, by node name.
#[derive(Default)]
struct Entries {
    epoch: u64,
    by_node: HashMap<String, Entry>,
}

/// Served manifests by node name.
pub struct ManifestCache {
    entries: RwLock<Entries>,
    capacity: usize,
}

impl ManifestCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::default(),
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
        {
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            if entries.epoch == epoch
                && let Some(entry) = entries.by_node.get(node)
                && entry.generation == generation
            {
                return Ok(entry.served.clone());
            }
        }
        let served = compute().map(served).transpose()?;
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if epoch > entries.epoch {
            *entries = Entries {
                epoch,
                by_node: HashMap::new(),
            };
        }
        // An answer computed in an older epoch (a request that raced a reload) is not kept.
        let fits = entries.by_node.len() < self.capacity || entries.by_node.contains_key(node);
        if entries.epoch == epoch && fits {
            let entry = Entry {
                generation,
                served: served.clone(),
            };
            entries.by_node.insert(node.to_owned(), entry);
        }
        Ok(served)
    }

    /// How many nodes' manifests are kept now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_node
            .len()
    }
}

/// `manifest` as served: serialized once, with its entity tag.
fn served(manifest: Manifest) -> Result<Arc<Served>, ControlError> {
    let json = serde_json::to_vec(&manifest)
        .map_err(|e| ControlError::internal(&format!("serialize a manifest: {e}")))?;
    Ok(Arc::new(Served {
        etag: format!("\"{}\"", manifest.revision),
        revision: manifest.revision,
        json: json.into(),
    }))
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
        assert_eq!(a.etag, "\"r1\"");
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
        // An answer computed in an older epoch is served to its caller, never kept.
        let late = cache
            .get_or_compute("n3", 0, 1, || Some(manifest("old")))
            .unwrap()
            .unwrap();
        assert_eq!(late.revision, "old");
        let now = cache
            .get_or_compute("n3", 0, 2, || Some(manifest("new")))
            .unwrap()
            .unwrap();
        assert_eq!(now.revision, "new");
    }

    #[test]
    fn bounded_a_new_epoch_starts_empty_and_kept_entries_stay() {
        let cache = ManifestCache::new(2);
        cache
            .get_or_compute("a", 0, 1, || Some(manifest("1")))
            .unwrap();
        cache
            .get_or_compute("b", 0, 2, || Some(manifest("1")))
            .unwrap();
        // Epoch 2 dropped "a" (epoch 1); "c" fits beside "b".
        assert_eq!(cache.len(), 1);
        cache
            .get_or_compute("c", 0, 2, || Some(manifest("1")))
            .unwrap();
        assert_eq!(cache.len(), 2);
        // Full: "d" is served but not kept; "b" and "c" stay cached.
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
