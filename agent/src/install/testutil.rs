//! Test helpers: specs owned by whoever runs the tests, and reading files back.

use super::FileSpec;
use std::path::Path;

/// The running user's and group's names, so tests need not run as root.
pub(crate) fn me() -> (String, String) {
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    let user = nix::unistd::User::from_uid(uid).ok().flatten();
    let group = nix::unistd::Group::from_gid(gid).ok().flatten();
    (
        user.map_or_else(|| uid.to_string(), |u| u.name),
        group.map_or_else(|| gid.to_string(), |g| g.name),
    )
}

/// A spec for `path` owned by the running user.
pub(crate) fn spec(path: &str, contents: &str, mode: u32) -> FileSpec {
    let (owner, group) = me();
    FileSpec {
        path: path.into(),
        contents: contents.into(),
        owner,
        group,
        mode,
    }
}

/// The contents of `path` (following symlinks, as a reader would), or `None` if absent.
pub(crate) fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}
