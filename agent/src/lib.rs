//! calseg-agent: the node side of calseg.
//!
//! The agent pulls its node's identities from the server, installs them under /etc/calico and
//! restarts the Calico services that use them through systemd. This crate is the library the
//! `calseg-agent` binary and the end-to-end tests drive.
//!
//! # Layout
//! - [`cli`]: the command line (`enroll`, `run`, `once`, `status`, `plan`) and its exit codes.
//! - [`config`]: `/etc/calseg/agent.toml`, raw TOML to validated settings with file:line errors.
//! - [`limits`]: agent.toml's local limits (paths, units, modes, CA bundle) that no manifest
//!   can widen, checked on the whole manifest before a pass touches anything.
//! - [`keys`]: key generation and CSRs (keys never leave the host), certificate facts, CA pins.
//! - [`client`]: the HTTPS client to the server: pinned CA, mutual TLS, errors, backoff.
//! - [`enroll`]: enrollment by token or approval, pinned by CA hash; fleet certificate renewal.
//! - [`state`]: the state directory: fleet credentials, last manifest, installed identities,
//!   install journal, last cycle.
//! - [`decide`]: pure decisions per identity (missing, policy changed, due for renewal).
//! - [`cycle`]: one reconcile pass over small traits, with real implementations and fakes.
//! - [`plan`]: the dry run: which files would change and which units would restart.
//! - [`daemon`]: the run loop: interval with per-node jitter, backoff, graceful shutdown.
//! - [`install`]: atomic file installation with owner, group and mode; identity sets switched by
//!   one rename; dry-run plans, backup and rollback.
//! - [`render`]: Calico's env file, calicoctl.cfg and the CNI conflist's etcd fields, as pure
//!   functions of the current text and the identity's files.
//! - [`sidecar`]: `calseg-agent sidecar`, the files-only mode next to calico-node in Kubernetes.
//! - [`systemd`]: the systemd manager over D-Bus: unit state, restart, wait until active.
//! - [`textfile`]: the node_exporter textfile `calseg.prom` written after each cycle.

/// The command line.
pub mod cli;
/// The HTTPS client to calseg-server.
pub mod client;
/// The agent's configuration file.
pub mod config;
/// One reconcile pass.
pub mod cycle;
/// The run loop of `calseg-agent run`.
pub mod daemon;
/// Pure per-identity decisions and the renewal time.
pub mod decide;
/// Enrollment and fleet certificate renewal.
pub mod enroll;
/// Atomic installation of identity files and config files under a root prefix.
pub mod install;
/// Keys, CSRs and certificate facts.
pub mod keys;
/// The local limits on what a manifest may make the agent do.
pub mod limits;
/// The dry run.
pub mod plan;
/// Rendering of Calico config files that point at an identity's etcd certificates.
pub mod render;
/// The side car for Calico's hosted Kubernetes manifest: files only, no systemd.
pub mod sidecar;
/// The state directory.
pub mod state;
/// The systemd manager over its D-Bus API.
pub mod systemd;
/// The node_exporter textfile.
pub mod textfile;

#[cfg(test)]
mod testutil;
