//! An etcd client for calseg-server itself, authenticated by its own client certificate.

use anyhow::{Context, Result};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use std::path::PathBuf;
use std::time::Duration;

/// How calseg-server reaches etcd as an administrator (a user holding the root role).
#[derive(Debug, Clone)]
pub struct EtcdAccess {
    pub endpoints: Vec<String>,
    /// CA that signed etcd's server certificate.
    pub ca_file: PathBuf,
    /// calseg's client certificate (CN = an etcd user with the root role) and its key.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Connects to etcd with calseg's client certificate. Reading the files is the only I/O before
/// the first request.
pub async fn connect(access: &EtcdAccess) -> Result<Client> {
    let read = |path: &PathBuf, what: &str| {
        std::fs::read(path).with_context(|| format!("read the etcd {what} {}", path.display()))
    };
    let ca = read(&access.ca_file, "CA certificate")?;
    let cert = read(&access.cert_file, "client certificate")?;
    let key = read(&access.key_file, "client key")?;
    let tls = TlsOptions::new()
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(cert, key));
    let options = ConnectOptions::new()
        .with_tls(tls)
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(15))
        .with_keep_alive(Duration::from_secs(30), Duration::from_secs(10));
    Client::connect(&access.endpoints, Some(options))
        .await
        .with_context(|| format!("connect to etcd at {}", access.endpoints.join(",")))
}
