//! Why an install, plan or rollback failed: every message names the path on disk and says what
//! to do about it.

use std::io;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why installing, planning or rolling back files failed.
#[derive(Debug, Error)]
pub enum InstallError {
    /// A manifest path that is relative or climbs with `..`.
    #[error(
        "{path}: target paths must be absolute and must not contain `..`; \
         fix the file layout in the policy"
    )]
    BadPath { path: PathBuf },
    /// A symbolic link where calseg needs a real directory or file.
    #[error(
        "{path}: is a symbolic link calseg did not create; refusing to write through it \
         (it could redirect the write anywhere). Replace it with a real directory or file, \
         or point the policy at another path"
    )]
    Symlink { path: PathBuf },
    /// Something of the wrong kind is in the way (a directory where a file goes, a socket, ...).
    #[error("{path}: exists but is not a {expected}; move it away or fix the policy")]
    WrongType {
        path: PathBuf,
        expected: &'static str,
    },
    /// The owner named in the manifest does not exist on this host.
    #[error(
        "{path}: user `{name}` does not exist on this host; create it (or install the \
         package that does) or fix the owner in the policy"
    )]
    UnknownUser { path: PathBuf, name: String },
    /// The group named in the manifest does not exist on this host.
    #[error(
        "{path}: group `{name}` does not exist on this host; create it or fix the group \
         in the policy"
    )]
    UnknownGroup { path: PathBuf, name: String },
    /// An identity set that cannot be installed as one unit.
    #[error("{path}: invalid identity file set: {reason}")]
    BadSet { path: PathBuf, reason: String },
    /// A rollback that has nothing (or no longer the right thing) to go back to.
    #[error("{path}: cannot roll back: {reason}")]
    NoRollback { path: PathBuf, reason: String },
    /// A system call failed.
    #[error(
        "{path}: {op} failed: {source}; check the agent runs as root and the file system \
         is writable"
    )]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl InstallError {
    /// A stable, short name of the kind of failure, for metric labels and log fields.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadPath { .. } => "bad_path",
            Self::Symlink { .. } => "symlink",
            Self::WrongType { .. } => "wrong_type",
            Self::UnknownUser { .. } => "unknown_user",
            Self::UnknownGroup { .. } => "unknown_group",
            Self::BadSet { .. } => "bad_set",
            Self::NoRollback { .. } => "no_rollback",
            Self::Io { .. } => "io",
        }
    }
}

/// Adapts an `io::Error` into [`InstallError::Io`] for `path`; symlink-loop errors from
/// `O_NOFOLLOW` opens become [`InstallError::Symlink`].
pub(crate) fn io_err(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> InstallError {
    let path = path.to_path_buf();
    move |source| {
        if source.raw_os_error() == Some(nix::libc::ELOOP) {
            InstallError::Symlink { path }
        } else {
            InstallError::Io { path, op, source }
        }
    }
}
