//! The host's local limits on what a manifest may make the agent do.
//!
//! **Invariant: no manifest can widen agent.toml.** Before a pass touches anything (reads a
//! managed file, signs, installs or restarts), the whole manifest is checked here: every path
//! it names is strictly under one of `allowed_paths` (lexically, and on disk under the `root`
//! prefix, where no symbolic link leads out of the allowed tree), every unit it restarts is a
//! `.service` matching `allowed_units` and is not calseg's own, every file's owner and group
//! match `allowed_owners` and `allowed_groups`, no mode has a
//! setuid/setgid/sticky or world-writable bit, and the CA bundle is PEM `CERTIFICATE` blocks
//! and nothing else. One violation refuses the whole pass: nothing of it is installed or
//! restarted, and the report names each refused field and value. A compromised server can at
//! worst change Calico identities, never take the host.
//!
//! # Layout
//! - [`accounts`]: the owners and groups managed files may be given to.
//! - [`paths`]: lexical normalization and the on-disk walk under the root prefix.
//! - [`units`]: unit names and the glob match of `allowed_units`.
//! - [`pem`]: the strict CA bundle parser.

mod accounts;
mod paths;
mod pem;
mod units;

pub use accounts::{
    DEFAULT_ALLOWED_GROUPS, DEFAULT_ALLOWED_OWNERS, check_account, check_account_pattern,
};
pub use paths::{check_on_disk, normalize};
pub use pem::check_ca_bundle;
pub use units::{check_unit, check_unit_pattern, glob_match};

use crate::install::Root;
use calseg_api::manifest::Manifest;
use std::fmt;
use std::path::{Path, PathBuf};

/// The directories written under when agent.toml does not say.
pub const DEFAULT_ALLOWED_PATHS: &[&str] = &["/etc/calico", "/etc/cni/net.d"];
/// The units restarted when agent.toml does not say.
pub const DEFAULT_ALLOWED_UNITS: &[&str] = &["calico-*.service"];
/// Mode bits no managed file may have: setuid, setgid, sticky, world-writable.
pub const FORBIDDEN_MODE_BITS: u32 = 0o7002;

/// What agent.toml allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Normalized absolute manifest paths (joined under `root` on disk); managed paths must be
    /// strictly below one of them.
    pub allowed_paths: Vec<PathBuf>,
    /// Globs (`*`, `?`) on the full unit name; only `.service` units, never calseg's own.
    pub allowed_units: Vec<String>,
    /// Globs on the user name managed files may be owned by.
    pub allowed_owners: Vec<String>,
    /// Globs on the group name managed files may belong to.
    pub allowed_groups: Vec<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            allowed_paths: DEFAULT_ALLOWED_PATHS.iter().map(PathBuf::from).collect(),
            allowed_units: owned(DEFAULT_ALLOWED_UNITS),
            allowed_owners: owned(DEFAULT_ALLOWED_OWNERS),
            allowed_groups: owned(DEFAULT_ALLOWED_GROUPS),
        }
    }
}

/// One refused manifest value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where in the manifest, e.g. `identities[calico-node].files.key_mode`.
    pub field: String,
    /// The refused value as the manifest gave it (modes in octal).
    pub value: String,
    pub reason: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refused by agent.toml limits: {} = {:?}: {}",
            self.field, self.value, self.reason
        )
    }
}

/// Checks a mode: no setuid, setgid, sticky or world-writable bit, nothing above 0o7777.
pub fn check_mode(mode: u32) -> Result<(), String> {
    if mode > 0o7777 {
        return Err("not a permission mode (above 0o7777)".into());
    }
    if mode & FORBIDDEN_MODE_BITS != 0 {
        return Err("setuid, setgid, sticky and world-writable bits are never set".into());
    }
    Ok(())
}

impl Limits {
    /// Checks a managed path lexically and on disk under `root`.
    pub fn check_path(&self, root: &Root, path: &str) -> Result<(), String> {
        let normal = normalize(path)?;
        let Some(allowed) = self.allowed_dir(&normal) else {
            let dirs: Vec<String> = self
                .allowed_paths
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            return Err(format!(
                "not strictly under allowed_paths [{}]",
                dirs.join(", ")
            ));
        };
        check_on_disk(root, allowed, &normal)
    }

    /// The allowed directory `path` (normalized) is strictly below.
    fn allowed_dir(&self, path: &Path) -> Option<&Path> {
        self.allowed_paths
            .iter()
            .map(PathBuf::as_path)
            .find(|dir| path.starts_with(dir) && path != *dir)
    }

    /// Every violation of the whole manifest; empty when it may be applied.
    pub fn check_manifest(&self, root: &Root, manifest: &Manifest) -> Vec<Violation> {
        let mut out = Vec::new();
        let mut refuse = |field: String, value: String, result: Result<(), String>| {
            if let Err(reason) = result {
                out.push(Violation {
                    field,
                    value,
                    reason,
                });
            }
        };
        refuse(
            "etcd.ca_bundle_pem".into(),
            excerpt(&manifest.etcd.ca_bundle_pem),
            check_ca_bundle(&manifest.etcd.ca_bundle_pem),
        );
        for id in &manifest.identities {
            let at = |field: &str| format!("identities[{}].{field}", id.component);
            let files = &id.files;
            let render = &id.render;
            let paths = [
                ("files.dir", Some(&files.dir)),
                ("files.ca", Some(&files.ca)),
                ("files.cert", Some(&files.cert)),
                ("files.key", Some(&files.key)),
                ("render.env_file", render.env_file.as_ref()),
                ("render.calicoctl_cfg", render.calicoctl_cfg.as_ref()),
                ("render.cni_conflist", render.cni_conflist.as_ref()),
            ];
            for (field, path) in paths {
                if let Some(path) = path {
                    refuse(at(field), path.clone(), self.check_path(root, path));
                }
            }
            refuse(
                at("files.owner"),
                files.owner.clone(),
                check_account(&self.allowed_owners, "allowed_owners", &files.owner),
            );
            refuse(
                at("files.group"),
                files.group.clone(),
                check_account(&self.allowed_groups, "allowed_groups", &files.group),
            );
            for (field, mode) in [
                ("files.key_mode", files.key_mode),
                ("files.cert_mode", files.cert_mode),
            ] {
                refuse(at(field), format!("{mode:#o}"), check_mode(mode));
            }
            for unit in &id.restart {
                refuse(at("restart"), unit.clone(), check_unit(self, unit));
            }
        }
        out
    }
}

fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|item| (*item).to_owned()).collect()
}

/// A bounded, printable excerpt of a long value for a report.
fn excerpt(text: &str) -> String {
    const MAX: usize = 80;
    let mut out: String = text.chars().take(MAX).collect();
    if text.chars().count() > MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests;
