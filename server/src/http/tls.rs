//! The server's TLS: its certificate chain (server certificate + fleet CAs) and a client
//! verifier that accepts certificates of the trusted fleet CAs and also lets enrollment through
//! without one. Both can be replaced while the server runs ([`LiveTls::replace`]), as a fleet CA
//! rotation needs; connections made after that see the new ones. Which calls need which
//! certificate is decided per route from the verified peer.

use anyhow::{Context, Result, anyhow};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::sync::{Arc, RwLock};
use std::time::Instant;

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

/// The rustls configuration of the API listener, fixed (benchmarks, tests).
pub fn server_config(
    server_cert_pem: &str,
    server_key_pem: &str,
    fleet_ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>> {
    Ok(LiveTls::new(server_cert_pem, server_key_pem, fleet_ca_pem)?.config())
}

/// The API listener's TLS configuration, whose certificate and trusted fleet CAs can be
/// replaced while it serves.
#[derive(Debug)]
pub struct LiveTls {
    config: Arc<rustls::ServerConfig>,
    verifier: Arc<LiveVerifier>,
    certificate: Arc<LiveCertificate>,
    /// When it was last replaced: client certificates verified before are checked again.
    replaced_at: RwLock<Option<Instant>>,
}

impl LiveTls {
    /// The server certificate and key, and the fleet CAs (a PEM bundle) whose client
    /// certificates are accepted.
    pub fn new(server_cert_pem: &str, server_key_pem: &str, fleet_ca_pem: &str) -> Result<Self> {
        let (certified, verifier) = parts(server_cert_pem, server_key_pem, fleet_ca_pem)?;
        let verifier = Arc::new(LiveVerifier(RwLock::new(verifier)));
        let certificate = Arc::new(LiveCertificate(RwLock::new(certified)));
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_client_cert_verifier(verifier.clone())
            .with_cert_resolver(certificate.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            verifier,
            certificate,
            replaced_at: RwLock::new(None),
        })
    }

    /// The configuration to accept connections with.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.config)
    }

    /// Replaces the certificate and the trusted fleet CAs; nothing changes if any is bad.
    pub fn replace(
        &self,
        server_cert_pem: &str,
        server_key_pem: &str,
        fleet_ca_pem: &str,
    ) -> Result<()> {
        let (certified, verifier) = parts(server_cert_pem, server_key_pem, fleet_ca_pem)?;
        *write(&self.verifier.0) = verifier;
        *write(&self.certificate.0) = certified;
        *write(&self.replaced_at) = Some(Instant::now());
        Ok(())
    }

    /// Whether it was replaced after `at` (a client certificate verified then may no longer be
    /// trusted).
    pub fn replaced_since(&self, at: Instant) -> bool {
        read(&self.replaced_at).is_some_and(|replaced| replaced >= at)
    }
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    lock.read()
        .map(|g| g.clone())
        .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
}

/// The certificate with its key and chain, and a verifier of client certificates.
fn parts(
    server_cert_pem: &str,
    server_key_pem: &str,
    fleet_ca_pem: &str,
) -> Result<(Arc<CertifiedKey>, Arc<dyn ClientCertVerifier>)> {
    let mut chain = certificates(server_cert_pem).context("server certificate")?;
    let fleet_cas = certificates(fleet_ca_pem).context("fleet CA certificate")?;
    chain.extend(fleet_cas.iter().cloned());
    let key = PrivateKeyDer::from_pem_slice(server_key_pem.as_bytes())
        .map_err(|e| anyhow!("server key: {e:?}"))?;
    let provider = provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .context("server key")?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified
        .keys_match()
        .context("the server key does not match the server certificate")?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in fleet_cas {
        roots.add(ca).context("fleet CA as client trust root")?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .context("client certificate verifier")?;
    Ok((Arc::new(certified), verifier))
}

/// The server certificate in force.
#[derive(Debug)]
struct LiveCertificate(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for LiveCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(read(&self.0))
    }
}

/// The client verifier in force: webpki's, over the trusted fleet CAs.
#[derive(Debug)]
struct LiveVerifier(RwLock<Arc<dyn ClientCertVerifier>>);

impl ClientCertVerifier for LiveVerifier {
    fn offer_client_auth(&self) -> bool {
        read(&self.0).offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        read(&self.0).client_auth_mandatory()
    }

    /// None: the CAs change while the server runs, and an empty list lets clients send any
    /// certificate (agents and the admin CLI have one each).
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        read(&self.0).verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        read(&self.0).verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        read(&self.0).verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        read(&self.0).supported_verify_schemes()
    }
}
