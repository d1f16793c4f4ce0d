//! The node_exporter textfile `calseg.prom`, written after each cycle into `[metrics]
//! textfile_dir` (agent.toml) for node_exporter's textfile collector: each installed
//! certificate's expiry (the fleet certificate as component `fleet`), the last cycle's time and
//! outcome, and whether the server revoked this node. Read from the state directory, so it
//! says what `calseg-agent status` says. Written atomically, mode 0644 (node_exporter runs as
//! another user), in the text format 0.0.4 node_exporter reads.

use crate::keys::cert_info;
use crate::state::{Outcome, StateDir, StateError, write_atomic};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use std::path::Path;

/// The file's name in the textfile directory.
pub const FILE_NAME: &str = "calseg.prom";
/// Its mode: node_exporter reads it as another user; it holds no secret.
pub const MODE: u32 = 0o644;

/// Every outcome, so `calseg_agent_last_cycle_outcome` has one series each (1 for the last).
const OUTCOMES: [Outcome; 7] = [
    Outcome::Unchanged,
    Outcome::Changed,
    Outcome::Failed,
    Outcome::Unreachable,
    Outcome::Interrupted,
    Outcome::Refused,
    Outcome::Revoked,
];

/// What the file says, read from the state directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// (component, notAfter in unix seconds) of each installed certificate, and `fleet`.
    pub expiries: Vec<(String, i64)>,
    /// The last cycle's end (unix seconds) and outcome.
    pub last_cycle: Option<(i64, Outcome)>,
    pub revoked: bool,
}

impl Facts {
    /// Reads `state`: installed.json, fleet.pem, last-cycle.json and revoked.json.
    pub fn read(state: &StateDir) -> Result<Self, StateError> {
        let mut expiries: Vec<(String, i64)> = state
            .installed()?
            .into_values()
            .map(|i| (i.component, i.not_after.unix_timestamp()))
            .collect();
        if let Some(fleet) = state.read(StateDir::FLEET_CERT)?
            && let Ok(info) = cert_info(&fleet)
        {
            expiries.push(("fleet".to_owned(), info.not_after.unix_timestamp()));
        }
        Ok(Self {
            expiries,
            last_cycle: state
                .last_cycle()?
                .map(|c| (c.finished_at.unix_timestamp(), c.outcome)),
            revoked: state.revoked()?.is_some(),
        })
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut r = Registry::default();
        r.register(
            "calseg_agent_build_info",
            "1, labelled with the version of calseg-agent that wrote this file",
            gauges("version", [(env!("CARGO_PKG_VERSION"), 1)]),
        );
        r.register(
            "calseg_agent_certificate_expiration_timestamp_seconds",
            "The notAfter (unix seconds) of each certificate installed on this node, by \
             component; fleet is the agent's own certificate to the server",
            gauges(
                "component",
                self.expiries.iter().map(|(c, at)| (c.as_str(), *at)),
            ),
        );
        if let Some((at, outcome)) = self.last_cycle {
            r.register(
                "calseg_agent_last_cycle_timestamp_seconds",
                "Unix time the agent's last cycle ended",
                ConstGauge::new(at),
            );
            let ok = matches!(outcome, Outcome::Unchanged | Outcome::Changed);
            r.register(
                "calseg_agent_last_cycle_success",
                "1 when the last cycle ended unchanged or changed, 0 otherwise",
                ConstGauge::new(i64::from(ok)),
            );
            r.register(
                "calseg_agent_last_cycle_outcome",
                "1 for the outcome of the last cycle, 0 for the others",
                gauges(
                    "outcome",
                    OUTCOMES.map(|o| (o.as_str(), i64::from(o == outcome))),
                ),
            );
        }
        r.register(
            "calseg_agent_revoked",
            "1 while the server says this node is revoked (its etcd identities are gone)",
            ConstGauge::new(i64::from(self.revoked)),
        );
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut text, &r);
        text
    }
}

/// A family of gauges labelled `label`, values escaped.
fn gauges<'a>(
    label: &'static str,
    values: impl IntoIterator<Item = (&'a str, i64)>,
) -> Family<Vec<(&'static str, String)>, Gauge> {
    let family = Family::<Vec<(&'static str, String)>, Gauge>::default();
    for (value, n) in values {
        family.get_or_create(&vec![(label, escape(value))]).set(n);
    }
    family
}

/// A label value as the text format wants it (prometheus-client writes values as they are).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes `calseg.prom` into `dir` from `state`, atomically with mode 0644.
pub fn write(dir: &Path, state: &StateDir) -> Result<(), StateError> {
    let text = Facts::read(state)?.render();
    write_atomic(dir, FILE_NAME, text.as_bytes(), MODE)
}

#[cfg(test)]
mod tests;
