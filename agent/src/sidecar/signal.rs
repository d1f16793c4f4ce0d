//! Making calico-node use a new identity: the side car, holding a restart lease from the
//! server's budget (the cycle's own restart step), sends SIGTERM to the calico-node container's
//! main process, and the kubelet starts the container again; Calico reads the new files when
//! it connects. The pod needs `shareProcessNamespace: true` for the side car to see it.
//!
//! The process is found by its command name (`/proc/<pid>/comm`) among the processes of the
//! side car's own PID namespace only: never PID 1 (the pod's pause process, or the side car's
//! own init), never the side car itself, never a process whose `/proc/<pid>/ns/pid` differs
//! from the side car's. To the cycle and the server it is the unit `<name>.service`.

use crate::cycle::{RestartFailure, Restarter};
use crate::systemd::{SystemdError, UnitStatus};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest command name the kernel keeps in `comm`.
const COMM_MAX: usize = 15;
/// How often a wait looks at /proc again.
const POLL: Duration = Duration::from_millis(100);

/// Signals the process named `command` in the side car's PID namespace.
#[derive(Debug, Clone)]
pub struct Signaller {
    command: String,
    proc_dir: PathBuf,
}

impl Signaller {
    /// For `command` (a `comm` name: 1 to 15 characters, no `/`).
    pub fn new(command: &str) -> Result<Self, String> {
        if command.is_empty() || command.len() > COMM_MAX || command.contains('/') {
            return Err(format!(
                "`{command}` is not a process command name: 1 to {COMM_MAX} characters without `/` (as in /proc/PID/comm)"
            ));
        }
        Ok(Self {
            command: command.to_owned(),
            proc_dir: PathBuf::from("/proc"),
        })
    }

    /// The unit name the cycle and the server know the process by.
    pub fn unit(&self) -> String {
        format!("{}.service", self.command)
    }

    /// The pids of the process, in this PID namespace, never PID 1 nor this process.
    pub fn find(&self) -> BTreeSet<i32> {
        let own_ns = std::fs::read_link(self.proc_dir.join("self/ns/pid")).ok();
        let me = std::process::id() as i32;
        let Ok(entries) = std::fs::read_dir(&self.proc_dir) else {
            return BTreeSet::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| *pid > 1 && *pid != me)
            .filter(|pid| self.matches(&self.proc_dir.join(pid.to_string()), own_ns.as_deref()))
            .collect()
    }

    fn matches(&self, dir: &Path, own_ns: Option<&Path>) -> bool {
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end_matches('\n') != self.command {
            return false;
        }
        // Unknown namespaces are never signalled.
        let ns = std::fs::read_link(dir.join("ns/pid")).ok();
        own_ns.is_some() && ns.as_deref() == own_ns
    }

    fn status(&self, pids: &BTreeSet<i32>) -> UnitStatus {
        UnitStatus {
            load_state: "loaded".into(),
            active_state: if pids.is_empty() {
                "inactive"
            } else {
                "active"
            }
            .into(),
            sub_state: if pids.is_empty() { "dead" } else { "running" }.into(),
            main_pid: pids.iter().next().map_or(0, |p| *p as u32),
            n_restarts: 0,
        }
    }
}

impl Restarter for Signaller {
    async fn status(&mut self, _unit: &str) -> Result<UnitStatus, SystemdError> {
        Ok(Signaller::status(self, &self.find()))
    }

    /// SIGTERM to every matching process, then waits until each is gone and a new one runs
    /// (the kubelet restarted the container) and stays. Nothing running: nothing to signal,
    /// the new files are read when it starts.
    async fn restart_and_wait(
        &mut self,
        _unit: &str,
        timeout: Duration,
    ) -> Result<UnitStatus, RestartFailure> {
        let old = self.find();
        if old.is_empty() {
            tracing::info!(command = %self.command, "not running; it reads the new files when it starts");
            return Ok(Signaller::status(self, &old));
        }
        for pid in &old {
            let pid = nix::unistd::Pid::from_raw(*pid);
            if let Err(e) = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM) {
                tracing::warn!(%pid, error = %e, "cannot signal");
            }
        }
        tracing::info!(command = %self.command, pids = ?old, "sent SIGTERM; waiting for the kubelet to start it again");
        let deadline = tokio::time::Instant::now() + timeout;
        let settle = crate::cycle::real::settle_time(timeout);
        let mut running_since: Option<tokio::time::Instant> = None;
        loop {
            let now = self.find();
            let fresh = !now.is_empty() && now.is_disjoint(&old);
            match (fresh, running_since) {
                (true, Some(since)) if since.elapsed() >= settle => {
                    return Ok(Signaller::status(self, &now));
                }
                (true, None) => running_since = Some(tokio::time::Instant::now()),
                (false, _) => running_since = None,
                (true, Some(_)) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RestartFailure {
                    status: Some(Signaller::status(self, &now)),
                    reason: format!(
                        "{} did not come back (a new process running for {settle:?}) within {timeout:?} of SIGTERM",
                        self.command
                    ),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_are_checked() {
        for bad in ["", "a/b", "a-name-longer-than-15"] {
            assert!(Signaller::new(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Signaller::new("calico-node").unwrap().unit(),
            "calico-node.service"
        );
    }

    #[test]
    fn finds_a_process_by_comm_in_this_namespace_never_itself_or_pid_1() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        // spawn() returns once the child has its new image, a moment before the kernel gives
        // it its new command name: wait for the name.
        let comm = format!("/proc/{}/comm", child.id());
        for _ in 0..200 {
            if std::fs::read_to_string(&comm).is_ok_and(|c| c.trim_end() == "sleep") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let found = Signaller::new("sleep").unwrap().find();
        assert!(found.contains(&(child.id() as i32)), "{found:?}");
        assert!(!found.contains(&1));
        let me = std::fs::read_to_string("/proc/self/comm").unwrap();
        let own = Signaller::new(me.trim()).unwrap().find();
        assert!(!own.contains(&(std::process::id() as i32)));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
