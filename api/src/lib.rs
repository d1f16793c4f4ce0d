//! calseg-api: the wire contract between `calseg-server` and `calseg-agent`.
//!
//! Plain serde types, the few pure functions both sides must compute alike (a key's
//! fingerprint), and the one rule for showing the other side's text to a person: no I/O, no TLS,
//! no clocks. Both sides depend on this
//! crate so that a change to the contract is a change to one place, checked by the compiler.
//! Every body is JSON; every path is versioned under `/v1`.
//!
//! # Layout
//! - [`access`]: the access words (read, write, readwrite) shared by policy, plan and manifest.
//! - [`admin`]: admin API bodies the server sends and its CLI reads (tokens, node actions, the
//!   node inventory and its filters).
//! - [`paths`]: the HTTP paths and headers of the API.
//! - [`enroll`]: enrollment of a node (token or approval) and its fleet certificate.
//! - [`fingerprint`]: the `sha256:<hex>` fingerprint of a key, shown by agent and server alike.
//! - [`manifest`]: what a node must have: identities, files, renders, units, revision.
//! - [`certificates`]: CSR signing for one identity.
//! - [`ca`]: the server's two CAs and a rotation of the etcd client CA, as the admin API shows
//!   them.
//! - [`lease`]: restart leases, the fleet's restart budget.
//! - [`report`]: what the agent installed and the state of its units, typed end to end (each
//!   identity's [`report::IdentityStatus`], unknown ones kept), and its stored form.
//! - [`plan`]: the fleet plan: what a policy would change in etcd and on each node.
//! - [`rollout`]: policy revisions and how far the fleet has converged to the current one.
//! - [`duration`]: the one duration grammar of every flag and configuration key.
//! - [`error`]: the error body every failed call returns.
//! - [`exit`]: the exit-status table both binaries share.
//! - [`when`]: how a point in time is shown: RFC 3339 in UTC, to the second.
//! - [`text`]: how text from the other side is escaped before a terminal shows it.

/// Access words shared by policy, plan output and manifests.
pub mod access;
/// Admin API bodies.
pub mod admin;
/// The two CAs and a rotation of the etcd client CA.
pub mod ca;
/// Signing one identity's CSR.
pub mod certificates;
/// The duration grammar.
pub mod duration;
/// Enrollment.
pub mod enroll;
/// The error body.
pub mod error;
/// Exit statuses of both binaries.
pub mod exit;
/// Key fingerprints.
pub mod fingerprint;
/// Restart leases.
pub mod lease;
/// A node's manifest.
pub mod manifest;
/// HTTP paths and headers.
pub mod paths;
/// The fleet plan.
pub mod plan;
/// The agent's report.
pub mod report;
/// Policy revisions and convergence.
pub mod rollout;
/// Escaping of the other side's text for terminals.
pub mod text;
/// How times are shown.
pub mod when;
