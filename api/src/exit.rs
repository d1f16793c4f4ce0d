//! The one exit-status table of both binaries (`calseg-server` and `calseg-agent`): each code
//! means the same kind of outcome in every command that returns it, so a script branches on it
//! alike for either binary. The man pages' EXIT STATUS and each binary's `after_help` are
//! written from these constants.

/// Success: done, nothing to do, no changes, healthy.
pub const OK: u8 = 0;
/// Failure, with the reason on standard error: an error, a refusal (`can-i`: denied), a
/// rollout rolled back, a certificate expired, a failed cycle.
pub const FAILED: u8 = 1;
/// Needs attention, but nothing failed: changes to apply (`plan`), changed and converged
/// (`once`), conflicts left alone (`apply`), a rollout paused or aborted, a certificate inside
/// its renewal window (`calseg-agent status`).
pub const ATTENTION: u8 = 2;
/// `calseg-agent enroll`: still waiting for an operator's approval.
pub const PENDING: u8 = 3;
/// Bad command line (sysexits EX_USAGE); clap's own 2 would read as "changes".
pub const USAGE: u8 = 64;
/// No server could be reached: nothing was changed and retrying later may help (sysexits
/// EX_UNAVAILABLE).
pub const UNREACHABLE: u8 = 69;
/// `calseg-agent`: an operator revoked this node; retrying will not help, re-enroll with a new
/// token (sysexits EX_NOPERM).
pub const REVOKED: u8 = 77;
