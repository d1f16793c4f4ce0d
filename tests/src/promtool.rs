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
    let written = child
        .stdin
        .take()
        .context("promtool's stdin")
        .and_then(|mut stdin| {
            stdin
                .write_all(text.as_bytes())
                .context("write to promtool")
        });
    let out = child.wait_with_output().context("wait for promtool")?;
    written?;
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

/// Parses `text` with the Prometheus Python client's strict OpenMetrics parser (Debian's
/// python3-prometheus-client); `Err` with its error. Panics, saying what to install, when the
/// parser is missing.
pub fn check_openmetrics(text: &str) -> Result<()> {
    let install = "install it with `apt-get install -y --no-install-recommends \
                   python3-prometheus-client`, or run the README's test command \
                   (`./scripts/test.sh`), which installs it";
    let script = "import sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families as p\n\
        list(p(sys.stdin.read()))\n";
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("prerequisite missing: /usr/bin/python3 ({e}); {install}"));
    let written = child
        .stdin
        .take()
        .context("python3's stdin")
        .and_then(|mut stdin| stdin.write_all(text.as_bytes()).context("write to python3"));
    let out = child.wait_with_output().context("wait for python3")?;
    written?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named 'prometheus_client'") {
        panic!(
            "prerequisite missing: the OpenMetrics parser (python3-prometheus-client); {install}"
        );
    }
    if !out.status.success() {
        bail!("not valid OpenMetrics:\n{stderr}");
    }
    Ok(())
}
