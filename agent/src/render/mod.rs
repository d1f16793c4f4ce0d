//! Renders the Calico config files that name a component's etcd endpoints and certificate
//! files: the systemd `EnvironmentFile` (`/etc/calico/calico.env`), calicoctl's
//! `/etc/calico/calicoctl.cfg`, and the `etcd_*` fields of a CNI conflist.
//!
//! Pure functions from the current text (if any) and [`EtcdFiles`] to the new text: they read
//! and write nothing, so installing the result is the caller's job (`install::install_file`).
//! Rendering is idempotent: rendering its own output again yields the same bytes, so an
//! unchanged identity never rewrites a file or restarts a unit.
//!
//! [`EtcdFiles`]: crate::render::EtcdFiles

mod calicoctl;
mod cni;
mod env;

pub use calicoctl::calicoctl_cfg;
pub use cni::cni_conflist;
pub use env::{EnvFile, env_file};

use std::path::PathBuf;
use thiserror::Error;

/// Where a component reaches etcd and which files hold its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdFiles {
    /// `https://host:2379` URLs; rendered comma-joined, as Calico expects.
    pub endpoints: Vec<String>,
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl EtcdFiles {
    /// Checks the settings can be rendered faithfully into every format: at least one
    /// endpoint, no commas or whitespace inside an endpoint (the list is comma-joined), and
    /// absolute UTF-8 paths without control characters.
    pub fn validate(&self) -> Result<(), RenderError> {
        if self.endpoints.is_empty() {
            return Err(RenderError::Invalid {
                field: "endpoints",
                reason: "no etcd endpoints given; list at least one https:// URL".into(),
            });
        }
        for endpoint in &self.endpoints {
            if endpoint.is_empty() || endpoint.contains(|c: char| c == ',' || c.is_whitespace()) {
                return Err(RenderError::Invalid {
                    field: "endpoints",
                    reason: format!("`{endpoint}` is not one URL (empty, or has a comma or space)"),
                });
            }
        }
        let files = [
            ("ca_file", &self.ca_file),
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
        ];
        for (field, path) in files {
            let ok =
                path.is_absolute() && path.to_str().is_some_and(|s| !s.contains(char::is_control));
            if !ok {
                let reason = format!("{} must be an absolute UTF-8 path", path.display());
                return Err(RenderError::Invalid { field, reason });
            }
        }
        Ok(())
    }

    pub(crate) fn endpoints_joined(&self) -> String {
        self.endpoints.join(",")
    }
}

/// Why a config file could not be rendered.
#[derive(Debug, Error)]
pub enum RenderError {
    /// The settings cannot be written safely.
    #[error("etcd settings field {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The existing CNI config is not valid JSON.
    #[error(
        "existing CNI config is not valid JSON at line {line}, column {column}: {message}; \
         fix or remove the file, then re-run the agent"
    )]
    InvalidJson {
        line: usize,
        column: usize,
        message: String,
    },
    /// The existing CNI config has no plugin of type `calico` to configure.
    #[error(
        "existing CNI config has no plugin with \"type\": \"calico\" {where_}; \
         install Calico's CNI config first or point the policy at the right file"
    )]
    NoCalicoPlugin { where_: &'static str },
}

#[cfg(test)]
mod testutil;
