//! `promtool check metrics` (Debian's prometheus package) on a scrape or a textfile: the
//! check issue 18 asks the metrics to pass.

use crate::prereq::require_command;
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `promtool check metrics` on `text`; `Err` with its findings. Panics, saying what to
/// install, when promtool is missing.
pub fn check_metrics(text: &str) -> Result<()> {
    let promtool = require_command("promtool", "--no-install-recommends prometheus");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("run promtool")?;
    child
        .stdin
        .take()
        .context("promtool's stdin")?
        .write_all(text.as_bytes())
        .context("write to promtool")?;
    let out = child.wait_with_output().context("wait for promtool")?;
    if !out.status.success() {
        bail!(
            "promtool check metrics failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
