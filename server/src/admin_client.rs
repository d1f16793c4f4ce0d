//! The HTTPS client of the admin commands: mutual TLS with an administrator certificate, the
//! server verified against the fleet CA only.

use crate::config::ServerConfig;
use anyhow::{Context, Result, anyhow, bail};
use calseg_api::error::ApiError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

/// A client of the running server's admin API.
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
}

impl AdminClient {
    /// Builds the client from server.toml's `[admin]` section.
    pub fn from_config(config: &ServerConfig) -> Result<Self> {
        let admin = &config.admin;
        let missing = |key: &str| {
            anyhow!(
                "no `{key}` under [admin] in server.toml: the admin commands need it to reach the server (`calseg-server init` writes it)"
            )
        };
        let base = admin.server.clone().ok_or_else(|| missing("server"))?;
        let read = |path: &Option<std::path::PathBuf>, key: &str| -> Result<Vec<u8>> {
            let path = path.as_ref().ok_or_else(|| missing(key))?;
            std::fs::read(path).with_context(|| format!("read [admin] {key} {}", path.display()))
        };
        let ca = read(&admin.ca_file, "ca_file")?;
        let cert = read(&admin.cert_file, "cert_file")?;
        let key = read(&admin.key_file, "key_file")?;
        let mut roots = rustls::RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(&ca) {
            roots.add(der.map_err(|e| anyhow!("[admin] ca_file: {e:?}"))?)?;
        }
        let chain = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow!("[admin] cert_file: {e:?}"))?;
        let key =
            PrivateKeyDer::from_pem_slice(&key).map_err(|e| anyhow!("[admin] key_file: {e:?}"))?;
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// GET `path` and decode the JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await;
        decode(path, response).await
    }

    /// POST `body` to `path` and decode the JSON answer.
    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await;
        decode(path, response).await
    }

    /// DELETE `path` and decode the JSON answer.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let response = self
            .http
            .delete(format!("{}{path}", self.base))
            .send()
            .await;
        decode(path, response).await
    }
}

/// The running server could not be reached at all (no connection, or no answer in time):
/// nothing was done, and `main` exits [`calseg_api::exit::UNREACHABLE`] rather than 1.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot reach the calseg server for {path} (is it running? check [admin] server in server.toml)"
)]
pub struct ServerUnreachable {
    path: String,
    #[source]
    source: reqwest::Error,
}

async fn decode<T: DeserializeOwned>(
    path: &str,
    response: reqwest::Result<reqwest::Response>,
) -> Result<T> {
    let response = match response {
        Ok(response) => response,
        Err(source) if source.is_connect() || source.is_timeout() => {
            return Err(ServerUnreachable {
                path: path.to_owned(),
                source,
            }
            .into());
        }
        Err(source) => {
            return Err(source).with_context(|| format!("reach the calseg server for {path}"));
        }
    };
    let status = response.status();
    let bytes = response.bytes().await?;
    if !status.is_success() {
        match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(error) => bail!(
                "the server refused ({status}, {}): {}",
                error.kind,
                error.message
            ),
            Err(_) => bail!(
                "the server answered {status}: {}",
                String::from_utf8_lossy(&bytes)
            ),
        }
    }
    serde_json::from_slice(&bytes).with_context(|| format!("decode the answer to {path}"))
}

/// [`decode`]'s error for a response, for the exit-status tests.
#[cfg(test)]
pub(crate) async fn decode_for_test(response: reqwest::Result<reqwest::Response>) -> anyhow::Error {
    match decode::<serde_json::Value>("/v1/test", response).await {
        Ok(value) => anyhow!("decoded {value}"),
        Err(error) => error,
    }
}
