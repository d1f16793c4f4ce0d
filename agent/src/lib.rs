//! calseg-agent: the node side of calseg.
//!
//! The agent pulls its node's identities from the server, installs them under /etc/calico and
//! restarts the Calico services that use them through systemd. This crate is the library the
//! `calseg-agent` binary and the end-to-end tests drive.
//!
//! # Layout
//! - [`install`]: atomic file installation with owner, group and mode; identity sets switched by
//!   one rename; dry-run plans, backup and rollback.
//! - [`render`]: Calico's env file, calicoctl.cfg and the CNI conflist's etcd fields, as pure
//!   functions of the current text and the identity's files.
//! - [`systemd`]: the systemd manager over D-Bus: unit state, restart, wait until active.

/// Atomic installation of identity files and config files under a root prefix.
pub mod install;
/// Rendering of Calico config files that point at an identity's etcd certificates.
pub mod render;
/// The systemd manager over its D-Bus API.
pub mod systemd;
