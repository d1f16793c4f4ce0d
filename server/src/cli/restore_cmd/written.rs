//! [`Written`]: the files and directories a restore created, removed again when a later step
//! fails, so nothing is left half-applied.

use anyhow::{Context, Result};
use calseg_control::backup::BackupFile;
use calseg_control::pki::{Existing, FileOwner, write_file_as};
use std::path::{Path, PathBuf};

/// What a restore created, to remove it again when a later step fails.
#[derive(Default)]
pub(super) struct Written {
    pub files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Written {
    /// Creates `dir` and its missing parents (0750), each recorded; `owner` owns `dir` itself.
    pub fn create_dir(&mut self, dir: &Path, owner: Option<FileOwner>) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
        for (i, d) in missing.iter().rev().enumerate() {
            std::fs::DirBuilder::new()
                .mode(0o750)
                .create(d)
                .with_context(|| format!("create {}", d.display()))?;
            self.dirs.push(d.to_path_buf());
            if let (Some(owner), true) = (owner, i + 1 == missing.len()) {
                std::os::unix::fs::chown(d, Some(owner.uid), Some(owner.gid))
                    .with_context(|| format!("chown {}", d.display()))?;
            }
        }
        Ok(())
    }

    /// Writes a key 0600, anything else 0644, refusing an existing file.
    pub fn file(&mut self, path: &Path, file: &BackupFile, owner: Option<FileOwner>) -> Result<()> {
        let mode = if file.is_secret() { 0o600 } else { 0o644 };
        write_file_as(path, &file.contents, mode, owner, Existing::Refuse)?;
        self.files.push(path.to_path_buf());
        Ok(())
    }

    /// Removes the files, then the directories (deepest first, only when empty).
    pub fn undo(&self) {
        for file in self.files.iter().rev() {
            let _ = std::fs::remove_file(file);
        }
        for dir in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn file(name: &str, mode: u32) -> BackupFile {
        BackupFile {
            name: name.into(),
            mode,
            contents: b"x".to_vec(),
        }
    }

    #[test]
    fn undo_removes_what_was_written_and_only_that() {
        let root = tempfile::tempdir().unwrap();
        let kept = root.path().join("kept");
        std::fs::write(&kept, "operator's").unwrap();
        let ca = root.path().join("state/ca");
        let mut written = Written::default();
        written.create_dir(&ca, None).unwrap();
        written
            .file(
                &ca.join("fleet-key.pem"),
                &file("fleet-key.pem", 0o640),
                None,
            )
            .unwrap();
        written
            .file(&ca.join("fleet.pem"), &file("fleet.pem", 0o644), None)
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode(&ca.join("fleet-key.pem")),
            0o600,
            "keys are 0600 whatever they were"
        );
        assert_eq!(mode(&ca.join("fleet.pem")), 0o644);
        // An existing file is never replaced.
        assert!(written.file(&kept, &file("kept", 0o644), None).is_err());
        written.undo();
        assert!(
            !root.path().join("state").exists(),
            "created directories removed"
        );
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "operator's");
    }
}
