//! `calseg-server init`: first-time setup. Creates the fleet CA and the etcd client CA (or
//! imports the operator's etcd CA), the server's TLS certificate, an administrator certificate,
//! optionally calseg's own etcd client certificate, and a commented server.toml. Keys are
//! created with mode 0600 and nothing existing is overwritten unless forced.

use crate::pki::{
    CaFiles, CaKind, CertificateAuthority, CsrRules, Existing, KeyAlgorithm, admin, new_csr,
    write_public_file, write_secret_file,
};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::time::Duration;
use time::OffsetDateTime;

const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);
const SERVER_CERT_LIFETIME: Duration = Duration::from_secs(2 * 365 * 86_400);

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
}

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
    let config_path = options.config_dir.join("server.toml");
    if config_path.exists() && !options.force {
        bail!(
            "{} exists; pass --force to replace it and the keys it names",
            config_path.display()
        );
    }
    let ca_dir = options.state_dir.join("ca");
    let tls_dir = options.state_dir.join("tls");
    for dir in [&options.config_dir, &options.state_dir, &ca_dir, &tls_dir] {
        create_private_dir(dir)?;
    }
    let mut files = Vec::new();

    let fleet = CertificateAuthority::generate(CaKind::Fleet, "calseg fleet CA", CA_LIFETIME, now)?;
    let fleet_files = CaFiles::new(&ca_dir, "fleet");
    fleet_files.save(&fleet, existing)?;
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
    etcd_files.save(&etcd_ca, existing)?;
    files.extend([etcd_files.cert.clone(), etcd_files.key.clone()]);

    let server = fleet.issue_server(&options.sans, SERVER_CERT_LIFETIME, now)?;
    let (server_cert, server_key) = (tls_dir.join("server.pem"), tls_dir.join("server-key.pem"));
    write_secret_file(&server_key, server.key_pem.as_bytes(), existing)?;
    write_public_file(&server_cert, server.cert_pem.as_bytes(), 0o644, existing)?;
    files.extend([server_cert.clone(), server_key.clone()]);

    let admin_dir = options.config_dir.join("admin");
    create_private_dir(&admin_dir)?;
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
            create_private_dir(&dir)?;
            let key = new_csr(user, KeyAlgorithm::EcdsaP256)?;
            let cert = etcd_ca.sign_client_csr(
                &key.csr_pem,
                &CsrRules::default(),
                user,
                CA_LIFETIME / 10,
                now,
            )?;
            let (cert_path, key_path) = (dir.join("calseg.pem"), dir.join("calseg-key.pem"));
            write_secret_file(&key_path, key.key_pem.as_bytes(), existing)?;
            write_public_file(&cert_path, cert.cert_pem.as_bytes(), 0o644, existing)?;
            files.extend([cert_path.clone(), key_path.clone()]);
            Some((cert_path, key_path))
        }
        None => None,
    };

    let config = server_toml(
        options,
        &admin_cert_path,
        &admin_key_path,
        &fleet_files.cert,
        &etcd_server_ca,
        etcd_identity.as_ref(),
    );
    write_public_file(&config_path, config.as_bytes(), 0o640, existing)?;
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
    })
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .with_context(|| format!("create {}", dir.display()))
}

fn server_toml(
    options: &InitOptions,
    admin_cert: &Path,
    admin_key: &Path,
    fleet_ca: &Path,
    etcd_server_ca: &Path,
    etcd_identity: Option<&(PathBuf, PathBuf)>,
) -> String {
    let q = |p: &Path| format!("{:?}", p.display().to_string());
    let endpoints = if options.etcd_endpoints.is_empty() {
        "# endpoints = [\"https://10.0.0.11:2379\"]   # default: the policy's [etcd] endpoints"
            .to_owned()
    } else {
        format!("endpoints = {:?}", options.etcd_endpoints)
    };
    let (cert, key) = match etcd_identity {
        Some((c, k)) => (format!("cert_file = {}", q(c)), format!("key_file = {}", q(k))),
        None => (
            "# cert_file = \"/etc/calseg/etcd/calseg.pem\"   # CN = an etcd user holding the root role".to_owned(),
            "# key_file = \"/etc/calseg/etcd/calseg-key.pem\"".to_owned(),
        ),
    };
    let host = options
        .sans
        .first()
        .map(String::as_str)
        .unwrap_or("127.0.0.1");
    let port = options.listen.rsplit(':').next().unwrap_or("8443");
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
server = "https://{host}:{port}"
cert_file = {admin_cert}
key_file = {admin_key}
ca_file = {fleet_ca}
"#,
        policy = q(&options.config_dir.join("policy.toml")),
        state_dir = q(&options.state_dir),
        listen = options.listen,
        state = options.state_dir.display(),
        etcd_server_ca = q(etcd_server_ca),
        admin_cert = q(admin_cert),
        admin_key = q(admin_key),
        fleet_ca = q(fleet_ca),
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
}
