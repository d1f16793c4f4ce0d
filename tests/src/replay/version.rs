//! The Calico release being replayed, and what changes with it: the tiers `EnsureInitialized`
//! creates at every start (libcalico-go `lib/clientv3/client.go` at the release tags: none before
//! v3.29; `default`, `adminnetworkpolicy` in v3.29; plus `baselineadminnetworkpolicy` in v3.30
//! and v3.31; `default`, `kube-admin`, `kube-baseline` from v3.32), and whether node start-up
//! creates `bgpconfigurations/default` (node `pkg/lifecycle/startup/startup.go`, from v3.32).

use std::fmt;

/// A Calico release: major.minor, with the patch when one was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CalicoVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: Option<u32>,
}

/// A tier Calico creates at start-up, with the order and default action it gives it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tier {
    pub name: &'static str,
    pub order: f64,
    pub default_action: &'static str,
}

const DEFAULT: Tier = Tier {
    name: "default",
    order: 1_000_000.0,
    default_action: "Deny",
};
const ANP: Tier = Tier {
    name: "adminnetworkpolicy",
    order: 1_000.0,
    default_action: "Pass",
};
const BANP: Tier = Tier {
    name: "baselineadminnetworkpolicy",
    order: 10_000_000.0,
    default_action: "Pass",
};
const KUBE_ADMIN: Tier = Tier {
    name: "kube-admin",
    order: 1_000.0,
    default_action: "Pass",
};
const KUBE_BASELINE: Tier = Tier {
    name: "kube-baseline",
    order: 10_000_000.0,
    default_action: "Pass",
};

impl CalicoVersion {
    /// Parses `3.29`, `v3.29` or `v3.29.7`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let mut parts = text.strip_prefix('v').unwrap_or(text).split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            Some(patch) => Some(patch.parse().ok()?),
            None => None,
        };
        parts.next().is_none().then_some(Self {
            major,
            minor,
            patch,
        })
    }

    fn at_least(&self, minor: u32) -> bool {
        (self.major, self.minor) >= (3, minor)
    }

    /// The tiers this release creates with a transaction at every start.
    pub fn tiers(&self) -> &'static [Tier] {
        if self.at_least(32) {
            &[DEFAULT, KUBE_ADMIN, KUBE_BASELINE]
        } else if self.at_least(30) {
            &[DEFAULT, ANP, BANP]
        } else if self.at_least(29) {
            &[DEFAULT, ANP]
        } else {
            &[]
        }
    }

    /// Whether node start-up creates `bgpconfigurations/default` when it is missing.
    pub fn ensures_bgp_configuration(&self) -> bool {
        self.at_least(32)
    }

    /// Whether ClusterInformation's `calicoVersion` names this release. Calico compares its
    /// full build version (`v3.29.7`) and updates the object on any difference; a replay given
    /// only major.minor accepts every patch of that release.
    pub fn matches_stored(&self, stored: &str) -> bool {
        Self::parse(stored).is_some_and(|s| {
            (s.major, s.minor) == (self.major, self.minor)
                && (self.patch.is_none() || s.patch == self.patch)
        })
    }
}

impl fmt::Display for CalicoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}", self.major, self.minor)?;
        if let Some(patch) = self.patch {
            write!(f, ".{patch}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> CalicoVersion {
        CalicoVersion::parse(text).unwrap()
    }

    fn names(version: &str) -> Vec<&'static str> {
        v(version).tiers().iter().map(|t| t.name).collect()
    }

    #[test]
    fn parses_the_forms_calico_and_operators_write() {
        assert_eq!(
            v("3.29"),
            CalicoVersion {
                major: 3,
                minor: 29,
                patch: None
            }
        );
        assert_eq!(v("v3.29.7").patch, Some(7));
        assert_eq!(v("v3.32.1").to_string(), "v3.32.1");
        for bad in ["", "3", "3.x", "3.29.1.2", "v3.29.rc1"] {
            assert!(CalicoVersion::parse(bad).is_none(), "{bad:?} parsed");
        }
    }

    #[test]
    fn tiers_follow_the_release_tags() {
        assert!(names("3.28").is_empty());
        assert_eq!(names("3.29"), ["default", "adminnetworkpolicy"]);
        assert_eq!(
            names("3.30"),
            [
                "default",
                "adminnetworkpolicy",
                "baselineadminnetworkpolicy"
            ]
        );
        assert_eq!(names("3.31.2"), names("3.30"));
        assert_eq!(names("3.32"), ["default", "kube-admin", "kube-baseline"]);
        assert_eq!(names("3.33"), names("3.32"));
    }

    #[test]
    fn bgp_configuration_is_ensured_from_3_32() {
        assert!(!v("3.31").ensures_bgp_configuration());
        assert!(v("3.32").ensures_bgp_configuration());
    }

    #[test]
    fn a_stored_version_matches_at_the_precision_given() {
        assert!(v("3.29").matches_stored("v3.29.7"));
        assert!(v("3.29.7").matches_stored("v3.29.7"));
        assert!(!v("3.29.7").matches_stored("v3.29.6"));
        assert!(!v("3.29").matches_stored("v3.28.2"));
        assert!(!v("3.29").matches_stored(""));
    }
}
