//! The HTTPS client to calseg-server: reqwest over a rustls configuration the agent builds
//! itself ([`tls`]), JSON bodies, [`ApiError`] bodies on failure, `Retry-After` on 429/503,
//! failover between the server's replicas ([`servers`]), and [`backoff`] for calls that fail
//! because no server can be reached.

pub mod backoff;
pub mod host;
pub mod servers;
pub mod tls;

pub use servers::Servers;

use crate::state::FleetCredentials;
use calseg_api::certificates::{SignRequest, SignResponse};
use calseg_api::enroll::{EnrollRequest, EnrollResponse, FleetCa, FleetRenewRequest};
use calseg_api::error::ApiError;
use calseg_api::lease::{LeaseGrant, LeaseRequest};
use calseg_api::manifest::Manifest;
use calseg_api::paths;
use calseg_api::report::Report;
use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_NONE_MATCH, RETRY_AFTER};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

/// Why a call to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer: connection refused, timeout, TLS handshake failure, ...
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    /// The server answered with an error.
    #[error("{url}: server said {status} {kind}: {message}")]
    Api {
        url: String,
        status: u16,
        kind: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The server answered something the agent does not understand.
    #[error("{url}: unexpected answer: {message}")]
    Protocol { url: String, message: String },
    /// The TLS configuration could not be built from the saved credentials.
    #[error("TLS setup: {0}")]
    Tls(String),
}

impl ClientError {
    /// A stable name of the failure, for logs and reports.
    pub fn kind(&self) -> &str {
        match self {
            Self::Unreachable { .. } => "unreachable",
            Self::Api { kind, .. } => kind,
            Self::Protocol { .. } => "protocol",
            Self::Tls(_) => "tls_setup",
        }
    }

    /// The server refused this node because an operator revoked it (403
    /// [`calseg_api::error::NODE_REVOKED`]): its etcd identities are gone and asking again
    /// will not help; only a new enrollment does. Neither transient nor an ordinary failure.
    pub fn is_revoked(&self) -> bool {
        matches!(self, Self::Api { status: 403, kind, .. } if kind == calseg_api::error::NODE_REVOKED)
    }

    /// Worth retrying later without changing anything: unreachable, 429 or 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Api { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// The server's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The answer to a manifest request.
#[derive(Debug, Clone, PartialEq)]
pub enum ManifestFetch {
    /// A manifest, new or changed, with its ETag (unquoted).
    Fresh { manifest: Manifest, etag: String },
    /// Same revision as the ETag sent.
    NotModified,
}

/// The answer to a manifest long-poll ([`ApiClient::manifest_wait`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LongPoll {
    /// The node's manifest is no longer the ETag sent: run a pass.
    Changed,
    /// Still the same revision: at the end of the wait, or at once (with the server's
    /// `Retry-After`, if any) when the server would not park the request.
    NotModified { retry_after: Option<Duration> },
}

/// How much longer than the requested wait a long-poll may take before the client gives up.
const LONG_POLL_GRACE: Duration = Duration::from_secs(15);

/// A client for the servers in one [`Servers`] list and one TLS configuration. Clones share
/// the list, so a switch made by one call holds for every clone.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    servers: Arc<Servers>,
}

impl ApiClient {
    /// A client using `tls`, for `servers`.
    pub fn new(servers: Arc<Servers>, tls: rustls::ClientConfig) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("calseg-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        Ok(Self { http, servers })
    }

    /// Mutual TLS with the fleet certificate; every server verified against the fleet CA only.
    pub fn mtls(servers: Arc<Servers>, fleet: &FleetCredentials) -> Result<Self, ClientError> {
        Self::new(
            servers,
            tls::pinned(&fleet.ca_pem, Some((&fleet.cert_pem, &fleet.key)))?,
        )
    }

    /// The servers and the one in use.
    pub fn servers(&self) -> &Arc<Servers> {
        &self.servers
    }

    /// Sends the request `build` makes for `path` to the current server, and on to the next
    /// ones while [`servers::fails_over`] says so. Returns the answer and the URL it came from.
    async fn call(
        &self,
        path: &str,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<(reqwest::Response, String), ClientError> {
        let start = self.servers.current_index();
        let mut failed = Vec::new();
        for (index, base) in self.servers.attempts() {
            let url = format!("{base}{path}");
            let result = self.send(build(&self.http, &url), &url).await;
            match result {
                Err(e) if servers::fails_over(&e) => {
                    tracing::debug!(error = %e, "call failed; trying the next server");
                    failed.push(e);
                }
                answered => {
                    // Any answer, even a 4xx, shows this server serves: stick to it.
                    self.servers.switch(start, index, &failed);
                    return answered.map(|response| (response, url));
                }
            }
        }
        Err(self.servers.exhausted(failed))
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            url: url.to_owned(),
            message: error_chain(&e),
        })?;
        if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.text().await.unwrap_or_default();
        let (kind, message) = match serde_json::from_str::<ApiError>(&body) {
            Ok(api) => (api.kind, api.message),
            Err(_) => ("http_error".to_owned(), body.chars().take(200).collect()),
        };
        Err(ClientError::Api {
            url: url.to_owned(),
            status,
            kind,
            message,
            retry_after,
        })
    }

    async fn json<T: DeserializeOwned>(
        response: reqwest::Response,
        url: &str,
    ) -> Result<T, ClientError> {
        response
            .json::<T>()
            .await
            .map_err(|e| ClientError::Protocol {
                url: url.to_owned(),
                message: error_chain(&e),
            })
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(StatusCode, T), ClientError> {
        let (response, url) = self
            .call(path, |http, url| http.post(url).json(body))
            .await?;
        let status = response.status();
        Ok((status, Self::json(response, &url).await?))
    }

    /// `GET /v1/fleet-ca`.
    pub async fn fleet_ca(&self) -> Result<FleetCa, ClientError> {
        let (response, url) = self
            .call(paths::FLEET_CA, |http, url| http.get(url))
            .await?;
        Self::json(response, &url).await
    }

    /// `POST /v1/enroll`: 200 enrolled, 202 pending.
    pub async fn enroll(&self, request: &EnrollRequest) -> Result<EnrollResponse, ClientError> {
        Ok(self.post(paths::ENROLL, request).await?.1)
    }

    /// `POST /v1/fleet/renew`.
    pub async fn fleet_renew(
        &self,
        request: &FleetRenewRequest,
    ) -> Result<EnrollResponse, ClientError> {
        Ok(self.post(paths::FLEET_RENEW, request).await?.1)
    }

    /// `GET /v1/manifest`, conditional on `etag` (the last revision) when given.
    pub async fn manifest(&self, etag: Option<&str>) -> Result<ManifestFetch, ClientError> {
        let (response, url) = self
            .call(paths::MANIFEST, |http, url| {
                let request = http.get(url);
                match etag {
                    Some(etag) => request.header(IF_NONE_MATCH, format!("\"{etag}\"")),
                    None => request,
                }
            })
            .await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(ManifestFetch::NotModified);
        }
        let header = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.trim()
                    .trim_start_matches("W/")
                    .trim_matches('"')
                    .to_owned()
            });
        let manifest: Manifest = Self::json(response, &url).await?;
        let etag = header.unwrap_or_else(|| manifest.revision.clone());
        Ok(ManifestFetch::Fresh { manifest, etag })
    }

    /// `GET /v1/manifest?wait=N` with `If-None-Match: etag`: the server answers when the
    /// node's manifest changes or after `wait` (whole seconds, at least 1). The manifest body
    /// of a change is not kept: the pass that follows fetches it.
    pub async fn manifest_wait(&self, etag: &str, wait: Duration) -> Result<LongPoll, ClientError> {
        let secs = wait.as_secs().max(1);
        let path = format!("{}?wait={secs}", paths::MANIFEST);
        let (response, _) = self
            .call(&path, |http, url| {
                http.get(url)
                    .header(IF_NONE_MATCH, format!("\"{etag}\""))
                    .timeout(Duration::from_secs(secs) + LONG_POLL_GRACE)
            })
            .await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Ok(LongPoll::NotModified { retry_after });
        }
        Ok(LongPoll::Changed)
    }

    /// `POST /v1/certificates`.
    pub async fn sign(&self, request: &SignRequest) -> Result<SignResponse, ClientError> {
        Ok(self.post(paths::CERTIFICATES, request).await?.1)
    }

    /// `POST /v1/restart-lease`: a lease, or `Api { status: 429, retry_after, .. }` while the
    /// fleet's restart budget is full.
    pub async fn acquire_lease(&self, request: &LeaseRequest) -> Result<LeaseGrant, ClientError> {
        Ok(self.post(paths::RESTART_LEASE, request).await?.1)
    }

    /// `POST /v1/restart-lease/{id}/renew`.
    pub async fn renew_lease(&self, lease_id: &str) -> Result<LeaseGrant, ClientError> {
        let path = paths::lease_renew(lease_id);
        let (response, url) = self.call(&path, |http, url| http.post(url)).await?;
        Self::json(response, &url).await
    }

    /// `DELETE /v1/restart-lease/{id}` → 204.
    pub async fn release_lease(&self, lease_id: &str) -> Result<(), ClientError> {
        let path = paths::lease(lease_id);
        self.call(&path, |http, url| http.delete(url))
            .await
            .map(drop)
    }

    /// `POST /v1/report` → 204.
    pub async fn report(&self, report: &Report) -> Result<(), ClientError> {
        self.call(paths::REPORT, |http, url| http.post(url).json(report))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests;

/// An error and its sources on one line (reqwest hides the useful part in the chain).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
