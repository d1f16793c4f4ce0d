//! rustls client configurations, all on the ring provider: verified against one pinned CA
//! (with or without the fleet client certificate), and the one deliberately unverified
//! configuration used only to fetch the fleet CA before it is checked against `--ca-hash`.

use super::ClientError;
use crate::keys::PrivateKeyPem;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err(what: &str) -> impl FnOnce(rustls::Error) -> ClientError + '_ {
    move |e| ClientError::Tls(format!("{what}: {e}"))
}

/// Certificates of a PEM bundle.
pub(crate) fn certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientError::Tls(format!("{what}: not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(ClientError::Tls(format!("{what}: no certificate found")));
    }
    Ok(certs)
}

/// A client that trusts only `ca_pem`, checks the server's name, and presents
/// `identity` (certificate PEM and key) when given.
pub fn pinned(
    ca_pem: &str,
    identity: Option<(&str, &PrivateKeyPem)>,
) -> Result<ClientConfig, ClientError> {
    pinned_to(certs(ca_pem, "fleet CA")?, identity)
}

/// [`pinned`], trusting the DER certificates `cas`.
pub fn pinned_to(
    cas: Vec<CertificateDer<'static>>,
    identity: Option<(&str, &PrivateKeyPem)>,
) -> Result<ClientConfig, ClientError> {
    let mut roots = RootCertStore::empty();
    for cert in cas {
        roots
            .add(cert)
            .map_err(tls_err("fleet CA is not a usable trust anchor"))?;
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err("TLS versions"))?
        .with_root_certificates(roots);
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert_pem, key)) => {
            // The key's PEM is never put in an error message.
            let key = PrivateKeyDer::from_pem_slice(key.expose().as_bytes())
                .map_err(|_| ClientError::Tls("fleet.key is not a PEM private key".into()))?;
            builder
                .with_client_auth_cert(certs(cert_pem, "fleet certificate")?, key)
                .map_err(tls_err("fleet certificate and key"))
        }
    }
}

/// A client that accepts any server certificate. Only for `GET /v1/fleet-ca`, whose answer is
/// trusted only if it matches the operator's pin.
pub fn unverified() -> Result<ClientConfig, ClientError> {
    let provider = provider();
    let verifier = AcceptAnyServer {
        algorithms: provider.signature_verification_algorithms,
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err("TLS versions"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// Accepts any certificate chain and name; still checks the handshake signatures, so the
/// peer holds the key of the certificate it showed.
#[derive(Debug)]
struct AcceptAnyServer {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
