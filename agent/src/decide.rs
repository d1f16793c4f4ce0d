//! Deciding, per identity, whether to issue a new certificate: pure functions of the manifest,
//! what is installed, what is on disk and the time. No clock, no I/O.

use crate::install::sha256_hex;
use crate::state::InstalledIdentity;
use calseg_api::manifest::{Identity, Manifest};
use serde::Serialize;
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// Largest renewal jitter, as a fraction of the certificate's lifetime.
pub const RENEW_JITTER_FRACTION: f64 = 0.1;

/// Why an identity gets a new key and certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Reason {
    /// Nothing installed yet (or the files on disk are gone or were replaced).
    Missing,
    /// The policy changed something the installed identity was made with.
    PolicyChanged { fields: Vec<&'static str> },
    /// The certificate reached its renewal time.
    Renewal {
        #[serde(with = "time::serde::rfc3339")]
        renew_at: OffsetDateTime,
    },
    /// An operator asked for it now (`calseg-agent renew`).
    Forced,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => f.write_str("missing"),
            Self::PolicyChanged { fields } => write!(f, "policy changed: {}", fields.join(", ")),
            Self::Renewal { renew_at } => write!(
                f,
                "due for renewal since {}",
                calseg_api::when::rfc3339(renew_at)
            ),
            Self::Forced => f.write_str("renewal forced (calseg-agent renew)"),
        }
    }
}

/// What to do with one identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Keep the installed certificate until `renew_at`.
    Keep {
        #[serde(with = "time::serde::rfc3339")]
        renew_at: OffsetDateTime,
    },
    /// Make a new key, have it signed, verify and install it.
    Issue(Reason),
}

/// Which certificates a pass renews whether or not they are due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Renew {
    /// Only those due (the daemon and `once`).
    #[default]
    AsDue,
    /// Every identity of the manifest (`calseg-agent renew`).
    All,
    /// This component's identity (`calseg-agent renew --component C`).
    Component(String),
}

/// Turns the kept certificates `renew` names into forced renewals (new key, CSR, install and
/// restart, as any renewal). `Err` names the components when `renew` names one the manifest
/// does not have.
pub fn force(decisions: &mut [Decision], renew: &Renew) -> Result<(), String> {
    if let Renew::Component(component) = renew
        && !decisions.iter().any(|d| &d.component == component)
    {
        let known: Vec<&str> = decisions.iter().map(|d| d.component.as_str()).collect();
        return Err(format!(
            "--component {component:?}: this node's manifest has no such identity; it has: {}",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ));
    }
    for d in decisions.iter_mut() {
        let named = match renew {
            Renew::AsDue => false,
            Renew::All => true,
            Renew::Component(component) => &d.component == component,
        };
        if named && matches!(d.action, Action::Keep { .. }) {
            d.action = Action::Issue(Reason::Forced);
        }
    }
    Ok(())
}

/// The decision for one identity of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub component: String,
    #[serde(flatten)]
    pub action: Action,
}

/// When to renew a certificate valid from `not_before` to `not_after`: after `fraction` of
/// its lifetime plus `jitter`, never later than `not_after`.
pub fn renew_at(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    fraction: f64,
    jitter: time::Duration,
) -> OffsetDateTime {
    let lifetime = not_after - not_before;
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        1.0
    };
    let at = not_before + lifetime * fraction + jitter.max(time::Duration::ZERO);
    at.min(not_after)
}

/// A number in `[0, 1)` fixed by `seed`, so each node (and identity) gets its own stable
/// offset and a fleet does not act in step.
pub fn jitter_fraction(seed: &str) -> f64 {
    let hex = sha256_hex(seed.as_bytes());
    let head = u32::from_str_radix(hex.get(..8).unwrap_or("0"), 16).unwrap_or(0);
    f64::from(head) / (f64::from(u32::MAX) + 1.0)
}

/// The renewal jitter of one certificate: up to [`RENEW_JITTER_FRACTION`] of its lifetime,
/// fixed by node, component and serial.
pub fn renewal_jitter(installed: &InstalledIdentity, node: &str) -> time::Duration {
    let lifetime = installed.not_after - installed.not_before;
    let seed = format!("{node}/{}/{}", installed.component, installed.serial);
    lifetime * (RENEW_JITTER_FRACTION * jitter_fraction(&seed))
}

/// The fields of `identity` (and the manifest's etcd target) that differ from what is
/// installed.
pub fn policy_changes(
    manifest: &Manifest,
    identity: &Identity,
    installed: &InstalledIdentity,
) -> Vec<&'static str> {
    let (want, have) = (&identity.files, &installed.files);
    let checks = [
        ("etcd_user", identity.etcd_user != installed.etcd_user),
        (
            "files",
            (&want.dir, &want.ca, &want.cert, &want.key)
                != (&have.dir, &have.ca, &have.cert, &have.key),
        ),
        (
            "owner",
            (&want.owner, &want.group) != (&have.owner, &have.group),
        ),
        (
            "modes",
            (want.key_mode, want.cert_mode) != (have.key_mode, have.cert_mode),
        ),
        ("endpoints", manifest.etcd.endpoints != installed.endpoints),
        (
            "ca_bundle",
            sha256_hex(manifest.etcd.ca_bundle_pem.as_bytes()) != installed.ca_sha256,
        ),
        // During a CA rotation: the CA the certificate must come from. A certificate whose
        // issuer was never recorded (an older server signed it) came from the CA in force
        // before the rotation, so it is re-issued too.
        (
            "issuer",
            identity
                .issuer
                .as_ref()
                .is_some_and(|want| installed.issuer.as_ref() != Some(want)),
        ),
    ];
    checks
        .iter()
        .filter(|(_, differs)| *differs)
        .map(|(name, _)| *name)
        .collect()
}

/// Decides every identity of `manifest`. `on_disk` holds, by component, the serial of the
/// certificate a reader sees at the identity's cert path now (`None` if none).
pub fn decide(
    manifest: &Manifest,
    installed: &BTreeMap<String, InstalledIdentity>,
    on_disk: &BTreeMap<String, Option<String>>,
    now: OffsetDateTime,
) -> Vec<Decision> {
    manifest
        .identities
        .iter()
        .map(|identity| {
            let action = decide_one(
                manifest,
                identity,
                installed.get(&identity.component),
                on_disk,
                now,
            );
            Decision {
                component: identity.component.clone(),
                action,
            }
        })
        .collect()
}

fn decide_one(
    manifest: &Manifest,
    identity: &Identity,
    installed: Option<&InstalledIdentity>,
    on_disk: &BTreeMap<String, Option<String>>,
    now: OffsetDateTime,
) -> Action {
    let Some(installed) = installed else {
        return Action::Issue(Reason::Missing);
    };
    let disk_serial = on_disk.get(&identity.component).cloned().flatten();
    if disk_serial.as_deref() != Some(installed.serial.as_str()) {
        return Action::Issue(Reason::Missing);
    }
    let fields = policy_changes(manifest, identity, installed);
    if !fields.is_empty() {
        return Action::Issue(Reason::PolicyChanged { fields });
    }
    let at = renew_at(
        installed.not_before,
        installed.not_after,
        manifest.renew_after,
        renewal_jitter(installed, &manifest.node),
    );
    if now >= at {
        Action::Issue(Reason::Renewal { renew_at: at })
    } else {
        Action::Keep { renew_at: at }
    }
}

#[cfg(test)]
mod tests;
