//! One check's outcome for the whole cluster: per endpoint, the version it reported (or why it
//! did not answer) and the known bypasses of that version; and what calseg says about it: the
//! warnings, a one-line status, the metric series, and the refusal `refuse_known_bypasses`
//! asks for.
//!
//! An endpoint that does not answer is not counted as affected: its version is unknown until
//! it answers, and the next check (soon, while an endpoint is silent) asks again. A member
//! that answers with a version calseg cannot read is affected by every advisory.

use super::advisories::{ADVISORIES, Advisory, Fix, Verdict, affecting};
use super::probe::Answer;
use super::version::{EtcdVersion, Reported};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// One endpoint's part of a check.
#[derive(Debug, Clone)]
pub struct MemberRelease {
    pub endpoint: String,
    pub answer: Answer,
    /// The advisories its version is affected by (none when it did not answer).
    pub findings: Vec<(&'static Advisory, Verdict)>,
}

/// A check of every endpoint.
#[derive(Debug, Clone)]
pub struct ReleaseReport {
    pub members: Vec<MemberRelease>,
}

/// `[etcd] refuse_known_bypasses = true` and a member has a known RBAC bypass.
#[derive(Debug, Error)]
#[error(
    "{summary}: calseg refuses to change etcd's RBAC on it because [etcd] \
     refuse_known_bypasses = true in server.toml. Upgrade every member to {upgrade}, or set \
     refuse_known_bypasses = false to go on with a warning (e.g. when your etcd build has the \
     fixes backported without a new version number)"
)]
pub struct KnownBypasses {
    pub summary: String,
    pub upgrade: String,
}

impl ReleaseReport {
    /// Judges each endpoint's answer against the advisory table.
    pub fn from_answers(answers: Vec<(String, Answer)>) -> Self {
        let members = answers
            .into_iter()
            .map(|(endpoint, answer)| {
                let findings = match &answer {
                    Answer::Version(version) => affecting(version),
                    Answer::NoAnswer(_) => Vec::new(),
                };
                MemberRelease {
                    endpoint,
                    answer,
                    findings,
                }
            })
            .collect();
        Self { members }
    }

    /// The distinct advisories that affect at least one member.
    pub fn advisory_ids(&self) -> BTreeSet<&'static str> {
        self.members
            .iter()
            .flat_map(|m| m.findings.iter().map(|(a, _)| a.id))
            .collect()
    }

    /// True when a member that answered has a known bypass (or an unknown version).
    pub fn has_known_bypasses(&self) -> bool {
        self.members.iter().any(|m| !m.findings.is_empty())
    }

    /// Whether any endpoint did not answer (the check is then repeated sooner).
    pub fn has_silent_members(&self) -> bool {
        self.members
            .iter()
            .any(|m| matches!(m.answer, Answer::NoAnswer(_)))
    }

    /// Version label → number of members reporting it.
    fn versions(&self) -> BTreeMap<String, usize> {
        let mut versions = BTreeMap::new();
        for member in &self.members {
            if let Answer::Version(version) = &member.answer {
                *versions.entry(version.label()).or_insert(0) += 1;
            }
        }
        versions
    }

    /// The warnings to show, one line each: per affected or silent member, and one when the
    /// members run different versions.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for member in &self.members {
            match &member.answer {
                Answer::NoAnswer(reason) => out.push(format!(
                    "etcd at {} did not report its version ({reason}); its release and \
                     its known RBAC bypasses are unknown until it answers",
                    member.endpoint
                )),
                Answer::Version(version) if !member.findings.is_empty() => {
                    out.push(member_warning(member, version));
                }
                Answer::Version(_) => {}
            }
        }
        let versions = self.versions();
        if versions.len() > 1 {
            let at: Vec<String> = self
                .members
                .iter()
                .filter_map(|m| match &m.answer {
                    Answer::Version(v) => Some(format!("{} at {}", v.label(), m.endpoint)),
                    Answer::NoAnswer(_) => None,
                })
                .collect();
            out.push(format!(
                "etcd members run different versions: {}",
                at.join(", ")
            ));
        }
        out
    }

    /// What each affected advisory lets an identity do, one line each, for people.
    pub fn effects(&self) -> Vec<String> {
        let ids = self.advisory_ids();
        ADVISORIES
            .iter()
            .filter(|a| ids.contains(a.id))
            .map(|a| format!("{}: {}", a.id, a.effect))
            .collect()
    }

    /// One line for status displays, e.g. "etcd 3.4.23 on 1/1 members: 5 known RBAC bypasses".
    pub fn status_line(&self) -> String {
        let versions = self.versions();
        let answered: usize = versions.values().sum();
        let shown = match versions.len() {
            0 => "version unknown".to_owned(),
            1 => versions.keys().cloned().collect::<String>(),
            _ => versions
                .iter()
                .map(|(v, n)| format!("{v} ×{n}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let bypasses = match self.advisory_ids().len() {
            0 => "no known RBAC bypasses".to_owned(),
            1 => "1 known RBAC bypass".to_owned(),
            n => format!("{n} known RBAC bypasses"),
        };
        format!(
            "etcd {shown} on {answered}/{} members: {bypasses}",
            self.members.len()
        )
    }

    /// `(endpoint, answered)` of every member: `calseg_etcd_up`.
    pub fn up_series(&self) -> Vec<(String, bool)> {
        self.members
            .iter()
            .map(|m| (m.endpoint.clone(), matches!(m.answer, Answer::Version(_))))
            .collect()
    }

    /// `(endpoint, version)` of each member that answered: `calseg_etcd_member_info`.
    pub fn member_series(&self) -> Vec<(String, String)> {
        self.members
            .iter()
            .filter_map(|m| match &m.answer {
                Answer::Version(v) => Some((m.endpoint.clone(), v.label())),
                Answer::NoAnswer(_) => None,
            })
            .collect()
    }

    /// `(endpoint, advisory)` of each bypass a member has: `calseg_etcd_known_rbac_bypass`.
    pub fn bypass_series(&self) -> Vec<(String, String)> {
        self.members
            .iter()
            .flat_map(|m| {
                m.findings
                    .iter()
                    .map(|(a, _)| (m.endpoint.clone(), a.id.to_owned()))
            })
            .collect()
    }

    /// The refusal `refuse_known_bypasses` asks for, when a member has a known bypass.
    pub fn refuse_known_bypasses(&self) -> Result<(), KnownBypasses> {
        let affected: Vec<&MemberRelease> = self
            .members
            .iter()
            .filter(|m| !m.findings.is_empty())
            .collect();
        if affected.is_empty() {
            return Ok(());
        }
        let summary = affected
            .iter()
            .map(|m| {
                let version = match &m.answer {
                    Answer::Version(v) => v.label(),
                    Answer::NoAnswer(_) => "unknown".to_owned(),
                };
                let ids: Vec<&str> = m.findings.iter().map(|(a, _)| a.id).collect();
                format!(
                    "etcd at {} runs {version}, which has known RBAC bypasses {}",
                    m.endpoint,
                    ids.join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        Err(KnownBypasses {
            summary,
            upgrade: upgrade_targets(None),
        })
    }
}

/// "etcd at E runs V, which has N known RBAC bypasses: ID (fix), …; first release of the line
/// without them: …".
fn member_warning(member: &MemberRelease, version: &Reported) -> String {
    let n = member.findings.len();
    let listed: Vec<String> = member
        .findings
        .iter()
        .map(|(advisory, verdict)| format!("{} ({})", advisory.name(), fix_text(advisory, verdict)))
        .collect();
    let plural = if n == 1 { "" } else { "es" };
    let (runs, upgrade) = match version {
        Reported::Parsed(v) => (
            format!("runs {v}, which has {n} known RBAC bypass{plural}"),
            match first_clean_release(v.line()) {
                Some(clean) if clean > *v => {
                    format!(
                        "first {}.{} release without them: {clean}",
                        v.major, v.minor
                    )
                }
                _ => format!(
                    "{}.{} has no release without them: upgrade to {}",
                    v.major,
                    v.minor,
                    upgrade_targets(Some(v.line()))
                ),
            },
        ),
        Reported::Unknown(text) => (
            format!(
                "runs a version calseg cannot read ({text:?}), so it counts as affected by all \
                 {n} known RBAC bypass{plural}"
            ),
            format!("upgrade to {}", upgrade_targets(None)),
        ),
    };
    format!(
        "etcd at {} {runs}: {}; {upgrade}",
        member.endpoint,
        listed.join(", ")
    )
}

/// Where the fix is, for one advisory and one version.
fn fix_text(advisory: &Advisory, verdict: &Verdict) -> String {
    match verdict {
        Verdict::Fixed => "fixed".to_owned(),
        Verdict::FixedIn(release) => format!("fixed in {release}"),
        Verdict::NoFixInLine {
            line: (major, minor),
        } => match advisory.fixed_releases() {
            fixed if fixed.is_empty() => format!("no fix known in {major}.{minor}"),
            fixed => format!("no fix known in {major}.{minor}; fixed in {fixed}"),
        },
        Verdict::Unknown => format!("fixed in {}", advisory.fixed_releases()),
    }
}

/// The first release of `line` that has every fix in the table; `None` when an advisory has
/// no fix in that line, or the line is older than some advisory's rows.
fn first_clean_release(line: (u64, u64)) -> Option<EtcdVersion> {
    let mut patch = 0;
    for advisory in ADVISORIES {
        match advisory.lines.iter().find(|l| (l.major, l.minor) == line) {
            Some(row) => match row.fix {
                Fix::In(p) => patch = patch.max(p),
                Fix::None => return None,
            },
            None if advisory.lines.iter().all(|l| (l.major, l.minor) < line) => {}
            None => return None,
        }
    }
    Some(EtcdVersion::release(line.0, line.1, patch))
}

/// The first release of each line in the table (newer than `after`, when given) that has
/// every fix: "at least 3.5.33, 3.6.14 or 3.7.1".
fn upgrade_targets(after: Option<(u64, u64)>) -> String {
    let lines: BTreeSet<(u64, u64)> = ADVISORIES
        .iter()
        .flat_map(|a| a.lines.iter().map(|l| (l.major, l.minor)))
        .filter(|line| after.is_none_or(|after| *line > after))
        .collect();
    let targets: Vec<String> = lines
        .into_iter()
        .filter_map(first_clean_release)
        .map(|v| v.to_string())
        .collect();
    match targets.split_last() {
        None => "a release newer than every advisory's rows".to_owned(),
        Some((last, [])) => format!("at least {last}"),
        Some((last, rest)) => format!("at least {} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests;
