//! A child process tied to the test's lifetime: SIGKILLed when its handle drops (also during a
//! panic), and by the kernel when the spawning thread dies (`setpriv --pdeathsig KILL`), so a
//! test killed halfway leaves no process behind.

use anyhow::{Context, Result};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running child process that dies with its handle.
pub struct Guarded {
    child: Child,
    name: String,
}

impl Guarded {
    /// Spawns `program args…` with stdout and stderr appended to `log`. Spawn from the test's own
    /// thread (not a blocking-pool thread): the parent-death signal follows the spawning thread.
    pub fn spawn(name: &str, program: &Path, args: &[String], log: &Path) -> Result<Self> {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("open log {}", log.display()))?;
        let child = Command::new("setpriv")
            .arg("--pdeathsig")
            .arg("KILL")
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("spawn {name} ({})", program.display()))?;
        Ok(Self {
            child,
            name: name.to_owned(),
        })
    }

    /// The child's process id (as this process sees it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the child has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the child with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// The name given at spawn, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.kill();
    }
}
