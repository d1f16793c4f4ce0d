//! The dry run behind `calseg-agent plan`: for a manifest, which identities would get a new
//! certificate and why, which files would change (by SHA-256, never contents) and which
//! units would restart. It signs nothing, writes nothing and restarts nothing. The decision
//! and the file specs are the pass's own ([`crate::cycle::steps`]), so the dry run cannot
//! drift from the real run.

use crate::cycle::Installer as _;
use crate::cycle::real::FsInstaller;
use crate::cycle::steps::{decisions, identity_specs, render_specs};
use crate::decide::{Action, Renew};
use crate::install::{Change, plan_file, plan_set};
use crate::state::InstalledIdentity;
use calseg_api::manifest::Manifest;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use time::OffsetDateTime;

/// What would happen to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilePlan {
    pub path: PathBuf,
    /// `create`, `update`, `unchanged`, or `new_certificate` (cert and key of a new identity,
    /// whose contents exist only once signed).
    pub change: &'static str,
    pub old_sha256: Option<String>,
    /// `None` for a new certificate or key: not known before signing.
    pub new_sha256: Option<String>,
}

/// The plan of one identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityPlan {
    pub component: String,
    pub etcd_user: String,
    pub action: Action,
    pub files: Vec<FilePlan>,
    /// Units this identity would restart (empty when nothing of it changes).
    pub restart: Vec<String>,
}

/// The whole dry run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub node: String,
    pub revision: String,
    pub identities: Vec<IdentityPlan>,
    /// Every unit that would restart, once each.
    pub units: Vec<String>,
    pub errors: Vec<String>,
}

impl Plan {
    /// Whether applying would change anything.
    pub fn changes(&self) -> bool {
        self.identities
            .iter()
            .any(|i| !i.restart.is_empty() || i.files.iter().any(|f| f.change != "unchanged"))
    }
}

fn word(change: Change) -> &'static str {
    match change {
        Change::Create => "create",
        Change::Update { .. } => "update",
        Change::Unchanged => "unchanged",
    }
}

/// Plans `manifest` against what `installer` sees on disk and the `installed` records, as of
/// `now`.
pub fn plan(
    manifest: &Manifest,
    installed: &BTreeMap<String, InstalledIdentity>,
    installer: &FsInstaller,
    now: OffsetDateTime,
) -> Plan {
    let mut errors = Vec::new();
    let mut units: Vec<String> = Vec::new();
    let mut identities = Vec::new();
    let decisions =
        decisions(manifest, installed, installer, now, &Renew::AsDue).unwrap_or_else(|e| {
            errors.push(e);
            Vec::new()
        });
    for (identity, decision) in manifest.identities.iter().zip(decisions) {
        let mut files = Vec::new();
        let issue = matches!(decision.action, Action::Issue(_));
        if issue {
            let specs = identity_specs(manifest, identity, b"", b"");
            match plan_set(installer.root(), &specs) {
                Ok(plans) => files.extend(plans.into_iter().enumerate().map(|(i, p)| FilePlan {
                    change: if i == 0 {
                        word(p.change)
                    } else {
                        "new_certificate"
                    },
                    new_sha256: (i == 0).then_some(p.new_sha256),
                    path: p.path,
                    old_sha256: p.old_sha256,
                })),
                Err(e) => errors.push(format!("{}: {e}", identity.component)),
            }
        }
        let (specs, render_errors) = render_specs(manifest, identity, installer);
        errors.extend(
            render_errors
                .into_iter()
                .map(|e| format!("{}: {e}", identity.component)),
        );
        for spec in &specs {
            match plan_file(installer.root(), spec) {
                Ok(p) => files.push(FilePlan {
                    change: word(p.change),
                    new_sha256: Some(p.new_sha256),
                    path: p.path,
                    old_sha256: p.old_sha256,
                }),
                Err(e) => errors.push(format!("{}: {e}", identity.component)),
            }
        }
        let changes = issue || files.iter().any(|f| f.change != "unchanged");
        let restart = if changes {
            identity.restart.clone()
        } else {
            Vec::new()
        };
        for unit in &restart {
            if !units.contains(unit) {
                units.push(unit.clone());
            }
        }
        identities.push(IdentityPlan {
            component: identity.component.clone(),
            etcd_user: identity.etcd_user.clone(),
            action: decision.action,
            files,
            restart,
        });
    }
    Plan {
        node: manifest.node.clone(),
        revision: manifest.revision.clone(),
        identities,
        units,
        errors,
    }
}

/// The plan as text for people.
pub fn to_text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "node {} at manifest revision {}",
        plan.node, plan.revision
    );
    for id in &plan.identities {
        let action = match &id.action {
            Action::Keep { renew_at } => {
                format!("keep (renew at {})", calseg_api::when::rfc3339(renew_at))
            }
            Action::Issue(reason) => format!("new certificate ({reason})"),
        };
        let _ = writeln!(out, "\n{} ({}): {action}", id.component, id.etcd_user);
        for f in &id.files {
            let short = |h: &Option<String>| {
                h.as_deref()
                    .map_or("-".to_owned(), |h| h.get(..12).unwrap_or(h).to_owned())
            };
            let _ = writeln!(
                out,
                "  {:<16} {}  {} -> {}",
                f.change,
                f.path.display(),
                short(&f.old_sha256),
                short(&f.new_sha256)
            );
        }
    }
    let units = if plan.units.is_empty() {
        "none".to_owned()
    } else {
        plan.units.join(", ")
    };
    let _ = writeln!(out, "\nunits that would restart: {units}");
    for e in &plan.errors {
        let _ = writeln!(out, "error: {e}");
    }
    out
}
