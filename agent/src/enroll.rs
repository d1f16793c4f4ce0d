//! Enrollment and renewal of this host's fleet certificate (the agent's mTLS identity).
//!
//! Enrollment trusts the server on first use only through the operator's pin: the fleet CA is
//! fetched over an unverified connection, its DER hashed and compared with `--ca-hash`, and
//! from then on the server is verified against that CA alone. The fleet key is made here
//! (P-256, CN = node); while an operator has not approved the node, it waits in
//! `fleet-pending.key` (0600) and the same CSR is sent again. Meanwhile the agent prints the
//! key's fingerprint ([`calseg_api::fingerprint`]) at the first "pending" and then every
//! [`FINGERPRINT_EVERY`]: the operator approves exactly that key (`calseg-server nodes approve
//! NODE --fingerprint ...`), so whoever else asks for the same name gets nothing.
//!
//! With several servers (replicas of one service), each call goes to the one that answered
//! last and fails over to the next as every other call does ([`crate::client::servers`]); the
//! pin applies to all of them. The whole list is saved with the credentials.

use crate::client::{ApiClient, ClientError, Servers, backoff, tls};
use crate::decide::renew_at;
use crate::keys::{self, CertError, KeyAlgorithm, KeyError, NewKey, PrivateKeyPem};
use crate::state::{FleetCredentials, StateDir, StateError};
use calseg_api::enroll::{EnrollRequest, EnrollResponse, FleetRenewRequest};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// A bootstrap token. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(token: &str) -> Self {
        Self(token.trim().to_owned())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// How to enroll.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// The server's replicas, checked (see [`crate::config::check_servers`]), tried in order.
    pub servers: Vec<String>,
    /// `sha256:<64 hex>` of the fleet CA certificate's DER.
    pub ca_hash: String,
    pub node: String,
    pub token: Option<Token>,
    /// How long to wait for approval; `None` returns at the first "pending".
    pub wait: Option<Duration>,
}

/// How enrollment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollOutcome {
    Enrolled {
        not_after: OffsetDateTime,
    },
    /// Still waiting for `calseg-server nodes approve`; run `enroll` again to keep waiting.
    Pending {
        /// Of the key waiting (`sha256:<hex>`): what the operator must approve.
        fingerprint: String,
    },
}

/// How often a waiting agent prints its key's fingerprint again.
pub const FINGERPRINT_EVERY: Duration = Duration::from_secs(300);

/// Why enrollment or renewal failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("--ca-hash {0:?} is not `sha256:` followed by 64 hex digits")]
    BadPin(String),
    #[error(
        "the server's fleet CA does not match the pin: expected {expected}, server has \
         {actual}. Check --ca-hash (calseg-server prints it) and that --server is the right host"
    )]
    PinMismatch { expected: String, actual: String },
    #[error("no server given: pass --server https://host:port")]
    NoServer,
    #[error("already enrolled (fleet.pem exists in {0}); pass --force to enroll again")]
    AlreadyEnrolled(String),
    #[error("the server returned a certificate {0}")]
    BadCertificate(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("fleet CA: {0}")]
    Cert(#[from] CertError),
}

/// Normalizes a pin to `sha256:<lowercase hex>`.
pub fn parse_pin(pin: &str) -> Result<String, EnrollError> {
    let bad = || EnrollError::BadPin(pin.to_owned());
    let hex = pin.trim().strip_prefix("sha256:").ok_or_else(bad)?;
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
}

/// Checks that the bundle `fleet_ca_pem` holds the CA the pin `expected` (normalized) names.
pub fn check_pin(expected: &str, fleet_ca_pem: &str) -> Result<(), EnrollError> {
    pinned_ca(expected, fleet_ca_pem).map(|_| ())
}

/// The certificate of the bundle `fleet_ca_pem` the pin `expected` names (DER): the only CA
/// trusted until the server has proven itself. A bundle holds two CAs while the fleet CA
/// rotates; the others come from an unauthenticated answer and are never trusted from it.
pub fn pinned_ca(expected: &str, fleet_ca_pem: &str) -> Result<Vec<u8>, EnrollError> {
    let ders = keys::cert_ders(fleet_ca_pem)?;
    let pins: Vec<String> = ders.iter().map(|der| keys::der_pin(der)).collect();
    match pins.iter().position(|pin| pin == expected) {
        Some(at) => Ok(ders[at].clone()),
        None => Err(EnrollError::PinMismatch {
            expected: expected.to_owned(),
            actual: pins.join(", "),
        }),
    }
}

/// Enrolls this host with the server and saves the fleet credentials in `state`.
pub async fn enroll(
    state: &StateDir,
    opts: &EnrollOptions,
    force: bool,
) -> Result<EnrollOutcome, EnrollError> {
    let pin = parse_pin(&opts.ca_hash)?;
    if !force && state.fleet()?.is_some() {
        return Err(EnrollError::AlreadyEnrolled(
            state.dir.display().to_string(),
        ));
    }
    // One list for both clients: the server that gave the CA is asked to enroll first.
    let servers = Arc::new(Servers::new(opts.servers.clone()).ok_or(EnrollError::NoServer)?);
    let fleet_ca = ApiClient::new(servers.clone(), tls::unverified()?)?
        .fleet_ca()
        .await?;
    let pinned = pinned_ca(&pin, &fleet_ca.fleet_ca_pem)?;
    tracing::info!(server = servers.current(), %pin, "fleet CA matches the pin");
    let client = ApiClient::new(servers.clone(), tls::pinned_to(vec![pinned.into()], None)?)?;
    let key = pending_key(state, &opts.node)?;
    let request = EnrollRequest {
        node: opts.node.clone(),
        token: opts.token.as_ref().map(|t| t.0.clone()),
        csr_pem: key.csr_pem.clone(),
    };
    let fingerprint = calseg_api::fingerprint::of_public_key(&key.public_key_der);
    let deadline = opts.wait.map(|wait| tokio::time::Instant::now() + wait);
    let mut attempt = 0;
    let mut fingerprint_shown: Option<tokio::time::Instant> = None;
    loop {
        let delay = match client.enroll(&request).await {
            Ok(EnrollResponse::Enrolled {
                cert_pem,
                fleet_ca_pem,
            }) => {
                check_pin(&pin, &fleet_ca_pem)?;
                let not_after = check_issued(&cert_pem, &key, &opts.node)?;
                state.save_fleet(&FleetCredentials {
                    key: key.key,
                    cert_pem,
                    ca_pem: fleet_ca_pem,
                })?;
                state.save_servers(servers.urls())?;
                state.save_current_server(servers.current())?;
                state.remove(StateDir::PENDING_KEY)?;
                state.remove(StateDir::PENDING_CSR)?;
                // A new enrollment (a revoked node coming back with a new token) is served again.
                state.clear_revoked()?;
                return Ok(EnrollOutcome::Enrolled { not_after });
            }
            Ok(EnrollResponse::Pending { retry_after_secs }) => {
                let now = tokio::time::Instant::now();
                if fingerprint_shown.is_none_or(|at| now.duration_since(at) >= FINGERPRINT_EVERY) {
                    fingerprint_shown = Some(now);
                    tracing::warn!(
                        node = %opts.node,
                        key_fingerprint = %fingerprint,
                        "enrollment pending approval; on the server, check that `calseg-server nodes show {node}` shows this key, then run: calseg-server nodes approve {node} --fingerprint {fingerprint}",
                        node = opts.node,
                    );
                } else {
                    tracing::debug!(node = %opts.node, key_fingerprint = %fingerprint, "still pending approval");
                }
                attempt = 0;
                Duration::from_secs(retry_after_secs.clamp(1, 300))
            }
            Err(e) if e.is_transient() && deadline.is_some() => {
                attempt += 1;
                tracing::warn!(error = %e, "enrollment call failed; retrying");
                backoff::delay(
                    attempt,
                    Duration::from_secs(60),
                    backoff::random_unit(),
                    e.retry_after(),
                )
            }
            Err(e) => return Err(e.into()),
        };
        let pending = || EnrollOutcome::Pending {
            fingerprint: fingerprint.clone(),
        };
        let Some(deadline) = deadline else {
            return Ok(pending());
        };
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(pending());
        }
        tokio::time::sleep(delay.min(deadline - now)).await;
    }
}

/// The pending fleet key and CSR, made (and saved, key 0600) if there is none.
fn pending_key(state: &StateDir, node: &str) -> Result<NewKey, EnrollError> {
    if let Some(pem) = state.read(StateDir::PENDING_KEY)? {
        let key = keys::csr_for(&PrivateKeyPem::new(pem), node)?;
        if let Some(csr_pem) = state.read(StateDir::PENDING_CSR)? {
            return Ok(NewKey { csr_pem, ..key });
        }
        return Ok(key);
    }
    let key = keys::generate(KeyAlgorithm::P256, node)?;
    state.write(StateDir::PENDING_KEY, key.key.expose().as_bytes(), 0o600)?;
    state.write(StateDir::PENDING_CSR, key.csr_pem.as_bytes(), 0o644)?;
    Ok(key)
}

/// Checks a returned certificate is for our key and name; returns its expiry.
fn check_issued(cert_pem: &str, key: &NewKey, cn: &str) -> Result<OffsetDateTime, EnrollError> {
    let info = keys::cert_info(cert_pem).map_err(|e| EnrollError::BadCertificate(e.to_string()))?;
    if info.public_key_der != key.public_key_der {
        return Err(EnrollError::BadCertificate("for another key".into()));
    }
    if info.common_name != cn {
        return Err(EnrollError::BadCertificate(format!(
            "with CN {:?}, not {cn:?}",
            info.common_name
        )));
    }
    Ok(info.not_after)
}

/// When the fleet certificate is due for renewal: at 2/3 of its lifetime.
pub fn fleet_renew_at(cert_pem: &str) -> Result<OffsetDateTime, CertError> {
    let info = keys::cert_info(cert_pem)?;
    Ok(renew_at(
        info.not_before,
        info.not_after,
        2.0 / 3.0,
        time::Duration::ZERO,
    ))
}

/// The fleet CA the server asks for, when this node's fleet certificate does not come from it:
/// during a fleet CA rotation the manifest names the CA that signs now. The certificate is
/// checked against the CA of that fingerprint in the saved bundle; a CA not in the bundle
/// (this node has not renewed since the rotation began) is asked for too.
pub fn fleet_ca_asked(
    state: &StateDir,
    fleet: &FleetCredentials,
) -> Result<Option<String>, EnrollError> {
    let Some(wanted) = state.manifest().ok().flatten().and_then(|m| m.fleet_ca) else {
        return Ok(None);
    };
    let ders = keys::cert_ders(&fleet.ca_pem)?;
    let from_wanted = match ders.iter().find(|der| keys::der_pin(der) == wanted) {
        Some(ca) => keys::signed_by(&fleet.cert_pem, ca)?,
        None => false,
    };
    Ok((!from_wanted).then_some(wanted))
}

/// Renews the fleet certificate if it is due at `now`, or the server asks for one from
/// another CA ([`fleet_ca_asked`]), with a new key. Returns the new
/// credentials, or `None` when not due.
pub async fn renew_fleet_if_due(
    state: &StateDir,
    client: &ApiClient,
    node: &str,
    now: OffsetDateTime,
) -> Result<Option<FleetCredentials>, EnrollError> {
    let Some(fleet) = state.fleet()? else {
        return Ok(None);
    };
    let asked = fleet_ca_asked(state, &fleet)?;
    if now < fleet_renew_at(&fleet.cert_pem)? && asked.is_none() {
        return Ok(None);
    }
    if let Some(wanted) = &asked {
        tracing::info!(fleet_ca = %wanted, "the server signs fleet certificates from another CA now: renewing");
    }
    let key = keys::generate(KeyAlgorithm::P256, node)?;
    let request = FleetRenewRequest {
        csr_pem: key.csr_pem.clone(),
    };
    match client.fleet_renew(&request).await? {
        EnrollResponse::Enrolled {
            cert_pem,
            fleet_ca_pem,
        } => {
            check_issued(&cert_pem, &key, node)?;
            let renewed = FleetCredentials {
                key: key.key,
                cert_pem,
                ca_pem: fleet_ca_pem,
            };
            state.save_fleet(&renewed)?;
            tracing::info!("fleet certificate renewed");
            Ok(Some(renewed))
        }
        EnrollResponse::Pending { .. } => Err(EnrollError::BadCertificate(
            "renewal answered \"pending\"".into(),
        )),
    }
}

#[cfg(test)]
mod tests;
