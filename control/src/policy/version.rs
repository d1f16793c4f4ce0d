//! `calico_version`: parsing "3.29" and refusing versions calseg cannot segment (Calico 2.x uses
//! the etcdv2 datastore, whose auth store etcd v3 RBAC does not cover).

use std::fmt;

use serde::{Serialize, Serializer};

use super::location::Problem;

/// A Calico release line, `major.minor`. It picks the built-in grant tables (see
/// [`CalicoVersion::table_era`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CalicoVersion {
    pub major: u32,
    pub minor: u32,
}

impl CalicoVersion {
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// Parses `"3.29"`. Calico 2.x and anything older than 3.0 are refused with an explanation.
    pub(super) fn parse(text: &str) -> Result<Self, Problem> {
        let unparseable = || {
            Problem::new(
                format!("calico_version {text:?} is not a Calico version"),
                "write the running Calico release as \"major.minor\", e.g. calico_version = \"3.29\"",
            )
        };
        let (major, minor) = text.trim().split_once('.').ok_or_else(unparseable)?;
        let number = |part: &str| -> Option<u32> {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let (Some(major), Some(minor)) = (number(major), number(minor)) else {
            return Err(unparseable());
        };
        let version = Self::new(major, minor);
        match major {
            2 => Err(Problem::new(
                format!(
                    "calico_version {version}: Calico 2.x uses the etcdv2 datastore, whose separate \
                     v2 auth store etcd v3 RBAC does not cover, and calseg manages only etcd v3 RBAC"
                ),
                "upgrade to Calico 3 (etcdv3 datastore) and set calico_version to that release",
            )),
            0 | 1 => Err(Problem::new(
                format!("calico_version {version} is older than Calico 3.0"),
                "calseg supports Calico 3.0 and later (etcdv3 datastore); upgrade Calico",
            )),
            _ => Ok(version),
        }
    }
}

impl fmt::Display for CalicoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl Serialize for CalicoVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_major_minor_and_orders_numerically() {
        let v = CalicoVersion::parse("3.29").unwrap();
        assert_eq!(v, CalicoVersion::new(3, 29));
        assert!(CalicoVersion::new(3, 9) < CalicoVersion::new(3, 10));
        assert_eq!(v.to_string(), "3.29");
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"3.29\"");
    }

    #[test]
    fn refuses_calico_2_with_the_etcdv2_explanation() {
        let problem = CalicoVersion::parse("2.6").unwrap_err();
        assert!(problem.message.contains("etcdv2 datastore"), "{problem:?}");
        assert!(problem.message.contains("etcd v3 RBAC does not cover"));
        assert!(problem.hint.contains("upgrade to Calico 3"));
    }

    #[test]
    fn refuses_garbage_and_pre_3_versions() {
        for bad in ["3", "three.1", "3.29.1", "3.", ".3", "v3.29", "3.-1"] {
            assert!(CalicoVersion::parse(bad).is_err(), "{bad}");
        }
        assert!(
            CalicoVersion::parse("1.0")
                .unwrap_err()
                .message
                .contains("older")
        );
    }
}
