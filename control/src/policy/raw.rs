//! The policy file as serde reads it: every value wrapped in `Spanned` so validation can point
//! at it. Nothing here is checked beyond TOML types; `validate` turns these into the model.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use toml::Spanned;

/// `[etcd]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEtcd {
    pub endpoints: Spanned<Vec<Spanned<String>>>,
    pub ca_file: Option<Spanned<String>>,
}

/// `[identity]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIdentity {
    pub user: Option<Spanned<String>>,
    pub lifetime: Option<Spanned<String>>,
    pub renew_after: Option<Spanned<Scalar>>,
}

/// `[datastore]`: values for `calseg-server datastore init`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatastore {
    pub calico_release: Option<Spanned<String>>,
    pub cluster_type: Option<Spanned<String>>,
    pub default_pool: Option<Spanned<bool>>,
    pub ipv4_pool_cidr: Option<Spanned<String>>,
    pub ipip_mode: Option<Spanned<String>>,
    pub vxlan_mode: Option<Spanned<String>>,
    pub nat_outgoing: Option<Spanned<bool>>,
    pub block_size: Option<Spanned<i64>>,
    pub as_number: Option<Spanned<i64>>,
    pub node_to_node_mesh: Option<Spanned<bool>>,
    pub log_severity: Option<Spanned<String>>,
}

/// `[components.<name>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawComponent {
    pub grants: Option<Spanned<RawGrants>>,
    #[serde(default)]
    pub extra_grants: Vec<Spanned<RawGrant>>,
    #[serde(default)]
    pub node_grants: Vec<Spanned<RawGrant>>,
    #[serde(default)]
    pub restart: Vec<Spanned<String>>,
    pub env_file: Option<Spanned<String>>,
    pub cni_conflist: Option<Spanned<String>>,
    pub calicoctl_cfg: Option<Spanned<String>>,
    pub cert_dir: Option<Spanned<String>>,
    pub owner: Option<Spanned<String>>,
    pub group: Option<Spanned<String>>,
    pub key_mode: Option<Spanned<Scalar>>,
    pub cert_mode: Option<Spanned<Scalar>>,
    /// One etcd user for the whole component, besides or instead of one per node.
    pub component_identity: Option<Spanned<bool>>,
}

/// `{ prefix = "...", access = "..." }` or `{ key = "...", access = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGrant {
    pub prefix: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub access: Spanned<String>,
}

/// `[[hosts]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHost {
    pub name: Option<Spanned<String>>,
    pub names: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(rename = "match")]
    pub pattern: Option<Spanned<String>>,
    pub components: Spanned<Vec<Spanned<String>>>,
    /// This rule's own restart budget, among the nodes it matches.
    pub max_unavailable: Option<Spanned<Scalar>>,
}

/// `[rollout]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRollout {
    pub max_unavailable: Option<Spanned<Scalar>>,
    pub lease_ttl: Option<Spanned<String>>,
    pub max_lease_life: Option<Spanned<String>>,
    /// The first wave: a count of nodes or a list of node names.
    pub canary: Option<Spanned<RawCanary>>,
    /// The size of each later wave: a count or a percentage.
    pub wave: Option<Spanned<Scalar>>,
    pub bake: Option<Spanned<String>>,
    pub max_failures: Option<Spanned<Scalar>>,
}

/// `canary`: a count (`1`) or node names (`["node-a"]`); anything else is kept for its error.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum RawCanary {
    Count(i64),
    Names(Vec<String>),
    Other(String),
}

impl<'de> Deserialize<'de> for RawCanary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CanaryVisitor;
        impl<'de> Visitor<'de> for CanaryVisitor {
            type Value = RawCanary;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a count or an array of node names")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawCanary, E> {
                Ok(RawCanary::Count(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawCanary, E> {
                Ok(RawCanary::Count(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawCanary, E> {
                Ok(RawCanary::Other(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawCanary, E> {
                Ok(RawCanary::Other(format!("{v:?}")))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawCanary, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(RawCanary::Names(names))
            }
        }
        deserializer.deserialize_any(CanaryVisitor)
    }
}

/// `grants`: a built-in table's name, or an explicit list that replaces any table.
#[derive(Debug)]
pub(super) enum RawGrants {
    Table(String),
    List(Vec<Spanned<RawGrant>>),
}

impl<'de> Deserialize<'de> for RawGrants {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GrantsVisitor;
        impl<'de> Visitor<'de> for GrantsVisitor {
            type Value = RawGrants;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a built-in table name (string) or an array of grants")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawGrants, E> {
                Ok(RawGrants::Table(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawGrants, A::Error> {
                let mut grants = Vec::new();
                while let Some(grant) = seq.next_element()? {
                    grants.push(grant);
                }
                Ok(RawGrants::List(grants))
            }
        }
        deserializer.deserialize_any(GrantsVisitor)
    }
}

/// A string or a number, for values whose wrong-type errors deserve their own hint
/// (`calico_version = 3.29`, `key_mode = 0640`, `renew_after = 0.66`).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar {
    Text(String),
    Integer(i64),
    Float(f64),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Integer(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                i64::try_from(v)
                    .map(Scalar::Integer)
                    .map_err(|_| E::custom("integer too large"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}
