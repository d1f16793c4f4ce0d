//! `RogueServer`: a compromised calseg-server. It presents the real server's TLS certificate
//! and key (taken from a [`crate::server::ServerProcess`]'s state dir, as an attacker holding
//! calseg's keys would), so an enrolled agent that pins the fleet CA trusts it; it serves
//! whatever manifest the test hands it, grants every restart lease and keeps the reports it
//! receives. It signs nothing. Plain HTTP/1.1 over rustls, one request per connection,
//! loopback only; it stops when dropped.

use anyhow::{Context, Result};
use calseg_api::lease::LeaseGrant;
use calseg_api::manifest::Manifest;
use calseg_api::{paths, report::Report};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the rogue server serves and what it saw.
#[derive(Debug, Default)]
pub struct RogueState {
    pub manifest: Option<Manifest>,
    pub reports: Vec<Report>,
    /// `METHOD path` of every request, in order.
    pub requests: Vec<String>,
}

/// A hostile server on 127.0.0.1 with the real server's certificate.
pub struct RogueServer {
    port: u16,
    state: Arc<Mutex<RogueState>>,
    stop: Arc<AtomicBool>,
}

impl RogueServer {
    /// Listens with the certificate chain and key at `cert` and `key` (PEM).
    pub fn start(cert: &Path, key: &Path) -> Result<Self> {
        let chain = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("read {}", cert.display()))?
            .collect::<Result<Vec<_>, _>>()?;
        let key =
            PrivateKeyDer::from_pem_file(key).with_context(|| format!("read {}", key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let (state, stop) = (Arc::default(), Arc::new(AtomicBool::new(false)));
        let server = Self {
            port,
            state: Arc::clone(&state),
            stop: Arc::clone(&stop),
        };
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        let (config, state) = (Arc::clone(&config), Arc::clone(&state));
                        std::thread::spawn(move || {
                            let _ = handle(tcp, config, &state);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Serves `manifest` from now on.
    pub fn serve(&self, manifest: Manifest) {
        self.lock().manifest = Some(manifest);
    }

    /// The reports received so far.
    pub fn reports(&self) -> Vec<Report> {
        self.lock().reports.clone()
    }

    /// The requests received so far (`METHOD path`).
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RogueState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for RogueServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn handle(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    state: &Mutex<RogueState>,
) -> Result<()> {
    tcp.set_nonblocking(false)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ServerConnection::new(config)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = tls.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split(' ');
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let length: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = tls.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let mut state = state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    state.requests.push(format!("{method} {path}"));
    let grant = || {
        let expires = time::OffsetDateTime::now_utc() + time::Duration::minutes(2);
        let expires_at = expires
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let grant = LeaseGrant {
            lease_id: "rogue-lease".into(),
            expires_at,
            ttl_secs: 120,
        };
        serde_json::to_string(&grant).unwrap_or_default()
    };
    let (status, etag, json) = match (method, path) {
        ("GET", paths::MANIFEST) => match &state.manifest {
            Some(m) => (
                "200 OK",
                Some(m.revision.clone()),
                serde_json::to_string(m)?,
            ),
            None => ("503 Service Unavailable", None, String::new()),
        },
        ("POST", paths::REPORT) => {
            if let Ok(report) = serde_json::from_slice::<Report>(&body) {
                state.reports.push(report);
            }
            ("204 No Content", None, String::new())
        }
        ("POST", p) if p.starts_with(paths::RESTART_LEASE) => ("200 OK", None, grant()),
        ("DELETE", p) if p.starts_with(paths::RESTART_LEASE) => {
            ("204 No Content", None, String::new())
        }
        _ => (
            "404 Not Found",
            None,
            "{\"error\":\"not_found\"}".to_owned(),
        ),
    };
    drop(state);
    let mut response = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    if let Some(etag) = etag {
        response.push_str(&format!("ETag: \"{etag}\"\r\n"));
    }
    if !json.is_empty() {
        response.push_str("Content-Type: application/json\r\n");
    }
    response.push_str(&format!("Content-Length: {}\r\n\r\n{json}", json.len()));
    tls.write_all(response.as_bytes())?;
    tls.flush()?;
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Ok(())
}
