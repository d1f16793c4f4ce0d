//! Plain files (env file, calicoctl.cfg, CNI conflist): temp file, fsync, optional hard-link
//! backup of the old file as `<name>.calseg-prev`, rename over the target, fsync the directory.

use super::error::{InstallError, io_err};
use super::fsops::{Ids, create_new, fsync_dir, read_existing, remove_if_exists};
use super::plan::{PlannedChange, compare};
use super::{FileSpec, Hook, InstallReceipt, Root, step};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// What [`install_file`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReceipt {
    /// Manifest path of the target.
    pub path: PathBuf,
    /// False when the file was already exactly as specified (nothing was written).
    pub changed: bool,
    /// Whether a backup was requested.
    pub backup: bool,
    /// Whether an old file was kept as `<name>.calseg-prev`.
    pub had_previous: bool,
}

/// The on-disk target, its directory and a sibling named `.<name><suffix>` or `<name><suffix>`.
struct Target {
    path: PathBuf,
    dir: PathBuf,
    name: OsString,
}

impl Target {
    fn new(root: &Root, manifest_path: &Path) -> Result<Self, InstallError> {
        let path = root.resolve(manifest_path)?;
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(InstallError::BadPath {
                path: manifest_path.to_path_buf(),
            });
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            name: name.to_os_string(),
            path: path.clone(),
        })
    }

    fn sibling(&self, hidden: bool, suffix: &str) -> PathBuf {
        let mut name = OsString::from(if hidden { "." } else { "" });
        name.push(&self.name);
        name.push(suffix);
        self.dir.join(name)
    }
}

fn manifest_parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("/"))
}

/// Dry run: would [`install_file`] change `spec`'s target? Touches nothing; fails where
/// install would (bad path, symlinks, unknown owner).
pub fn plan_file(root: &Root, spec: &FileSpec) -> Result<PlannedChange, InstallError> {
    let target = Target::new(root, &spec.path)?;
    root.check_dirs(manifest_parent(&spec.path))?;
    let ids = Ids::of(spec)?;
    let existing = read_existing(&target.path)?;
    Ok(compare(spec, ids, existing.as_ref()))
}

/// Installs one plain file atomically. With `backup`, the file it replaces is kept as
/// `<name>.calseg-prev` for [`super::rollback`]. A symlink at the target is refused.
pub fn install_file(
    root: &Root,
    spec: &FileSpec,
    backup: bool,
) -> Result<InstallReceipt, InstallError> {
    install_file_with(root, spec, backup, &mut || Ok(()))
}

pub(crate) fn install_file_with(
    root: &Root,
    spec: &FileSpec,
    backup: bool,
    mut hook: Hook<'_>,
) -> Result<InstallReceipt, InstallError> {
    let target = Target::new(root, &spec.path)?;
    let plan = plan_file(root, spec)?;
    let had_previous = plan.old_sha256.is_some();
    let receipt = |changed| {
        InstallReceipt::File(FileReceipt {
            path: spec.path.clone(),
            changed,
            backup,
            had_previous: had_previous && backup && changed,
        })
    };
    if !plan.changes() {
        return Ok(receipt(false));
    }
    let ids = Ids::of(spec)?;
    root.ensure_dir(manifest_parent(&spec.path), None)?;
    // Leftovers of an interrupted install are ours to remove (unlink never follows a link).
    let tmp = target.sibling(true, ".calseg-tmp");
    let prev_tmp = target.sibling(true, ".calseg-prev-tmp");
    remove_if_exists(&tmp)?;
    remove_if_exists(&prev_tmp)?;
    create_new(&tmp, &spec.contents, spec.mode, ids)?;
    step(&mut hook, &tmp)?;
    if backup && had_previous {
        std::fs::hard_link(&target.path, &prev_tmp).map_err(io_err(&prev_tmp, "link"))?;
        let prev = target.sibling(false, ".calseg-prev");
        std::fs::rename(&prev_tmp, &prev).map_err(io_err(&prev, "rename"))?;
        // rename() is a no-op when both names are links to one inode (an interrupted install
        // already made this backup), leaving the temp name behind.
        remove_if_exists(&prev_tmp)?;
        step(&mut hook, &prev)?;
    }
    std::fs::rename(&tmp, &target.path).map_err(io_err(&target.path, "rename"))?;
    step(&mut hook, &target.path)?;
    fsync_dir(&target.dir)?;
    Ok(receipt(true))
}

/// Undoes [`install_file`]: the backup goes back over the target, or the target is removed
/// when there was nothing before.
pub(crate) fn rollback_file(root: &Root, receipt: &FileReceipt) -> Result<(), InstallError> {
    if !receipt.changed {
        return Ok(());
    }
    let target = Target::new(root, &receipt.path)?;
    root.check_dirs(manifest_parent(&receipt.path))?;
    if receipt.had_previous {
        let prev = target.sibling(false, ".calseg-prev");
        if read_existing(&prev)?.is_none() {
            return Err(InstallError::NoRollback {
                path: prev,
                reason: "the backup is gone; restore the file by hand or re-run the agent".into(),
            });
        }
        std::fs::rename(&prev, &target.path).map_err(io_err(&target.path, "rename"))?;
    } else if receipt.backup {
        remove_if_exists(&target.path)?;
    } else {
        return Err(InstallError::NoRollback {
            path: target.path,
            reason: "installed without a backup".into(),
        });
    }
    fsync_dir(&target.dir)
}

#[cfg(test)]
mod tests;
