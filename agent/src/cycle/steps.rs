//! The pieces of a pass: the decision per identity, issuing one identity, the file specs of an
//! identity, rendering its Calico config files, and the per-identity bookkeeping the report is
//! built from. The decision and the specs are shared with the dry run ([`crate::plan`]).

use super::{CycleContext, Installer, Probe, Signer, Verifier};
use crate::decide::{Action, Decision, Renew, decide, force};
use crate::install::{FileSpec, InstallReceipt, sha256_hex};
use crate::keys::{self, CertInfo, PrivateKeyPem};
use crate::render::{self, EtcdFiles};
use crate::state::InstalledIdentity;
use calseg_api::certificates::SignRequest;
use calseg_api::manifest::{Identity, Manifest};
use calseg_api::report::IdentityStatus;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// A new certificate, signed and verified, not installed yet.
#[derive(Debug)]
pub(super) struct Issued {
    pub key: PrivateKeyPem,
    pub cert_pem: String,
    pub info: CertInfo,
    /// The signing CA's fingerprint, as the server said (older servers say nothing).
    pub issuer: Option<String>,
}

/// One identity's progress through a pass.
#[derive(Debug)]
pub(super) struct Work<'m> {
    pub identity: &'m Identity,
    pub action: Action,
    /// What was installed before this pass.
    pub record: Option<InstalledIdentity>,
    pub issued: Option<Issued>,
    pub receipts: Vec<InstallReceipt>,
    pub status: IdentityStatus,
    pub errors: Vec<String>,
}

impl Work<'_> {
    pub fn fail(&mut self, status: IdentityStatus, error: String) {
        tracing::warn!(component = %self.identity.component, %error, "{status}");
        self.status = status;
        self.errors
            .push(format!("{}: {error}", self.identity.component));
    }

    pub fn changed(&self) -> bool {
        self.receipts.iter().any(InstallReceipt::changed)
    }

    /// Whether this identity's files should be on disk and rendered this pass.
    pub fn has_identity(&self) -> bool {
        self.issued.is_some() || matches!(self.action, Action::Keep { .. })
    }

    /// The record describing what is installed once this pass keeps its files.
    pub fn new_record(&self, manifest: &Manifest) -> Option<InstalledIdentity> {
        let issued = self.issued.as_ref()?;
        Some(InstalledIdentity {
            component: self.identity.component.clone(),
            etcd_user: self.identity.etcd_user.clone(),
            files: self.identity.files.clone(),
            render: self.identity.render.clone(),
            endpoints: manifest.etcd.endpoints.clone(),
            ca_sha256: sha256_hex(manifest.etcd.ca_bundle_pem.as_bytes()),
            serial: issued.info.serial.clone(),
            not_before: issued.info.not_before,
            not_after: issued.info.not_after,
            issuer: issued.issuer.clone(),
        })
    }
}

/// Makes a key, has its CSR signed, checks the certificate is the one asked for, and tries it
/// against etcd. Nothing is written.
pub(super) async fn issue<S: Signer, V: Verifier>(
    ctx: &CycleContext,
    manifest: &Manifest,
    identity: &Identity,
    signer: &mut S,
    verifier: &mut V,
) -> Result<Issued, (IdentityStatus, String)> {
    let err = |e: String| (IdentityStatus::Error, e);
    let new =
        keys::generate(ctx.key_algorithm, &identity.etcd_user).map_err(|e| err(e.to_string()))?;
    let request = SignRequest {
        component: identity.component.clone(),
        csr_pem: new.csr_pem.clone(),
    };
    let signed = signer
        .sign(&request)
        .await
        .map_err(|e| err(format!("signing failed: {e}")))?;
    let info =
        keys::cert_info(&signed.cert_pem).map_err(|e| err(format!("signed certificate: {e}")))?;
    if info.public_key_der != new.public_key_der {
        return Err(err("the server signed a certificate for another key".into()));
    }
    if info.common_name != identity.etcd_user {
        let why = format!(
            "signed certificate has CN {:?}, expected {:?}",
            info.common_name, identity.etcd_user
        );
        return Err(err(why));
    }
    let probe = Probe {
        etcd_user: identity.etcd_user.clone(),
        endpoints: manifest.etcd.endpoints.clone(),
        ca_pem: manifest.etcd.ca_bundle_pem.clone(),
        cert_pem: signed.cert_pem.clone(),
        key: new.key.clone(),
        probe_key: identity.probe_key.clone(),
    };
    verifier.verify(&probe).await.map_err(|e| {
        (
            IdentityStatus::VerifyFailed,
            format!(
                "etcd refused the new certificate (serial {}): {e}; old files kept",
                info.serial
            ),
        )
    })?;
    Ok(Issued {
        key: new.key,
        cert_pem: signed.cert_pem,
        info,
        issuer: signed.issuer,
    })
}

/// What to do with each identity of `manifest`: the certificate on disk (by serial) weighed
/// against the `installed` records as of `now`, then the renewals `renew` forces. The one
/// decision of both the pass and the dry run (`calseg-agent plan`), so they cannot drift.
pub(crate) fn decisions<I: Installer>(
    manifest: &Manifest,
    installed: &BTreeMap<String, InstalledIdentity>,
    installer: &I,
    now: OffsetDateTime,
    renew: &Renew,
) -> Result<Vec<Decision>, String> {
    let on_disk: BTreeMap<String, Option<String>> = manifest
        .identities
        .iter()
        .map(|id| {
            let serial = installer
                .read(Path::new(&id.files.cert))
                .and_then(|text| keys::cert_info(&text).ok())
                .map(|info| info.serial);
            (id.component.clone(), serial)
        })
        .collect();
    let mut decisions = decide(manifest, installed, &on_disk, now);
    force(&mut decisions, renew)?;
    Ok(decisions)
}

/// The ca/cert/key files of an identity with a new certificate and key (the dry run passes
/// empty contents: they exist only once signed). Paths, owners and modes come from here alone.
pub(crate) fn identity_specs(
    manifest: &Manifest,
    identity: &Identity,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Vec<FileSpec> {
    let files = &identity.files;
    let spec = |path: &str, contents: &[u8], mode: u32| FileSpec {
        path: PathBuf::from(path),
        contents: contents.to_vec(),
        owner: files.owner.clone(),
        group: files.group.clone(),
        mode,
    };
    vec![
        spec(
            &files.ca,
            manifest.etcd.ca_bundle_pem.as_bytes(),
            files.cert_mode,
        ),
        spec(&files.cert, cert_pem, files.cert_mode),
        spec(&files.key, key_pem, files.key_mode),
    ]
}

/// The rendered Calico config files of an identity, as specs. A missing CNI conflist (or
/// one calseg cannot edit) is an error for this identity only.
pub(crate) fn render_specs<I: Installer>(
    manifest: &Manifest,
    identity: &Identity,
    installer: &I,
) -> (Vec<FileSpec>, Vec<String>) {
    let files = &identity.files;
    let settings = EtcdFiles {
        endpoints: manifest.etcd.endpoints.clone(),
        ca_file: files.ca.clone().into(),
        cert_file: files.cert.clone().into(),
        key_file: files.key.clone().into(),
    };
    let (mut specs, mut errors) = (Vec::new(), Vec::new());
    if let Err(e) = settings.validate() {
        errors.push(e.to_string());
        return (specs, errors);
    }
    let spec = |path: &str, text: String| {
        let (mode, owner, group) = installer.attributes(Path::new(path)).unwrap_or((
            0o644,
            files.owner.clone(),
            files.group.clone(),
        ));
        FileSpec {
            path: path.into(),
            contents: text.into_bytes(),
            owner,
            group,
            mode,
        }
    };
    let render = &identity.render;
    if let Some(path) = &render.env_file {
        let existing = installer.read(Path::new(path));
        let env = render::env_file(existing.as_deref(), &settings);
        for warning in &env.warnings {
            tracing::warn!(file = %path, "{warning}");
        }
        specs.push(spec(path, env.text));
    }
    if let Some(path) = &render.calicoctl_cfg {
        specs.push(spec(path, render::calicoctl_cfg(&settings)));
    }
    if let Some(path) = &render.cni_conflist {
        match installer.read(Path::new(path)) {
            None => errors.push(format!(
                "CNI config {path} does not exist; install Calico's CNI config first (calseg only sets its etcd_* fields)"
            )),
            Some(existing) => match render::cni_conflist(&existing, &settings) {
                Ok(text) => specs.push(spec(path, text)),
                Err(e) => errors.push(format!("{path}: {e}")),
            },
        }
    }
    (specs, errors)
}
