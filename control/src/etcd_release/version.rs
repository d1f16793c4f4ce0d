//! etcd release versions as a member reports them ("3.4.23", "3.6.0-rc.1", "3.5.16+git"):
//! parsing, and the ordering semver gives them (a pre-release sorts before its release; build
//! metadata after `+` is ignored). A string that does not parse is kept as
//! [`Reported::Unknown`], which every caller must treat as affected, never as safe.

use std::cmp::Ordering;
use std::fmt;

/// A parsed etcd release version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Pre-release identifiers ("rc", 1 for "-rc.1"); empty for a release.
    pre: Vec<PreRelease>,
}

/// One dot-separated pre-release identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PreRelease {
    Number(u64),
    Text(String),
}

impl EtcdVersion {
    /// A release (no pre-release part).
    pub const fn release(major: u64, minor: u64, patch: u64) -> Self {
        Self {
            major,
            minor,
            patch,
            pre: Vec::new(),
        }
    }

    /// Parses "3.4.23", "v3.4.23", "3.6.0-rc.1" or "3.5.16+git"; `None` for anything else
    /// (missing parts, signs, spaces inside, empty identifiers).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        // Build metadata names a build, not a release: ignored, but it must be well formed.
        let (text, build) = match text.split_once('+') {
            Some((version, build)) => (version, Some(build)),
            None => (text, None),
        };
        if let Some(build) = build
            && !build.split('.').all(identifier)
        {
            return None;
        }
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (text, None),
        };
        let mut parts = core.split('.');
        let (Some(major), Some(minor), Some(patch), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let pre = match pre {
            None => Vec::new(),
            Some(pre) => pre
                .split('.')
                .map(|id| {
                    if !identifier(id) {
                        None
                    } else if id.bytes().all(|b| b.is_ascii_digit()) {
                        id.parse().ok().map(PreRelease::Number)
                    } else {
                        Some(PreRelease::Text(id.to_owned()))
                    }
                })
                .collect::<Option<Vec<_>>>()?,
        };
        Some(Self {
            major: number(major)?,
            minor: number(minor)?,
            patch: number(patch)?,
            pre,
        })
    }

    /// The release line, e.g. (3, 4) for 3.4.23.
    pub fn line(&self) -> (u64, u64) {
        (self.major, self.minor)
    }

    /// True for a pre-release ("3.6.0-rc.1").
    pub fn is_pre_release(&self) -> bool {
        !self.pre.is_empty()
    }
}

/// A version number part: digits only.
fn number(part: &str) -> Option<u64> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// A pre-release or build identifier: ASCII letters, digits and '-', not empty.
fn identifier(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Ord for EtcdVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                // A pre-release comes before its release.
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

impl PartialOrd for EtcdVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PreRelease {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Number(a), Self::Number(b)) => a.cmp(b),
            // Numeric identifiers sort before alphanumeric ones (semver 2.0, rule 11).
            (Self::Number(_), Self::Text(_)) => Ordering::Less,
            (Self::Text(_), Self::Number(_)) => Ordering::Greater,
            (Self::Text(a), Self::Text(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for PreRelease {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for EtcdVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        for (i, id) in self.pre.iter().enumerate() {
            f.write_str(if i == 0 { "-" } else { "." })?;
            match id {
                PreRelease::Number(n) => write!(f, "{n}")?,
                PreRelease::Text(t) => f.write_str(t)?,
            }
        }
        Ok(())
    }
}

/// What a member said its version is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    Parsed(EtcdVersion),
    /// Not a version calseg can read (kept for the message). Treated as affected by every
    /// advisory: calseg cannot show it is fixed.
    Unknown(String),
}

impl Reported {
    pub fn from_status(text: &str) -> Self {
        EtcdVersion::parse(text).map_or_else(|| Self::Unknown(text.to_owned()), Self::Parsed)
    }

    /// The version as a metric label: the parsed version, or "unknown".
    pub fn label(&self) -> String {
        match self {
            Self::Parsed(version) => version.to_string(),
            Self::Unknown(_) => "unknown".to_owned(),
        }
    }
}

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Parsed(version) => version.fmt(f),
            Self::Unknown(text) => write!(f, "unknown ({text:?} is not a version calseg reads)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> EtcdVersion {
        EtcdVersion::parse(text).unwrap_or_else(|| panic!("{text:?} should parse"))
    }

    #[test]
    fn debian_versions_and_suffixes_parse() {
        assert_eq!(v("3.4.23"), EtcdVersion::release(3, 4, 23));
        assert_eq!(v(" 3.5.16\n"), EtcdVersion::release(3, 5, 16));
        assert_eq!(v("v3.6.14"), EtcdVersion::release(3, 6, 14));
        assert_eq!(v("3.5.16+git").to_string(), "3.5.16");
        assert_eq!(v("3.5.16+dfsg.1-2").to_string(), "3.5.16");
        assert_eq!(v("3.6.0-rc.1").to_string(), "3.6.0-rc.1");
        assert_eq!(v("3.7.0-alpha.0+abc").to_string(), "3.7.0-alpha.0");
        assert!(v("3.6.0-rc.1").is_pre_release());
        assert_eq!(v("3.4.23").line(), (3, 4));
    }

    #[test]
    fn malformed_versions_do_not_parse() {
        for text in [
            "",
            "3",
            "3.4",
            "3.4.x",
            "3.4.23.1",
            "3.4.-1",
            "+3.4.23",
            "3.4.23-",
            "3.4.23-rc..1",
            "3.4.23+",
            "3. 4.23",
            "etcd 3.4.23",
            "99999999999999999999.0.0",
            "not provided",
        ] {
            assert_eq!(EtcdVersion::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn ordering_follows_semver() {
        let ordered = [
            "3.4.9",
            "3.4.23",
            "3.4.42",
            "3.5.0-alpha.0",
            "3.5.0-alpha.1",
            "3.5.0-beta.0",
            "3.5.0-rc.0",
            "3.5.0-rc.1",
            "3.5.0-rc.10",
            "3.5.0",
            "3.5.9",
            "3.5.16",
            "3.5.33",
            "3.10.0",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        // Build metadata does not order.
        assert_eq!(v("3.5.16+git").cmp(&v("3.5.16")), Ordering::Equal);
        // Numeric identifiers before alphanumeric ones.
        assert!(v("3.6.0-1") < v("3.6.0-rc"));
    }

    #[test]
    fn an_unparseable_status_is_unknown_and_labelled_so() {
        assert_eq!(
            Reported::from_status("3.4.23"),
            Reported::Parsed(EtcdVersion::release(3, 4, 23))
        );
        let unknown = Reported::from_status("not provided");
        assert_eq!(unknown, Reported::Unknown("not provided".into()));
        assert_eq!(unknown.label(), "unknown");
        assert!(unknown.to_string().starts_with("unknown"));
        assert_eq!(Reported::from_status("3.5.16+git").label(), "3.5.16");
    }
}
