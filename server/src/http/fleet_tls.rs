//! The API's TLS follows the fleet CA files: the CAs whose client certificates it accepts, and
//! its own certificate, re-issued from the fleet CA in force when calseg made it from another
//! one. Read at start, after each step of a fleet CA rotation, and whenever the files change
//! (a replica given the files of a step taken on another one).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::{Context, Result};
use calseg_control::fleet_rotation::{FleetCas, FleetFiles, Leaf, follow_server_leaf};
use calseg_control::state::Control;
use time::OffsetDateTime;

use super::tls::LiveTls;

/// What the files looked like when last read: each one's size and modification time.
type Seen = Vec<Option<(u64, SystemTime)>>;

/// The API's TLS and where it comes from.
#[derive(Debug)]
pub struct FleetTls {
    live: LiveTls,
    /// `None`: the CA directory is not known (tests): the CAs never change.
    files: Option<FleetFiles>,
    cert_file: PathBuf,
    key_file: PathBuf,
    seen: Mutex<Seen>,
}

impl FleetTls {
    /// Reads the fleet CA files of `ca_dir`, re-issues the server certificate if it must follow,
    /// and builds the TLS settings. Returns the CAs for the control plane too.
    pub fn start(
        ca_dir: &Path,
        cert_file: &Path,
        key_file: &Path,
        now: OffsetDateTime,
    ) -> Result<(Self, FleetCas)> {
        let files = FleetFiles::new(ca_dir);
        let seen = seen(&files);
        let cas = files
            .load(now)
            .with_context(|| format!("read the fleet CA in {}", ca_dir.display()))?;
        follow(&cas, cert_file, key_file, now)?;
        let live = LiveTls::new(
            &read(cert_file, "server certificate")?,
            &read(key_file, "server key")?,
            &cas.bundle_pem(),
        )?;
        let tls = Self {
            live,
            files: Some(files),
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            seen: Mutex::new(seen),
        };
        Ok((tls, cas))
    }

    /// The TLS settings the listener serves with.
    pub fn live(&self) -> &LiveTls {
        &self.live
    }

    /// Reads the files again when they changed (`force`: in any case), puts the CAs they hold
    /// in force in `control` and in the TLS settings. Whether anything was reloaded.
    pub fn sync(&self, control: &Control, force: bool, now: OffsetDateTime) -> Result<bool> {
        let Some(files) = &self.files else {
            return Ok(false);
        };
        let mut last = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let current = seen(files);
        if !force && *last == current {
            return Ok(false);
        }
        let cas = files.load(now).context("read the fleet CA files")?;
        let before = control.fleet_cas().fingerprints();
        follow(&cas, &self.cert_file, &self.key_file, now)?;
        self.live.replace(
            &read(&self.cert_file, "server certificate")?,
            &read(&self.key_file, "server key")?,
            &cas.bundle_pem(),
        )?;
        if before != cas.fingerprints() {
            tracing::info!(
                fleet_ca = %cas.current.fingerprint_sha256(),
                rotation = ?cas.phase(),
                "fleet CAs reloaded"
            );
        }
        control.set_fleet_cas(cas);
        // What the files are now (a load may have completed a cut step).
        *last = seen(files);
        Ok(true)
    }
}

/// Re-issues the server certificate from the CA in force when calseg made it from another.
fn follow(cas: &FleetCas, cert_file: &Path, key_file: &Path, now: OffsetDateTime) -> Result<()> {
    let lifetime = crate::init::SERVER_CERT_LIFETIME;
    match follow_server_leaf(&cas.current, cert_file, key_file, lifetime, now)
        .with_context(|| format!("re-issue the server certificate {}", cert_file.display()))?
    {
        Leaf::Reissued { serial_hex } => tracing::warn!(
            serial = %serial_hex,
            cert = %cert_file.display(),
            "server certificate re-issued from the fleet CA in force"
        ),
        Leaf::Current => {}
        Leaf::NotCalsegs => tracing::debug!(
            cert = %cert_file.display(),
            "the server certificate was not made by calseg: it does not follow the fleet CA"
        ),
    }
    Ok(())
}

fn seen(files: &FleetFiles) -> Seen {
    files
        .paths()
        .iter()
        .map(|path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.len(), meta.modified().ok()?))
        })
        .collect()
}

fn read(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("read the {what} {}", path.display()))
}
