//! Managed paths: lexical normalization, then a walk of what exists on disk under the root
//! prefix, so that neither `..` nor a symbolic link can lead a write out of an allowed tree.

use crate::install::Root;
use std::io;
use std::path::{Component, Path, PathBuf};

/// The lexical form of a manifest path: absolute, `.` and repeated `/` dropped. Refuses NUL
/// bytes, relative paths, `..` anywhere and the root itself.
pub fn normalize(path: &str) -> Result<PathBuf, String> {
    if path.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    let mut components = Path::new(path).components();
    if components.next() != Some(Component::RootDir) {
        return Err("not an absolute path".into());
    }
    let mut out = PathBuf::from("/");
    for component in components {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("contains a `..` component".into()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("not a plain absolute path".into());
            }
        }
    }
    if out == Path::new("/") {
        return Err("names the root directory".into());
    }
    Ok(out)
}

/// Walks `path` (normalized, strictly under `allowed`) on disk under `root`. Every existing
/// component down to `allowed` must be a real directory; below it, a symbolic link must
/// resolve inside `allowed` (a dangling one must be relative without `..`, so it stays in its
/// directory). Missing components end the walk: the installer creates them as directories.
pub fn check_on_disk(root: &Root, allowed: &Path, path: &Path) -> Result<(), String> {
    let real_prefix = std::fs::canonicalize(&root.prefix)
        .map_err(|e| format!("root {}: {e}", root.prefix.display()))?;
    let relative = |p: &Path| {
        p.strip_prefix("/")
            .map(Path::to_path_buf)
            .unwrap_or_default()
    };
    let real_allowed = real_prefix.join(relative(allowed));
    let mut manifest_path = PathBuf::from("/");
    for part in path.components().skip(1) {
        manifest_path.push(part);
        let on_disk = root.prefix.join(relative(&manifest_path));
        let meta = match std::fs::symlink_metadata(&on_disk) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("{}: {e}", on_disk.display())),
            Ok(meta) => meta,
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        let below = manifest_path.starts_with(allowed) && manifest_path != allowed;
        if !below {
            return Err(format!(
                "{} is a symbolic link above the allowed directory {}",
                manifest_path.display(),
                allowed.display()
            ));
        }
        match std::fs::canonicalize(&on_disk) {
            Ok(target) if target.starts_with(&real_allowed) && target != real_allowed => {}
            Ok(target) => {
                return Err(format!(
                    "{} is a symbolic link to {}, outside {}",
                    manifest_path.display(),
                    target.display(),
                    allowed.display()
                ));
            }
            Err(_) => {
                let target = std::fs::read_link(&on_disk)
                    .map_err(|e| format!("{}: {e}", on_disk.display()))?;
                let stays = target
                    .components()
                    .all(|c| matches!(c, Component::Normal(_)));
                if !stays {
                    return Err(format!(
                        "{} is a dangling symbolic link to {}, which may leave {}",
                        manifest_path.display(),
                        target.display(),
                        allowed.display()
                    ));
                }
            }
        }
    }
    Ok(())
}
