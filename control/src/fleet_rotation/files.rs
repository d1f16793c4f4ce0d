//! A fleet CA rotation's files in the CA directory, next to `fleet.pem` and `fleet-key.pem`.
//! The files are the rotation's state: every replica and every restart reads it from them.
//!
//! | file | what |
//! |---|---|
//! | `fleet.pem`, `fleet-key.pem` | the CA in force (`[admin] fleet_ca`, backups, the enrollment pin) |
//! | `fleet.next.pem`, `fleet.next-key.pem` | the new CA during the overlap: it signs, both are trusted |
//! | `fleet.abandoned.pem`, `fleet.abandoned-key.pem` | a rolled-back new CA, trusted until no node's certificate comes from it |
//! | `fleet.retired-<fingerprint>.pem` | the old CA's certificate after `finish` (its key is gone) |
//!
//! Each step leaves files a restart can finish: `finish` writes the new CA over `fleet.pem`
//! and its key before it removes the next files, and `rollback` copies the next files to the
//! abandoned ones before it removes them. [`FleetFiles::load`] completes a step it finds cut.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use calseg_api::ca::FleetRotationPhase;
use time::OffsetDateTime;

use crate::fleet_cas::FleetCas;
use crate::pki::{
    CaFiles, CaKind, CertificateAuthority, Existing, PkiError, keep_retired,
    remove_if_present as remove, write_public_file,
};

/// The CA directory's fleet CA files.
#[derive(Debug, Clone)]
pub struct FleetFiles {
    dir: PathBuf,
}

impl FleetFiles {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    /// The CA in force.
    pub fn current(&self) -> CaFiles {
        CaFiles::new(&self.dir, "fleet")
    }

    /// The new CA during the overlap.
    pub fn next(&self) -> CaFiles {
        CaFiles::new(&self.dir, "fleet.next")
    }

    /// A rolled-back new CA.
    pub fn abandoned(&self) -> CaFiles {
        CaFiles::new(&self.dir, "fleet.abandoned")
    }

    /// Every file the state is read from, for a cheap check whether it changed.
    pub fn paths(&self) -> [PathBuf; 6] {
        let (c, n, a) = (self.current(), self.next(), self.abandoned());
        [c.cert, c.key, n.cert, n.key, a.cert, a.key]
    }

    /// Every file a rotation adds beside `fleet.pem` and its key (retired certificates aside):
    /// what a new `init --force` removes, or the server would resume a rotation of another CA.
    pub fn rotation_paths(&self) -> Vec<PathBuf> {
        let (next, abandoned) = (self.next(), self.abandoned());
        vec![next.cert, next.key, abandoned.cert, abandoned.key]
    }

    /// The fleet CAs as the files say, completing a step that was cut short first.
    pub fn load(&self, now: OffsetDateTime) -> Result<FleetCas, PkiError> {
        self.complete_cut_step()?;
        let current = Arc::new(self.current().load(CaKind::Fleet, now)?);
        let (next, abandoned) = (self.next(), self.abandoned());
        let rotation = if next.exist() {
            let new = next.load(CaKind::Fleet, now)?;
            Some((FleetRotationPhase::Overlap, Arc::new(new)))
        } else if abandoned.exist() {
            let dropped = abandoned.load(CaKind::Fleet, now)?;
            Some((FleetRotationPhase::RollingBack, Arc::new(dropped)))
        } else {
            None
        };
        Ok(FleetCas { current, rotation })
    }

    /// Completes (or, for a cut copy, undoes) a step a stop cut short, from what its files
    /// show. Each step writes a key before its certificate and removes a key before its
    /// certificate:
    /// - `finish` writes the next key and certificate over `fleet-key.pem` and `fleet.pem`, then
    ///   removes the next files: a next file equal to the one in force means it was under way;
    /// - `rollback` copies the next files to the abandoned ones, then removes the next files: a
    ///   partial copy is undone, a copy done is completed;
    /// - the second `rollback` removes the abandoned files: a certificate left alone goes too.
    ///
    /// Anything else (an unreadable `fleet.pem`, two different CAs) is left for the load to
    /// report: a rotation is never finished or dropped on a guess.
    fn complete_cut_step(&self) -> Result<(), PkiError> {
        let (current, next, abandoned) = (self.current(), self.next(), self.abandoned());
        let read = |path: &Path| std::fs::read(path).ok();
        let whole = |files: &CaFiles| files.cert.exists() && files.key.exists();
        let same = |a: &Path, b: &Path| read(a).is_some_and(|bytes| Some(bytes) == read(b));
        let remove_both = |files: &CaFiles| remove(&files.key).and_then(|()| remove(&files.cert));
        if next.exist() && (same(&next.key, &current.key) || same(&next.cert, &current.cert)) {
            if !same(&next.cert, &current.cert) {
                let cert = read(&next.cert).unwrap_or_default();
                write_public_file(&current.cert, &cert, 0o644, Existing::Replace)?;
            }
            return remove_both(&next);
        }
        if next.exist() && abandoned.exist() {
            if !whole(&abandoned) {
                return remove_both(&abandoned);
            }
            if !whole(&next) || same(&next.cert, &abandoned.cert) {
                return remove_both(&next);
            }
            return Err(PkiError::InvalidRequest(format!(
                "both {} and {} exist and differ: keep the one the rotation uses and remove the other",
                next.cert.display(),
                abandoned.cert.display()
            )));
        }
        if !next.exist() && abandoned.cert.exists() && !abandoned.key.exists() {
            return remove(&abandoned.cert);
        }
        Ok(())
    }

    /// Writes the new CA (refused if one is there: a rotation's key is never lost).
    pub fn begin(&self, new: &CertificateAuthority) -> Result<(), PkiError> {
        self.next().save(new, Existing::Refuse)
    }

    /// Makes `new` the CA in force: keeps `old`'s certificate as retired, writes `new` over
    /// `fleet.pem` and its key, then removes the next files. Returns the retired file.
    pub fn finish(
        &self,
        old: &CertificateAuthority,
        new: &CertificateAuthority,
    ) -> Result<PathBuf, PkiError> {
        let retired = keep_retired(&self.dir, "fleet", old)?;
        self.current().save(new, Existing::Replace)?;
        let next = self.next();
        remove(&next.key)?;
        remove(&next.cert)?;
        Ok(retired)
    }

    /// Stops signing from the new CA: its files become the abandoned ones (still trusted).
    pub fn roll_back(&self, new: &CertificateAuthority) -> Result<(), PkiError> {
        self.abandoned().save(new, Existing::Replace)?;
        let next = self.next();
        remove(&next.key)?;
        remove(&next.cert)
    }

    /// Drops a rolled-back CA for good.
    pub fn drop_abandoned(&self) -> Result<(), PkiError> {
        let abandoned = self.abandoned();
        remove(&abandoned.key)?;
        remove(&abandoned.cert)
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
        let now = OffsetDateTime::now_utc();
        CertificateAuthority::generate(CaKind::Fleet, name, Duration::from_secs(86400), now)
            .unwrap()
    }

    fn fingerprints(cas: &FleetCas) -> (String, Option<(FleetRotationPhase, String)>) {
        cas.fingerprints()
    }

    #[test]
    fn begin_then_finish_puts_the_new_ca_in_fleet_pem_and_retires_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let files = FleetFiles::new(dir.path());
        let now = OffsetDateTime::now_utc();
        let (old, new) = (ca("old"), ca("new"));
        files.current().save(&old, Existing::Refuse).unwrap();
        assert_eq!(fingerprints(&files.load(now).unwrap()).1, None);
        files.begin(&new).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&files.next().key), 0o600);
        // Twice: refused, the first new key kept.
        let kept = fs::read(&files.next().key).unwrap();
        assert!(matches!(
            files.begin(&ca("other")),
            Err(PkiError::Exists { .. })
        ));
        assert_eq!(fs::read(&files.next().key).unwrap(), kept);
        assert_eq!(
            fingerprints(&files.load(now).unwrap()),
            (
                old.fingerprint_sha256(),
                Some((FleetRotationPhase::Overlap, new.fingerprint_sha256()))
            )
        );
        let retired = files.finish(&old, &new).unwrap();
        assert_eq!(fs::read_to_string(retired).unwrap(), old.cert_pem());
        assert_eq!(
            fingerprints(&files.load(now).unwrap()),
            (new.fingerprint_sha256(), None)
        );
        assert_eq!(mode(&files.current().key), 0o600);
        assert!(!files.next().exist());
    }

    #[test]
    fn a_finish_cut_after_the_new_key_was_written_is_completed_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let files = FleetFiles::new(dir.path());
        let now = OffsetDateTime::now_utc();
        let (old, new) = (ca("old"), ca("new"));
        files.current().save(&old, Existing::Refuse).unwrap();
        files.begin(&new).unwrap();
        // The key of fleet.pem is the new one, the certificate still the old one.
        fs::write(&files.current().key, new.key_pem()).unwrap();
        assert_eq!(
            fingerprints(&files.load(now).unwrap()),
            (new.fingerprint_sha256(), None)
        );
        assert!(!files.next().exist());
        // Cut after both were written, before the next files went.
        let third = ca("third");
        files.begin(&third).unwrap();
        files.current().save(&third, Existing::Replace).unwrap();
        assert_eq!(
            fingerprints(&files.load(now).unwrap()),
            (third.fingerprint_sha256(), None)
        );
    }

    #[test]
    fn every_cut_of_a_step_is_completed_or_undone_and_nothing_is_guessed() {
        let dir = tempfile::tempdir().unwrap();
        let files = FleetFiles::new(dir.path());
        let now = OffsetDateTime::now_utc();
        let (old, new) = (ca("old"), ca("new"));
        files.current().save(&old, Existing::Refuse).unwrap();
        files.begin(&new).unwrap();
        // A finish cut after the next key was removed (the certificate is left).
        files.current().save(&new, Existing::Replace).unwrap();
        fs::remove_file(&files.next().key).unwrap();
        assert_eq!(
            fingerprints(&files.load(now).unwrap()),
            (new.fingerprint_sha256(), None)
        );
        assert!(!files.next().exist());

        // A rollback's copy cut after the key: undone, the overlap goes on.
        let third = ca("third");
        files.begin(&third).unwrap();
        fs::copy(&files.next().key, &files.abandoned().key).unwrap();
        assert_eq!(
            fingerprints(&files.load(now).unwrap()).1,
            Some((FleetRotationPhase::Overlap, third.fingerprint_sha256()))
        );
        assert!(!files.abandoned().exist());
        // A rollback's removal cut after the next key: completed.
        files.roll_back(&third).unwrap();
        fs::copy(&files.abandoned().cert, &files.next().cert).unwrap();
        assert_eq!(
            fingerprints(&files.load(now).unwrap()).1,
            Some((FleetRotationPhase::RollingBack, third.fingerprint_sha256()))
        );
        assert!(!files.next().exist());
        // A drop cut after the key: completed.
        fs::remove_file(&files.abandoned().key).unwrap();
        assert_eq!(
            fingerprints(&files.load(now).unwrap()),
            (new.fingerprint_sha256(), None)
        );
        assert!(!files.abandoned().exist());

        // An unreadable fleet.pem beside a next CA is an error, never a finish.
        let fourth = ca("fourth");
        files.begin(&fourth).unwrap();
        fs::write(&files.current().cert, "not a certificate").unwrap();
        assert!(files.load(now).is_err());
        assert!(files.next().exist(), "the rotation is left as it was");
        assert_eq!(
            fs::read_to_string(&files.current().cert).unwrap(),
            "not a certificate"
        );
    }

    #[test]
    fn a_rollback_keeps_the_new_ca_trusted_until_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let files = FleetFiles::new(dir.path());
        let now = OffsetDateTime::now_utc();
        let (old, new) = (ca("old"), ca("new"));
        files.current().save(&old, Existing::Refuse).unwrap();
        files.begin(&new).unwrap();
        // A rollback cut between the copy and the removal.
        files.abandoned().save(&new, Existing::Replace).unwrap();
        assert_eq!(
            fingerprints(&files.load(now).unwrap()),
            (
                old.fingerprint_sha256(),
                Some((FleetRotationPhase::RollingBack, new.fingerprint_sha256()))
            )
        );
        assert!(!files.next().exist());
        files.drop_abandoned().unwrap();
        assert_eq!(
            fingerprints(&files.load(now).unwrap()),
            (old.fingerprint_sha256(), None)
        );
        // Two different CAs in both places: refused, nothing removed.
        files.begin(&new).unwrap();
        files
            .abandoned()
            .save(&ca("stray"), Existing::Replace)
            .unwrap();
        let error = files.load(now).unwrap_err().to_string();
        assert!(error.contains("fleet.abandoned.pem"), "{error}");
        assert!(files.next().exist() && files.abandoned().exist());
    }
}
