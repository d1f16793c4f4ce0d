//! Where manifest paths land on disk, and the directories above them.
//!
//! Every manifest path is absolute (`/etc/calico/calico.env`) and is joined under a [`Root`]
//! prefix: `/` in production, a temporary directory in tests and demos. Walking down from the
//! prefix, every existing component must be a real directory: calseg never writes through a
//! symbolic link it did not create. Missing directories are created with their final mode and
//! owner before anything is put in them.

use super::error::{InstallError, io_err};
use super::fsops::{Ids, open_dir, set_mode_owner};
use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};

/// The directory manifest paths are installed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// `/` in production; any directory for tests and demos. Not itself checked for symlinks.
    pub prefix: PathBuf,
}

impl Root {
    /// The host's real root, `/`.
    pub fn system() -> Self {
        Self::new("/")
    }

    /// A root at `prefix`.
    pub fn new(prefix: impl Into<PathBuf>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The on-disk path of the absolute manifest path `path`, refusing relative paths, `..`
    /// and paths naming the root itself.
    pub fn resolve(&self, path: &Path) -> Result<PathBuf, InstallError> {
        let bad = || InstallError::BadPath {
            path: path.to_path_buf(),
        };
        let mut components = path.components();
        if components.next() != Some(Component::RootDir) {
            return Err(bad());
        }
        let mut out = self.prefix.clone();
        for component in components {
            match component {
                Component::Normal(part) => out.push(part),
                _ => return Err(bad()),
            }
        }
        if out == self.prefix {
            return Err(bad());
        }
        Ok(out)
    }

    /// Checks every existing directory from the prefix down to and including `dir` (a manifest
    /// path) is a real directory. Returns whether `dir` itself exists.
    pub(crate) fn check_dirs(&self, dir: &Path) -> Result<bool, InstallError> {
        self.resolve(dir)?;
        let mut on_disk = self.prefix.clone();
        for part in dir.components().skip(1) {
            on_disk.push(part);
            match std::fs::symlink_metadata(&on_disk) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(io_err(&on_disk, "stat")(e)),
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(InstallError::Symlink { path: on_disk });
                }
                Ok(meta) if !meta.is_dir() => {
                    return Err(InstallError::WrongType {
                        path: on_disk,
                        expected: "directory",
                    });
                }
                Ok(_) => {}
            }
        }
        Ok(true)
    }

    /// Creates the manifest directory `dir` and any missing parents. Parents get 0755 and the
    /// agent's own owner; `dir` itself gets `leaf` (mode, owner) when given, else 0755.
    /// Existing directories are checked, never modified.
    pub(crate) fn ensure_dir(
        &self,
        dir: &Path,
        leaf: Option<(u32, Ids)>,
    ) -> Result<PathBuf, InstallError> {
        let target = self.resolve(dir)?;
        if self.check_dirs(dir)? {
            return Ok(target);
        }
        let mut on_disk = self.prefix.clone();
        for part in dir.components().skip(1) {
            on_disk.push(part);
            let is_leaf = on_disk == target;
            let (mode, ids) = match (is_leaf, leaf) {
                (true, Some((mode, ids))) => (mode, Some(ids)),
                _ => (0o755, None),
            };
            match DirBuilder::new().mode(mode).create(&on_disk) {
                Ok(()) => {
                    let handle = open_dir(&on_disk)?;
                    set_mode_owner(&handle, &on_disk, mode, ids)?;
                    if let Some(parent) = on_disk.parent() {
                        super::fsops::fsync_dir(parent)?;
                    }
                }
                // Existed already (checked above) or raced with another creator: re-checked below.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(&on_disk, "create directory")(e)),
            }
        }
        self.check_dirs(dir)?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_joins_under_prefix_and_refuses_escapes() {
        let root = Root::new("/tmp/x");
        let got = root.resolve(Path::new("/etc/calico/calico.env"));
        assert_eq!(
            got.ok(),
            Some(PathBuf::from("/tmp/x/etc/calico/calico.env"))
        );
        for bad in ["etc/calico", "/etc/../root", "/", ""] {
            let err = root.resolve(Path::new(bad));
            assert!(matches!(err, Err(InstallError::BadPath { .. })), "{bad}");
        }
    }

    #[test]
    fn parent_symlink_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let elsewhere = tempfile::tempdir()?;
        std::fs::create_dir(tmp.path().join("etc"))?;
        std::os::unix::fs::symlink(elsewhere.path(), tmp.path().join("etc/calico"))?;
        let root = Root::new(tmp.path());
        let err = root.ensure_dir(Path::new("/etc/calico/certs"), None);
        assert!(matches!(err, Err(InstallError::Symlink { .. })), "{err:?}");
        assert_eq!(std::fs::read_dir(elsewhere.path())?.count(), 0);
        Ok(())
    }

    #[test]
    fn ensure_dir_creates_missing_dirs() -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir()?;
        let root = Root::new(tmp.path());
        let ids = Ids::current();
        let dir = root.ensure_dir(Path::new("/etc/calico/certs/node"), Some((0o750, ids)))?;
        assert_eq!(
            std::fs::metadata(&dir)?.permissions().mode() & 0o7777,
            0o750
        );
        let parent = tmp.path().join("etc/calico");
        assert_eq!(
            std::fs::metadata(parent)?.permissions().mode() & 0o7777,
            0o755
        );
        Ok(())
    }
}
