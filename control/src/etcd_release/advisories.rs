//! The published etcd RBAC bypasses calseg knows, as data: for each, the release lines it
//! affects and the first release of each line with the fix, what it lets a Calico identity do,
//! and where the ranges come from. [`Advisory::verdict`] answers one version.
//!
//! How a version is judged (never "safe" without a source):
//! - a line with a row: affected before the row's fixed release; [`Fix::None`] marks a line
//!   with no fix (every release of it is affected);
//! - a line older than every row: affected, no fix known;
//! - a line newer than every row: fixed, because each fix below is on etcd's main branch, so
//!   every later line starts with it (checked with `git merge-base --is-ancestor` against
//!   etcd-io/etcd main at c34dc7ee, 2026-08-20);
//! - pre-releases of a line's fixed release (e.g. 3.7.0-beta.0 for a fix "in 3.7.0") count as
//!   affected even where a pre-release had the fix: conservative, and such builds do not
//!   belong in production;
//! - an unknown (unparseable) version: affected by every advisory.
//!
//! Sources: etcd's CHANGELOG files (CHANGELOG/CHANGELOG-3.x.md in etcd-io/etcd), the GitHub
//! security advisories they link, and the fix commits' presence in release tags. A distribution
//! that backports a fix without changing the version string is not seen; say so in warnings.

use super::version::{EtcdVersion, Reported};

/// One published bypass of etcd's RBAC.
#[derive(Debug)]
pub struct Advisory {
    /// The advisory's id (a metric label): the GHSA id, or the CVE id when it has none.
    pub id: &'static str,
    /// Other ids of the same issue (CVE, GHSA).
    pub aliases: &'static [&'static str],
    /// What it lets a Calico identity (a certificate whose CN is an etcd user) do.
    pub effect: &'static str,
    /// Per release line, the first release with the fix; ascending.
    pub lines: &'static [Line],
}

/// One release line's fix.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    pub major: u64,
    pub minor: u64,
    pub fix: Fix,
}

/// Whether and where a line got the fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    /// Fixed from this patch release of the line on.
    In(u64),
    /// The line ended (or goes on) without the fix: every release of it is affected.
    None,
}

const fn line(major: u64, minor: u64, fix: Fix) -> Line {
    Line { major, minor, fix }
}

/// The table. Keep each row's source beside it.
pub static ADVISORIES: &[Advisory] = &[
    // Source: CHANGELOG-3.5.md v3.5.33, CHANGELOG-3.6.md v3.6.14, CHANGELOG-3.7.md v3.7.1
    // ("Fix the security issue where a user granted read permission on one key could receive
    // watch responses for every key starting from that key", linking the advisory); fix
    // commits e863b001 (first tag v3.5.33), 6643f806 (v3.6.14), afeaa624 (v3.7.1), 7cf71ec9
    // (main). 3.4: CHANGELOG-3.4.md v3.4.45 declares 3.4 end of life, and v3.4.45's
    // etcdserver/api/v3rpc/watch.go still rewrites RangeEnd "\x00" before isWatchPermitted:
    // no fix in 3.4. Verified on Debian's 3.4.23 and 3.5.16 (reference/calico-etcd-rbac.md 7a).
    Advisory {
        id: "GHSA-xg4h-6gfc-h4m8",
        aliases: &["CVE-2026-73499"],
        effect: "an identity that may read one key opens a Watch from it with range_end \"\\x00\" \
                 and receives the events (values included) of every key after it, other nodes' \
                 and other tenants' included",
        lines: &[
            line(3, 4, Fix::None),
            line(3, 5, Fix::In(33)),
            line(3, 6, Fix::In(14)),
            line(3, 7, Fix::In(1)),
        ],
    },
    // Source: CHANGELOG-3.4.md v3.4.42, CHANGELOG-3.5.md v3.5.28, CHANGELOG-3.6.md v3.6.9
    // ("Enforce auth checks for nested txn ops to fix ... (CVE-2026-33343)"); the CVE record:
    // "Prior to versions 3.4.42, 3.5.28, and 3.6.9". 3.7: the main fix 204097b1 is in
    // v3.7.0-beta.0 and later, not in v3.7.0-alpha.0.
    Advisory {
        id: "GHSA-rfx7-8w68-q57q",
        aliases: &["CVE-2026-33343"],
        effect: "an identity wraps its requests in nested transactions and reads or writes any \
                 key, ignoring the key ranges of its roles",
        lines: &[
            line(3, 4, Fix::In(42)),
            line(3, 5, Fix::In(28)),
            line(3, 6, Fix::In(9)),
            line(3, 7, Fix::In(0)),
        ],
    },
    // Source: CHANGELOG-3.4.md v3.4.44, CHANGELOG-3.5.md v3.5.30, CHANGELOG-3.6.md v3.6.11
    // ("Fix RBAC authorization bypass allowing read access via PrevKv or lease attachment in
    // Put requests nested in etcd transactions", PRs 21683/21688, 21682/21687, 21681/21685);
    // backport commits 0cb3ebb4 (first tag v3.4.44), e8ce1ae4 (v3.5.30), 633de82d (v3.6.11).
    // 3.7: the main fix 70a2b487 (PR 21677) is in v3.7.0-beta.0 and later.
    Advisory {
        id: "GHSA-x35m-3gp4-4fh5",
        aliases: &["CVE-2026-44283"],
        effect: "inside a transaction, an identity reads a key's previous value (PrevKv) \
                 without read permission on it, and attaches leases to its puts without the \
                 lease checks",
        lines: &[
            line(3, 4, Fix::In(44)),
            line(3, 5, Fix::In(30)),
            line(3, 6, Fix::In(11)),
            line(3, 7, Fix::In(0)),
        ],
    },
    // Source: CHANGELOG-3.4.md v3.4.42, CHANGELOG-3.5.md v3.5.28, CHANGELOG-3.6.md v3.6.9
    // ("Guard unauthenticated endpoints with auth checks to fix Authorization bypasses in
    // multiple APIs (CVE-2026-33413)"); CVE record: ">= 3.6.0-alpha.0, < 3.6.9", ">=
    // 3.5.0-alpha.0, < 3.5.28", prior to 3.4.42. 3.7: main fix a07ecd12 in v3.7.0-beta.0 on.
    // (3.4.43 and 3.5.32 let non-admins list members, alarms and status again, by design.)
    Advisory {
        id: "GHSA-q8m4-xhhv-38mg",
        aliases: &["CVE-2026-33413"],
        effect: "an identity without any role lists the members (cluster topology), raises or \
                 disarms alarms (denial of service), grants and revokes leases (revoking \
                 another's lease deletes its keys) and compacts away history",
        lines: &[
            line(3, 4, Fix::In(42)),
            line(3, 5, Fix::In(28)),
            line(3, 6, Fix::In(9)),
            line(3, 7, Fix::In(0)),
        ],
    },
    // Source: CHANGELOG-3.4.md v3.4.26 and CHANGELOG-3.5.md v3.5.9 ("Fix LeaseTimeToLive API
    // may return keys to clients which have no read permission on the keys", PRs 15814,
    // 15815); advisory text "Prior to versions 3.4.26 and 3.5.9". 3.6: the main fix (PR 15656,
    // merge 49b59cc8) is in v3.6.0-rc.0 and later, not in v3.6.0-alpha.0.
    Advisory {
        id: "GHSA-3p4g-rcw5-8298",
        aliases: &["CVE-2023-32082"],
        effect: "an identity asks LeaseTimeToLive with keys=true and learns the names (not the \
                 values) of every key attached to a lease, keys it may not read included",
        lines: &[
            line(3, 4, Fix::In(26)),
            line(3, 5, Fix::In(9)),
            line(3, 6, Fix::In(0)),
        ],
    },
    // Source: CHANGELOG-3.2.md v3.2.26 and CHANGELOG-3.3.md v3.3.11 ("Disable CommonName
    // authentication for gRPC-gateway", PR 10366); NVD: "etcd versions 3.2.x before 3.2.26
    // and 3.3.x before 3.3.11". 3.4: the fix bf9d0d82 is in v3.4.0-rc.0 and later. 3.0 and
    // 3.1 have no row, so they count as affected with no fix known.
    Advisory {
        id: "CVE-2018-16886",
        aliases: &[],
        effect: "through the gRPC gateway (etcd's HTTP/JSON API), any trusted client \
                 certificate acts as the etcd user named by the CN of the gateway's own client \
                 certificate",
        lines: &[line(3, 2, Fix::In(26)), line(3, 3, Fix::In(11))],
    },
];

/// What an advisory means for one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The version has the fix.
    Fixed,
    /// Affected; upgrade within the line to this release.
    FixedIn(EtcdVersion),
    /// Affected; the line has no fix (or none calseg knows of).
    NoFixInLine { line: (u64, u64) },
    /// The version is unknown: affected, for all calseg can tell.
    Unknown,
}

impl Verdict {
    pub fn affected(&self) -> bool {
        !matches!(self, Self::Fixed)
    }
}

impl Advisory {
    /// Whether `version` has this bypass, and where the fix is for its line.
    pub fn verdict(&self, version: &Reported) -> Verdict {
        let Reported::Parsed(version) = version else {
            return Verdict::Unknown;
        };
        let here = version.line();
        let row = self.lines.iter().find(|l| (l.major, l.minor) == here);
        match row {
            Some(Line {
                fix: Fix::In(patch),
                ..
            }) => {
                let fixed = EtcdVersion::release(here.0, here.1, *patch);
                if *version >= fixed {
                    Verdict::Fixed
                } else {
                    Verdict::FixedIn(fixed)
                }
            }
            Some(Line { fix: Fix::None, .. }) => Verdict::NoFixInLine { line: here },
            None if self.lines.iter().all(|l| (l.major, l.minor) < here) => Verdict::Fixed,
            None => Verdict::NoFixInLine { line: here },
        }
    }

    /// The first fixed release of every line that has one, e.g. "3.5.33, 3.6.14, 3.7.1".
    pub fn fixed_releases(&self) -> String {
        let fixed: Vec<String> = self
            .lines
            .iter()
            .filter_map(|l| match l.fix {
                Fix::In(patch) => Some(format!("{}.{}.{patch}", l.major, l.minor)),
                Fix::None => None,
            })
            .collect();
        fixed.join(", ")
    }

    /// The id with its aliases, e.g. "GHSA-3p4g-rcw5-8298 (CVE-2023-32082)".
    pub fn name(&self) -> String {
        if self.aliases.is_empty() {
            self.id.to_owned()
        } else {
            format!("{} ({})", self.id, self.aliases.join(", "))
        }
    }
}

/// The advisories `version` is affected by, each with its verdict, in table order.
pub fn affecting(version: &Reported) -> Vec<(&'static Advisory, Verdict)> {
    ADVISORIES
        .iter()
        .map(|advisory| (advisory, advisory.verdict(version)))
        .filter(|(_, verdict)| verdict.affected())
        .collect()
}

#[cfg(test)]
mod tests;
