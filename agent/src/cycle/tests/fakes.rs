//! Fakes for the server, etcd and systemd, and a test host with the real installer on a
//! temporary root.

use crate::client::ManifestFetch;
use crate::cycle::real::FsInstaller;
use crate::cycle::*;
use crate::install::Root;
use crate::keys::cert_info;
use crate::state::StateDir;
use crate::testutil::TestCa;
use calseg_api::manifest::Manifest;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;
use time::macros::datetime;

pub(super) const T0: OffsetDateTime = datetime!(2025-03-01 12:00 UTC);

pub(super) struct FakeSource {
    pub(super) manifest: Manifest,
    pub(super) unreachable: bool,
    /// Answer 403 `node_revoked`, as the server does once an operator revoked the node.
    pub(super) revoked: bool,
    /// The message of that answer.
    pub(super) revoked_message: String,
}

impl ManifestSource for FakeSource {
    async fn fetch(&mut self, etag: Option<&str>) -> Result<ManifestFetch, ClientError> {
        if self.unreachable {
            return Err(ClientError::Unreachable {
                url: "https://server".into(),
                message: "connection refused".into(),
            });
        }
        if self.revoked {
            return Err(ClientError::Api {
                url: "https://server/v1/manifest".into(),
                status: 403,
                kind: calseg_api::error::NODE_REVOKED.into(),
                message: self.revoked_message.clone(),
                retry_after: None,
            });
        }
        if etag == Some(self.manifest.revision.as_str()) {
            return Ok(ManifestFetch::NotModified);
        }
        Ok(ManifestFetch::Fresh {
            manifest: self.manifest.clone(),
            etag: self.manifest.revision.clone(),
        })
    }
}

pub(super) struct FakeSigner {
    pub(super) ca: TestCa,
    pub(super) now: OffsetDateTime,
    pub(super) calls: u64,
}

impl Signer for FakeSigner {
    async fn sign(&mut self, request: &SignRequest) -> Result<SignResponse, ClientError> {
        self.calls += 1;
        let not_after = self.now + time::Duration::days(30);
        let cert_pem = self
            .ca
            .sign_csr(&request.csr_pem, self.now, not_after, self.calls)
            .map_err(|e| ClientError::Protocol {
                url: String::new(),
                message: e.to_string(),
            })?;
        Ok(SignResponse {
            cert_pem,
            serial: String::new(),
            not_before: String::new(),
            not_after: String::new(),
            issuer: None,
        })
    }
}

#[derive(Default)]
pub(super) struct FakeVerifier {
    pub(super) fail: bool,
    pub(super) probes: Vec<String>,
}

impl Verifier for FakeVerifier {
    async fn verify(&mut self, probe: &Probe) -> Result<(), String> {
        self.probes.push(probe.etcd_user.clone());
        if self.fail {
            Err("etcdserver: permission denied".into())
        } else {
            Ok(())
        }
    }
}

/// What the lease fake and the systemd fake did, in order.
pub(super) type Events = Arc<Mutex<Vec<String>>>;

fn log(events: &Events, event: String) {
    if let Ok(mut events) = events.lock() {
        events.push(event);
    }
}

#[derive(Default)]
pub(super) struct FakeSystemd {
    /// Units that exist.
    pub(super) units: BTreeSet<String>,
    /// Units that fail after their next restart (once).
    pub(super) failing: BTreeSet<String>,
    pub(super) restarts: Vec<String>,
    /// How long a restart takes to settle.
    pub(super) settle: Duration,
    pub(super) events: Events,
}

/// The server's restart budget: refuses with 429 while `refusals` last (or always when
/// `full`), then grants.
#[derive(Default)]
pub(super) struct FakeLeases {
    pub(super) refusals: VecDeque<Duration>,
    pub(super) full: bool,
    pub(super) ttl_secs: u64,
    pub(super) requests: Vec<LeaseRequest>,
    pub(super) renewals: u32,
    pub(super) events: Events,
}

fn budget_full(retry_after: Duration) -> ClientError {
    ClientError::Api {
        url: "https://server/v1/restart-lease".into(),
        status: 429,
        kind: calseg_api::lease::BUDGET_FULL.into(),
        message: "restart budget of the fleet is full".into(),
        retry_after: Some(retry_after),
    }
}

impl FakeLeases {
    fn grant(&self, n: usize) -> LeaseGrant {
        LeaseGrant {
            lease_id: format!("lease-{n}"),
            expires_at: String::new(),
            ttl_secs: self.ttl_secs.max(1),
        }
    }
}

impl RestartLeases for FakeLeases {
    async fn acquire(&mut self, request: &LeaseRequest) -> Result<LeaseGrant, ClientError> {
        self.requests.push(request.clone());
        if self.full {
            log(&self.events, "refused".into());
            return Err(budget_full(Duration::from_millis(50)));
        }
        if let Some(wait) = self.refusals.pop_front() {
            log(&self.events, "refused".into());
            return Err(budget_full(wait));
        }
        let grant = self.grant(self.requests.len());
        log(&self.events, format!("granted {}", grant.lease_id));
        Ok(grant)
    }

    async fn renew(&mut self, lease_id: &str) -> Result<LeaseGrant, ClientError> {
        self.renewals += 1;
        log(&self.events, format!("renewed {lease_id}"));
        Ok(self.grant(self.requests.len()))
    }

    async fn release(&mut self, lease_id: &str) -> Result<(), ClientError> {
        log(&self.events, format!("released {lease_id}"));
        Ok(())
    }
}

pub(super) fn active() -> UnitStatus {
    UnitStatus {
        load_state: "loaded".into(),
        active_state: "active".into(),
        sub_state: "running".into(),
        main_pid: 42,
        n_restarts: 0,
    }
}

impl Restarter for FakeSystemd {
    async fn status(&mut self, unit: &str) -> Result<UnitStatus, SystemdError> {
        if self.units.contains(unit) {
            Ok(active())
        } else {
            Ok(UnitStatus {
                load_state: "not-found".into(),
                active_state: "inactive".into(),
                sub_state: "dead".into(),
                main_pid: 0,
                n_restarts: 0,
            })
        }
    }

    async fn restart_and_wait(
        &mut self,
        unit: &str,
        _timeout: Duration,
    ) -> Result<UnitStatus, RestartFailure> {
        self.restarts.push(unit.to_owned());
        log(&self.events, format!("restart {unit}"));
        tokio::time::sleep(self.settle).await;
        if self.failing.remove(unit) {
            let mut status = active();
            status.active_state = "activating".into();
            status.sub_state = "auto-restart".into();
            status.n_restarts = 3;
            return Err(RestartFailure {
                status: Some(status),
                reason: "restarts by itself (NRestarts 0 -> 3)".into(),
            });
        }
        Ok(active())
    }
}

#[derive(Default)]
pub(super) struct FakeReporter {
    pub(super) reports: Vec<Report>,
}

impl Reporter for FakeReporter {
    async fn report(&mut self, report: &Report) -> Result<(), ClientError> {
        self.reports.push(report.clone());
        Ok(())
    }
}

pub(super) type TestPorts =
    Ports<FakeSource, FakeSigner, FakeVerifier, FsInstaller, FakeSystemd, FakeReporter, FakeLeases>;

/// A host: a temp root, a state dir, and ports for `manifest` with `units` installed.
pub(super) struct Host {
    pub(super) tmp: tempfile::TempDir,
    pub(super) ports: TestPorts,
    pub(super) lease_wait: Duration,
    pub(super) events: Events,
}

/// The default limits, plus the `felix.service` the tests restart.
pub(super) fn test_limits() -> crate::limits::Limits {
    let mut limits = crate::limits::Limits::default();
    limits.allowed_units.push("felix.service".into());
    limits
}

impl Host {
    pub(super) fn new(
        mut manifest: Manifest,
        units: &[&str],
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        std::fs::create_dir(tmp.path().join("root"))?;
        let events = Events::default();
        let ca = TestCa::new("etcd client CA")?;
        // The limits accept only a real PEM bundle.
        manifest.etcd.ca_bundle_pem = ca.cert_pem.clone();
        let ports = Ports {
            manifest: FakeSource {
                manifest,
                unreachable: false,
                revoked: false,
                revoked_message: "node n1 was revoked by an operator".into(),
            },
            signer: FakeSigner {
                ca,
                now: T0,
                calls: 0,
            },
            verifier: FakeVerifier::default(),
            installer: FsInstaller {
                root: Root::new(tmp.path().join("root")),
            },
            restarter: FakeSystemd {
                units: units.iter().map(|u| (*u).to_owned()).collect(),
                events: events.clone(),
                ..FakeSystemd::default()
            },
            reporter: FakeReporter::default(),
            leases: FakeLeases {
                ttl_secs: 120,
                events: events.clone(),
                ..FakeLeases::default()
            },
        };
        Ok(Self {
            tmp,
            ports,
            lease_wait: Duration::from_secs(2),
            events,
        })
    }

    pub(super) fn state(&self) -> StateDir {
        StateDir::new(self.tmp.path().join("state"))
    }

    pub(super) async fn cycle(&mut self, now: OffsetDateTime) -> CycleResult {
        self.ports.signer.now = now;
        let ctx = CycleContext {
            node: "n1".into(),
            key_algorithm: crate::keys::KeyAlgorithm::P256,
            restart_timeout: Duration::from_secs(5),
            lease_wait: self.lease_wait,
            state: self.state(),
            now,
            stop: Arc::new(AtomicBool::new(false)),
            limits: test_limits(),
            renew: crate::decide::Renew::AsDue,
        };
        self.ports.run_cycle(&ctx).await
    }

    pub(super) fn file(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.tmp.path().join("root").join(&path[1..])).ok()
    }

    pub(super) fn serial_on_disk(&self, component: &str) -> Option<String> {
        let pem = self.file(&format!("/etc/calico/certs/{component}/cert.pem"))?;
        cert_info(&pem).ok().map(|i| i.serial)
    }

    /// The lease and restart events so far.
    pub(super) fn events(&self) -> Vec<String> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    pub(super) fn statuses(&self) -> Vec<String> {
        let last = self.ports.reporter.reports.last();
        last.map(|r| r.identities.iter().map(|i| i.status.to_string()).collect())
            .unwrap_or_default()
    }
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
pub(super) struct Captured(pub(super) Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut out) = self.0.lock() {
            out.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary, from a global subscriber (a scoped one can miss
/// events whose callsite interest another test thread cached first).
pub(super) fn captured_logs() -> Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        captured
    })
    .clone()
}
