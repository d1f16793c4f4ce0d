//! calseg-agent: the node side of calseg.
//!
//! The agent pulls its node's identities from the server, installs them under /etc/calico and
//! restarts the Calico services that use them through systemd. This crate is the library the
//! `calseg-agent` binary and the end-to-end tests drive.
//!
//! # Layout
//! - [`systemd`]: the systemd manager over D-Bus: unit state, restart, wait until active.

/// The systemd manager over its D-Bus API.
pub mod systemd;
