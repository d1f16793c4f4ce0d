//! Atomic installation of files with owner, group and mode, with a dry-run plan, a backup of
//! what was there and rollback to it.
//!
//! Two shapes of target:
//!
//! - **Plain files** (`/etc/calico/calico.env`, `calicoctl.cfg`, the CNI conflist):
//!   [`install_file`] writes a temp file next to the target (`O_CREAT|O_EXCL|O_NOFOLLOW`, final
//!   mode and owner set before the first byte), fsyncs it, keeps the old file as
//!   `<name>.calseg-prev` (a hard link: same inode, mode and owner) when asked, renames the temp
//!   over the target and fsyncs the directory. Readers see the old or the new file, never a
//!   partial one. Temp and backup names end in `.calseg-tmp`/`.calseg-prev`, so libcni (which
//!   loads every `*.conf`, `*.conflist`, `*.json` in `net.d`) never picks them up.
//!
//! - **Identity sets** (`ca.pem`, `cert.pem`, `key.pem` of one etcd identity): Calico reads
//!   fixed paths, and a key must never be seen next to another generation's certificate.
//!   [`install_set`] keeps each generation whole in `<dir>/.calseg/<n>/` and makes the stable
//!   names relative symlinks `cert.pem -> .calseg/current/cert.pem` (created once), so one
//!   atomic rename of `<dir>/.calseg/current -> <n>` switches every file at the same instant.
//!   Relative links keep working when the whole identity directory is bind-mounted into the
//!   calico/node container. Files first found as regular files (a manual install) are adopted:
//!   their current contents are copied into a generation and each is swapped for a link whose
//!   contents are identical, so even that first migration never shows a mixed set, and rollback
//!   returns to the operator's files. The generation before the current one is kept for
//!   [`rollback`]; older ones, and debris of an interrupted install, go at the next install.
//!
//!   Residual: a reader that opens `cert.pem` and then `key.pem` while `current` flips between
//!   its two opens pairs the old certificate with the new key. No layout with two fixed paths
//!   can prevent that; the window is the reader's own (Go's `tls.LoadX509KeyPair` reads the two
//!   back to back), the handshake fails cleanly on the mismatch and the next one is consistent.
//!   A whole-directory symlink has the same window and breaks bind mounts, so it is not better.
//!
//! Crash safety: every step is a create of an invisible file, an fsync or a single rename, so a
//! process killed at any point leaves each target (and each identity set) wholly old or new.
//! Nothing is cleaned up on error; the next install removes leftovers.
//!
//! Symlinks: every existing directory from the root prefix down is checked with `lstat` and a
//! symlink is refused ([`InstallError::Symlink`]); files are opened `O_NOFOLLOW`. The checks
//! walk paths rather than holding directory descriptors, which is sound because only root can
//! write under `/etc`. One installer at a time per target: the agent's cycle is sequential.
//!
//! [`install_file`]: crate::install::install_file
//! [`install_set`]: crate::install::install_set
//! [`rollback`]: crate::install::rollback
//! [`InstallError::Symlink`]: crate::install::InstallError::Symlink

mod error;
mod file;
mod fsops;
mod plan;
mod root;
mod set;

pub use error::InstallError;
pub use file::{FileReceipt, install_file, plan_file};
pub use fsops::sha256_hex;
pub use plan::{Change, PlannedChange};
pub use root::Root;
pub use set::{SetReceipt, install_set, plan_set};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One file to install.
#[derive(Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Absolute manifest path, e.g. `/etc/calico/certs/calico-node/cert.pem`; joined under the
    /// [`Root`] prefix.
    pub path: PathBuf,
    pub contents: Vec<u8>,
    /// User name, resolved on this host at install time.
    pub owner: String,
    /// Group name; for certificates, the group the non-root Calico service runs in.
    pub group: String,
    /// Permission bits, e.g. `0o640` for a key the service's group must read.
    pub mode: u32,
}

impl std::fmt::Debug for FileSpec {
    /// Never prints contents: they may be a private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSpec")
            .field("path", &self.path)
            .field("contents", &format_args!("<{} bytes>", self.contents.len()))
            .field("owner", &self.owner)
            .field("group", &self.group)
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

/// What an install did, enough to undo it with [`rollback`]. Serializable so the agent can keep
/// it across a restart while it verifies the new files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstallReceipt {
    File(FileReceipt),
    Set(SetReceipt),
}

impl InstallReceipt {
    /// Whether the install changed anything (and units reading the files need a restart).
    pub fn changed(&self) -> bool {
        match self {
            Self::File(receipt) => receipt.changed,
            Self::Set(receipt) => receipt.changed,
        }
    }
}

/// Undoes one install: a plain file gets its `.calseg-prev` back (or is removed if it did not
/// exist), an identity set switches `current` back to the previous generation in one rename.
/// Roll back several receipts in reverse install order.
pub fn rollback(root: &Root, receipt: &InstallReceipt) -> Result<(), InstallError> {
    match receipt {
        InstallReceipt::File(receipt) => file::rollback_file(root, receipt),
        InstallReceipt::Set(receipt) => set::rollback_set(root, receipt),
    }
}

/// A test seam: called between steps of an install; an error stops the install there, as if
/// the process had died (nothing is cleaned up).
pub(crate) type Hook<'a> = &'a mut dyn FnMut() -> std::io::Result<()>;

/// Runs the hook, turning an injected failure into an error about `path`.
pub(crate) fn step(hook: &mut Hook<'_>, path: &std::path::Path) -> Result<(), InstallError> {
    hook().map_err(error::io_err(path, "install step"))
}

#[cfg(test)]
mod testutil;
