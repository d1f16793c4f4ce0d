//! The file-system primitives install is built from: owner lookup, exclusive no-follow creation
//! with the final mode and owner set before the first content byte, fsync of files and
//! directories, no-follow reads of what is installed now, and atomic symlink replacement.

use super::FileSpec;
use super::error::{InstallError, io_err};
use nix::unistd::{Group, User};
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Numeric owner and group of a file to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ids {
    pub uid: u32,
    pub gid: u32,
}

impl Ids {
    /// The running process's ids (tests install as whoever runs them).
    #[cfg(test)]
    pub fn current() -> Self {
        Self {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        }
    }

    /// Looks up `spec.owner` and `spec.group` by name.
    pub fn of(spec: &FileSpec) -> Result<Self, InstallError> {
        let lookup = |e: nix::Error| io_err(&spec.path, "user/group lookup")(io::Error::from(e));
        let user = User::from_name(&spec.owner).map_err(lookup)?;
        let user = user.ok_or_else(|| InstallError::UnknownUser {
            path: spec.path.clone(),
            name: spec.owner.clone(),
        })?;
        let group = Group::from_name(&spec.group).map_err(lookup)?;
        let group = group.ok_or_else(|| InstallError::UnknownGroup {
            path: spec.path.clone(),
            name: spec.group.clone(),
        })?;
        Ok(Self {
            uid: user.uid.as_raw(),
            gid: group.gid.as_raw(),
        })
    }
}

/// What is installed at a path now.
#[derive(Debug, Clone)]
pub(crate) struct Existing {
    pub contents: Vec<u8>,
    pub mode: u32,
    pub ids: Ids,
}

/// Sets the exact mode (the umask may have narrowed it at creation) and the owner of an open
/// file or directory. Called before any content is written.
pub(crate) fn set_mode_owner(
    file: &File,
    path: &Path,
    mode: u32,
    ids: Option<Ids>,
) -> Result<(), InstallError> {
    if let Some(ids) = ids {
        std::os::unix::fs::fchown(file, Some(ids.uid), Some(ids.gid))
            .map_err(io_err(path, "fchown"))?;
    }
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(io_err(path, "fchmod"))
}

/// Creates `path` (which must not exist) with `mode` and owner `ids`, writes `contents` and
/// fsyncs it. Opened `O_CREAT|O_EXCL|O_NOFOLLOW`, so a planted file or symlink makes it fail.
pub(crate) fn create_new(
    path: &Path,
    contents: &[u8],
    mode: u32,
    ids: Ids,
) -> Result<(), InstallError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o777)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(io_err(path, "create"))?;
    set_mode_owner(&file, path, mode, Some(ids))?;
    file.write_all(contents).map_err(io_err(path, "write"))?;
    file.sync_all().map_err(io_err(path, "fsync"))
}

/// Opens a directory without following a symlink at its last component.
pub(crate) fn open_dir(path: &Path) -> Result<File, InstallError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(io_err(path, "open directory"))
}

/// Makes the entries of directory `path` (creations, renames, removals) durable.
pub(crate) fn fsync_dir(path: &Path) -> Result<(), InstallError> {
    open_dir(path)?
        .sync_all()
        .map_err(io_err(path, "fsync directory"))
}

/// Reads the regular file at `path` without following a symlink there. `None` if missing.
pub(crate) fn read_existing(path: &Path) -> Result<Option<Existing>, InstallError> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
        .open(path);
    let mut file = match opened {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        other => other.map_err(io_err(path, "open"))?,
    };
    let meta = file.metadata().map_err(io_err(path, "stat"))?;
    if !meta.is_file() {
        return Err(InstallError::WrongType {
            path: path.to_path_buf(),
            expected: "regular file",
        });
    }
    let mut contents = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut contents)
        .map_err(io_err(path, "read"))?;
    Ok(Some(Existing {
        contents,
        mode: meta.mode() & 0o7777,
        ids: Ids {
            uid: meta.uid(),
            gid: meta.gid(),
        },
    }))
}

/// Removes a file or symlink (never following it) if it exists.
pub(crate) fn remove_if_exists(path: &Path) -> Result<(), InstallError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(path, "remove")(e)),
        _ => Ok(()),
    }
}

/// Atomically points the symlink `link` at `target`: a fresh symlink at `tmp`, renamed over.
pub(crate) fn replace_symlink(target: &Path, link: &Path, tmp: &Path) -> Result<(), InstallError> {
    remove_if_exists(tmp)?;
    std::os::unix::fs::symlink(target, tmp).map_err(io_err(tmp, "symlink"))?;
    std::fs::rename(tmp, link).map_err(io_err(link, "rename"))
}

/// Lower-case hex SHA-256 of `bytes`, as shown in plans and logs instead of contents.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn create_new_refuses_planted_symlink() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, "keep")?;
        let planted = tmp.path().join("tmpfile");
        std::os::unix::fs::symlink(&victim, &planted)?;
        let err = create_new(&planted, b"secret", 0o600, Ids::current());
        assert!(err.is_err());
        assert_eq!(std::fs::read(&victim)?, b"keep");
        Ok(())
    }

    #[test]
    fn create_new_sets_exact_mode_despite_umask() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("f");
        create_new(&path, b"x", 0o640, Ids::current())?;
        let meta = std::fs::metadata(&path)?;
        assert_eq!(meta.mode() & 0o7777, 0o640);
        assert!(read_existing(&path)?.is_some_and(|e| e.contents == b"x"));
        Ok(())
    }
}
