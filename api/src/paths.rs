//! HTTP paths of the calseg API. Enrollment is the only call without a fleet client
//! certificate; admin calls need an admin certificate.

/// POST [`crate::enroll::EnrollRequest`] → [`crate::enroll::EnrollResponse`]. No client certificate.
pub const ENROLL: &str = "/v1/enroll";
/// GET → [`crate::manifest::Manifest`]; honours `If-None-Match` with the manifest's ETag.
/// With `?wait=N` (seconds, at most [`MAX_LONG_POLL_SECS`]) and an `If-None-Match` that is
/// current, the server holds the request until the node's manifest changes (200) or N seconds
/// pass (304). A server with too many requests parked answers 304 at once with `Retry-After`.
pub const MANIFEST: &str = "/v1/manifest";
/// The longest `wait` of a manifest long-poll the server honours; longer ones are cut to it.
pub const MAX_LONG_POLL_SECS: u64 = 60;
/// POST [`crate::certificates::SignRequest`] → [`crate::certificates::SignResponse`].
pub const CERTIFICATES: &str = "/v1/certificates";
/// POST [`crate::report::Report`] → 204.
pub const REPORT: &str = "/v1/report";
/// POST: renew the calling agent's fleet certificate from a new CSR.
pub const FLEET_RENEW: &str = "/v1/fleet/renew";
/// GET → [`crate::enroll::FleetCa`]. No client certificate: an enrolling agent fetches the fleet
/// CA over an unverified connection and trusts it only if its SHA-256 matches the pin it was
/// given (`--ca-hash`), then verifies the server with it from the next call on.
pub const FLEET_CA: &str = "/v1/fleet-ca";
/// POST [`crate::lease::LeaseRequest`] → [`crate::lease::LeaseGrant`], or 429 with
/// `Retry-After` when the restart budget is full. `DELETE {RESTART_LEASE}/{id}` → 204 releases
/// it (holder only); `POST {RESTART_LEASE}/{id}/renew` → [`crate::lease::LeaseGrant`].
pub const RESTART_LEASE: &str = "/v1/restart-lease";
/// GET: liveness of the server (no authentication; says nothing about the fleet).
pub const HEALTH: &str = "/v1/health";

/// Admin API root; every path below needs an admin certificate.
pub const ADMIN_NODES: &str = "/v1/admin/nodes";
pub const ADMIN_TOKENS: &str = "/v1/admin/tokens";
pub const ADMIN_AUDIT: &str = "/v1/admin/audit";
/// GET → the live restart leases, `Vec<`[`crate::lease::LeaseInfo`]`>`.
pub const ADMIN_LEASES: &str = "/v1/admin/leases";
/// POST: show (plan) or make (apply) the etcd RBAC changes for the policy and enrolled nodes.
pub const ADMIN_PLAN: &str = "/v1/admin/rbac/plan";
pub const ADMIN_APPLY: &str = "/v1/admin/rbac/apply";
/// GET → [`crate::rollout::RolloutStatus`]: the current policy revision and how many approved
/// nodes report the current manifest (converged), an older one (pending) or errors (failed).
pub const ADMIN_ROLLOUT: &str = "/v1/admin/rollout";
/// GET → every record of the store in one consistent view (the server's `StoreSnapshot`), for
/// `calseg-server backup` while the server runs. Token hashes, never secrets; no CA key.
pub const ADMIN_STORE_SNAPSHOT: &str = "/v1/admin/store/snapshot";

/// POST [`crate::admin::ComponentSign`] → [`crate::admin::ComponentSigned`]: a certificate for
/// a component's component-wide identity (`calseg-server k8s secrets`).
pub fn admin_component_certificate(component: &str) -> String {
    format!("/v1/admin/components/{component}/certificate")
}

/// POST → [`crate::rollout::RolloutStatus`]: `pause`, `resume`, `abort` or `rollback` the
/// rollout in waves.
pub fn admin_rollout_action(action: &str) -> String {
    format!("{ADMIN_ROLLOUT}/{action}")
}

/// GET → [`crate::ca::CaStatus`]: the two CAs and the etcd client CA's rotation, if any.
pub const ADMIN_CA: &str = "/v1/admin/ca";

/// POST → [`crate::ca::CaStatus`]: a step (`begin`, `finish`, `pause`, `resume`, `rollback`)
/// of the rotation of CA `ca` (`etcd-client`).
pub fn admin_ca_action(ca: &str, action: &str) -> String {
    format!("{ADMIN_CA}/{ca}/{action}")
}

/// The path of one lease (DELETE releases it).
pub fn lease(id: &str) -> String {
    format!("{RESTART_LEASE}/{id}")
}

/// The path that renews one lease (POST).
pub fn lease_renew(id: &str) -> String {
    format!("{RESTART_LEASE}/{id}/renew")
}

/// Longest request body the server reads, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
