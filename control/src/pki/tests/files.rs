//! Key and certificate files: final mode from the first byte, atomic, no overwrite by default.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;
use crate::pki::{CaFiles, Existing, PkiError, write_public_file, write_secret_file};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_secret_file_is_0600_and_exists_only_under_its_final_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    write_secret_file(&path, b"secret", Existing::Refuse).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(fs::read(&path).unwrap(), b"secret");
    assert_eq!(names(dir.path()), ["key.pem"]);
    assert_eq!(fs::metadata(&path).unwrap().nlink(), 1);
}

#[test]
fn an_existing_file_is_kept_unless_replacing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    write_secret_file(&path, b"old", Existing::Refuse).unwrap();
    let err = write_secret_file(&path, b"new", Existing::Refuse).unwrap_err();
    assert!(matches!(err, PkiError::Exists { .. }), "{err}");
    assert!(err.to_string().contains("--force"));
    assert_eq!(fs::read(&path).unwrap(), b"old");
    write_secret_file(&path, b"new", Existing::Replace).unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"new");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(names(dir.path()), ["key.pem"]);
}

#[test]
fn a_public_file_gets_its_mode_and_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    write_public_file(&path, b"cert", 0o644, Existing::Refuse).unwrap();
    // The umask can only take bits away.
    assert_eq!(mode(&path) | 0o044, 0o644);
    assert_eq!(mode(&path) & 0o600, 0o600);

    let missing = dir.path().join("no/such/dir/ca.pem");
    let err = write_public_file(&missing, b"x", 0o644, Existing::Refuse).unwrap_err();
    assert_eq!(err.kind(), "io");
    assert!(err.to_string().contains("no/such/dir"), "{err}");
}

#[test]
fn ca_files_round_trip_and_refuse_to_overwrite_a_ca_key() {
    let dir = tempfile::tempdir().unwrap();
    let files = CaFiles::new(dir.path(), "etcd-ca");
    assert!(!files.exist());
    let ca = ca(CaKind::EtcdClient);
    files.save(&ca, Existing::Refuse).unwrap();
    assert_eq!(names(dir.path()), ["etcd-ca-key.pem", "etcd-ca.pem"]);
    assert_eq!(mode(&files.key), 0o600);

    let loaded = files.load(CaKind::EtcdClient, now()).unwrap();
    assert_eq!(loaded.fingerprint_sha256(), ca.fingerprint_sha256());

    let other = super::ca(CaKind::EtcdClient);
    let err = files.save(&other, Existing::Refuse).unwrap_err();
    assert_eq!(err.kind(), "exists");
    assert_eq!(
        files
            .load(CaKind::EtcdClient, now())
            .unwrap()
            .fingerprint_sha256(),
        ca.fingerprint_sha256()
    );
    files.save(&other, Existing::Replace).unwrap();
    assert_eq!(
        files
            .load(CaKind::EtcdClient, now())
            .unwrap()
            .fingerprint_sha256(),
        other.fingerprint_sha256()
    );

    let err = files.load(CaKind::Fleet, now()).unwrap_err();
    assert_eq!(err.kind(), "wrong_ca_kind");
    assert!(err.to_string().contains("etcd-ca.pem"), "{err}");
}

#[test]
fn loading_missing_files_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let err = CaFiles::new(dir.path(), "fleet-ca")
        .load(CaKind::Fleet, now())
        .unwrap_err();
    assert_eq!(err.kind(), "io");
    assert!(err.to_string().contains("fleet-ca.pem"), "{err}");
}
