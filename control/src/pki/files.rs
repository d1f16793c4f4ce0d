//! Writing keys and certificates to disk, and [`CaFiles`]: a CA saved as `{name}.pem` and
//! `{name}-key.pem` in a directory.
//!
//! Every file is written to a temporary name in its final directory, created with its final
//! mode (`create_new`, never a chmod afterwards), synced, then moved into place and the
//! directory synced: readers see the old file or the whole new one, and a secret is never
//! readable by others, not even for a moment. The process umask can only narrow the mode.
//! A file written for another user (`init` run by root for the packaged server's `calseg`
//! user) is given its owner before a byte is written into it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;

use super::{CaKind, CertificateAuthority, PkiError};

/// What to do when the target file exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Fail with [`PkiError::Exists`]; the check and the write are one atomic step.
    Refuse,
    /// Replace it atomically (`--force`).
    Replace,
}

/// The user and group a written file belongs to, when not the writing process's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOwner {
    pub uid: u32,
    pub gid: u32,
}

/// Writes a secret (a private key) with mode 0600.
pub fn write_secret_file(path: &Path, bytes: &[u8], existing: Existing) -> Result<(), PkiError> {
    write_file_as(path, bytes, 0o600, None, existing)
}

/// Writes a public file (a certificate) with `mode`, usually 0o644.
pub fn write_public_file(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    existing: Existing,
) -> Result<(), PkiError> {
    write_file_as(path, bytes, mode, None, existing)
}

/// Keeps `ca`'s certificate (not its key) as `{dir}/{name}.retired-<fingerprint>.pem` once a
/// rotation replaced it; the file written.
pub fn keep_retired(
    dir: &Path,
    name: &str,
    ca: &CertificateAuthority,
) -> Result<PathBuf, PkiError> {
    let digits = ca.fingerprint_sha256();
    let short = digits.trim_start_matches("sha256:").get(..16).unwrap_or("");
    let retired = dir.join(format!("{name}.retired-{short}.pem"));
    write_public_file(&retired, ca.cert_pem().as_bytes(), 0o644, Existing::Replace)?;
    Ok(retired)
}

/// The certificates of `cas` as one PEM bundle, in order.
pub fn bundle_pem<'a>(cas: impl IntoIterator<Item = &'a CertificateAuthority>) -> String {
    cas.into_iter()
        .map(|ca| match ca.cert_pem() {
            pem if pem.ends_with('\n') => pem.to_owned(),
            pem => format!("{pem}\n"),
        })
        .collect()
}

/// Removes `path`; one already gone is fine.
pub fn remove_if_present(path: &Path) -> Result<(), PkiError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io_err("remove", path)(source)),
    }
}

/// `PkiError::Io` for operation `op` on `path`.
fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PkiError {
    move |source| PkiError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Writes a file with `mode`, owned by `owner` (when given) from its creation: the module's
/// one writer (temporary name, sync, link or rename into place, directory sync).
pub fn write_file_as(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<FileOwner>,
    existing: Existing,
) -> Result<(), PkiError> {
    let name = path.file_name().ok_or_else(|| {
        PkiError::InvalidRequest(format!("{} does not name a file", path.display()))
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if existing == Existing::Refuse && path.symlink_metadata().is_ok() {
        return Err(PkiError::Exists {
            path: path.to_owned(),
        });
    }
    let mut suffix = [0u8; 8];
    SystemRandom::new()
        .fill(&mut suffix)
        .map_err(|_| PkiError::generate("a temporary file name", "the system CSPRNG failed"))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        hex::encode(suffix)
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        if let Some(owner) = owner {
            std::os::unix::fs::fchown(&file, Some(owner.uid), Some(owner.gid))
                .map_err(io_err("chown", &tmp))?;
        }
        file.write_all(bytes).map_err(io_err("write", &tmp))?;
        file.sync_all().map_err(io_err("sync", &tmp))?;
        drop(file);
        match existing {
            // link(2) fails if the target exists, so no one can slip a file in between.
            Existing::Refuse => {
                fs::hard_link(&tmp, path).map_err(|e| match e.kind() {
                    io::ErrorKind::AlreadyExists => PkiError::Exists {
                        path: path.to_owned(),
                    },
                    _ => io_err("link into place", path)(e),
                })?;
                fs::remove_file(&tmp).map_err(io_err("remove", &tmp))?;
            }
            Existing::Replace => fs::rename(&tmp, path).map_err(io_err("move into place", path))?,
        }
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("sync directory", dir))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// A CA's two files: `{dir}/{name}.pem` (certificate, 0644) and `{dir}/{name}-key.pem` (key,
/// 0600).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CaFiles {
    /// The files of CA `name` (e.g. `fleet-ca`, `etcd-ca`) in `dir`.
    pub fn new(dir: &Path, name: &str) -> Self {
        Self {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
        }
    }

    /// Whether either file exists.
    pub fn exist(&self) -> bool {
        self.cert.symlink_metadata().is_ok() || self.key.symlink_metadata().is_ok()
    }

    /// Writes the key, then the certificate. With [`Existing::Refuse`] nothing is written if
    /// either file exists: an existing CA key is never lost without `--force`.
    pub fn save(&self, ca: &CertificateAuthority, existing: Existing) -> Result<(), PkiError> {
        self.save_as(ca, None, existing)
    }

    /// [`Self::save`], both files owned by `owner` from their creation.
    pub fn save_as(
        &self,
        ca: &CertificateAuthority,
        owner: Option<FileOwner>,
        existing: Existing,
    ) -> Result<(), PkiError> {
        if existing == Existing::Refuse {
            for path in [&self.key, &self.cert] {
                if path.symlink_metadata().is_ok() {
                    return Err(PkiError::Exists { path: path.clone() });
                }
            }
        }
        write_file_as(&self.key, ca.key_pem().as_bytes(), 0o600, owner, existing)?;
        write_file_as(&self.cert, ca.cert_pem().as_bytes(), 0o644, owner, existing)
    }

    /// Reads both files and imports them with [`CertificateAuthority::from_pem`].
    pub fn load(
        &self,
        kind: CaKind,
        now: OffsetDateTime,
    ) -> Result<CertificateAuthority, PkiError> {
        let read = |path: &Path| {
            fs::read_to_string(path).map_err(|source| PkiError::Io {
                op: "read",
                path: path.to_owned(),
                source,
            })
        };
        let cert = read(&self.cert)?;
        let key = read(&self.key)?;
        CertificateAuthority::from_pem(kind, &cert, &key, now).map_err(|source| PkiError::Files {
            cert: self.cert.clone(),
            key: self.key.clone(),
            source: Box::new(source),
        })
    }
}
