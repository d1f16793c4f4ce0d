//! The result of policy reloads, kept where `systemctl reload` and metrics can see it. The
//! server numbers every reload it starts (a generation that survives restarts) and records it
//! twice: in memory ([`ReloadTracker::last`], for metrics) and in `reload-status.json` in its
//! state directory, first as "reloading", then as "ok" or "refused" with the reason.
//! `calseg-server reload` ([`request`]), systemd's `ExecReload=`, sends SIGHUP to the server
//! and waits for the generation after the one it saw to finish, so a refused policy makes
//! `systemctl reload` fail with the server's own message.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use time::OffsetDateTime;

/// The file name of the reload status in the state directory.
pub const STATUS_FILE: &str = "reload-status.json";

/// Where a reload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Started, not finished.
    Reloading,
    /// The new policy is in force.
    Ok,
    /// The new policy was refused; the old one stays in force.
    Refused,
}

/// One reload: the latest the server started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadStatus {
    /// Counts the reloads this state directory has seen, 1 for the first.
    pub generation: u64,
    pub outcome: Outcome,
    /// When it started (outcome `reloading`) or finished.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Why the policy was refused (outcome `refused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The policy revision in force after it (outcome `ok`); `None` if the store could not
    /// record one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    /// The server process that did it.
    pub pid: u32,
}

impl ReloadStatus {
    /// Whether the reload finished and put the new policy in force.
    pub fn ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }
}

/// The server's record of its reloads.
#[derive(Debug, Default)]
pub struct ReloadTracker {
    last: Mutex<Option<ReloadStatus>>,
    file: OnceLock<PathBuf>,
}

impl ReloadTracker {
    /// Keeps the status in `state_dir`; the generation continues from the file's.
    pub fn persist_in(&self, state_dir: &Path) {
        let path = state_dir.join(STATUS_FILE);
        if let Some(previous) = read_status(&path) {
            self.set(previous);
        }
        let _ = self.file.set(path);
    }

    /// The latest reload, if any (for metrics: generation, ok, at, error).
    pub fn last(&self) -> Option<ReloadStatus> {
        self.last.lock().ok().and_then(|last| last.clone())
    }

    /// A reload starts: returns its generation.
    pub fn begin(&self, now: OffsetDateTime) -> u64 {
        let generation = self.last().map_or(0, |last| last.generation) + 1;
        self.set(ReloadStatus {
            generation,
            outcome: Outcome::Reloading,
            at: now,
            error: None,
            revision: None,
            pid: std::process::id(),
        });
        generation
    }

    /// Reload `generation` finished: `Ok(revision)` or `Err(why it was refused)`.
    pub fn finish(
        &self,
        generation: u64,
        result: Result<Option<u64>, String>,
        now: OffsetDateTime,
    ) {
        let (outcome, revision, error) = match result {
            Ok(revision) => (Outcome::Ok, revision, None),
            Err(error) => (Outcome::Refused, None, Some(error)),
        };
        self.set(ReloadStatus {
            generation,
            outcome,
            at: now,
            error,
            revision,
            pid: std::process::id(),
        });
    }

    fn set(&self, status: ReloadStatus) {
        if let Some(path) = self.file.get() {
            let written = serde_json::to_vec_pretty(&status)
                .map_err(|e| e.to_string())
                .and_then(|json| {
                    crate::pki::write_public_file(path, &json, 0o640, crate::pki::Existing::Replace)
                        .map_err(|e| e.to_string())
                });
            if let Err(error) = written {
                tracing::warn!(
                    "cannot record the reload result in {}: {error}; `calseg-server reload` \
                     will time out",
                    path.display()
                );
            }
        }
        if let Ok(mut last) = self.last.lock() {
            *last = Some(status);
        }
    }
}

/// The reload status in `path`, if it is there and readable.
pub fn read_status(path: &Path) -> Option<ReloadStatus> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Why `calseg-server reload` failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("cannot signal the server (PID {pid}): {source}; is calseg-server running?")]
    Signal { pid: i32, source: nix::Error },
    #[error(
        "the server (PID {pid}) did not finish the reload within {waited:?}; see \
         `journalctl -u calseg-server`"
    )]
    Timeout { pid: i32, waited: Duration },
    #[error("the policy was refused; the server keeps the old one:\n{0}")]
    Refused(String),
}

/// Asks the server `pid` to reload (SIGHUP) and waits up to `timeout` for the result in
/// `state_dir`. A reload already under way is waited for first, so the result is that of a
/// reload started after this call.
pub async fn request(
    pid: i32,
    state_dir: &Path,
    timeout: Duration,
) -> Result<ReloadStatus, RequestError> {
    use nix::sys::signal::{Signal, kill};
    let path = state_dir.join(STATUS_FILE);
    let deadline = tokio::time::Instant::now() + timeout;
    let timed_out = || RequestError::Timeout {
        pid,
        waited: timeout,
    };
    let mut seen = read_status(&path);
    // A "reloading" left by an earlier process (it stopped mid-reload) is not waited for.
    let under_way =
        |s: &ReloadStatus| s.outcome == Outcome::Reloading && i64::from(s.pid) == i64::from(pid);
    while seen.as_ref().is_some_and(under_way) {
        if tokio::time::Instant::now() >= deadline {
            return Err(timed_out());
        }
        tokio::time::sleep(POLL).await;
        seen = read_status(&path);
    }
    let before = seen.map_or(0, |s| s.generation);
    kill(nix::unistd::Pid::from_raw(pid), Signal::SIGHUP)
        .map_err(|source| RequestError::Signal { pid, source })?;
    loop {
        if let Some(status) = read_status(&path)
            && status.generation > before
            && status.outcome != Outcome::Reloading
        {
            return match status.outcome {
                Outcome::Refused => Err(RequestError::Refused(
                    status
                        .error
                        .unwrap_or_else(|| "(no reason recorded)".into()),
                )),
                _ => Ok(status),
            };
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(timed_out());
        }
        tokio::time::sleep(POLL).await;
    }
}

const POLL: Duration = Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_count_on_across_restarts_and_results_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::UNIX_EPOCH;
        let tracker = ReloadTracker::default();
        tracker.persist_in(dir.path());
        assert_eq!(tracker.last(), None);
        let first = tracker.begin(now);
        assert_eq!(first, 1);
        let on_disk = read_status(&dir.path().join(STATUS_FILE)).unwrap();
        assert_eq!(on_disk.outcome, Outcome::Reloading);
        tracker.finish(first, Err("policy.toml:3: bad".into()), now);
        let last = tracker.last().unwrap();
        assert!(!last.ok());
        assert_eq!(last.error.as_deref(), Some("policy.toml:3: bad"));
        assert_eq!(read_status(&dir.path().join(STATUS_FILE)), Some(last));

        let restarted = ReloadTracker::default();
        restarted.persist_in(dir.path());
        let second = restarted.begin(now);
        assert_eq!(second, 2);
        restarted.finish(second, Ok(Some(7)), now);
        let last = restarted.last().unwrap();
        assert!(last.ok());
        assert_eq!(last.revision, Some(7));
    }

    #[tokio::test]
    async fn a_reload_left_unfinished_by_an_earlier_process_is_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let tracker = ReloadTracker::default();
        tracker.persist_in(dir.path());
        // This process "stopped" mid-reload; the server asked is another one (no such PID):
        // the request goes straight to signalling it.
        tracker.begin(OffsetDateTime::UNIX_EPOCH);
        let error = request(0x3fff_ffff, dir.path(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(error, RequestError::Signal { .. }), "{error}");
    }

    #[tokio::test]
    async fn a_missing_server_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        // PID 0x3fffffff is above pid_max: no such process.
        let error = request(0x3fff_ffff, dir.path(), Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(error, RequestError::Signal { .. }), "{error}");
        assert!(
            error.to_string().contains("is calseg-server running"),
            "{error}"
        );
    }
}
