//! What `datastore init` found and did, per object: for people (one line per object and a
//! summary) and for scripts (the [`Report`] as JSON).
//!
//! JSON shape (`--json`):
//! ```json
//! { "dry_run": false, "calico_version": "3.29", "written": true, "revision": 42,
//!   "attempts": 1,
//!   "objects": [
//!     { "key": "/calico/resources/v3/projectcalico.org/clusterinformations/default",
//!       "kind": "ClusterInformation", "name": "default",
//!       "state": "create" | "exists" | "exists-differs" | "not-needed",
//!       "mod_revision": 42,
//!       "value": { ...the object written, for "create" },
//!       "differences": [ { "field": "spec.cidr", "etcd": "10.9.0.0/16",
//!                          "calseg": "192.168.0.0/16" } ],
//!       "ipv4_pools": ["other-pool"] } ],
//!   "warnings": ["..."] }
//! ```
//! `written` says whether this run created anything (never with `dry_run`); `revision` is
//! etcd's revision of the write, else of the read; `mod_revision` is the stored object's (for
//! `create`: the write's, `null` when nothing was written); `differences` appear only for
//! `exists-differs` (`etcd` is `null` when the field is absent), `ipv4_pools` only for
//! `not-needed` (the default pool is not created while another IPv4 pool exists, as
//! calico-node would not create it).

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::compare::Difference;
use super::objects::Kind;
use crate::policy::CalicoVersion;

/// What happens to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Missing: created (or, with --dry-run, would be).
    Create,
    /// Present with calseg's values.
    Exists,
    /// Present with other values: left as it is.
    ExistsDiffers,
    /// The default IPv4 pool, missing while other IPv4 pools exist: not created.
    NotNeeded,
}

impl State {
    /// The word of the text output.
    pub fn label(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Exists => "exists",
            Self::ExistsDiffers => "exists, differs",
            Self::NotNeeded => "not needed",
        }
    }
}

/// One object's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub key: String,
    pub kind: Kind,
    pub name: String,
    pub state: State,
    pub mod_revision: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<Difference>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ipv4_pools: Vec<String>,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub dry_run: bool,
    pub calico_version: CalicoVersion,
    pub written: bool,
    pub revision: i64,
    /// Reads it took: more than 1 when another client created an object meanwhile.
    pub attempts: u32,
    pub objects: Vec<Outcome>,
    pub warnings: Vec<String>,
}

impl Report {
    /// How many objects are in `state`.
    pub fn count(&self, state: State) -> usize {
        self.objects.iter().filter(|o| o.state == state).count()
    }

    /// One line per object (with its differences indented below), then a summary.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        for o in &self.objects {
            let _ = write!(out, "{:<15}  {}", o.state.label(), o.key);
            match o.state {
                State::ExistsDiffers => {
                    out.push_str(": left as it is\n");
                    for d in &o.differences {
                        let etcd = d.etcd.as_ref().map_or("absent".into(), Value::to_string);
                        let _ = writeln!(out, "    {}: etcd {etcd}, calseg {}", d.field, d.calseg);
                    }
                }
                State::NotNeeded => {
                    let _ = writeln!(
                        out,
                        ": IPv4 pool(s) {} exist, so calico-node creates no default pool",
                        o.ipv4_pools.join(", ")
                    );
                }
                State::Create | State::Exists => out.push('\n'),
            }
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    fn summary(&self) -> String {
        let create = objects(self.count(State::Create));
        let mut parts = vec![if self.dry_run {
            format!("Dry run: would create {create}; nothing was written")
        } else if self.written {
            format!(
                "Created {create} in one etcd transaction (revision {})",
                self.revision
            )
        } else {
            "Nothing to create".to_string()
        }];
        match self.count(State::Exists) {
            0 => {}
            1 => parts.push("1 exists as calseg would write it".into()),
            n => parts.push(format!("{n} exist as calseg would write them")),
        }
        match self.count(State::ExistsDiffers) {
            0 => {}
            1 => parts.push("1 exists with other values, left as it is".into()),
            n => parts.push(format!("{n} exist with other values, left as they are")),
        }
        if self.count(State::NotNeeded) > 0 {
            parts.push("the default IPv4 pool is not needed".into());
        }
        format!("{}.", parts.join("; "))
    }
}

fn objects(n: usize) -> String {
    match n {
        1 => "1 object".into(),
        n => format!("{n} objects"),
    }
}
