//! `calseg-server admin issue`: a new short-lived administrator certificate, signed on the
//! server host with the fleet CA key (so only root there can run it), for the admin commands
//! here or for an operator elsewhere.

use crate::config::ServerConfig;
use crate::pki::{CaKind, Existing, admin, write_public_file, write_secret_file};
use anyhow::{Context, Result, anyhow};
use calseg_control::fleet_rotation::FleetFiles;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// `admin issue`: writes `admin.pem` and `admin-key.pem` (mode 0600 from the first byte) into
/// `out`, or replaces the files server.toml's `[admin]` names when `out` is `None`.
pub fn issue(
    config: Option<&Path>,
    name: &str,
    lifetime: Duration,
    out: Option<&Path>,
) -> Result<ExitCode> {
    let config = ServerConfig::load(config)?;
    let now = time::OffsetDateTime::now_utc();
    // During a fleet CA rotation, from the new CA: certificates of the old one stop working at
    // its `--finish`.
    let files = FleetFiles::new(&config.ca_dir());
    let signer = match files.next() {
        next if next.exist() => next,
        _ => files.current(),
    };
    let fleet = signer
        .load(CaKind::Fleet, now)
        .context("load the fleet CA (run this on the server host, as the user that owns it)")?;
    let made = admin::issue(&fleet, name, lifetime, now)?;
    let (cert_path, key_path, existing) = match out {
        Some(dir) => {
            create_private_dir(dir)?;
            (
                dir.join("admin.pem"),
                dir.join("admin-key.pem"),
                Existing::Refuse,
            )
        }
        None => {
            let configured = |path: &Option<PathBuf>, key: &str| {
                path.clone().ok_or_else(|| {
                    anyhow!("no `{key}` under [admin] in server.toml: give --out DIR")
                })
            };
            (
                configured(&config.admin.cert_file, "cert_file")?,
                configured(&config.admin.key_file, "key_file")?,
                Existing::Replace,
            )
        }
    };
    // The key first: a certificate without its key is useless, a key alone is harmless.
    write_secret_file(&key_path, made.key_pem.as_bytes(), existing)?;
    write_public_file(&cert_path, made.cert.cert_pem.as_bytes(), 0o644, existing)?;
    eprintln!(
        "{}: serial {}, valid until {}; wrote {} and {}",
        made.cert.common_name,
        made.cert.serial_hex,
        calseg_api::when::rfc3339(&made.cert.not_after),
        cert_path.display(),
        key_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("create {}", dir.display()))
}
