//! `/etc/calseg/server.toml`: where the server finds its policy, state and etcd credentials.
//! Command-line flags override single values; missing values get a clear error naming the key.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The default location of the server's configuration.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/calseg/server.toml";

/// server.toml as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The segmentation policy file.
    pub policy: Option<PathBuf>,
    /// Directory of the server's state (embedded store, CA keys).
    pub state_dir: Option<PathBuf>,
    #[serde(default)]
    pub etcd: EtcdConfig,
}

/// How the server itself reaches etcd (as a user holding etcd's root role).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// Defaults to the policy's `[etcd] endpoints`.
    pub endpoints: Option<Vec<String>>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Work on an etcd whose auth is disabled (every trusted certificate has full access).
    #[serde(default)]
    pub allow_auth_disabled: bool,
    /// etcd requests in flight at once while reconciling.
    pub parallelism: Option<usize>,
}

impl ServerConfig {
    /// Reads `path`; a missing file at the default location is an empty configuration.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let (path, explicit) = match path {
            Some(path) => (path.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Self::default());
            }
            Err(error) => {
                return Err(error).with_context(|| format!("read {}", path.display()));
            }
        };
        match toml::from_str(&text) {
            Ok(config) => Ok(config),
            Err(error) => {
                let place = error
                    .span()
                    .map(|span| {
                        let (line, column) = line_column(&text, span.start);
                        format!(":{line}:{column}")
                    })
                    .unwrap_or_default();
                bail!("{}{place}: {}", path.display(), error.message())
            }
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_reported_with_their_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, "policy = \"/p\"\n[etcd]\ncert = \"/x\"\n").unwrap();
        let error = ServerConfig::load(Some(&path)).unwrap_err().to_string();
        assert!(error.contains("server.toml:3:1"), "{error}");
        assert!(error.contains("unknown field `cert`"), "{error}");
    }

    #[test]
    fn a_missing_default_file_is_empty_but_a_missing_named_one_is_an_error() {
        assert!(ServerConfig::load(Some(Path::new("/nonexistent/server.toml"))).is_err());
    }
}
