//! What provisioning costs Calico's own traffic: simulated calico-node clients, each with its
//! own per-node identity, do felix-like work on their own keys while calseg provisions new
//! nodes into the fleet, at several `[etcd] auth_change_duty` values.
//!
//! Each run: a fresh etcd; `calseg-server apply` makes a fleet of `fleet` nodes (untimed);
//! `clients` of those nodes connect with client certificates whose CN is their calseg user,
//! and each, once per [`PERIOD`], reads its node resource (`get`) and writes its status key
//! with a time to live (`put`: a new lease, then the put under it, as Calico's etcd backend
//! does), and keeps a watch on a shared prefix that a root writer ticks once per
//! [`PERIOD`] (the watch lag is tick to delivery). Their latencies are recorded idle, for
//! [`TrafficSizes::idle`], and then while `calseg-server apply --auth-change-duty D` adds
//! `join` nodes. A client error of any kind (a timeout, a denial) is counted and reported.

use super::large::{apply, names, policy};
use super::{percentile, secs};
use crate::etcd::EtcdCluster;
use anyhow::{Context, Result};
use etcd_client::{Client, PutOptions, WatchOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often each client does its round, and the watch writer ticks.
pub const PERIOD: Duration = Duration::from_secs(1);

/// Untimed rounds before the idle window, so connections and leases are in place.
const WARM_UP: Duration = Duration::from_secs(3);

/// The time to live of a simulated status write (Felix reports its status with a TTL).
const STATUS_TTL_SECS: i64 = 90;

/// Calico's resource prefix (every calico-node may read it).
const R3: &str = "/calico/resources/v3/projectcalico.org/";

/// What to run.
#[derive(Debug, Clone)]
pub struct TrafficSizes {
    /// Nodes in the fleet before the join.
    pub fleet: usize,
    /// Nodes calseg provisions into it while the clients run.
    pub join: usize,
    /// Simulated calico-node clients (nodes of the fleet).
    pub clients: usize,
    /// `auth_change_duty` values, one run each.
    pub duties: Vec<f64>,
    /// The idle window before provisioning starts.
    pub idle: Duration,
}

/// Latencies of one kind of operation in one window.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    pub count: usize,
    pub errors: usize,
    /// Calls sent again (once or more) because they raced an auth change, as Calico's client
    /// does.
    pub retries: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latencies {
    fn of(mut samples: Vec<Duration>, errors: usize, retries: usize) -> Self {
        samples.sort_unstable();
        Self {
            count: samples.len(),
            errors,
            retries,
            p50: percentile(&samples, 50),
            p99: percentile(&samples, 99),
            max: samples.last().copied().unwrap_or_default(),
        }
    }
}

/// The clients' latencies in one window.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub get: Latencies,
    pub put: Latencies,
    pub watch: Latencies,
}

impl Window {
    /// Errors of every kind.
    pub fn errors(&self) -> usize {
        self.get.errors + self.put.errors + self.watch.errors
    }

    /// Calls retried (once or more) after racing an auth change.
    pub fn retries(&self) -> usize {
        self.get.retries + self.put.retries
    }

    /// Calls made (gets and puts).
    pub fn calls(&self) -> usize {
        self.get.count + self.get.errors + self.put.count + self.put.errors
    }
}

/// One run at one duty.
#[derive(Debug, Clone)]
pub struct DutyRun {
    pub duty: f64,
    /// `calseg-server apply` adding the `join` nodes.
    pub provisioning: Duration,
    /// Changes it made.
    pub changes: usize,
    pub idle: Window,
    pub during: Window,
    /// The first few client errors, for the report.
    pub first_errors: Vec<String>,
}

/// Every run.
#[derive(Debug, Clone)]
pub struct TrafficResult {
    pub sizes: TrafficSizes,
    pub runs: Vec<DutyRun>,
}

/// Which window an operation started in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    WarmUp,
    Idle,
    Provisioning,
    Stop,
}

/// One client's (or the watchers') samples per window: latencies and error messages.
#[derive(Default)]
struct Samples {
    idle: Vec<Duration>,
    during: Vec<Duration>,
    errors_idle: Vec<String>,
    errors_during: Vec<String>,
    retries_idle: usize,
    retries_during: usize,
}

impl Samples {
    /// Records a timed call and its auth-revision retries.
    fn record_call(&mut self, phase: Phase, (outcome, retries): (Result<Duration, String>, usize)) {
        match phase {
            Phase::Idle => self.retries_idle += usize::from(retries > 0),
            Phase::Provisioning => self.retries_during += usize::from(retries > 0),
            Phase::WarmUp | Phase::Stop => {}
        }
        self.record(phase, outcome);
    }

    fn record(&mut self, phase: Phase, outcome: Result<Duration, String>) {
        let (times, errors) = match phase {
            Phase::Idle => (&mut self.idle, &mut self.errors_idle),
            Phase::Provisioning => (&mut self.during, &mut self.errors_during),
            Phase::WarmUp | Phase::Stop => return,
        };
        match outcome {
            Ok(took) => times.push(took),
            Err(e) => errors.push(e),
        }
    }

    fn merge(&mut self, other: Samples) {
        self.idle.extend(other.idle);
        self.during.extend(other.during);
        self.errors_idle.extend(other.errors_idle);
        self.errors_during.extend(other.errors_during);
        self.retries_idle += other.retries_idle;
        self.retries_during += other.retries_during;
    }
}

/// A client's gets and puts, and its watch lags.
struct ClientSamples {
    get: Samples,
    put: Samples,
    watch: Samples,
}

/// How long Go's etcd client (Calico's) waits before retrying a unary call.
const CLIENTV3_BACKOFF: Duration = Duration::from_millis(25);

/// Times one etcd call, end to end, retried as Calico's client (Go's `clientv3`) retries it:
/// a request that raced an auth change ("revision of auth store is old") is sent again after
/// [`CLIENTV3_BACKOFF`] (its retry interceptor treats it like an expired token, which for a
/// certificate identity needs no refresh). Returns the time and the number of such retries.
async fn timed<T, F, Fut>(mut call: F) -> (Result<Duration, String>, usize)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
{
    let started = Instant::now();
    let mut retries = 0;
    loop {
        let error = match tokio::time::timeout(Duration::from_secs(30), call()).await {
            Ok(Ok(_)) => return (Ok(started.elapsed()), retries),
            Ok(Err(e)) => e.to_string(),
            Err(_) => return (Err("no answer within 30 s".into()), retries),
        };
        if !error.contains("revision of auth store is old") || retries == 100 {
            return (Err(error), retries);
        }
        retries += 1;
        tokio::time::sleep(CLIENTV3_BACKOFF).await;
    }
}

/// One simulated calico-node: a round per [`PERIOD`] until [`Phase::Stop`], starting at
/// `offset` into the period (clients are spread over it).
async fn calico_node(
    client: Client,
    node: String,
    offset: Duration,
    phase: watch::Receiver<Phase>,
    base: Arc<Instant>,
) -> Result<ClientSamples> {
    let watcher = tokio::spawn(watch_lag(client.clone(), phase.clone(), base.clone()));
    let mut get = Samples::default();
    let mut put = Samples::default();
    let node_key = format!("{R3}nodes/{node}");
    let status_key = format!("/calico/felix/v2/no-region/host/{node}/status");
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + offset, PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = *phase.borrow();
        if now == Phase::Stop {
            break;
        }
        let got = timed(|| {
            let mut c = client.clone();
            let key = node_key.clone();
            async move { c.get(key, None).await }
        })
        .await;
        get.record_call(now, got);
        // A status write with a time to live, as Calico's etcd backend makes one: a new lease,
        // then the put under it (libcalico-go grants a lease per TTL'd write).
        let status = format!("{{\"time\":{}}}", base.elapsed().as_millis());
        let put_done = timed(|| {
            let mut c = client.clone();
            let (key, value) = (status_key.clone(), status.clone());
            async move {
                let lease = c.lease_grant(STATUS_TTL_SECS, None).await?.id();
                c.put(key, value, Some(PutOptions::new().with_lease(lease)))
                    .await
            }
        })
        .await;
        put.record_call(now, put_done);
    }
    let watch = watcher.await.context("watch task")?;
    Ok(ClientSamples { get, put, watch })
}

/// Watches the shared prefix the ticker writes; records each tick's delivery lag.
async fn watch_lag(
    mut client: Client,
    mut phase: watch::Receiver<Phase>,
    base: Arc<Instant>,
) -> Samples {
    let mut samples = Samples::default();
    let prefix = format!("{R3}globalnetworkpolicies/");
    let mut stream = match client
        .watch(prefix, Some(WatchOptions::new().with_prefix()))
        .await
    {
        Ok(watch) => watch,
        Err(e) => {
            samples.record(Phase::Idle, Err(format!("watch: {e}")));
            return samples;
        }
    };
    loop {
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() == Phase::Stop {
                    return samples;
                }
            }
            message = stream.message() => {
                let now = *phase.borrow();
                match message {
                    Ok(Some(response)) => {
                        for event in response.events() {
                            let sent = event
                                .kv()
                                .and_then(|kv| kv.value_str().ok())
                                .and_then(|v| v.parse::<u64>().ok());
                            if let Some(sent) = sent {
                                let lag = base.elapsed().saturating_sub(Duration::from_micros(sent));
                                samples.record(now, Ok(lag));
                            }
                        }
                    }
                    Ok(None) => {
                        samples.record(now, Err("watch stream ended".into()));
                        return samples;
                    }
                    Err(e) => {
                        samples.record(now, Err(format!("watch: {e}")));
                        return samples;
                    }
                }
            }
        }
    }
}

/// Root writes a tick (its time since `base`, in µs) under the watched prefix every period.
async fn ticker(mut client: Client, phase: watch::Receiver<Phase>, base: Arc<Instant>) {
    let key = format!("{R3}globalnetworkpolicies/calseg-bench-tick");
    let mut ticks = tokio::time::interval(PERIOD);
    while *phase.borrow() != Phase::Stop {
        ticks.tick().await;
        let sent = base.elapsed().as_micros().to_string();
        let _ = client.put(key.as_str(), sent, None).await;
    }
}

/// One run at `duty`.
async fn run_at(sizes: &TrafficSizes, duty: f64) -> Result<DutyRun> {
    let etcd = EtcdCluster::start().await?;
    let endpoint = etcd.endpoint(0);
    let fleet = names(0, sizes.fleet);
    apply(&etcd, policy(&endpoint, &fleet), "1")
        .await
        .context("making the fleet")?;

    let (set_phase, phase) = watch::channel(Phase::WarmUp);
    let base = Arc::new(Instant::now());
    let mut clients = Vec::new();
    for (i, node) in fleet.iter().take(sizes.clients).enumerate() {
        let identity = etcd.mint_client(&format!("calico-node.{node}"))?;
        let client = etcd.client_as(&identity).await?;
        let offset = PERIOD.mul_f64(i as f64 / sizes.clients.max(1) as f64);
        clients.push(tokio::spawn(calico_node(
            client,
            node.clone(),
            offset,
            phase.clone(),
            base.clone(),
        )));
    }
    let ticking = tokio::spawn(ticker(etcd.root_client().await?, phase.clone(), base));
    tokio::time::sleep(WARM_UP).await;
    set_phase.send_replace(Phase::Idle);
    tokio::time::sleep(sizes.idle).await;

    set_phase.send_replace(Phase::Provisioning);
    let everyone = names(0, sizes.fleet + sizes.join);
    let joined = apply(&etcd, policy(&endpoint, &everyone), &duty.to_string()).await;
    set_phase.send_replace(Phase::Stop);
    let (provisioning, applied) = joined.context("provisioning the joining nodes")?;

    let (mut get, mut put, mut watched) = Default::default();
    for client in clients {
        let samples = client.await.context("client task")??;
        Samples::merge(&mut get, samples.get);
        Samples::merge(&mut put, samples.put);
        Samples::merge(&mut watched, samples.watch);
    }
    ticking.await.context("ticker task")?;
    let first_errors: Vec<String> = [&get, &put, &watched]
        .iter()
        .flat_map(|s| s.errors_idle.iter().chain(&s.errors_during))
        .take(5)
        .cloned()
        .collect();
    let window = |during: bool, s: &Samples| {
        if during {
            Latencies::of(s.during.clone(), s.errors_during.len(), s.retries_during)
        } else {
            Latencies::of(s.idle.clone(), s.errors_idle.len(), s.retries_idle)
        }
    };
    let [idle, during] = [false, true].map(|d| Window {
        get: window(d, &get),
        put: window(d, &put),
        watch: window(d, &watched),
    });
    let run = DutyRun {
        duty,
        provisioning,
        changes: applied.changes.len(),
        idle,
        during,
        first_errors,
    };
    print_run(sizes, &run);
    Ok(run)
}

fn print_run(sizes: &TrafficSizes, run: &DutyRun) {
    let ms = |d: Duration| secs(d) * 1000.0;
    println!(
        "duty {:.2}: {} nodes joined {} in {:.1} s ({} changes); {} clients, p50/p99 ms idle → during: get {:.1}/{:.1} → {:.1}/{:.1}, put {:.1}/{:.1} → {:.1}/{:.1}, watch lag {:.1}/{:.1} → {:.1}/{:.1}; errors {} idle, {} during; calls retried on auth revision {} of {} idle, {} of {} during",
        run.duty,
        sizes.join,
        sizes.fleet,
        secs(run.provisioning),
        run.changes,
        sizes.clients,
        ms(run.idle.get.p50),
        ms(run.idle.get.p99),
        ms(run.during.get.p50),
        ms(run.during.get.p99),
        ms(run.idle.put.p50),
        ms(run.idle.put.p99),
        ms(run.during.put.p50),
        ms(run.during.put.p99),
        ms(run.idle.watch.p50),
        ms(run.idle.watch.p99),
        ms(run.during.watch.p50),
        ms(run.during.watch.p99),
        run.idle.errors(),
        run.during.errors(),
        run.idle.retries(),
        run.idle.calls(),
        run.during.retries(),
        run.during.calls()
    );
    for error in &run.first_errors {
        println!("  client error: {error}");
    }
}

/// Runs every duty in `sizes`.
pub async fn run(sizes: &TrafficSizes) -> Result<TrafficResult> {
    let mut runs = Vec::new();
    for &duty in &sizes.duties {
        runs.push(run_at(sizes, duty).await?);
    }
    Ok(TrafficResult {
        sizes: sizes.clone(),
        runs,
    })
}
