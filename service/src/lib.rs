//! calseg-service: what `calseg-server` and `calseg-agent` need to behave as systemd services
//! and as well-mannered command-line tools, in one place so the two binaries never disagree.
//!
//! # Layout
//! - [`notify`]: sd_notify(3): READY, RELOADING with MONOTONIC_USEC, STOPPING, STATUS and
//!   WATCHDOG, to a path or an abstract `$NOTIFY_SOCKET`.
//! - [`log`]: logging to stderr: under systemd (`$JOURNAL_STREAM` is stderr) one line per
//!   event with an sd-daemon `<N>` priority prefix and no timestamp; otherwise the human format.
//! - [`pipe`]: a closed stdout (`calseg-server nodes list | head -1`) ends the process quietly.

/// sd_notify(3).
pub mod notify;

/// Logging to stderr, journal-aware.
pub mod log;

/// A quiet exit when stdout's reader has gone.
pub mod pipe;
