//! The agent's configuration, `/etc/calseg/agent.toml`, in two stages: [`RawConfig`] is the
//! TOML as written (unknown keys refused, every value keeps its position), [`Settings`] is
//! what the agent runs with (defaults filled in, every value checked). Every error names the
//! file, line, column and field.

mod servers;

/// Durations in agent.toml and on the command line: the one grammar of both binaries.
pub use calseg_api::duration::parse as parse_duration;
pub use servers::check_servers;

use crate::keys::KeyAlgorithm;
use crate::limits::{self, Limits};
use serde::Deserialize;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Where the agent looks for its configuration unless told otherwise.
pub const DEFAULT_PATH: &str = "/etc/calseg/agent.toml";
/// Where the agent keeps its fleet credentials and cycle records unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/calseg/agent";

/// The file as written. Every field is optional; [`Settings::from_raw`] fills defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    server: Option<Spanned<String>>,
    servers: Option<Spanned<Vec<Spanned<String>>>>,
    node: Option<Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    root: Option<Spanned<String>>,
    interval: Option<Spanned<String>>,
    jitter: Option<Spanned<String>>,
    restart_timeout: Option<Spanned<String>>,
    lease_wait: Option<Spanned<String>>,
    key_algorithm: Option<Spanned<String>>,
    systemd_bus: Option<Spanned<String>>,
    long_poll: Option<Spanned<bool>>,
    allowed_paths: Option<Spanned<Vec<Spanned<String>>>>,
    allowed_units: Option<Spanned<Vec<Spanned<String>>>>,
    allowed_owners: Option<Spanned<Vec<Spanned<String>>>>,
    allowed_groups: Option<Spanned<Vec<Spanned<String>>>>,
    metrics: Option<RawMetrics>,
}

/// `[metrics]`: the node_exporter textfile.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    textfile_dir: Option<Spanned<String>>,
}

/// What the agent runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `https://` URLs of calseg-server's replicas, tried in this order when one fails; empty
    /// means "the ones saved at enrollment". `server = "..."` is a list of one.
    pub servers: Vec<String>,
    /// This host's node name: the fleet certificate's CN and the policy's host name.
    pub node: String,
    /// Fleet credentials, the last manifest, install journal and cycle records.
    pub state_dir: PathBuf,
    /// Prefix every manifest path is installed under (`/` in production).
    pub root: PathBuf,
    /// Time between cycles.
    pub interval: Duration,
    /// Largest per-node delay added to each interval, so a fleet does not call in step.
    pub jitter: Duration,
    /// How long a restarted unit may take to become (and stay) active.
    pub restart_timeout: Duration,
    /// How long to wait for the server's restart lease (the fleet's restart budget) before
    /// rolling the new files back and retrying next cycle.
    pub lease_wait: Duration,
    /// Key type of new identity keys.
    pub key_algorithm: KeyAlgorithm,
    /// D-Bus address of the systemd manager; `None` is the host's system bus.
    pub systemd_bus: Option<String>,
    /// Between passes, wait on the server for a new manifest (long-poll) so a change arrives
    /// within seconds instead of at the next interval.
    pub long_poll: bool,
    /// What no manifest can widen: the directories written under (`allowed_paths`), the
    /// units restarted (`allowed_units`), the accounts files are given to (`allowed_owners`,
    /// `allowed_groups`).
    pub limits: Limits,
    /// `[metrics] textfile_dir`: where the agent writes `calseg.prom` for node_exporter's
    /// textfile collector after each cycle; `None` (unset) writes none.
    pub textfile_dir: Option<PathBuf>,
}

/// A configuration error, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based; 0 when the error is about the file as a whole.
    pub line: usize,
    pub column: usize,
    /// The option concerned, empty when the TOML itself is malformed.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Turns byte offsets into 1-based line and column numbers.
struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    fn error(&self, span: Option<Range<usize>>, field: &str, message: String) -> ConfigError {
        let (line, column) = span.map_or((0, 0), |span| {
            let before = self.text.get(..span.start).unwrap_or("");
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            (line, column)
        });
        ConfigError {
            path: self.path.to_path_buf(),
            line,
            column,
            field: field.to_owned(),
            message,
        }
    }
}

impl Settings {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates `text`, naming `path` in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let at = Locator { path, text };
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| at.error(e.span(), "", e.message().trim_end().to_owned()))?;
        Self::from_raw(&at, raw, default_node)
    }

    /// The settings of a host with no configuration file: all defaults.
    pub fn defaults() -> Result<Self, ConfigError> {
        let at = Locator {
            path: Path::new(DEFAULT_PATH),
            text: "",
        };
        Self::from_raw(&at, RawConfig::default(), default_node)
    }

    fn from_raw(
        at: &Locator<'_>,
        raw: RawConfig,
        hostname: fn() -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let servers = servers::from_raw(at, raw.server, raw.servers)?;
        let node = match raw.node {
            Some(node) => {
                check_node(node.get_ref()).map_err(|m| at.error(Some(node.span()), "node", m))?
            }
            None => hostname().ok_or_else(|| {
                let why = "not set and the hostname cannot be read; set `node = \"...\"`";
                at.error(None, "node", why.into())
            })?,
        };
        let path = |value: Option<Spanned<String>>, field: &str, default: &str| {
            let Some(value) = value else {
                return Ok(PathBuf::from(default));
            };
            let path = PathBuf::from(value.get_ref());
            if path.is_absolute() {
                Ok(path)
            } else {
                let why = format!("`{}` must be an absolute path", value.get_ref());
                Err(at.error(Some(value.span()), field, why))
            }
        };
        let duration = |value: Option<Spanned<String>>, field: &str, default: &str, min: u64| {
            let (text, span) = match &value {
                Some(v) => (v.get_ref().as_str(), Some(v.span())),
                None => (default, None),
            };
            let parsed = parse_duration(text).map_err(|m| at.error(span.clone(), field, m))?;
            if parsed < Duration::from_secs(min) {
                let why = format!("`{text}` is too short; at least {min}s");
                return Err(at.error(span, field, why));
            }
            Ok(parsed)
        };
        let key_algorithm = match raw.key_algorithm {
            None => KeyAlgorithm::P256,
            Some(alg) => KeyAlgorithm::parse(alg.get_ref()).ok_or_else(|| {
                let why = format!("`{}` is not \"p256\" or \"p384\"", alg.get_ref());
                at.error(Some(alg.span()), "key_algorithm", why)
            })?,
        };
        let mut limits = limits_from_raw(at, raw.allowed_paths, raw.allowed_units)?;
        if let Some(owners) = raw.allowed_owners {
            limits.allowed_owners = account_patterns(at, owners, "allowed_owners")?;
        }
        if let Some(groups) = raw.allowed_groups {
            limits.allowed_groups = account_patterns(at, groups, "allowed_groups")?;
        }
        let textfile_dir = match raw.metrics.and_then(|m| m.textfile_dir) {
            Some(dir) => Some(path(Some(dir), "metrics.textfile_dir", "")?),
            None => None,
        };
        Ok(Self {
            servers,
            node,
            state_dir: path(raw.state_dir, "state_dir", DEFAULT_STATE_DIR)?,
            root: path(raw.root, "root", "/")?,
            interval: duration(raw.interval, "interval", "5m", 10)?,
            jitter: duration(raw.jitter, "jitter", "1m", 0)?,
            restart_timeout: duration(raw.restart_timeout, "restart_timeout", "60s", 1)?,
            lease_wait: duration(raw.lease_wait, "lease_wait", "10m", 0)?,
            key_algorithm,
            systemd_bus: raw.systemd_bus.map(Spanned::into_inner),
            long_poll: raw.long_poll.is_none_or(Spanned::into_inner),
            limits,
            textfile_dir,
        })
    }
}

/// `allowed_paths` (absolute directories, normalized, never `/`) and `allowed_units` (unit
/// globs ending in `.service`); defaults for what is not set.
fn limits_from_raw(
    at: &Locator<'_>,
    paths: Option<Spanned<Vec<Spanned<String>>>>,
    units: Option<Spanned<Vec<Spanned<String>>>>,
) -> Result<Limits, ConfigError> {
    let mut out = Limits::default();
    if let Some(paths) = paths {
        out.allowed_paths = Vec::new();
        for path in paths.into_inner() {
            let normal = limits::normalize(path.get_ref()).map_err(|why| {
                let why = format!("`{}`: {why}", path.get_ref());
                at.error(Some(path.span()), "allowed_paths", why)
            })?;
            out.allowed_paths.push(normal);
        }
    }
    if let Some(units) = units {
        out.allowed_units = Vec::new();
        for unit in units.into_inner() {
            limits::check_unit_pattern(unit.get_ref())
                .map_err(|why| at.error(Some(unit.span()), "allowed_units", why))?;
            out.allowed_units.push(unit.into_inner());
        }
    }
    Ok(out)
}

/// `allowed_owners` or `allowed_groups` (`key`): account name globs.
fn account_patterns(
    at: &Locator<'_>,
    patterns: Spanned<Vec<Spanned<String>>>,
    key: &str,
) -> Result<Vec<String>, ConfigError> {
    patterns
        .into_inner()
        .into_iter()
        .map(|pattern| {
            limits::check_account_pattern(pattern.get_ref())
                .map_err(|why| at.error(Some(pattern.span()), key, why))?;
            Ok(pattern.into_inner())
        })
        .collect()
}

/// Checks a server URL: `https://host[:port]`, nothing after the authority but `/`.
pub fn check_server(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if parsed.scheme() != "https" {
        return Err(format!("`{url}` must start with https://"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    if parsed.path() != "/" || parsed.query().is_some() {
        return Err(format!("`{url}`: give only https://host:port, no path"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Checks a node name: what etcd user names and certificate CNs are built from.
pub fn check_node(node: &str) -> Result<String, String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if node.is_empty() || node.len() > 63 || !node.chars().all(ok) {
        return Err(format!(
            "`{node}` is not a node name: 1 to 63 of a-z, A-Z, 0-9, `-`, `_`, `.`"
        ));
    }
    Ok(node.to_owned())
}

/// The kernel's hostname, if it is a usable node name.
fn default_node() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    check_node(name.trim()).ok()
}

#[cfg(test)]
mod tests;
