//! The bodies of the server's fuzz targets (issue 10), shared by `fuzz/` (cargo-fuzz) and the
//! corpus regression test in `tests/tests/fuzz_corpus.rs`. Each takes arbitrary bytes, runs
//! them through the code that sees hostile input, and panics only on a bug: every error must
//! come back as a value.
//!
//! Free to change with the fuzz targets.

use std::sync::OnceLock;
use std::time::Duration;

use calseg_api::admin::TokenCreate;
use calseg_api::certificates::SignRequest;
use calseg_api::enroll::{EnrollRequest, FleetRenewRequest};
use calseg_api::lease::LeaseRequest;
use calseg_api::manifest::Manifest;
use calseg_api::report::Report;
use time::OffsetDateTime;

use calseg_server::pki::{CaKind, CertificateAuthority, CsrRules};
use calseg_server::store::TokenScope;

/// Policy text: parse and validate; a valid policy also yields manifests and its etcd roles,
/// and errors are formatted (their line:column come from byte offsets into the text).
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match calseg_server::policy::parse(text, "fuzz.toml") {
        Ok(policy) => {
            for node in ["node1", "worker-1", "a"] {
                let _ = calseg_server::manifest::manifest_for(&policy, node, 0, "");
            }
            for warning in &policy.warnings {
                let _ = warning.to_string();
            }
        }
        Err(errors) => {
            let _ = errors.to_string();
        }
    }
}

/// The two CAs the CSR targets sign with, made once per process.
fn authorities() -> &'static (CertificateAuthority, CertificateAuthority) {
    static CAS: OnceLock<(CertificateAuthority, CertificateAuthority)> = OnceLock::new();
    CAS.get_or_init(|| {
        let now = OffsetDateTime::now_utc();
        let year = Duration::from_secs(365 * 86_400);
        let make = |kind, name| match CertificateAuthority::generate(kind, name, year, now) {
            Ok(ca) => ca,
            Err(error) => panic!("fuzz setup: cannot make the {name} CA: {error}"),
        };
        (
            make(CaKind::Fleet, "fuzz fleet CA"),
            make(CaKind::EtcdClient, "fuzz etcd client CA"),
        )
    })
}

/// A CSR as the API receives it: every intake check, then signing, for an etcd identity and for
/// an agent's fleet certificate. A CSR that passes must be signed for exactly the CN asked.
pub fn csr(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_and_sign(&text, "calico-node.node1", "node1");
}

fn check_and_sign(csr_pem: &str, etcd_user: &str, node: &str) {
    let (fleet, etcd) = authorities();
    let rules = CsrRules::default();
    let now = OffsetDateTime::now_utc();
    let day = Duration::from_secs(86_400);
    if let Ok(issued) = etcd.sign_client_csr(csr_pem, &rules, etcd_user, day, now) {
        assert_eq!(issued.common_name, etcd_user);
    }
    if let Ok(issued) = fleet.sign_agent_csr(csr_pem, &rules, node, day, now) {
        assert_eq!(issued.common_name, node);
    }
}

/// Every JSON body the server accepts (and the manifest the agent accepts), decoded as each
/// type, then checked the way the handler checks it.
pub fn api_json(data: &[u8]) {
    if let Ok(request) = serde_json::from_slice::<EnrollRequest>(data)
        && calseg_server::policy::check_node_name(&request.node).is_ok()
    {
        check_and_sign(&request.csr_pem, "calico-node.node1", &request.node);
    }
    if let Ok(request) = serde_json::from_slice::<SignRequest>(data) {
        check_and_sign(&request.csr_pem, "calico-node.node1", "node1");
    }
    if let Ok(request) = serde_json::from_slice::<FleetRenewRequest>(data) {
        check_and_sign(&request.csr_pem, "calico-node.node1", "node1");
    }
    if let Ok(report) = serde_json::from_slice::<Report>(data) {
        // The handler stores the report re-encoded.
        let _ = serde_json::to_value(&report);
    }
    if let Ok(request) = serde_json::from_slice::<LeaseRequest>(data) {
        let _ = serde_json::to_value(&request);
    }
    if let Ok(request) = serde_json::from_slice::<TokenCreate>(data) {
        token_create(&request);
    }
    if let Ok(manifest) = serde_json::from_slice::<Manifest>(data) {
        let _ = serde_json::to_string(&manifest);
    }
}

/// The admin token handler's checks: scope, then a lifetime that fits the clock.
fn token_create(request: &TokenCreate) {
    let scope = match (&request.node, &request.glob) {
        (Some(node), None) if calseg_server::policy::check_node_name(node).is_ok() => {
            TokenScope::Node(node.clone())
        }
        (None, Some(glob)) => TokenScope::Match {
            glob: glob.clone(),
            uses_max: request.uses.unwrap_or(1),
        },
        _ => return,
    };
    if scope.validate().is_ok() {
        let ttl = time::Duration::seconds(i64::try_from(request.ttl_secs).unwrap_or(i64::MAX));
        let _ = OffsetDateTime::now_utc().checked_add(ttl);
    }
}

/// server.toml text: decoded as the server decodes it, then every value the server checks at
/// start (durations, metrics address); also the bytes as one duration.
pub fn server_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = calseg_server::config::parse_duration("fuzz", text);
    let Ok(config) = toml::from_str::<calseg_server::config::ServerConfig>(text) else {
        return;
    };
    let _ = config.metrics.address();
    let _ = config.state_dir();
    let _ = config.ca_dir();
    for value in [
        &config.api.fleet_cert_lifetime,
        &config.etcd.reconcile_interval,
    ]
    .into_iter()
    .flatten()
    {
        let _ = calseg_server::config::parse_duration("fuzz", value);
    }
    for glob in &config.api.auto_approve {
        let _ = glob::Pattern::new(glob);
    }
    if let Some(recipient) = &config.backup.recipient {
        let _ = calseg_server::backup::age::Recipient::parse(recipient);
    }
}

/// A backup file as `calseg-server restore` reads it (issue 22): as an age file, decrypted with
/// a fixed identity (the seed `age-cli.age` was made for it, so the payload is reached), then
/// as the signed container against a fixed pin, and as an age identity file.
pub fn backup(data: &[u8]) {
    use calseg_server::backup::{self, age};
    static IDENTITIES: OnceLock<Vec<age::Identity>> = OnceLock::new();
    const PIN: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let identities = IDENTITIES.get_or_init(|| {
        age::Identity::parse_file(FUZZ_IDENTITY, std::path::Path::new("fuzz")).unwrap_or_default()
    });
    let now = OffsetDateTime::now_utc();
    let plain = age::decrypt(data, identities).unwrap_or_else(|_| data.to_vec());
    let _ = backup::open(&plain, PIN, "1.0.0", now);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = age::Identity::parse_file(text, std::path::Path::new("fuzz"));
        let _ = age::Recipient::parse(text);
    }
}

/// A throwaway age identity (protects nothing): the one `fuzz/corpus/backup/age-cli.age` was
/// encrypted to with the age 1.1.1 CLI.
const FUZZ_IDENTITY: &str = include_str!("../../../control/src/backup/testdata/identity.txt");
