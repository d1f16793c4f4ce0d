//! A rotation's files in the CA directory, next to `etcd-client.pem` and its key:
//!
//! | file | what |
//! |---|---|
//! | `etcd-client.active.pem`, `etcd-client.active-key.pem` | the CA in force after a rotation finished (before the first one: `etcd-client.pem`) |
//! | `etcd-client.next.pem`, `etcd-client.next-key.pem` | the new CA, from `begin` until `finish` |
//! | `etcd-client-bundle.pem` | old and new CA: etcd's `--trusted-ca-file` during the rotation |
//! | `etcd-server-ca.pem` | the bundle components verify etcd's server with, kept as it was when the first rotation began (see below) |
//! | `etcd-client.retired-<fingerprint>.pem` | the old CA's certificate after `finish` (its key is deleted) |
//!
//! Without `ca_file` in server.toml or the policy, the server gives components the etcd client
//! CA to verify etcd's server certificate. A rotation must not change that: etcd's server
//! certificate does not change with it, and a changed bundle would make every node re-issue at
//! once. So `begin` saves the bundle in force as `etcd-server-ca.pem`, which the server reads
//! in place of `etcd-client.pem` from then on.
//!
//! `etcd-client.pem` itself is never rewritten: `init` names it as the CA that verifies etcd's
//! server certificate (`[etcd] ca_file`) when that certificate came from the same CA, and what
//! components and calseg verify etcd with must not change when the client CA does. `finish`
//! writes the new CA as `etcd-client.active.pem` and deletes the old CA's key.
//!
//! `finish` puts the new CA in force on disk before the store says it finished: a server
//! stopped in between finds the new CA in force and the record not finished, and completes it
//! at start ([`super::resume_after_restart`]).

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::pki::{
    CaFiles, CaKind, CertificateAuthority, Existing, PkiError, bundle_pem, keep_retired,
    remove_if_present as remove, write_public_file,
};

/// The CA directory's rotation files.
#[derive(Debug, Clone)]
pub struct RotationFiles {
    dir: PathBuf,
}

impl RotationFiles {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    /// The etcd client CA in force: the one the last finished rotation made, else `init`'s.
    pub fn current(&self) -> CaFiles {
        let active = self.active();
        if active.exist() {
            active
        } else {
            self.original()
        }
    }

    /// The CA `init` made or imported.
    fn original(&self) -> CaFiles {
        CaFiles::new(&self.dir, "etcd-client")
    }

    /// The CA the last finished rotation put in force.
    fn active(&self) -> CaFiles {
        CaFiles::new(&self.dir, "etcd-client.active")
    }

    /// The new CA during a rotation.
    pub fn next(&self) -> CaFiles {
        CaFiles::new(&self.dir, "etcd-client.next")
    }

    /// Old and new CA, for etcd's `--trusted-ca-file`.
    pub fn bundle(&self) -> PathBuf {
        self.dir.join("etcd-client-bundle.pem")
    }

    /// The bundle components verify etcd's server certificate with, when no `ca_file` says.
    pub fn server_ca(&self) -> PathBuf {
        self.dir.join("etcd-server-ca.pem")
    }

    /// Every file a rotation adds beside `init`'s CA (retired certificates aside): what a new
    /// `init --force` removes, or the server would take them for the CA in force.
    pub fn rotation_paths(&self) -> Vec<PathBuf> {
        let (next, active) = (self.next(), self.active());
        vec![
            next.cert,
            next.key,
            active.cert,
            active.key,
            self.bundle(),
            self.server_ca(),
        ]
    }

    /// The new CA, when its files are here.
    pub fn load_next(&self, now: OffsetDateTime) -> Result<Option<CertificateAuthority>, PkiError> {
        let next = self.next();
        if !next.exist() {
            return Ok(None);
        }
        next.load(CaKind::EtcdClient, now).map(Some)
    }

    /// Writes the new CA (refused if one is there: a rotation's key is never lost), the bundle
    /// of both, and `etcd-server-ca.pem` with `server_bundle_pem` unless it exists.
    pub fn begin(
        &self,
        old: &CertificateAuthority,
        new: &CertificateAuthority,
        server_bundle_pem: &str,
    ) -> Result<(), PkiError> {
        self.next().save(new, Existing::Refuse)?;
        let bundle = bundle_pem([old, new]);
        write_public_file(&self.bundle(), bundle.as_bytes(), 0o644, Existing::Replace)?;
        match write_public_file(
            &self.server_ca(),
            server_bundle_pem.as_bytes(),
            0o644,
            Existing::Refuse,
        ) {
            Err(PkiError::Exists { .. }) | Ok(()) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// Makes `new` the etcd client CA: keeps `old`'s certificate as retired, writes `new` as
    /// `etcd-client.active.pem` and its key, deletes `old`'s key, removes the next files, and
    /// leaves the bundle with the new CA only.
    pub fn finish(
        &self,
        old: &CertificateAuthority,
        new: &CertificateAuthority,
    ) -> Result<PathBuf, PkiError> {
        let retired = keep_retired(&self.dir, "etcd-client", old)?;
        let was = self.current();
        self.active().save(new, Existing::Replace)?;
        if was == self.original() {
            remove(&was.key)?;
        }
        self.drop_next()?;
        write_public_file(
            &self.bundle(),
            new.cert_pem().as_bytes(),
            0o644,
            Existing::Replace,
        )?;
        Ok(retired)
    }

    /// Removes the new CA's files (a rollback, or the end of `finish`) and leaves the bundle
    /// with the CA in force only.
    pub fn drop_next(&self) -> Result<(), PkiError> {
        let next = self.next();
        remove(&next.key)?;
        remove(&next.cert)
    }

    /// After a rollback: the bundle holds `current` only.
    pub fn reset_bundle(&self, current: &CertificateAuthority) -> Result<(), PkiError> {
        write_public_file(
            &self.bundle(),
            current.cert_pem().as_bytes(),
            0o644,
            Existing::Replace,
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn ca(name: &str) -> CertificateAuthority {
        CertificateAuthority::generate(
            CaKind::EtcdClient,
            name,
            Duration::from_secs(86400),
            OffsetDateTime::now_utc(),
        )
        .unwrap()
    }

    #[test]
    fn begin_finish_leave_the_new_ca_in_force_and_the_old_one_retired() {
        let dir = tempfile::tempdir().unwrap();
        let files = RotationFiles::new(dir.path());
        let (old, new) = (ca("old"), ca("new"));
        files.current().save(&old, Existing::Refuse).unwrap();
        files.begin(&old, &new, old.cert_pem()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&files.next().key), 0o600);
        let bundle = fs::read_to_string(files.bundle()).unwrap();
        assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2);
        // Twice: refused, the first new key kept.
        let before = fs::read(&files.next().key).unwrap();
        assert!(matches!(
            files.begin(&old, &ca("other"), "x"),
            Err(PkiError::Exists { .. })
        ));
        assert_eq!(fs::read(&files.next().key).unwrap(), before);
        let now = OffsetDateTime::now_utc();
        let loaded = files.load_next(now).unwrap().unwrap();
        assert_eq!(loaded.fingerprint_sha256(), new.fingerprint_sha256());
        let original_cert = fs::read_to_string(files.current().cert).unwrap();
        let retired = files.finish(&old, &new).unwrap();
        assert!(files.load_next(now).unwrap().is_none());
        let current = files.current().load(CaKind::EtcdClient, now).unwrap();
        assert_eq!(current.fingerprint_sha256(), new.fingerprint_sha256());
        // etcd-client.pem (what init names as etcd's server CA) is untouched; its key is gone.
        let original = CaFiles::new(dir.path(), "etcd-client");
        assert_eq!(fs::read_to_string(&original.cert).unwrap(), original_cert);
        assert!(!original.key.exists());
        assert_eq!(fs::read_to_string(retired).unwrap(), old.cert_pem());
        assert_eq!(fs::read_to_string(files.bundle()).unwrap(), new.cert_pem());
        // A second rotation replaces the active CA.
        let third = ca("third");
        files.begin(&new, &third, "x").unwrap();
        files.finish(&new, &third).unwrap();
        let current = files.current().load(CaKind::EtcdClient, now).unwrap();
        assert_eq!(current.fingerprint_sha256(), third.fingerprint_sha256());

        // The server's CA bundle for components stays what it was.
        assert_eq!(
            fs::read_to_string(files.server_ca()).unwrap(),
            old.cert_pem()
        );
    }
}
