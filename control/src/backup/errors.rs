//! [`BackupError`]: why a backup could not be made, read or trusted. Each message says what
//! was wrong and what to do; none carries key material.

use std::path::PathBuf;

/// Why a backup could not be made, read or trusted.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "not a calseg backup (it does not start with calseg's backup magic); check the file name"
    )]
    NotABackup,
    #[error(
        "the backup is truncated: {what} needs {needed} bytes but only {have} remain; the file \
         was cut while copying or writing: use another copy"
    )]
    Truncated {
        what: &'static str,
        needed: u64,
        have: u64,
    },
    #[error("the backup has {0} bytes after its signature: it was altered; use another copy")]
    TrailingBytes(usize),
    #[error(
        "the backup is in format {found}, newer than format {supported} this calseg reads: \
         restore it with the calseg release that wrote it (or a newer one)"
    )]
    NewerFormat { found: u32, supported: u32 },
    #[error(
        "the backup was made by calseg {found}, newer than this calseg-server {this}: restore it \
         with calseg {found} or newer"
    )]
    NewerCalseg { found: String, this: String },
    #[error("the backup's header is invalid: {0}")]
    InvalidHeader(String),
    #[error(
        "--ca-hash {0:?} is not `sha256:` followed by 64 hex digits (the value agents enrolled with)"
    )]
    BadPin(String),
    #[error(
        "the backup's fleet CA is {found}, not the pinned {pin}: it is another fleet's backup \
         (or forged); give the --ca-hash your agents enrolled with, or use that fleet's backup"
    )]
    PinMismatch { found: String, pin: String },
    #[error(
        "the backup's signature does not verify against its fleet CA: the file was altered or \
         damaged after it was written; nothing was restored; use another copy"
    )]
    BadSignature,
    #[error("the fleet CA's key cannot sign backups: {0}")]
    Sign(String),
    #[error("the backup's contents are invalid: {0}")]
    InvalidContents(String),
    #[error(
        "the backup is encrypted (age): give the private key of [backup] recipient with \
         --identity FILE"
    )]
    Encrypted,
    #[error("cannot decrypt the backup: {0}")]
    Decrypt(String),
    #[error("invalid age key in {path}: {reason}")]
    InvalidKey { path: PathBuf, reason: String },
    #[error("invalid [backup] recipient {recipient:?}: {reason}")]
    InvalidRecipient { recipient: String, reason: String },
}
