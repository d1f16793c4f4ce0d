//! `calseg-server init`: first-time setup. Creates the fleet CA and the etcd client CA (or
//! imports the operator's etcd CA), the server's TLS certificate, an administrator certificate,
//! optionally calseg's own etcd client certificate, and the settings that name them. Keys are
//! created with mode 0600 and nothing existing is overwritten unless forced.
//!
//! On a packaged install it needs no chown and rewrites no conffile:
//! - server.toml already exists (the package's commented example, or the operator's own), so
//!   the generated settings go to the drop-in `server.toml.d/50-init.toml` instead
//!   ([`crate::config_files`]); only a server.toml that `init` itself wrote is replaced (with
//!   `--force`).
//! - Run as root with a state directory that belongs to another user (the package makes
//!   `/var/lib/calseg` calseg:calseg), the server's files are created for that user: the CAs
//!   and TLS files owned by it, the etcd client key and the settings group-readable by its
//!   group, each from the moment it is created.

use crate::pki::{
    CaFiles, CaKind, CertificateAuthority, CsrRules, Existing, FileOwner, KeyAlgorithm, admin,
    new_csr, remove_if_present, write_file_as, write_public_file, write_secret_file,
};
use anyhow::{Context, Result, bail};
use calseg_control::ca_rotation::RotationFiles;
use calseg_control::fleet_rotation::FleetFiles;
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;

const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);
pub(crate) const SERVER_CERT_LIFETIME: Duration = Duration::from_secs(2 * 365 * 86_400);

/// What to set up.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Where server.toml, the admin and etcd client certificates go (/etc/calseg).
    pub config_dir: PathBuf,
    /// Where the store, CAs and TLS files go (/var/lib/calseg).
    pub state_dir: PathBuf,
    /// DNS names and IP addresses agents use to reach the server.
    pub sans: Vec<String>,
    pub listen: String,
    /// An existing etcd client CA (certificate, PKCS#8 key) to import instead of generating one.
    pub etcd_ca: Option<(PathBuf, PathBuf)>,
    pub etcd_endpoints: Vec<String>,
    /// The CA that verifies etcd's server certificate (default: the etcd client CA).
    pub etcd_server_ca: Option<PathBuf>,
    /// When set, mint calseg's own etcd client certificate with this CN (a user holding etcd's
    /// root role), signed by the etcd client CA.
    pub etcd_user: Option<String>,
    /// The administrator certificate's name: CN `admin:<name>`.
    pub admin_name: String,
    /// Replace existing files.
    pub force: bool,
}

/// What init made.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// What agents pin with `calseg-agent enroll --ca-hash`.
    pub fleet_ca_hash: String,
    pub config_path: PathBuf,
    pub files: Vec<PathBuf>,
    /// The user the server's files were created for, when not the caller.
    pub service_account: Option<FileOwner>,
}

/// The first line of a server.toml that `init` wrote (and may replace with `--force`).
const INIT_HEADER: &str = "# calseg-server configuration, written by `calseg-server init`.";
/// The drop-in `init` writes beside a server.toml it did not write.
pub const INIT_DROP_IN: &str = "50-init.toml";

/// The policy `init` writes when there is none: every option, commented.
const EXAMPLE_POLICY: &str = include_str!("../policy.example.toml");

/// Runs the setup at `now`.
pub fn init(options: &InitOptions, now: OffsetDateTime) -> Result<InitReport> {
    if options.sans.is_empty() {
        bail!("give at least one --san: the DNS name or IP address agents use to reach the server");
    }
    let existing = if options.force {
        Existing::Replace
    } else {
        Existing::Refuse
    };
    let target = config_target(&options.config_dir)?;
    let config_path = target.path().to_path_buf();
    if config_path.exists() && !options.force {
        bail!(
            "{} exists; pass --force to replace it and the keys it names",
            config_path.display()
        );
    }
    let service = service_account(&options.state_dir);
    // What the server reads but root keeps: its settings and its etcd key, group-readable.
    let server_group = service.map(|s| FileOwner { uid: 0, gid: s.gid });
    let secret_mode = if service.is_some() { 0o640 } else { 0o600 };
    let ca_dir = options.state_dir.join("ca");
    let tls_dir = options.state_dir.join("tls");
    create_dir_as(&options.config_dir, None)?;
    create_dir_as(&options.state_dir, None)?;
    for dir in [&ca_dir, &tls_dir] {
        create_dir_as(dir, service)?;
    }
    let mut files = Vec::new();
    if options.force {
        // A rotation's files belong to the CAs being replaced: left behind, the server would
        // take them for the CA in force (a finished etcd client CA rotation) or resume a
        // rotation of a CA that is gone.
        let stale = RotationFiles::new(&ca_dir)
            .rotation_paths()
            .into_iter()
            .chain(FleetFiles::new(&ca_dir).rotation_paths());
        for path in stale {
            remove_if_present(&path)?;
        }
    }

    let fleet = CertificateAuthority::generate(CaKind::Fleet, "calseg fleet CA", CA_LIFETIME, now)?;
    let fleet_files = CaFiles::new(&ca_dir, "fleet");
    fleet_files.save_as(&fleet, service, existing)?;
    files.extend([fleet_files.cert.clone(), fleet_files.key.clone()]);

    let etcd_ca = match &options.etcd_ca {
        Some((cert, key)) => {
            let read = |p: &Path| {
                std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))
            };
            CertificateAuthority::from_pem(CaKind::EtcdClient, &read(cert)?, &read(key)?, now)?
        }
        None => CertificateAuthority::generate(
            CaKind::EtcdClient,
            "calseg etcd client CA",
            CA_LIFETIME,
            now,
        )?,
    };
    let etcd_files = CaFiles::new(&ca_dir, "etcd-client");
    etcd_files.save_as(&etcd_ca, service, existing)?;
    files.extend([etcd_files.cert.clone(), etcd_files.key.clone()]);

    let server = fleet.issue_server(&options.sans, SERVER_CERT_LIFETIME, now)?;
    let (server_cert, server_key) = (tls_dir.join("server.pem"), tls_dir.join("server-key.pem"));
    write_file_as(
        &server_key,
        server.key_pem.as_bytes(),
        0o600,
        service,
        existing,
    )?;
    write_file_as(
        &server_cert,
        server.cert_pem.as_bytes(),
        0o644,
        service,
        existing,
    )?;
    files.extend([server_cert.clone(), server_key.clone()]);

    let admin_dir = options.config_dir.join("admin");
    create_dir_as(&admin_dir, None)?;
    let admin = admin::issue(&fleet, &options.admin_name, admin::DEFAULT_LIFETIME, now)?;
    let (admin_cert_path, admin_key_path) =
        (admin_dir.join("admin.pem"), admin_dir.join("admin-key.pem"));
    write_secret_file(&admin_key_path, admin.key_pem.as_bytes(), existing)?;
    write_public_file(
        &admin_cert_path,
        admin.cert.cert_pem.as_bytes(),
        0o644,
        existing,
    )?;
    files.extend([admin_cert_path.clone(), admin_key_path.clone()]);

    let etcd_server_ca = match &options.etcd_server_ca {
        Some(path) => path.clone(),
        None => etcd_files.cert.clone(),
    };
    let etcd_identity = match &options.etcd_user {
        Some(user) => {
            let dir = options.config_dir.join("etcd");
            create_dir_as(&dir, server_group)?;
            let key = new_csr(user, KeyAlgorithm::EcdsaP256)?;
            let cert = etcd_ca.sign_client_csr(
                &key.csr_pem,
                &CsrRules::default(),
                user,
                CA_LIFETIME / 10,
                now,
            )?;
            let (cert_path, key_path) = (dir.join("calseg.pem"), dir.join("calseg-key.pem"));
            let key_pem = key.key_pem.as_bytes();
            write_file_as(&key_path, key_pem, secret_mode, server_group, existing)?;
            let cert_pem = cert.cert_pem.as_bytes();
            write_file_as(&cert_path, cert_pem, 0o644, server_group, existing)?;
            files.extend([cert_path.clone(), key_path.clone()]);
            Some((cert_path, key_path))
        }
        None => None,
    };

    let paths = SettingsPaths {
        admin_cert: &admin_cert_path,
        admin_key: &admin_key_path,
        fleet_ca: &fleet_files.cert,
        etcd_server_ca: &etcd_server_ca,
        etcd_identity: etcd_identity.as_ref(),
    };
    let config = match &target {
        ConfigTarget::Main(_) => server_toml(options, &paths),
        ConfigTarget::DropIn(_) => {
            create_dir_as(
                &crate::config_files::drop_in_dir(&options.config_dir.join("server.toml")),
                server_group,
            )?;
            drop_in_toml(options, &paths)
        }
    };
    write_file_as(
        &config_path,
        config.as_bytes(),
        0o640,
        server_group,
        existing,
    )?;
    files.push(config_path.clone());
    // A starting policy, the commented example with the narrowed per-node profiles, when there
    // is none yet. An existing policy is the operator's: never replaced, not even with --force.
    let policy_path = options.config_dir.join("policy.toml");
    if !policy_path.exists() {
        write_public_file(
            &policy_path,
            EXAMPLE_POLICY.as_bytes(),
            0o644,
            Existing::Refuse,
        )?;
        files.push(policy_path);
    }
    Ok(InitReport {
        fleet_ca_hash: fleet.fingerprint_sha256(),
        config_path,
        files,
        service_account: service,
    })
}

/// Where the generated settings go.
enum ConfigTarget {
    /// server.toml itself: there is none yet, or `init` wrote it.
    Main(PathBuf),
    /// `server.toml.d/50-init.toml`: server.toml is the package's or the operator's.
    DropIn(PathBuf),
}

impl ConfigTarget {
    fn path(&self) -> &Path {
        match self {
            Self::Main(path) | Self::DropIn(path) => path,
        }
    }
}

fn config_target(config_dir: &Path) -> Result<ConfigTarget> {
    let main = config_dir.join("server.toml");
    match std::fs::read_to_string(&main) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(ConfigTarget::Main(main)),
        Err(error) => Err(error).with_context(|| format!("read {}", main.display())),
        Ok(text) if text.starts_with(INIT_HEADER) => Ok(ConfigTarget::Main(main)),
        Ok(_) => Ok(ConfigTarget::DropIn(
            crate::config_files::drop_in_dir(&main).join(INIT_DROP_IN),
        )),
    }
}

/// The account the server runs as, when init runs as root and the state directory exists
/// and belongs to another user (the package's `calseg`).
pub(crate) fn service_account(state_dir: &Path) -> Option<FileOwner> {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let meta = std::fs::metadata(state_dir).ok()?;
    (meta.uid() != 0).then(|| FileOwner {
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

/// Creates `dir` (0750) when missing, owned by `owner` when given. An existing directory is
/// left as it is: the package, or the operator, chose its owner. A symbolic link is refused:
/// the state directory may belong to the server's account, and root must not write keys (for
/// that account) wherever a link it planted there points.
fn create_dir_as(dir: &Path, owner: Option<FileOwner>) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => bail!(
            "{} is a symbolic link; init writes keys only into real directories (remove it, \
             or point --state-dir/--config-dir at the target)",
            dir.display()
        ),
        Ok(meta) if meta.is_dir() => return Ok(()),
        Ok(_) => bail!("{} exists and is not a directory", dir.display()),
        Err(_) => {}
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .with_context(|| format!("create {}", dir.display()))?;
    if let Some(owner) = owner {
        std::os::unix::fs::chown(dir, Some(owner.uid), Some(owner.gid))
            .with_context(|| format!("chown {}", dir.display()))?;
    }
    Ok(())
}

/// The files the generated settings name.
struct SettingsPaths<'a> {
    admin_cert: &'a Path,
    admin_key: &'a Path,
    fleet_ca: &'a Path,
    etcd_server_ca: &'a Path,
    etcd_identity: Option<&'a (PathBuf, PathBuf)>,
}

/// A path as a TOML string.
fn quoted(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

/// The drop-in beside a server.toml init did not write: only what init made or was told, so
/// every other setting stays the operator's (in server.toml or a later drop-in).
fn drop_in_toml(options: &InitOptions, paths: &SettingsPaths) -> String {
    let q = quoted;
    let mut etcd = format!("ca_file = {}\n", q(paths.etcd_server_ca));
    if !options.etcd_endpoints.is_empty() {
        etcd.push_str(&format!("endpoints = {:?}\n", options.etcd_endpoints));
    }
    if let Some((cert, key)) = paths.etcd_identity {
        etcd.push_str(&format!("cert_file = {}\nkey_file = {}\n", q(cert), q(key)));
    }
    format!(
        r#"# Written by `calseg-server init`: the files it created and the addresses it was given.
# Settings here override /etc/calseg/server.toml (the package's file, left untouched); put
# your own in server.toml or in a later drop-in such as 90-site.toml. `init --force`
# rewrites this file.

policy = {policy}
state_dir = {state_dir}

[api]
listen = {listen:?}

[etcd]
{etcd}
[admin]
server = {admin_server:?}
cert_file = {admin_cert}
key_file = {admin_key}
ca_file = {fleet_ca}
"#,
        policy = q(&options.config_dir.join("policy.toml")),
        state_dir = q(&options.state_dir),
        listen = options.listen,
        admin_server = admin_server(options),
        admin_cert = q(paths.admin_cert),
        admin_key = q(paths.admin_key),
        fleet_ca = q(paths.fleet_ca),
    )
}

/// The URL the admin commands use: the first SAN and the listening port.
fn admin_server(options: &InitOptions) -> String {
    let host = options
        .sans
        .first()
        .map(String::as_str)
        .unwrap_or("127.0.0.1");
    let port = options.listen.rsplit(':').next().unwrap_or("8443");
    format!("https://{host}:{port}")
}

fn server_toml(options: &InitOptions, paths: &SettingsPaths) -> String {
    let q = quoted;
    let endpoints = if options.etcd_endpoints.is_empty() {
        "# endpoints = [\"https://10.0.0.11:2379\"]   # default: the policy's [etcd] endpoints"
            .to_owned()
    } else {
        format!("endpoints = {:?}", options.etcd_endpoints)
    };
    let (cert, key) = match paths.etcd_identity {
        Some((c, k)) => (format!("cert_file = {}", q(c)), format!("key_file = {}", q(k))),
        None => (
            "# cert_file = \"/etc/calseg/etcd/calseg.pem\"   # CN = an etcd user holding the root role".to_owned(),
            "# key_file = \"/etc/calseg/etcd/calseg-key.pem\"".to_owned(),
        ),
    };
    format!(
        r#"# calseg-server configuration, written by `calseg-server init`.
# Every option is shown; commented lines show defaults or examples.

# The segmentation policy (see `calseg-server check`).
policy = {policy}
# The store (state.redb), the CAs (ca/) and the server's TLS files (tls/).
state_dir = {state_dir}

[api]
# Where agents and administrators reach the server.
listen = {listen:?}
# cert_file = "{state}/tls/server.pem"      # signed by the fleet CA
# key_file = "{state}/tls/server-key.pem"
# Lifetime of agents' fleet certificates.
fleet_cert_lifetime = "90d"
# Node-name globs enrolled without a token or an operator's approval, e.g. ["worker-*"].
auto_approve = []
# Requests worked on at once (parked manifest long-polls excluded); beyond it the server
# answers 429 "overloaded" with a Retry-After of 1-5 s instead of queueing.
# max_in_flight = 512
# Manifest long-polls (agents waiting for a change) parked at once; beyond it they get an
# immediate 304 with Retry-After.
# max_long_polls = 20000
# Nodes waiting for `calseg-server nodes approve NODE --fingerprint sha256:...` at most (one
# more new name: 503), how long a request waits before it is dropped, and /v1/enroll requests
# per client address at once and per minute after that (beyond: 429 with Retry-After).
# max_pending = 100
# pending_ttl = "24h"
# enroll_burst = 20
# enroll_per_minute = 60
# Connections open at once (each holds a file descriptor). At the cap, the oldest connection
# without a client certificate (still in its TLS handshake, or anonymous) older than 1 s is
# closed to make room, or else the new one is closed at once; agents and administrators are
# never closed to make room. Default 24576, lowered to fit the open-file limit (LimitNOFILE= in
# calseg-server.service) minus an eighth of it (at least 128) for the store, etcd and logs.
# max_connections = 24576
# From accept to the end of the TLS handshake; slower connections are closed.
# handshake_timeout = "10s"
# To send a request's headers (HTTP/1.1 also counts the wait for the next request).
# header_read_timeout = "10s"
# A connection with no request in flight this long is closed; a parked manifest long-poll is a
# request in flight, so it is never cut.
# idle_timeout = "60s"

[ca]
# dir = "{state}/ca"   # fleet.pem, fleet-key.pem, etcd-client.pem, etcd-client-key.pem

[etcd]
# How calseg itself reaches etcd to manage users and roles.
{endpoints}
# The CA that signed etcd's server certificate.
ca_file = {etcd_server_ca}
{cert}
{key}
# Refuse to run when etcd's auth is off unless this is true.
allow_auth_disabled = false
# Every member's etcd release is checked against known RBAC bypasses at plan, apply and serve
# (and every 10 minutes while serving); true makes apply and serve refuse such a cluster.
refuse_known_bypasses = false
# etcd requests in flight while reconciling, and how often to look for drift.
parallelism = 16
reconcile_interval = "60s"

[store]
# Where the server keeps nodes, tokens, issued certificates, the audit log and rollouts:
# "embedded" (state.redb in state_dir; one server) or "etcd" (under `prefix`, reached with the
# [etcd] credentials above; run several replicas, one leads). `calseg-server migrate-store`
# copies the state between the two.
# backend = "embedded"
# prefix = "/calseg/"
# leader_ttl = "10s"      # etcd only: a leader that stopped renewing gives up after this
# replica = "HOSTNAME LISTEN"   # etcd only: this replica's name in logs and the leader key

[metrics]
# Prometheus metrics at http://LISTEN/metrics: plain HTTP without authentication, so keep it on
# loopback or a monitoring network; "" turns them off.
listen = "127.0.0.1:9464"

[admin]
# Used by the admin commands (token, nodes, audit, plan/apply through the server).
server = {admin_server:?}
cert_file = {admin_cert}
key_file = {admin_key}
ca_file = {fleet_ca}
"#,
        policy = q(&options.config_dir.join("policy.toml")),
        state_dir = q(&options.state_dir),
        listen = options.listen,
        state = options.state_dir.display(),
        etcd_server_ca = q(paths.etcd_server_ca),
        admin_server = admin_server(options),
        admin_cert = q(paths.admin_cert),
        admin_key = q(paths.admin_key),
        fleet_ca = q(paths.fleet_ca),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn init_writes_keys_0600_a_loadable_config_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let options = InitOptions {
            config_dir: dir.path().join("etc"),
            state_dir: dir.path().join("var"),
            sans: vec!["127.0.0.1".into(), "calseg.test".into()],
            listen: "127.0.0.1:8443".into(),
            etcd_ca: None,
            etcd_endpoints: vec!["https://127.0.0.1:2379".into()],
            etcd_server_ca: None,
            etcd_user: Some("root".into()),
            admin_name: "ops".into(),
            force: false,
        };
        let report = init(&options, OffsetDateTime::now_utc()).unwrap();
        assert!(report.fleet_ca_hash.starts_with("sha256:"));
        for file in &report.files {
            let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
            let name = file.file_name().unwrap().to_string_lossy();
            if name.contains("key") {
                assert_eq!(mode, 0o600, "{}", file.display());
            }
        }
        let config = crate::config::ServerConfig::load(Some(&report.config_path)).unwrap();
        assert_eq!(
            config.admin.server.as_deref(),
            Some("https://127.0.0.1:8443")
        );
        assert!(config.etcd.cert_file.is_some());
        let again = init(&options, OffsetDateTime::now_utc())
            .unwrap_err()
            .to_string();
        assert!(again.contains("--force"), "{again}");

        // The starting policy is the example, narrowed per node; --force never replaces it.
        let policy_path = options.config_dir.join("policy.toml");
        let written = std::fs::read_to_string(&policy_path).unwrap();
        let policy = crate::policy::parse(&written, "policy.toml").unwrap();
        assert_eq!(
            policy.components["calico-node"].table,
            Some(crate::policy::GrantTable::CalicoNodePerNode)
        );
        std::fs::write(&policy_path, "# the operator's own\n").unwrap();
        let forced = InitOptions {
            force: true,
            ..options.clone()
        };
        init(&forced, OffsetDateTime::now_utc()).unwrap();
        assert_eq!(
            std::fs::read_to_string(&policy_path).unwrap(),
            "# the operator's own\n"
        );
    }

    /// A finished etcd client CA rotation left `etcd-client.active.pem`, a fleet CA rotation
    /// `fleet.next.pem`: after `init --force` the server must load the CAs init just wrote.
    #[test]
    fn init_force_drops_the_files_of_rotations_of_the_cas_it_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let first = options(dir.path());
        init(&first, OffsetDateTime::now_utc()).unwrap();
        let ca_dir = first.state_dir.join("ca");
        let stale = CertificateAuthority::generate(
            CaKind::Fleet,
            "stale",
            Duration::from_secs(86400),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        for name in [
            "etcd-client.active",
            "etcd-client.next",
            "fleet.next",
            "fleet.abandoned",
        ] {
            CaFiles::new(&ca_dir, name)
                .save(&stale, Existing::Refuse)
                .unwrap();
        }
        let retired = ca_dir.join("fleet.retired-0011223344556677.pem");
        std::fs::write(&retired, stale.cert_pem()).unwrap();
        let forced = InitOptions {
            force: true,
            ..first.clone()
        };
        let report = init(&forced, OffsetDateTime::now_utc()).unwrap();
        let now = OffsetDateTime::now_utc();
        let fleet = FleetFiles::new(&ca_dir).load(now).unwrap();
        assert_eq!(fleet.current.fingerprint_sha256(), report.fleet_ca_hash);
        assert!(fleet.rotation.is_none());
        let etcd = RotationFiles::new(&ca_dir)
            .current()
            .load(CaKind::EtcdClient, now)
            .unwrap();
        assert_ne!(etcd.fingerprint_sha256(), stale.fingerprint_sha256());
        assert!(
            !ca_dir.join("etcd-client.next-key.pem").exists(),
            "no stale key left"
        );
        assert!(retired.exists(), "retired certificates are history: kept");
    }

    fn options(dir: &Path) -> InitOptions {
        InitOptions {
            config_dir: dir.join("etc"),
            state_dir: dir.join("var"),
            sans: vec!["127.0.0.1".into()],
            listen: "127.0.0.1:8443".into(),
            etcd_ca: None,
            etcd_endpoints: vec!["https://127.0.0.1:2379".into()],
            etcd_server_ca: None,
            etcd_user: Some("root".into()),
            admin_name: "ops".into(),
            force: false,
        }
    }

    #[test]
    fn beside_a_server_toml_it_did_not_write_init_writes_a_drop_in_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let options = options(dir.path());
        std::fs::create_dir_all(&options.config_dir).unwrap();
        let main = options.config_dir.join("server.toml");
        let packaged = "# the package's example\n[api]\n# listen = \"0.0.0.0:8443\"\n[metrics]\nlisten = \"\"\n";
        std::fs::write(&main, packaged).unwrap();

        let report = init(&options, OffsetDateTime::now_utc()).unwrap();
        let drop_in = options.config_dir.join("server.toml.d").join(INIT_DROP_IN);
        assert_eq!(report.config_path, drop_in);
        assert_eq!(std::fs::read_to_string(&main).unwrap(), packaged);
        // Read together: init's settings, and the operator's own from server.toml.
        let config = crate::config::ServerConfig::load(Some(&main)).unwrap();
        assert_eq!(
            config.admin.server.as_deref(),
            Some("https://127.0.0.1:8443")
        );
        assert_eq!(config.api.listen.as_deref(), Some("127.0.0.1:8443"));
        assert!(config.etcd.cert_file.is_some());
        assert_eq!(
            config.metrics.address(),
            None,
            "server.toml's own setting is kept"
        );

        let again = init(&options, OffsetDateTime::now_utc())
            .unwrap_err()
            .to_string();
        assert!(
            again.contains("50-init.toml exists") && again.contains("--force"),
            "{again}"
        );
        let forced = InitOptions {
            force: true,
            ..options.clone()
        };
        init(&forced, OffsetDateTime::now_utc()).unwrap();
        assert_eq!(std::fs::read_to_string(&main).unwrap(), packaged);
    }

    #[test]
    fn run_by_root_for_a_state_directory_of_another_user_the_files_are_that_users_from_creation() {
        use std::os::unix::fs::MetadataExt;
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test creates files for another user: run it as root"
        );
        let dir = tempfile::tempdir().unwrap();
        let options = options(dir.path());
        std::fs::create_dir_all(&options.state_dir).unwrap();
        let (uid, gid) = (4242, 4343);
        std::os::unix::fs::chown(&options.state_dir, Some(uid), Some(gid)).unwrap();
        std::fs::create_dir_all(&options.config_dir).unwrap();
        std::fs::write(options.config_dir.join("server.toml"), "# packaged\n").unwrap();

        let report = init(&options, OffsetDateTime::now_utc()).unwrap();
        assert_eq!(report.service_account, Some(FileOwner { uid, gid }));
        let owner = |path: &Path| {
            let meta = std::fs::metadata(path).unwrap();
            (meta.uid(), meta.gid(), meta.mode() & 0o777)
        };
        let state = &options.state_dir;
        for (path, mode) in [
            (state.join("ca"), 0o750),
            (state.join("ca/fleet-key.pem"), 0o600),
            (state.join("ca/etcd-client-key.pem"), 0o600),
            (state.join("tls/server-key.pem"), 0o600),
            (state.join("tls/server.pem"), 0o644),
        ] {
            assert_eq!(owner(&path), (uid, gid, mode), "{}", path.display());
        }
        let etc = &options.config_dir;
        for (path, mode) in [
            (etc.join("etcd"), 0o750),
            (etc.join("etcd/calseg-key.pem"), 0o640),
            (etc.join("server.toml.d"), 0o750),
            (etc.join("server.toml.d").join(INIT_DROP_IN), 0o640),
        ] {
            assert_eq!(owner(&path), (0, gid, mode), "{}", path.display());
        }
        // The administrator's key stays root's alone.
        assert_eq!(owner(&etc.join("admin/admin-key.pem")), (0, 0, 0o600));
    }

    /// A state directory owned by the server's account: that account could plant `ca` as a
    /// link to anywhere. Root's init refuses it and writes nothing there.
    #[test]
    fn a_symbolic_link_in_place_of_a_key_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let options = options(dir.path());
        std::fs::create_dir_all(&options.state_dir).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, options.state_dir.join("ca")).unwrap();
        let error = init(&options, OffsetDateTime::now_utc())
            .unwrap_err()
            .to_string();
        assert!(error.contains("is a symbolic link"), "{error}");
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        assert!(!options.config_dir.join("server.toml").exists());
    }
}
