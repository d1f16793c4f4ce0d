//! A Calico access replay: a stand-in that performs, against a real etcd and as the identity
//! Calico would use (`ETCD_*` from the environment, the client certificate's CN being the etcd
//! user), the etcd operations calico-node and Felix perform at start-up and while running. It
//! proves an identity is enough for Calico, or names the first operation and key it is not
//! enough for. The `calico-replay` binary (`src/bin/calico-replay.rs`) is its command line.
//!
//! The operations, their order and their values follow libcalico-go and calico/node at the
//! release tags (source files are named in each module); the reference's key table is
//! /work/shared/reference/calico-etcd-rbac.md §4.
//!
//! # Layout
//! - [`settings`]: the identity and options, read from the environment as Calico reads them.
//! - [`version`]: the Calico release, and what start-up does differently per release.
//! - [`keys`]: every key and prefix, as libcalico-go's model builds them.
//! - [`values`]: the JSON written, in libcalico-go's shapes.
//! - [`datastore`]: the etcd operations, in the etcdv3 backend's exact form.
//! - [`error`]: a failed operation, naming operation and key.
//! - [`phases`]: the six phases of the sequence.

/// The etcd operations.
pub mod datastore;
/// Failed operations.
pub mod error;
/// Keys and prefixes.
pub mod keys;
/// The sequence's phases.
pub mod phases;
/// Environment settings.
pub mod settings;
/// Written values.
pub mod values;
/// Calico releases.
pub mod version;

use datastore::Datastore;
use error::ReplayError;
use phases::status::Reporter;
use settings::Settings;
use std::future::Future;
use std::time::Duration;
use time::OffsetDateTime;

/// How often `run` mode refreshes the lease and rewrites the status report.
pub const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// The state after a successful sequence: the connection and the live status report.
pub struct Replayed {
    pub datastore: Datastore,
    pub reporter: Reporter,
}

/// Runs the six phases in order, handing each phase's report line to `out`. Stops at the first
/// failed operation; its error also says which phase it was in (`phase`).
pub async fn run_sequence(
    settings: &Settings,
    mut out: impl FnMut(String),
) -> Result<Replayed, (usize, ReplayError)> {
    let now = OffsetDateTime::now_utc;
    let mut ds = Datastore::connect(settings).await.map_err(|e| (0, e))?;
    let fail = |phase: usize| move |e: ReplayError| (phase, e);
    out(phases::startup::singletons(&mut ds, settings, now())
        .await
        .map_err(fail(1))?
        .to_string());
    out(phases::startup::tiers(&mut ds, settings, now())
        .await
        .map_err(fail(2))?
        .to_string());
    out(phases::node::own_objects(&mut ds, settings, now())
        .await
        .map_err(fail(3))?
        .to_string());
    out(phases::sync::list_and_watch(&mut ds, settings)
        .await
        .map_err(fail(4))?
        .to_string());
    let (report, reporter) = phases::status::report(&mut ds, &settings.node, now())
        .await
        .map_err(fail(5))?;
    out(report.to_string());
    out(phases::ipam::claim_block(&mut ds, &settings.node)
        .await
        .map_err(fail(6))?
        .to_string());
    Ok(Replayed {
        datastore: ds,
        reporter,
    })
}

/// `run` mode after the sequence: every [`REFRESH_EVERY`], keeps the lease alive and rewrites
/// the status report, until `shutdown` completes (then `Ok`) or etcd refuses an operation
/// (then that error). Other failures (etcd briefly unreachable) go to `out` and are retried at
/// the next refresh, as Felix retries.
pub async fn keep_reporting(
    replayed: &mut Replayed,
    shutdown: impl Future<Output = ()>,
    mut out: impl FnMut(String),
) -> Result<(), ReplayError> {
    replayed.datastore.stop_recording();
    tokio::pin!(shutdown);
    let mut ticks = tokio::time::interval(REFRESH_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            _ = ticks.tick() => {}
        }
        let Replayed {
            datastore,
            reporter,
        } = replayed;
        // A refresh waiting on an unreachable etcd must not delay the stop.
        let refreshed = tokio::select! {
            () = &mut shutdown => return Ok(()),
            refreshed = reporter.refresh(datastore, OffsetDateTime::now_utc()) => refreshed,
        };
        match refreshed {
            Ok(_) => {}
            Err(e) if e.is_permission_denied() => return Err(e),
            Err(e) => out(format!("status refresh {e}; retrying")),
        }
    }
}
