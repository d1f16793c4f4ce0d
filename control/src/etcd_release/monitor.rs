//! The running server's view of etcd's releases: the latest check, re-done every
//! [`RECHECK_INTERVAL`], every [`SILENT_RECHECK_INTERVAL`] while an endpoint does not answer
//! (so a member that comes back, perhaps on another release, is seen within seconds), and when
//! poked (the reconciler reaches etcd again after failing: a reconnect). With
//! `refuse_known_bypasses` it is also the gate the reconciler asks before changing etcd.

use super::probe::probe_all;
use super::report::{KnownBypasses, ReleaseReport};
use crate::rbac::EtcdAccess;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

/// How often the running server re-checks etcd's releases.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// How often while some endpoint did not answer the last check.
pub const SILENT_RECHECK_INTERVAL: Duration = Duration::from_secs(30);

/// The latest release check of one etcd cluster.
pub struct Monitor {
    access: EtcdAccess,
    /// `[etcd] refuse_known_bypasses`: no RBAC changes while a member has a known bypass.
    refuse: bool,
    latest: RwLock<Option<Arc<ReleaseReport>>>,
    wake: Notify,
}

impl Monitor {
    pub fn new(access: EtcdAccess, refuse: bool) -> Self {
        Self {
            access,
            refuse,
            latest: RwLock::new(None),
            wake: Notify::new(),
        }
    }

    /// Asks every endpoint now and keeps the answer as the latest.
    pub async fn check(&self) -> Arc<ReleaseReport> {
        let report = Arc::new(ReleaseReport::from_answers(probe_all(&self.access).await));
        self.set_latest(Arc::clone(&report));
        report
    }

    /// Keeps `report` as the latest check (also for a check made before the monitor existed).
    pub fn set_latest(&self, report: Arc<ReleaseReport>) {
        match self.latest.write() {
            Ok(mut latest) => *latest = Some(report),
            Err(poisoned) => *poisoned.into_inner() = Some(report),
        }
    }

    /// The latest check, once there was one.
    pub fn latest(&self) -> Option<Arc<ReleaseReport>> {
        match self.latest.read() {
            Ok(latest) => latest.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether `refuse_known_bypasses` is set.
    pub fn refuses(&self) -> bool {
        self.refuse
    }

    /// `Err` when `refuse_known_bypasses` is set and the latest check found a known bypass.
    pub fn gate(&self) -> Result<(), KnownBypasses> {
        match (self.refuse, self.latest()) {
            (true, Some(report)) => report.refuse_known_bypasses(),
            _ => Ok(()),
        }
    }

    /// Asks for a check now (e.g. etcd answers again after a failure).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// Re-checks until the task is dropped: waits for each check to be due
    /// ([`Monitor::wait_next`]), checks, hands the report to `publish` (metrics, status), and
    /// logs the warnings when they differ from the previous check's (a steady state is logged
    /// once, not every ten minutes).
    pub async fn run(&self, publish: impl Fn(&ReleaseReport)) {
        let mut previous = self.latest().map(|r| r.warnings());
        loop {
            self.wait_next().await;
            let report = self.check().await;
            publish(&report);
            let warnings = report.warnings();
            if previous.as_ref() == Some(&warnings) {
                tracing::debug!("etcd release check: {}", report.status_line());
                continue;
            }
            tracing::info!("etcd release check: {}", report.status_line());
            for warning in &warnings {
                tracing::warn!("{warning}");
            }
            if let Err(refused) = self.gate() {
                tracing::error!("etcd RBAC changes stop until this is resolved: {refused}");
            }
            previous = Some(warnings);
        }
    }

    /// Waits until the next check is due: the interval the latest check calls for, or a poke.
    pub async fn wait_next(&self) {
        let silent = self.latest().is_some_and(|r| r.has_silent_members());
        let interval = if silent {
            SILENT_RECHECK_INTERVAL
        } else {
            RECHECK_INTERVAL
        };
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = self.wake.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd_release::{Answer, Reported};

    fn monitor(refuse: bool) -> Monitor {
        let access = EtcdAccess {
            endpoints: vec!["https://a:2379".into()],
            ca_file: "/nonexistent/ca.pem".into(),
            cert_file: "/nonexistent/cert.pem".into(),
            key_file: "/nonexistent/key.pem".into(),
        };
        Monitor::new(access, refuse)
    }

    fn report(answer: Answer) -> Arc<ReleaseReport> {
        Arc::new(ReleaseReport::from_answers(vec![(
            "https://a:2379".into(),
            answer,
        )]))
    }

    fn version(text: &str) -> Answer {
        Answer::Version(Reported::from_status(text))
    }

    #[test]
    fn the_gate_closes_only_when_asked_to_and_a_bypass_is_known() {
        let lenient = monitor(false);
        lenient.set_latest(report(version("3.4.23")));
        assert!(lenient.gate().is_ok());
        let strict = monitor(true);
        assert!(strict.gate().is_ok(), "no check yet: nothing is known");
        strict.set_latest(report(version("3.4.23")));
        assert!(strict.gate().is_err());
        strict.set_latest(report(version("not a version")));
        assert!(strict.gate().is_err(), "an unknown version is not safe");
        strict.set_latest(report(version("3.6.14")));
        assert!(strict.gate().is_ok());
        strict.set_latest(report(Answer::NoAnswer("refused".into())));
        assert!(
            strict.gate().is_ok(),
            "a silent member is not a known bypass"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rechecks_sooner_while_a_member_is_silent_and_at_once_when_poked() {
        let monitor = monitor(false);
        monitor.set_latest(report(version("3.6.14")));
        let started = tokio::time::Instant::now();
        monitor.wait_next().await;
        assert_eq!(started.elapsed(), RECHECK_INTERVAL);

        monitor.set_latest(report(Answer::NoAnswer("refused".into())));
        let started = tokio::time::Instant::now();
        monitor.wait_next().await;
        assert_eq!(started.elapsed(), SILENT_RECHECK_INTERVAL);

        monitor.set_latest(report(version("3.6.14")));
        monitor.poke();
        let started = tokio::time::Instant::now();
        monitor.wait_next().await;
        assert!(started.elapsed() < SILENT_RECHECK_INTERVAL);
    }
}
