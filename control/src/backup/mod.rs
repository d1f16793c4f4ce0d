//! Backups of a calseg server: what `calseg-server backup` writes and `restore` reads.
//!
//! A backup is one file: a magic line, the container format version, a JSON header (calseg's
//! version, when, the fleet CA certificate and its fingerprint as agents pin it), the JSON
//! payload ([`BackupContents`]: the store snapshot, every file of the CA directory, the TLS
//! files), and a signature by the fleet CA key over all of that. [`seal`] makes one; [`open`]
//! refuses anything it cannot fully trust before the caller writes a byte: a fleet CA other
//! than the pinned one, a bad signature (a flipped byte, a cut file), a newer format or calseg.
//! The file may be encrypted as a whole to an age X25519 recipient ([`age`]).
//!
//! # Layout
//! - [`format`]: the container: layout, [`seal`] and [`open`].
//! - [`contents`]: the payload, and its checks before a restore writes it.
//! - [`age`]: age v1 encryption to an X25519 recipient, and decryption with an identity.
//! - `bech32`: the text form of age's keys.
//! - [`errors`]: [`BackupError`], each refusal with what to do.

/// age v1 (X25519 recipients): encryption of a whole backup, decryption with an identity.
pub mod age;
/// Bech32, the text form of age keys.
mod bech32;
/// The payload of a backup and its checks.
pub mod contents;
/// Why a backup could not be made, read or trusted.
pub mod errors;
/// The signed container.
pub mod format;
#[cfg(test)]
mod tests;

pub use contents::{BackupContents, BackupFile};
pub use errors::BackupError;
pub use format::{BACKUP_FORMAT, BackupHeader, MAGIC, VerifiedBackup, open, seal};

/// Normalizes an operator's `--ca-hash` to `sha256:<64 lowercase hex>`.
pub fn parse_pin(pin: &str) -> Result<String, BackupError> {
    let bad = || BackupError::BadPin(pin.to_owned());
    let hex = pin.trim().strip_prefix("sha256:").ok_or_else(bad)?;
    if hex.len() != 64 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
}

/// `a > b` for versions `MAJOR.MINOR.PATCH` (a pre-release or build suffix is ignored); `None`
/// when either is not such a version.
pub fn version_newer(a: &str, b: &str) -> Option<bool> {
    fn parts(v: &str) -> Option<(u64, u64, u64)> {
        let core = v.split(['-', '+']).next()?;
        let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
        let t = (it.next()??, it.next()??, it.next()??);
        it.next().is_none().then_some(t)
    }
    Some(parts(a)? > parts(b)?)
}
