//! Calico's cluster-wide objects, created once by calseg: `calseg-server datastore init`.
//!
//! calico-node creates (or completes) a few cluster-wide singletons at every start when they
//! are missing: ClusterInformation `default`, FelixConfiguration `default`, the default IPv4
//! pool, and from Calico 3.32 BGPConfiguration `default`, from 3.33 IPAMConfiguration
//! `default`. The per-node profiles give calico-node identities no write on them, so calseg
//! creates them itself, with its own (root) etcd identity, from the policy's `[datastore]`
//! values. It never overwrites: an object that exists is left as it is, and reported when its
//! values differ from calseg's. Tiers are not created here: the per-node profile lets
//! calico-node create them, as it tries at every start.
//!
//! The bytes written are what libcalico-go's etcdv3 backend stores when calico-node creates
//! the object, so Calico reads them as its own. Sources (projectcalico/calico):
//! - `api/pkg/apis/projectcalico/v3/{clusterinfo,felixconfig,ippool,bgpconfig,ipamconfig}.go`:
//!   kinds, field names (`json` tags), field order, `omitempty`.
//! - `libcalico-go/lib/backend/model/resource.go`: keys `R3/<plural>/<name>`;
//!   `lib/backend/model/keys.go` `SerializeValue`: `json.Marshal` of the resource;
//!   `lib/backend/etcdv3/etcdv3.go` `Create`: a put guarded by the key's absence.
//! - `libcalico-go/lib/clientv3/resources.go`: Create adds `uid` and `creationTimestamp` and
//!   clears `resourceVersion`; `clientv3/client.go` `ensureClusterInformation`: the GUID,
//!   calicoVersion, clusterType and datastoreReady, and when calico-node rewrites them;
//!   `clientv3/ippool.go` and `clientv3/felixconfig.go`: the defaults Create stores.
//! - `node/pkg/lifecycle/startup/startup.go` (v3.29.0 to master): `ensureDefaultConfig`,
//!   `configureIPPools`, `createIPPool`, `ensureDefaultBGPConfigExists`,
//!   `ensureDefaultIPAMConfigExists`.
//! - `libcalico-go/lib/validator/v3/validator.go`: what the `[datastore]` checks mirror.
//!
//! # Layout
//! - `objects`: the objects for a release and settings, as the bytes written; `spec`: each
//!   kind's spec as libcalico-go's structs serialize.
//! - `compare`: a stored object against calseg's: differences, and whether calico-node will
//!   rewrite it at start anyway.
//! - `init`: read everything, then create what is missing in one guarded transaction.
//! - `report`: the outcome per object, as text or JSON.

mod compare;
mod init;
mod objects;
mod report;
mod spec;

#[cfg(test)]
mod tests;

pub use compare::Difference;
pub use init::{InitError, MAX_ATTEMPTS, init};
pub use objects::{
    API_VERSION, DEFAULT_IPV4_POOL, IPPOOLS_PREFIX, Kind, Object, R3, RandomFailed, RandomSource,
    SystemRandom, desired, key, since,
};
pub use report::{Outcome, Report, State};
