//! `/etc/calseg/server.toml`: where the server finds its policy, state and etcd credentials.
//! Command-line flags override single values; missing values get a clear error naming the key.

use anyhow::{Result, bail};
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
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub ca: CaConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub backup: BackupConfig,
}

/// `calseg-server backup`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// An age X25519 public key (`age1...`, from `age-keygen`): backups are encrypted to it,
    /// so only the holder of its private key reads them (`restore --identity`, or `age -d`).
    /// Unset: backups are signed but not encrypted, and hold the CA keys in the clear.
    pub recipient: Option<String>,
}

/// Where the server keeps its state: the embedded single-file store (one server), or etcd
/// (several replicas, one leader; see the `ha` module).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// "embedded" (default: `state.redb` in the state directory) or "etcd" (reached with the
    /// `[etcd]` credentials).
    pub backend: Option<String>,
    /// etcd only: the key prefix of the state, default "/calseg/". Only calseg's own etcd user
    /// gets a role on it; policies may not grant it.
    pub prefix: Option<String>,
    /// etcd only: how long a leader that stopped renewing keeps leading, e.g. "10s".
    pub leader_ttl: Option<String>,
    /// etcd only: this replica's name in logs and the leader key; default the host name and
    /// the API address.
    pub replica: Option<String>,
}

/// The store backend `[store] backend` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreBackend {
    Embedded,
    Etcd,
}

/// The default `[store] prefix` of the etcd backend.
pub const DEFAULT_STORE_PREFIX: &str = "/calseg/";

impl StoreConfig {
    /// The backend, checked.
    pub fn backend(&self) -> Result<StoreBackend> {
        match self.backend.as_deref() {
            None | Some("embedded") => Ok(StoreBackend::Embedded),
            Some("etcd") => Ok(StoreBackend::Etcd),
            Some(other) => {
                bail!("[store] backend = {other:?}: expected \"embedded\" or \"etcd\"")
            }
        }
    }

    /// The etcd key prefix, checked: absolute, ending in '/', and not Calico's.
    pub fn prefix(&self) -> Result<String> {
        let prefix = self.prefix.as_deref().unwrap_or(DEFAULT_STORE_PREFIX);
        if !prefix.starts_with('/') || !prefix.ends_with('/') || prefix.len() < 3 {
            bail!(
                "[store] prefix = {prefix:?}: expected a key prefix like \"/calseg/\" (starts and ends with '/')"
            );
        }
        if prefix.starts_with("/calico") {
            bail!(
                "[store] prefix = {prefix:?}: that is Calico's data; choose a prefix of calseg's own, like \"/calseg/\""
            );
        }
        Ok(prefix.to_owned())
    }
}

/// The Prometheus metrics listener (plain HTTP, no client certificate).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of `GET /metrics`; default "127.0.0.1:9464" (loopback: the endpoint has no
    /// authentication); "" turns the listener off.
    pub listen: Option<String>,
}

impl MetricsConfig {
    /// The address to serve metrics on, or `None` when they are turned off.
    pub fn address(&self) -> Option<String> {
        match self.listen.as_deref() {
            None => Some(DEFAULT_METRICS_LISTEN.to_owned()),
            Some("") => None,
            Some(listen) => Some(listen.to_owned()),
        }
    }
}

/// The default `[metrics] listen`.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
/// The default `[api] listen`.
pub const DEFAULT_API_LISTEN: &str = "0.0.0.0:8443";

/// The HTTPS API the agents and administrators call.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Address to listen on, e.g. "0.0.0.0:8443".
    pub listen: Option<String>,
    /// The server's TLS certificate (signed by the fleet CA) and key.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Lifetime of agents' fleet certificates, e.g. "90d".
    pub fleet_cert_lifetime: Option<String>,
    /// Node-name globs enrolled without a token or an operator's approval.
    #[serde(default)]
    pub auto_approve: Vec<String>,
    /// Requests worked on at once, parked long-polls excluded; more are refused with 429
    /// rather than queued without bound. Default 512.
    pub max_in_flight: Option<usize>,
    /// Manifest long-polls parked at once (each holds a socket and a task); more get an
    /// immediate 304 with `Retry-After`. Default 20000.
    pub max_long_polls: Option<usize>,
    /// Nodes waiting for approval at most (asked without a token); one more new name gets 503
    /// `too_many_pending`. Default 100.
    pub max_pending: Option<u64>,
    /// A pending request not approved this long after it was first seen is dropped and
    /// audited, e.g. "24h" (the default).
    pub pending_ttl: Option<String>,
    /// `/v1/enroll` requests one source address (an IPv6 /64) may make at once; more get 429
    /// `enroll_rate_limited` with `Retry-After`. Default 20.
    pub enroll_burst: Option<u64>,
    /// How many more it may make per minute after the burst. Default 60.
    pub enroll_per_minute: Option<u64>,
    /// Connections open at once (each holds a file descriptor); at the cap the oldest
    /// connection without a client certificate is closed to make room, or the new one is.
    /// Default 24576, lowered to fit the open-file limit (the `http::connections` module).
    pub max_connections: Option<usize>,
    /// From accept to the end of the TLS handshake, e.g. "10s" (the default).
    pub handshake_timeout: Option<String>,
    /// To send a request's headers, and (HTTP/1.1) to start the next request, e.g. "10s".
    pub header_read_timeout: Option<String>,
    /// With no request in flight, e.g. "60s"; a parked long-poll is a request in flight.
    pub idle_timeout: Option<String>,
}

/// Where the two CAs live.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// Holds fleet.pem, fleet-key.pem, etcd-client.pem and etcd-client-key.pem.
    pub dir: Option<PathBuf>,
}

/// How the admin commands reach the running server.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// e.g. "https://127.0.0.1:8443".
    pub server: Option<String>,
    /// An administrator certificate (CN admin:NAME, signed by the fleet CA) and its key.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The fleet CA, to verify the server.
    pub ca_file: Option<PathBuf>,
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
    /// Fraction of etcd's apply time calseg's auth changes may take, in (0, 1]
    /// ([`crate::rbac::DEFAULT_AUTH_CHANGE_DUTY`] when unset).
    pub auth_change_duty: Option<f64>,
    /// How often the running server re-checks etcd for drift, e.g. "60s".
    pub reconcile_interval: Option<String>,
    /// Refuse to change etcd's RBAC (`apply`, and `serve` at start and while running) while a
    /// member runs a release with a known RBAC bypass (`crate::etcd_release`); `plan` still
    /// only warns. Off by default: the warning is always given.
    #[serde(default)]
    pub refuse_known_bypasses: bool,
}

impl EtcdConfig {
    /// How an apply paces its auth changes: `parallelism` and `auth_change_duty`, each from
    /// the command line when given there; an error names the key when the duty is out of range.
    pub fn pacing(
        &self,
        parallelism: Option<usize>,
        duty: Option<f64>,
    ) -> Result<crate::rbac::Pacing> {
        crate::rbac::Pacing::new(
            parallelism
                .or(self.parallelism)
                .unwrap_or(crate::rbac::DEFAULT_PARALLELISM),
            duty.or(self.auth_change_duty)
                .unwrap_or(crate::rbac::DEFAULT_AUTH_CHANGE_DUTY),
        )
        .map_err(anyhow::Error::msg)
    }

    /// How the server reaches etcd, when all three files are given; endpoints default to
    /// `policy_endpoints()` (the policy's `[etcd] endpoints`).
    pub fn access(
        &self,
        policy_endpoints: impl FnOnce() -> Result<Vec<String>>,
    ) -> Result<Option<crate::rbac::EtcdAccess>> {
        let (Some(cert), Some(key), Some(ca)) = (&self.cert_file, &self.key_file, &self.ca_file)
        else {
            return Ok(None);
        };
        let endpoints = match &self.endpoints {
            Some(endpoints) => endpoints.clone(),
            None => policy_endpoints()?,
        };
        Ok(Some(crate::rbac::EtcdAccess {
            endpoints,
            ca_file: ca.clone(),
            cert_file: cert.clone(),
            key_file: key.clone(),
        }))
    }
}

/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/calseg";

impl ServerConfig {
    /// The state directory (store, CAs, TLS files).
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
    }

    /// The CA directory.
    pub fn ca_dir(&self) -> PathBuf {
        self.ca
            .dir
            .clone()
            .unwrap_or_else(|| self.state_dir().join("ca"))
    }

    /// Reads `path` and its drop-in directory `path.d/` ([`crate::config_files`]); a missing
    /// file at the default location is an empty configuration (its drop-ins still apply).
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let (path, explicit) = match path {
            Some(path) => (path.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        Ok(crate::config_files::load_merged(&path, explicit)?.unwrap_or_default())
    }
}

/// Parses a duration for the flag or key `key` in the one grammar of both binaries
/// ([`calseg_api::duration`]: `90s`, `1h30m`, `30d`); the error names the key and the value.
pub fn parse_duration(key: &str, text: &str) -> Result<std::time::Duration> {
    calseg_api::duration::parse(text).map_err(|error| anyhow::anyhow!("{key} = {error}"))
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
    fn metrics_listen_defaults_to_loopback_and_empty_turns_it_off() {
        let parse = |text: &str| {
            toml::from_str::<ServerConfig>(text)
                .unwrap()
                .metrics
                .address()
        };
        assert_eq!(parse(""), Some("127.0.0.1:9464".to_owned()));
        assert_eq!(parse("[metrics]\nlisten = \"\"\n"), None);
        assert_eq!(
            parse("[metrics]\nlisten = \"0.0.0.0:9100\"\n"),
            Some("0.0.0.0:9100".to_owned())
        );
        assert!(toml::from_str::<ServerConfig>("[metrics]\nport = 1\n").is_err());
    }

    #[test]
    fn api_limits_parse_and_default_to_none() {
        let config: ServerConfig =
            toml::from_str("[api]\nmax_in_flight = 2\nmax_long_polls = 7\n").unwrap();
        assert_eq!(config.api.max_in_flight, Some(2));
        assert_eq!(config.api.max_long_polls, Some(7));
        let config: ServerConfig = toml::from_str("").unwrap();
        assert_eq!(config.api.max_in_flight, None);
        assert!(toml::from_str::<ServerConfig>("[api]\nmax_in_flight = -1\n").is_err());
    }

    #[test]
    fn refuse_known_bypasses_defaults_to_off() {
        let config: ServerConfig = toml::from_str("[etcd]\n").unwrap();
        assert!(!config.etcd.refuse_known_bypasses);
        let config: ServerConfig =
            toml::from_str("[etcd]\nrefuse_known_bypasses = true\n").unwrap();
        assert!(config.etcd.refuse_known_bypasses);
        assert!(toml::from_str::<ServerConfig>("[etcd]\nrefuse_known_bypasses = 1\n").is_err());
    }

    #[test]
    fn a_missing_default_file_is_empty_but_a_missing_named_one_is_an_error() {
        assert!(ServerConfig::load(Some(Path::new("/nonexistent/server.toml"))).is_err());
    }

    #[test]
    fn the_packaged_example_shows_backup_recipient_and_unknown_keys_are_refused() {
        let packaged = include_str!("../../packaging/server/server.toml");
        assert!(
            packaged.contains("\n[backup]\n"),
            "the example has a [backup] section"
        );
        let uncommented = packaged.replace("# recipient = \"age1...\"", "recipient = \"age1...\"");
        assert_ne!(uncommented, packaged, "the example shows `recipient`");
        let config: ServerConfig = toml::from_str(&uncommented).unwrap();
        assert_eq!(config.backup.recipient.as_deref(), Some("age1..."));
        assert!(toml::from_str::<ServerConfig>("[backup]\nrecipients = \"x\"\n").is_err());
    }
}
