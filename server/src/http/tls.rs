//! The server's TLS: its certificate chain (server certificate + fleet CA) and a client verifier
//! that accepts fleet-CA-signed client certificates and also lets enrollment through without one.
//! Which calls need which certificate is decided per route from the verified peer.

use anyhow::{Context, Result, anyhow};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::sync::Arc;

/// The ring provider: the workspace's one crypto provider.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses every certificate of a PEM bundle.
pub fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("bad PEM certificate: {e:?}"))?;
    if certs.is_empty() {
        return Err(anyhow!("no certificate in PEM"));
    }
    Ok(certs)
}

/// The rustls configuration of the API listener.
pub fn server_config(
    server_cert_pem: &str,
    server_key_pem: &str,
    fleet_ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>> {
    let mut chain = certificates(server_cert_pem).context("server certificate")?;
    chain.extend(certificates(fleet_ca_pem).context("fleet CA certificate")?);
    let key = PrivateKeyDer::from_pem_slice(server_key_pem.as_bytes())
        .map_err(|e| anyhow!("server key: {e:?}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in certificates(fleet_ca_pem)? {
        roots.add(ca).context("fleet CA as client trust root")?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .context("client certificate verifier")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("server certificate and key")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
