//! A minimal client of calseg-server's API for the server's own end-to-end tests: it makes keys
//! and CSRs locally (rcgen), enrolls, and calls the node routes with its fleet certificate, or
//! with any other certificate a test wants to try. The real agent is `calseg-agent`.

use anyhow::{Result, anyhow};
use rcgen::{CertificateParams, DnType, KeyPair};
use reqwest::StatusCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;

/// A key and a CSR for `common_name`, made here.
pub fn key_and_csr(common_name: &str) -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}

/// An HTTPS client that trusts only `ca_pem` and presents `identity` (cert PEM, key PEM).
pub fn https_client(ca_pem: &str, identity: Option<(&str, &str)>) -> Result<reqwest::Client> {
    https_client_from(ca_pem, identity, None)
}

/// Like [`https_client`], its connections from the source address `local` (e.g. 127.0.0.2,
/// another "host" on loopback).
pub fn https_client_from(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
    local: Option<std::net::IpAddr>,
) -> Result<reqwest::Client> {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(der.map_err(|e| anyhow!("{e:?}"))?)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    let tls = match identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow!("{e:?}"))?;
            let key =
                PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| anyhow!("{e:?}"))?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .local_address(local)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// A call's status and JSON body (or the raw text when it is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: serde_json::Value,
    pub etag: Option<String>,
}

impl Answer {
    /// The `kind` of an error body.
    pub fn kind(&self) -> &str {
        self.body["kind"].as_str().unwrap_or_default()
    }
}

/// Sends a request and collects the answer.
pub async fn call(request: reqwest::RequestBuilder) -> Result<Answer> {
    let response = request.send().await?;
    let status = response.status();
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response.bytes().await?;
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
    });
    Ok(Answer { status, body, etag })
}

/// A node as the server sees it: a name, a fleet key, and (once enrolled) a fleet certificate.
pub struct TestNode {
    pub name: String,
    pub base: String,
    pub fleet_ca_pem: String,
    pub key_pem: String,
    pub csr_pem: String,
    pub cert_pem: Option<String>,
}

impl TestNode {
    pub fn new(name: &str, base: &str, fleet_ca_pem: &str) -> Result<Self> {
        let (key_pem, csr_pem) = key_and_csr(name)?;
        Ok(Self {
            name: name.to_owned(),
            base: base.to_owned(),
            fleet_ca_pem: fleet_ca_pem.to_owned(),
            key_pem,
            csr_pem,
            cert_pem: None,
        })
    }

    /// POST /v1/enroll (no client certificate); keeps the certificate when enrolled.
    pub async fn enroll(&mut self, token: Option<&str>) -> Result<Answer> {
        let client = https_client(&self.fleet_ca_pem, None)?;
        let body = calseg_api::enroll::EnrollRequest {
            node: self.name.clone(),
            token: token.map(str::to_owned),
            csr_pem: self.csr_pem.clone(),
        };
        let answer = call(
            client
                .post(format!("{}{}", self.base, calseg_api::paths::ENROLL))
                .json(&body),
        )
        .await?;
        if answer.body["status"] == "enrolled" {
            self.cert_pem = answer.body["cert_pem"].as_str().map(str::to_owned);
        }
        Ok(answer)
    }

    /// A client presenting this node's fleet certificate.
    pub fn client(&self) -> Result<reqwest::Client> {
        let cert = self
            .cert_pem
            .as_deref()
            .ok_or_else(|| anyhow!("{} is not enrolled", self.name))?;
        https_client(&self.fleet_ca_pem, Some((cert, &self.key_pem)))
    }

    /// One step of a simulated agent's long-poll loop: the manifest (plain GET while `etag` is
    /// empty, else `?wait=wait_secs` with If-None-Match). A new manifest updates `etag` and is
    /// returned; an error waits 200 ms, and a non-200 answer waits its Retry-After, returning
    /// `None` either way so the caller polls again.
    pub async fn next_manifest(&self, etag: &mut String, wait_secs: u64) -> Option<Answer> {
        let answer = if etag.is_empty() {
            self.manifest(None).await.map(|a| (a, None))
        } else {
            self.manifest_wait(etag, wait_secs).await
        };
        match answer {
            Ok((answer, _)) if answer.status == StatusCode::OK => {
                *etag = answer.etag.clone().unwrap_or_default();
                Some(answer)
            }
            Ok((_, retry_after)) => {
                tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(0))).await;
                None
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                None
            }
        }
    }

    /// GET /v1/manifest, optionally with If-None-Match.
    pub async fn manifest(&self, etag: Option<&str>) -> Result<Answer> {
        let mut request =
            self.client()?
                .get(format!("{}{}", self.base, calseg_api::paths::MANIFEST));
        if let Some(etag) = etag {
            request = request.header("if-none-match", etag);
        }
        call(request).await
    }

    /// GET /v1/manifest?wait=SECS with If-None-Match `etag` (as the ETag header gave it): a
    /// long-poll the server answers when this node's manifest changes (200) or after `wait_secs`
    /// (304). Returns the answer and its `Retry-After` in seconds, if any.
    pub async fn manifest_wait(&self, etag: &str, wait_secs: u64) -> Result<(Answer, Option<u64>)> {
        let response = self
            .client()?
            .get(format!(
                "{}{}?wait={wait_secs}",
                self.base,
                calseg_api::paths::MANIFEST
            ))
            .header("if-none-match", etag)
            .timeout(Duration::from_secs(wait_secs + 15))
            .send()
            .await?;
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let status = response.status();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Ok((Answer { status, body, etag }, retry_after))
    }

    /// POST /v1/certificates for `component` with a CSR for `common_name`; returns the answer
    /// and the private key that stays here.
    pub async fn sign(&self, component: &str, common_name: &str) -> Result<(Answer, String)> {
        let (key, csr) = key_and_csr(common_name)?;
        let answer = self.sign_csr(component, &csr).await?;
        Ok((answer, key))
    }

    /// POST /v1/report.
    pub async fn report(&self, report: &calseg_api::report::Report) -> Result<Answer> {
        call(
            self.client()?
                .post(format!("{}{}", self.base, calseg_api::paths::REPORT))
                .json(report),
        )
        .await
    }

    /// POST /v1/certificates with a given CSR text.
    pub async fn sign_csr(&self, component: &str, csr_pem: &str) -> Result<Answer> {
        let body = calseg_api::certificates::SignRequest {
            component: component.to_owned(),
            csr_pem: csr_pem.to_owned(),
        };
        call(
            self.client()?
                .post(format!("{}{}", self.base, calseg_api::paths::CERTIFICATES))
                .json(&body),
        )
        .await
    }
}

/// A client presenting the admin certificate `calseg-server init` wrote for `server`, for the
/// admin routes (`/v1/admin/...`).
pub fn admin_client(server: &crate::server::ServerProcess) -> Result<reqwest::Client> {
    let admin = server.dir().join("etc/admin");
    let cert = std::fs::read_to_string(admin.join("admin.pem"))?;
    let key = std::fs::read_to_string(admin.join("admin-key.pem"))?;
    https_client(&server.fleet_ca_pem(), Some((&cert, &key)))
}

/// `GET path` with `client`, failing unless it answers 200; the body as `T`.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> Result<T> {
    let response = client.get(url).send().await?;
    let status = response.status();
    if status != StatusCode::OK {
        return Err(anyhow!(
            "GET {url} answered {status}: {}",
            response.text().await?
        ));
    }
    Ok(response.json().await?)
}

/// The policy of a simulated fleet: every `sim-*` node runs calico-node (Calico 3.29's table),
/// whose unit is `unit` (change it to give every node a new manifest), plus `rollout` TOML
/// (e.g. `"[rollout]\ncanary = 1\nwave = \"25%\"\n"`, or empty).
pub fn sim_fleet_policy(endpoint: &str, unit: &str, rollout: &str) -> String {
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[components.calico-node]
grants = "calico-node"
restart = ["{unit}"]
[[hosts]]
match = "sim-*"
components = ["calico-node"]
{rollout}"#
    )
}

/// A report of a cycle at `revision`, with `errors` (none: healthy).
pub fn report_at(revision: &str, errors: &[&str]) -> calseg_api::report::Report {
    calseg_api::report::Report {
        revision: revision.to_owned(),
        identities: vec![],
        units: vec![],
        errors: errors.iter().map(|e| (*e).to_owned()).collect(),
    }
}

/// Enrolls one `TestNode` per name without a token (the server must auto-approve the names),
/// 20 at a time; an error names the first node that was not enrolled.
pub async fn enroll_auto(
    server_url: &str,
    fleet_ca_pem: &str,
    names: &[String],
) -> Result<Vec<Arc<TestNode>>> {
    let mut nodes = Vec::with_capacity(names.len());
    for chunk in names.chunks(20) {
        let mut enrolling = tokio::task::JoinSet::new();
        for name in chunk {
            let mut node = TestNode::new(name, server_url, fleet_ca_pem)?;
            enrolling.spawn(async move {
                let answer = node.enroll(None).await?;
                if answer.status != StatusCode::OK {
                    anyhow::bail!("{} was not enrolled: {answer:?}", node.name);
                }
                Ok(Arc::new(node))
            });
        }
        for enrolled in enrolling.join_all().await {
            nodes.push(enrolled?);
        }
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nodes)
}
