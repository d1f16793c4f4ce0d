//! calseg-api: the wire contract between `calseg-server` and `calseg-agent`.
//!
//! Plain serde types and nothing else: no I/O, no TLS, no clocks. Both sides depend on this
//! crate so that a change to the contract is a change to one place, checked by the compiler.
//!
//! # Layout
//! - [`access`]: the access words (read, write, readwrite) shared by policy, plan and manifest.

/// Access words shared by policy, plan output and manifests.
pub mod access;
