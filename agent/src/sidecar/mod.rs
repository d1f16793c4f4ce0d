//! The side car: calseg-agent as a container next to calico-node in Calico's hosted Kubernetes
//! manifest (`calico-etcd.yaml`), per node per component. Files only: no systemd, no D-Bus.
//!
//! - The node name comes from [`NODE_ENV`], which the pod fills from the downward API
//!   (`spec.nodeName`); the fleet identity lives in the state directory (a hostPath), so a
//!   restarted pod does not enroll again.
//! - Of the node's manifest, only the identity of one component is used ([`Target::rewrite`]):
//!   its files go to the output directory (an emptyDir shared with calico-node, mounted at
//!   `/calico-secrets`) under Calico's names `etcd-ca`, `etcd-cert`, `etcd-key`, with modes
//!   0644/0644/0600 and the side car's own owner. The manifest's paths, render targets and
//!   units are dropped, so a manifest can never make the side car write outside its output
//!   directory or restart anything.
//! - The three names are links into one generation directory switched by one rename
//!   ([`crate::install::install_set`]), as Kubernetes' own atomic writer does with `..data`.

pub mod run;
pub mod signal;

#[cfg(test)]
mod tests;

use crate::install::Root;
use crate::limits::Limits;
use calseg_api::manifest::{IdentityFiles, Manifest, Render};
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The environment variable the node name comes from.
pub const NODE_ENV: &str = "CALSEG_NODE_NAME";
/// The downward-API snippet that fills [`NODE_ENV`], for error messages and the README.
pub const NODE_ENV_SNIPPET: &str =
    "env: [{name: CALSEG_NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]";
/// Where calico-node's hosted manifest reads its etcd files.
pub const DEFAULT_OUTPUT_DIR: &str = "/calico-secrets";
/// The component whose identity the side car installs unless told otherwise.
pub const DEFAULT_COMPONENT: &str = "calico-node";
/// Calico's names (the keys of the `calico-etcd-secrets` Secret).
pub const CA_NAME: &str = "etcd-ca";
pub const CERT_NAME: &str = "etcd-cert";
pub const KEY_NAME: &str = "etcd-key";
/// Mode of `etcd-key`.
pub const KEY_MODE: u32 = 0o600;
/// Mode of `etcd-ca` and `etcd-cert`.
pub const CERT_MODE: u32 = 0o644;

/// Why the side car cannot start; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error(
        "{NODE_ENV} is {state}: the side car takes its node name from it; set it from the downward API in the container spec: {NODE_ENV_SNIPPET}"
    )]
    NodeMissing { state: &'static str },
    #[error("{NODE_ENV}={value:?}: {reason}")]
    NodeInvalid { value: String, reason: String },
    #[error(
        "output directory {}: {reason}; mount an emptyDir there, shared with calico-node",
        dir.display()
    )]
    OutputBad { dir: PathBuf, reason: String },
    #[error(
        "output directory {} is not writable ({source}); nothing was written: mount it read-write (an emptyDir) in the side car and run the side car as its owner",
        dir.display()
    )]
    OutputNotWritable { dir: PathBuf, source: io::Error },
    #[error(
        "the side car's uid {uid} / gid {gid} has no name in this container's /etc/passwd or /etc/group; add them to the image"
    )]
    NoAccount { uid: u32, gid: u32 },
}

/// The node name from [`NODE_ENV`]'s value.
pub fn node_from_env(value: Option<OsString>) -> Result<String, SidecarError> {
    let value = value.ok_or(SidecarError::NodeMissing { state: "not set" })?;
    let value = value.into_string().map_err(|v| SidecarError::NodeInvalid {
        value: v.to_string_lossy().into_owned(),
        reason: "not UTF-8".into(),
    })?;
    if value.trim().is_empty() {
        return Err(SidecarError::NodeMissing { state: "empty" });
    }
    crate::config::check_node(&value).map_err(|reason| SidecarError::NodeInvalid {
        value: value.clone(),
        reason,
    })
}

/// Where and as whom the side car installs one component's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The output directory on disk (`/calico-secrets`).
    pub output_dir: PathBuf,
    /// The component whose identity is installed (`calico-node`).
    pub component: String,
    /// The output directory's parent: the install root.
    pub root: Root,
    /// The output directory as a path under `root`: `/<name>`.
    dir: String,
    owner: String,
    group: String,
    /// The one unit the rewritten manifest restarts (the calico-node container's process, see
    /// [`signal`]); `None` restarts nothing.
    restart: Option<String>,
}

impl Target {
    /// The target for `component` in `output_dir`, owned by this process's user and group.
    pub fn new(output_dir: &Path, component: &str) -> Result<Self, SidecarError> {
        let uid = nix::unistd::getuid();
        let gid = nix::unistd::getgid();
        let no_account = || SidecarError::NoAccount {
            uid: uid.as_raw(),
            gid: gid.as_raw(),
        };
        let owner = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .ok_or_else(no_account)?
            .name;
        let group = nix::unistd::Group::from_gid(gid)
            .ok()
            .flatten()
            .ok_or_else(no_account)?
            .name;
        Self::with_owner(output_dir, component, owner, group)
    }

    fn with_owner(
        output_dir: &Path,
        component: &str,
        owner: String,
        group: String,
    ) -> Result<Self, SidecarError> {
        let bad = |reason: &str| SidecarError::OutputBad {
            dir: output_dir.to_path_buf(),
            reason: reason.into(),
        };
        if !output_dir.is_absolute() {
            return Err(bad("not an absolute path"));
        }
        let name = output_dir
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.starts_with('.'))
            .ok_or_else(|| bad("needs a final UTF-8 name not starting with `.`"))?;
        let parent = output_dir.parent().ok_or_else(|| bad("is `/`"))?;
        if output_dir
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(bad("contains `..`"));
        }
        Ok(Self {
            output_dir: output_dir.to_path_buf(),
            component: component.to_owned(),
            root: Root::new(parent),
            dir: format!("/{name}"),
            owner,
            group,
            restart: None,
        })
    }

    /// The same target, restarting `unit` (only) after a new identity is installed.
    pub fn restarting(mut self, unit: Option<String>) -> Self {
        self.restart = unit;
        self
    }

    /// Checks the output directory exists, is a real directory and takes a new file (created
    /// and removed again), before anything else is done.
    pub fn check_writable(&self) -> Result<(), SidecarError> {
        let bad = |reason: String| SidecarError::OutputBad {
            dir: self.output_dir.clone(),
            reason,
        };
        match std::fs::symlink_metadata(&self.output_dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(bad("does not exist".into()));
            }
            Err(e) => return Err(bad(format!("cannot stat: {e}"))),
            Ok(meta) if !meta.is_dir() => {
                return Err(bad("is not a directory (a symlink is refused too)".into()));
            }
            Ok(_) => {}
        }
        let probe = self
            .output_dir
            .join(format!(".calseg-probe.{}", std::process::id()));
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&probe);
        match created {
            Ok(_) => {
                std::fs::remove_file(&probe).map_err(|source| SidecarError::OutputNotWritable {
                    dir: self.output_dir.clone(),
                    source,
                })
            }
            Err(source) => Err(SidecarError::OutputNotWritable {
                dir: self.output_dir.clone(),
                source,
            }),
        }
    }

    /// agent.toml's limits for the side car: its own account, and paths under the install
    /// root (the output directory's parent). What confines the side car to its output
    /// directory is [`Target::rewrite`]: no path of the server's manifest reaches the installer.
    pub fn limits(&self) -> Limits {
        Limits {
            allowed_paths: vec![PathBuf::from("/")],
            allowed_owners: vec![self.owner.clone()],
            allowed_groups: vec![self.group.clone()],
            allowed_units: self.restart.iter().cloned().collect(),
        }
    }

    /// The path of one of Calico's names on disk.
    pub fn file(&self, name: &str) -> PathBuf {
        self.output_dir.join(name)
    }

    /// Whether all three files are there (through their links) and not empty.
    pub fn files_present(&self) -> bool {
        [CA_NAME, CERT_NAME, KEY_NAME].iter().all(|name| {
            std::fs::metadata(self.file(name)).is_ok_and(|m| m.is_file() && m.len() > 0)
        })
    }

    /// The manifest the side car runs: only this component's identity, its files at Calico's
    /// names in the output directory with the side car's owner and fixed modes, nothing
    /// rendered, no unit but the side car's own (the manifest's units are dropped). Without an identity for the component, no identity at all.
    pub fn rewrite(&self, mut manifest: Manifest) -> Manifest {
        manifest
            .identities
            .retain(|id| id.component == self.component);
        for id in &mut manifest.identities {
            id.files = IdentityFiles {
                dir: self.dir.clone(),
                ca: format!("{}/{CA_NAME}", self.dir),
                cert: format!("{}/{CERT_NAME}", self.dir),
                key: format!("{}/{KEY_NAME}", self.dir),
                owner: self.owner.clone(),
                group: self.group.clone(),
                key_mode: KEY_MODE,
                cert_mode: CERT_MODE,
            };
            id.render = Render::default();
            id.restart = self.restart.iter().cloned().collect();
        }
        manifest
    }
}
