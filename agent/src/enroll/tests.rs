//! Enrollment against a small local HTTPS server (rustls, one thread per connection).

use super::*;
use crate::testutil::{TestCa, TestResult};
use calseg_api::enroll::FleetCa;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

type Handler = Arc<dyn Fn(&str, &str) -> (u16, String) + Send + Sync>;

/// Serves HTTPS on 127.0.0.1 with `cert_pem`/`key_pem`; returns the URL.
fn serve(
    cert_pem: &str,
    key_pem: &str,
    handler: Handler,
) -> Result<String, Box<dyn std::error::Error>> {
    let certs =
        CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("https://127.0.0.1:{}", listener.local_addr()?.port());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (config, handler) = (config.clone(), handler.clone());
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, stream);
                let _ = answer(&mut tls, &handler);
            });
        }
    });
    Ok(url)
}

fn answer<S: Read + Write>(stream: &mut S, handler: &Handler) -> std::io::Result<()> {
    let mut reader = BufReader::new(&mut *stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let (status, reply) = handler(path, &String::from_utf8_lossy(&body));
    write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
        reply.len()
    )?;
    stream.flush()
}

/// A fleet CA, a server certificate for `sans` signed by it, and a handler that enrolls
/// (or keeps pending) and records the CSRs it saw.
struct Fleet {
    ca: Arc<TestCa>,
    url: String,
    csrs: Arc<Mutex<Vec<String>>>,
}

fn fleet(sans: &[&str], approve: bool) -> Result<Fleet, Box<dyn std::error::Error>> {
    let ca = Arc::new(TestCa::new("fleet CA")?);
    let (cert, key) = ca.server_cert(sans)?;
    let csrs = Arc::new(Mutex::new(Vec::new()));
    let (ca2, csrs2) = (ca.clone(), csrs.clone());
    let handler: Handler = Arc::new(move |path, body| {
        let ca_json = |pem: &str| {
            serde_json::to_string(&FleetCa {
                fleet_ca_pem: pem.into(),
            })
            .unwrap_or_default()
        };
        match path {
            calseg_api::paths::FLEET_CA => (200, ca_json(&ca2.cert_pem)),
            calseg_api::paths::ENROLL => {
                let Ok(request) = serde_json::from_str::<EnrollRequest>(body) else {
                    return (400, String::new());
                };
                if let Ok(mut seen) = csrs2.lock() {
                    seen.push(request.csr_pem.clone());
                }
                let reply = if approve {
                    let now = OffsetDateTime::now_utc();
                    let cert_pem = ca2
                        .sign_csr(&request.csr_pem, now, now + time::Duration::days(90), 7)
                        .unwrap_or_default();
                    EnrollResponse::Enrolled {
                        cert_pem,
                        fleet_ca_pem: ca2.cert_pem.clone(),
                    }
                } else {
                    EnrollResponse::Pending {
                        retry_after_secs: 1,
                    }
                };
                (
                    if approve { 200 } else { 202 },
                    serde_json::to_string(&reply).unwrap_or_default(),
                )
            }
            _ => (
                404,
                r#"{"kind":"not_found","message":"no such path"}"#.into(),
            ),
        }
    });
    let url = serve(&cert, &key, handler)?;
    Ok(Fleet { ca, url, csrs })
}

fn options(fleet: &Fleet, pin: String, wait: Option<Duration>) -> EnrollOptions {
    EnrollOptions {
        servers: vec![fleet.url.clone()],
        ca_hash: pin,
        node: "node-1".into(),
        token: Some(Token::new("abc.def")),
        wait,
    }
}

#[test]
fn pins_are_normalized_and_checked() -> TestResult {
    let ca = TestCa::new("fleet CA")?;
    let pin = keys::ca_sha256_pin(&ca.cert_pem)?;
    assert!(
        check_pin(
            &parse_pin(&pin.to_uppercase().replace("SHA256", "sha256"))?,
            &ca.cert_pem
        )
        .is_ok()
    );
    assert!(matches!(
        parse_pin("sha256:abc"),
        Err(EnrollError::BadPin(_))
    ));
    assert!(matches!(
        parse_pin(&pin.replace("sha256:", "md5:")),
        Err(EnrollError::BadPin(_))
    ));
    let other = TestCa::new("other CA")?;
    let err = check_pin(&pin, &other.cert_pem)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains(&pin) && err.contains(&keys::ca_sha256_pin(&other.cert_pem)?),
        "{err}"
    );
    assert_eq!(
        format!("{:?}", Token::new("abc.secret")),
        "Token(<redacted>)"
    );
    Ok(())
}

#[tokio::test]
async fn a_server_whose_ca_does_not_match_the_pin_is_refused() -> TestResult {
    let fleet = fleet(&["127.0.0.1"], true)?;
    let impostor = TestCa::new("someone else's CA")?;
    let pin = keys::ca_sha256_pin(&impostor.cert_pem)?;
    let tmp = tempfile::tempdir()?;
    let state = StateDir::new(tmp.path());
    let err = enroll(&state, &options(&fleet, pin.clone(), None), false)
        .await
        .err();
    let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(
        matches!(err, Some(EnrollError::PinMismatch { .. })),
        "{text}"
    );
    assert!(
        text.contains(&pin) && text.contains(&keys::ca_sha256_pin(&fleet.ca.cert_pem)?),
        "{text}"
    );
    assert!(state.fleet()?.is_none());
    assert!(
        fleet.csrs.lock().map(|c| c.is_empty()).unwrap_or(false),
        "no CSR sent to an unpinned server"
    );
    Ok(())
}

#[tokio::test]
async fn enrolls_with_the_pin_and_saves_credentials_with_private_modes() -> TestResult {
    let fleet = fleet(&["127.0.0.1"], true)?;
    let pin = keys::ca_sha256_pin(&fleet.ca.cert_pem)?;
    let tmp = tempfile::tempdir()?;
    let state = StateDir::new(tmp.path().join("agent"));
    let outcome = enroll(&state, &options(&fleet, pin.clone(), None), false).await?;
    assert!(matches!(outcome, EnrollOutcome::Enrolled { .. }));
    let saved = state.fleet()?.ok_or("no fleet credentials")?;
    assert_eq!(keys::cert_info(&saved.cert_pem)?.common_name, "node-1");
    let mode = std::fs::metadata(state.path(StateDir::FLEET_KEY))?
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(state.servers()?, vec![fleet.url.clone()]);
    assert_eq!(state.read(StateDir::PENDING_KEY)?, None);
    // Enrolling again needs --force.
    let again = enroll(&state, &options(&fleet, pin, None), false).await;
    assert!(matches!(again, Err(EnrollError::AlreadyEnrolled(_))));
    Ok(())
}

#[tokio::test]
async fn pending_keeps_the_key_and_resends_the_same_csr() -> TestResult {
    let fleet = fleet(&["127.0.0.1"], false)?;
    let pin = keys::ca_sha256_pin(&fleet.ca.cert_pem)?;
    let tmp = tempfile::tempdir()?;
    let state = StateDir::new(tmp.path());
    let EnrollOutcome::Pending { fingerprint } =
        enroll(&state, &options(&fleet, pin.clone(), None), false).await?
    else {
        panic!("not pending");
    };
    let mode = std::fs::metadata(state.path(StateDir::PENDING_KEY))?
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let waited = enroll(
        &state,
        &options(&fleet, pin, Some(Duration::from_millis(1500))),
        false,
    )
    .await?;
    assert_eq!(
        waited,
        EnrollOutcome::Pending {
            fingerprint: fingerprint.clone()
        }
    );
    let csrs = fleet.csrs.lock().map(|c| c.clone()).unwrap_or_default();
    assert!(csrs.len() >= 2, "{}", csrs.len());
    assert!(
        csrs.iter().all(|c| *c == csrs[0]),
        "the same CSR every time"
    );
    // The fingerprint is SHA-256 over the CSR's SubjectPublicKeyInfo, as the server computes it.
    let (_, pem) = x509_parser::pem::parse_x509_pem(csrs[0].as_bytes())?;
    let (_, csr) = <x509_parser::certification_request::X509CertificationRequest as
        x509_parser::prelude::FromDer<_>>::from_der(&pem.contents)?;
    let spki = csr.certification_request_info.subject_pki.raw;
    assert_eq!(fingerprint, calseg_api::fingerprint::of_public_key(spki));
    assert!(
        fingerprint.starts_with("sha256:") && fingerprint.len() == 71,
        "{fingerprint}"
    );
    Ok(())
}

#[tokio::test]
async fn the_server_name_must_match_its_certificate_even_with_the_right_ca() -> TestResult {
    let fleet = fleet(&["calseg.example"], true)?;
    let pin = keys::ca_sha256_pin(&fleet.ca.cert_pem)?;
    let tmp = tempfile::tempdir()?;
    let state = StateDir::new(tmp.path());
    let err = enroll(&state, &options(&fleet, pin, None), false)
        .await
        .err();
    assert!(
        matches!(
            err,
            Some(EnrollError::Client(ClientError::Unreachable { .. }))
        ),
        "{err:?}"
    );
    assert!(state.fleet()?.is_none());
    Ok(())
}

/// A loopback URL nothing listens on.
fn dead_url() -> Result<String, Box<dyn std::error::Error>> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    Ok(format!("https://127.0.0.1:{port}"))
}

/// A replica that answers every request with `status` (and an API error body).
fn answering(status: u16) -> Result<(Arc<TestCa>, String), Box<dyn std::error::Error>> {
    let ca = Arc::new(TestCa::new("fleet CA")?);
    let (cert, key) = ca.server_cert(&["127.0.0.1"])?;
    let body = format!(r#"{{"kind":"k{status}","message":"always {status}"}}"#);
    let url = serve(&cert, &key, Arc::new(move |_, _| (status, body.clone())))?;
    Ok((ca, url))
}

#[tokio::test]
async fn enrollment_fails_over_past_a_dead_server_and_saves_the_whole_list() -> TestResult {
    let fleet = fleet(&["127.0.0.1"], true)?;
    let pin = keys::ca_sha256_pin(&fleet.ca.cert_pem)?;
    let dead = dead_url()?;
    let (_, broken) = answering(503)?;
    let tmp = tempfile::tempdir()?;
    let state = StateDir::new(tmp.path());
    let mut opts = options(&fleet, pin, None);
    opts.servers = vec![dead.clone(), broken.clone(), fleet.url.clone()];
    let outcome = enroll(&state, &opts, false).await?;
    assert!(
        matches!(outcome, EnrollOutcome::Enrolled { .. }),
        "{outcome:?}"
    );
    assert_eq!(state.servers()?, [dead, broken, fleet.url.clone()]);
    assert_eq!(state.current_server()?, Some(fleet.url.clone()));
    Ok(())
}

#[tokio::test]
async fn a_4xx_is_an_answer_and_is_not_failed_over() -> TestResult {
    let fleet = fleet(&["127.0.0.1"], true)?;
    // A replica with the same fleet CA that refuses enrollment: 403 is the service's answer.
    let (cert, key) = fleet.ca.server_cert(&["127.0.0.1"])?;
    let ca = fleet.ca.clone();
    let refusing = serve(
        &cert,
        &key,
        Arc::new(move |path, _| match path {
            calseg_api::paths::FLEET_CA => (
                200,
                serde_json::to_string(&FleetCa {
                    fleet_ca_pem: ca.cert_pem.clone(),
                })
                .unwrap_or_default(),
            ),
            _ => (
                403,
                r#"{"kind":"forbidden","message":"token used up"}"#.into(),
            ),
        }),
    )?;
    let pin = keys::ca_sha256_pin(&fleet.ca.cert_pem)?;
    let tmp = tempfile::tempdir()?;
    let state = StateDir::new(tmp.path());
    let mut opts = options(&fleet, pin, None);
    opts.servers = vec![refusing, fleet.url.clone()];
    let err = enroll(&state, &opts, false).await.err();
    assert!(
        matches!(
            err,
            Some(EnrollError::Client(ClientError::Api { status: 403, .. }))
        ),
        "{err:?}"
    );
    assert!(
        fleet.csrs.lock().map(|c| c.is_empty()).unwrap_or(false),
        "the second server was asked after a 403"
    );
    Ok(())
}

#[tokio::test]
async fn a_client_sticks_to_the_server_that_answered_and_429_stays_put() -> TestResult {
    let fleet = fleet(&["127.0.0.1"], true)?;
    let dead = dead_url()?;
    let (_, overloaded) = answering(429)?;
    let servers = Arc::new(Servers::new(vec![dead.clone(), fleet.url.clone()]).ok_or("list")?);
    let client = ApiClient::new(servers.clone(), tls::pinned(&fleet.ca.cert_pem, None)?)?;
    let ca = client.fleet_ca().await?;
    assert_eq!(ca.fleet_ca_pem, fleet.ca.cert_pem);
    assert_eq!(servers.current(), fleet.url);
    // A clone shares the list: it goes straight to the server in use.
    client.clone().fleet_ca().await?;
    assert_eq!(servers.current(), fleet.url);

    // Every server down: the error names them all, and the server in use stays.
    let all_dead = Arc::new(Servers::new(vec![dead.clone(), dead_url()?]).ok_or("list")?);
    let err = ApiClient::new(all_dead.clone(), tls::unverified()?)?
        .fleet_ca()
        .await
        .err();
    let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(
        text.contains("any of 2 servers") && text.contains(&dead),
        "{text}"
    );
    assert_eq!(all_dead.current_index(), 0);

    // 429 is not carried to the next replica.
    let busy = Arc::new(Servers::new(vec![overloaded, fleet.url.clone()]).ok_or("list")?);
    let err = ApiClient::new(busy.clone(), tls::unverified()?)?
        .fleet_ca()
        .await
        .err();
    assert!(
        matches!(err, Some(ClientError::Api { status: 429, .. })),
        "{err:?}"
    );
    assert_eq!(busy.current_index(), 0);
    Ok(())
}

/// A network attacker answers the unauthenticated `GET /v1/fleet-ca` with the pinned CA first
/// and its own after it, and presents a server certificate of its own CA. Only the pinned CA
/// may be trusted: the connection fails and neither the CSR nor the token reaches it.
#[tokio::test]
async fn a_ca_smuggled_into_the_bundle_beside_the_pinned_one_is_never_trusted() -> TestResult {
    let real = TestCa::new("fleet CA")?;
    let evil = Arc::new(TestCa::new("attacker CA")?);
    let (cert, key) = evil.server_cert(&["127.0.0.1"])?;
    let bundle = format!("{}{}", real.cert_pem, evil.cert_pem);
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let (seen2, evil2, bundle2) = (seen.clone(), evil.clone(), bundle.clone());
    let handler: Handler = Arc::new(move |path, body| {
        if let Ok(mut seen) = seen2.lock() {
            seen.push(format!("{path} {body}"));
        }
        if path == calseg_api::paths::FLEET_CA {
            let answer = FleetCa {
                fleet_ca_pem: bundle2.clone(),
            };
            return (200, serde_json::to_string(&answer).unwrap_or_default());
        }
        let request: EnrollRequest = serde_json::from_str(body).unwrap_or(EnrollRequest {
            node: String::new(),
            token: None,
            csr_pem: String::new(),
        });
        let now = OffsetDateTime::now_utc();
        let cert_pem = evil2
            .sign_csr(&request.csr_pem, now, now + time::Duration::days(1), 9)
            .unwrap_or_default();
        let reply = EnrollResponse::Enrolled {
            cert_pem,
            fleet_ca_pem: bundle2.clone(),
        };
        (200, serde_json::to_string(&reply).unwrap_or_default())
    });
    let url = serve(&cert, &key, handler)?;
    let tmp = tempfile::tempdir()?;
    let state = StateDir::new(tmp.path());
    let pin = keys::ca_sha256_pin(&real.cert_pem)?;
    let options = EnrollOptions {
        servers: vec![url],
        ca_hash: pin,
        node: "node-1".into(),
        token: Some(Token::new("abc.secret")),
        wait: None,
    };
    let outcome = enroll(&state, &options, false).await;
    assert!(outcome.is_err(), "enrolled with an attacker: {outcome:?}");
    assert!(state.fleet()?.is_none());
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(
        seen.iter()
            .all(|s| !s.contains("abc.secret") && !s.contains("CERTIFICATE REQUEST")),
        "{seen:?}"
    );
    // The pinned CA is found wherever it stands in a bundle; a bundle without it is refused
    // naming every CA it holds.
    let reversed = format!("{}{}", evil.cert_pem, real.cert_pem);
    let pin = keys::ca_sha256_pin(&real.cert_pem)?;
    assert_eq!(
        pinned_ca(&pin, &reversed)?,
        keys::first_cert_der(&real.cert_pem)?
    );
    let other = TestCa::new("other")?;
    let text = pinned_ca(&pin, &format!("{}{}", evil.cert_pem, other.cert_pem))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        text.contains(&keys::ca_sha256_pin(&evil.cert_pem)?)
            && text.contains(&keys::ca_sha256_pin(&other.cert_pem)?),
        "{text}"
    );
    Ok(())
}

#[test]
fn a_manifest_naming_another_fleet_ca_asks_for_a_renewal_until_the_certificate_comes_from_it()
-> TestResult {
    let (old, new) = (TestCa::new("fleet CA")?, TestCa::new("fleet CA 2")?);
    let tmp = tempfile::tempdir()?;
    let state = StateDir::new(tmp.path());
    let key = keys::generate(KeyAlgorithm::P256, "node-1")?;
    let now = OffsetDateTime::now_utc();
    let cert_from = |ca: &TestCa| ca.sign_csr(&key.csr_pem, now, now + time::Duration::days(90), 1);
    let on_old = FleetCredentials {
        key: key.key.clone(),
        cert_pem: cert_from(&old)?,
        ca_pem: old.cert_pem.clone(),
    };
    let mut manifest = crate::testutil::manifest(Vec::new());
    // No rotation: nothing asked.
    state.save_manifest(&manifest)?;
    assert_eq!(fleet_ca_asked(&state, &on_old)?, None);
    // The new CA, not yet in this node's bundle: asked.
    let new_pin = keys::ca_sha256_pin(&new.cert_pem)?;
    manifest.fleet_ca = Some(new_pin.clone());
    state.save_manifest(&manifest)?;
    assert_eq!(fleet_ca_asked(&state, &on_old)?, Some(new_pin.clone()));
    // In the bundle, but the certificate still from the old one: asked.
    let both = format!("{}{}", old.cert_pem, new.cert_pem);
    let renewed_bundle_only = FleetCredentials {
        ca_pem: both.clone(),
        ..on_old.clone()
    };
    assert_eq!(
        fleet_ca_asked(&state, &renewed_bundle_only)?,
        Some(new_pin.clone())
    );
    // A certificate of the new CA: done.
    let on_new = FleetCredentials {
        key: key.key.clone(),
        cert_pem: cert_from(&new)?,
        ca_pem: both,
    };
    assert_eq!(fleet_ca_asked(&state, &on_new)?, None);
    // The same name and a forged issuer do not pass: the signature decides.
    let forged = TestCa::new("fleet CA 2")?;
    let forged_cert = FleetCredentials {
        cert_pem: cert_from(&forged)?,
        ..on_new
    };
    assert_eq!(fleet_ca_asked(&state, &forged_cert)?, Some(new_pin));
    Ok(())
}
