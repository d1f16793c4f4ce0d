//! Who is calling: nobody (enrollment), a node, or an administrator, as named by the client
//! certificate rustls verified against the fleet CA. Node names cannot contain ':', so the
//! `admin:` prefix of administrator certificates can never be a node's.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::errors::ApiFailure;

pub use crate::pki::admin::ADMIN_PREFIX;

/// The verified peer of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    Node {
        name: String,
        serial: String,
    },
    Admin {
        name: String,
        serial: String,
        /// Why this administrator certificate may not act (too long-lived), if it may not.
        refused: Option<String>,
    },
}

impl Caller {
    /// Reads CN and serial from the verified leaf certificate.
    pub fn from_certificate(der: Option<&[u8]>) -> Self {
        let Some(der) = der else {
            return Self::Anonymous;
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return Self::Anonymous;
        };
        let serial = hex::encode(cert.raw_serial());
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        match cn.strip_prefix(ADMIN_PREFIX) {
            Some(name) => Self::Admin {
                name: name.to_owned(),
                serial,
                refused: crate::pki::admin::refusal(
                    cert.validity().not_before.timestamp(),
                    cert.validity().not_after.timestamp(),
                ),
            },
            None if !cn.is_empty() => Self::Node { name: cn, serial },
            None => Self::Anonymous,
        }
    }
}

/// The client certificate rustls verified for the connection, and when.
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    pub der: std::sync::Arc<[u8]>,
    pub verified_at: std::time::Instant,
}

/// Refuses a request on a connection whose client certificate was verified before the trusted
/// fleet CAs last changed and no longer comes from one of them (the old CA after a rotation's
/// `--finish`): a kept-alive connection must not outlive its CA.
pub fn still_trusted(
    state: &super::state::AppState,
    request: &axum::extract::Request,
) -> Result<(), ApiFailure> {
    let (Some(certificate), Some(tls)) = (
        request.extensions().get::<PeerCertificate>(),
        state.fleet_tls(),
    ) else {
        return Ok(());
    };
    if !tls.live().replaced_since(certificate.verified_at)
        || state
            .control
            .fleet_cas()
            .issuer_of(&certificate.der)
            .is_some()
    {
        return Ok(());
    }
    Err(ApiFailure::new(
        axum::http::StatusCode::UNAUTHORIZED,
        "fleet_ca_not_trusted",
        "this connection's client certificate comes from a fleet CA the server no longer trusts; reconnect with a certificate of the fleet CA in force",
    ))
}

/// A request from an enrolled node (its fleet certificate); refused otherwise.
pub struct NodeCaller {
    pub name: String,
    pub serial: String,
}

/// A request from an administrator certificate; refused otherwise.
pub struct AdminCaller {
    pub name: String,
}

impl AdminCaller {
    /// The administrator as the audit log and node records name it: `admin:<name>`.
    pub fn actor(&self) -> String {
        format!("{ADMIN_PREFIX}{}", self.name)
    }
}

fn caller_of(parts: &Parts) -> Caller {
    parts
        .extensions
        .get::<Caller>()
        .cloned()
        .unwrap_or(Caller::Anonymous)
}

impl<S: Send + Sync> FromRequestParts<S> for NodeCaller {
    type Rejection = ApiFailure;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match caller_of(parts) {
            Caller::Node { name, serial } => Ok(Self { name, serial }),
            Caller::Admin { .. } => Err(ApiFailure::forbidden(
                "admin_not_node",
                "an administrator certificate cannot act as a node",
            )),
            Caller::Anonymous => Err(ApiFailure::unauthorized(
                "this call needs the node's fleet client certificate; enroll first with `calseg-agent enroll`",
            )),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AdminCaller {
    type Rejection = ApiFailure;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match caller_of(parts) {
            Caller::Admin {
                name,
                serial,
                refused: Some(why),
            } => {
                tracing::warn!(admin = %name, %serial, "administrator certificate refused: {why}");
                Err(ApiFailure::forbidden(
                    "admin_certificate_too_long_lived",
                    &why,
                ))
            }
            Caller::Admin { name, .. } => Ok(Self { name }),
            Caller::Node { name, .. } => Err(ApiFailure::forbidden(
                "not_admin",
                &format!("node {name}'s certificate may not use the admin API"),
            )),
            Caller::Anonymous => Err(ApiFailure::unauthorized(
                "the admin API needs an administrator certificate (see `calseg-server init`)",
            )),
        }
    }
}
