//! Does an etcd endpoint accept client certificates of the new CA? A throwaway identity (a key
//! made here, never written anywhere, a certificate for a user that does not exist, valid for
//! minutes) reads one key from one endpoint. Any answer from etcd, a refusal included, means
//! the TLS handshake accepted the certificate; a failed handshake or no connection means the
//! endpoint does not (yet) trust the CA, and the rotation waits.

use std::time::Duration;

use calseg_api::ca::EndpointTrust;
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use time::OffsetDateTime;

use crate::pki::{CertificateAuthority, CsrRules, KeyAlgorithm, PkiError, new_csr};

/// The Common Name of the throwaway identity: no etcd user of that name is ever created.
pub const PROBE_USER: &str = "calseg-ca-trust-probe";

/// How long the throwaway certificate is valid.
const PROBE_LIFETIME: Duration = Duration::from_secs(600);

/// A throwaway identity of `ca`, and what verifies etcd's server certificate.
pub struct ProbeTarget {
    cert_pem: String,
    key_pem: String,
    server_ca_pem: String,
}

impl ProbeTarget {
    /// A new throwaway identity from `ca`; `server_ca_pem` verifies etcd's server certificate.
    pub fn new(
        ca: &CertificateAuthority,
        server_ca_pem: &str,
        now: OffsetDateTime,
    ) -> Result<Self, PkiError> {
        let request = new_csr(PROBE_USER, KeyAlgorithm::EcdsaP256)?;
        let issued = ca
            .sign_client_csr(
                &request.csr_pem,
                &CsrRules::default(),
                PROBE_USER,
                PROBE_LIFETIME,
                now,
            )
            .map_err(|e| PkiError::InvalidRequest(format!("a probe certificate: {e}")))?;
        Ok(Self {
            cert_pem: issued.cert_pem,
            key_pem: request.key_pem,
            server_ca_pem: server_ca_pem.to_owned(),
        })
    }
}

/// Connects to `endpoint` alone with the throwaway identity and reads one key.
pub async fn probe_endpoint(
    target: &ProbeTarget,
    endpoint: &str,
    now: OffsetDateTime,
) -> EndpointTrust {
    let (trusted, detail) = match ask(target, endpoint).await {
        Ok(()) => (true, "answered a read".to_owned()),
        Err(etcd_client::Error::GRpcStatus(status)) if etcd_answered(status.code()) => {
            (true, format!("etcd answered ({})", status.message().trim()))
        }
        Err(error) => (
            false,
            format!("a client certificate of the new CA was not accepted: {error}"),
        ),
    };
    EndpointTrust {
        endpoint: endpoint.to_owned(),
        trusted,
        detail,
        checked_at: now.unix_timestamp(),
    }
}

/// Codes only etcd itself answers with, after the handshake accepted the certificate.
fn etcd_answered(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::PermissionDenied
            | tonic::Code::Unauthenticated
            | tonic::Code::InvalidArgument
            | tonic::Code::FailedPrecondition
            | tonic::Code::NotFound
    )
}

async fn ask(target: &ProbeTarget, endpoint: &str) -> Result<(), etcd_client::Error> {
    let tls = TlsOptions::new()
        .ca_certificate(Certificate::from_pem(target.server_ca_pem.as_bytes()))
        .identity(Identity::from_pem(
            target.cert_pem.as_bytes(),
            target.key_pem.as_bytes(),
        ));
    let options = ConnectOptions::new()
        .with_tls(tls)
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(5));
    let mut client = Client::connect([endpoint], Some(options)).await?;
    client.get(PROBE_USER, None).await.map(|_| ())
}
