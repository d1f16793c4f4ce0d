//! The on-disk layout of one identity directory:
//!
//! ```text
//! <dir>/cert.pem -> .calseg/current/cert.pem      (stable names, relative links, made once)
//! <dir>/.calseg/current -> 7                      (the one link switched per install)
//! <dir>/.calseg/6/{ca,cert,key}.pem               (previous generation, kept for rollback)
//! <dir>/.calseg/7/{ca,cert,key}.pem               (current generation)
//! ```

use crate::install::InstallError;
use crate::install::error::io_err;
use crate::install::fsops::{
    Existing, Ids, fsync_dir, open_dir, read_existing, remove_if_exists, replace_symlink,
    set_mode_owner,
};
use std::fs::DirBuilder;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Name of calseg's state directory inside an identity directory.
pub(super) const STATE: &str = ".calseg";
const CURRENT: &str = "current";
const CURRENT_TMP: &str = ".current-tmp";
/// Mode of calseg-made directories holding identity files: the service's group traverses.
pub(super) const DIR_MODE: u32 = 0o750;

/// What is at a stable name now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stable {
    Missing,
    /// calseg's relative link into `.calseg/current/`.
    Ours,
    /// A regular file from a manual install, to be adopted.
    Regular,
}

/// Paths of one identity directory on disk.
pub(super) struct Layout {
    pub dir: PathBuf,
    pub state: PathBuf,
}

impl Layout {
    pub fn new(dir: PathBuf) -> Self {
        let state = dir.join(STATE);
        Self { dir, state }
    }

    pub fn generation(&self, n: u64) -> PathBuf {
        self.state.join(n.to_string())
    }

    /// The generation `current` points at, `None` if there is no `current` yet.
    pub fn current(&self) -> Result<Option<u64>, InstallError> {
        let link = self.state.join(CURRENT);
        match std::fs::read_link(&link) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => Err(self.bad_current(link)),
            Err(e) => Err(io_err(&link, "readlink")(e)),
            Ok(target) => match target.to_str().map(str::parse::<u64>) {
                Some(Ok(n)) => Ok(Some(n)),
                _ => Err(self.bad_current(link)),
            },
        }
    }

    fn bad_current(&self, path: PathBuf) -> InstallError {
        InstallError::WrongType {
            path,
            expected: "symlink to a generation number (remove it and re-run the agent)",
        }
    }

    /// The generation directories present, ascending. Anything numeric that is not a real
    /// directory is refused.
    pub fn generations(&self) -> Result<Vec<u64>, InstallError> {
        let entries = match std::fs::read_dir(&self.state) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            other => other.map_err(io_err(&self.state, "read directory"))?,
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&self.state, "read directory"))?;
            let Some(n) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let kind = entry.file_type().map_err(io_err(&entry.path(), "stat"))?;
            if kind.is_symlink() {
                return Err(InstallError::Symlink { path: entry.path() });
            }
            if !kind.is_dir() {
                let (path, expected) = (entry.path(), "directory");
                return Err(InstallError::WrongType { path, expected });
            }
            found.push(n);
        }
        found.sort_unstable();
        Ok(found)
    }

    /// Creates the empty generation directory `n` owned by `ids`.
    pub fn make_generation(&self, n: u64, ids: Ids) -> Result<PathBuf, InstallError> {
        let path = self.generation(n);
        DirBuilder::new()
            .mode(DIR_MODE)
            .create(&path)
            .map_err(io_err(&path, "create directory"))?;
        set_mode_owner(&open_dir(&path)?, &path, DIR_MODE, Some(ids))?;
        Ok(path)
    }

    /// Points `current` at generation `n` in one rename, durably.
    pub fn switch(&self, n: u64) -> Result<(), InstallError> {
        let link = self.state.join(CURRENT);
        replace_symlink(
            Path::new(&n.to_string()),
            &link,
            &self.state.join(CURRENT_TMP),
        )?;
        fsync_dir(&self.state)
    }

    /// Removes the `current` link (rollback of a first install).
    pub fn remove_current(&self) -> Result<(), InstallError> {
        remove_if_exists(&self.state.join(CURRENT))?;
        fsync_dir(&self.state)
    }

    /// Removes every generation not in `keep`, and temp links of interrupted switches.
    pub fn prune(&self, keep: &[u64]) -> Result<(), InstallError> {
        remove_if_exists(&self.state.join(CURRENT_TMP))?;
        for n in self.generations()? {
            if !keep.contains(&n) {
                let path = self.generation(n);
                // remove_dir_all does not follow symlinks inside the tree.
                std::fs::remove_dir_all(&path).map_err(io_err(&path, "remove directory"))?;
            }
        }
        fsync_dir(&self.state)
    }

    fn link_target(name: &str) -> PathBuf {
        Path::new(STATE).join(CURRENT).join(name)
    }

    fn link_tmp(&self, name: &str) -> PathBuf {
        self.dir.join(format!(".{name}.calseg-tmp"))
    }

    /// What is at the stable name `name`; a link calseg did not make is refused.
    pub fn stable(&self, name: &str) -> Result<Stable, InstallError> {
        let path = self.dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Stable::Missing),
            Err(e) => Err(io_err(&path, "stat")(e)),
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&path).map_err(io_err(&path, "readlink"))?;
                if target == Self::link_target(name) {
                    Ok(Stable::Ours)
                } else {
                    Err(InstallError::Symlink { path })
                }
            }
            Ok(meta) if meta.is_file() => Ok(Stable::Regular),
            Ok(_) => Err(InstallError::WrongType {
                path,
                expected: "regular file",
            }),
        }
    }

    /// Makes `name` calseg's link into `current`, replacing what is there in one rename.
    pub fn link(&self, name: &str) -> Result<(), InstallError> {
        let tmp = self.link_tmp(name);
        replace_symlink(&Self::link_target(name), &self.dir.join(name), &tmp)
    }

    /// Removes temp links of an interrupted install.
    pub fn remove_link_tmp(&self, name: &str) -> Result<(), InstallError> {
        remove_if_exists(&self.link_tmp(name))
    }

    /// What a reader of `name` sees now, read without following any link but calseg's own.
    pub fn read_visible(
        &self,
        name: &str,
        current: Option<u64>,
    ) -> Result<Option<Existing>, InstallError> {
        match (self.stable(name)?, current) {
            (Stable::Regular, _) => read_existing(&self.dir.join(name)),
            (Stable::Ours, Some(n)) => read_existing(&self.generation(n).join(name)),
            (Stable::Ours, None) | (Stable::Missing, _) => Ok(None),
        }
    }
}
