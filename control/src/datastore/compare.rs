//! An object found in etcd against the one calseg would write: which of calseg's values it
//! lacks or holds otherwise, and whether calico-node will write it at start anyway (node
//! `startup.go` `ensureDefaultConfig`, libcalico-go `clientv3/client.go`
//! `ensureClusterInformation`), which a per-node identity may not.

use serde::Serialize;
use serde_json::Value;

use super::objects::{Kind, Object};
use crate::policy::DatastoreSettings;

/// A value of calseg's that the stored object does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// `kind`, `apiVersion`, `spec.<field>`, or `value` when the stored bytes are not JSON.
    pub field: String,
    /// The stored value; `None` when the field is absent.
    pub etcd: Option<Value>,
    /// calseg's value.
    pub calseg: Value,
}

/// Spec fields calseg generates anew for every object: only their presence is compared.
const GENERATED: &[&str] = &["clusterGUID"];

/// The differences between `stored` (the bytes in etcd) and `desired`. Fields calseg does not
/// set are not compared; nor is the metadata (uid and creationTimestamp are per object).
pub fn differences(desired: &Object, stored: &[u8]) -> Vec<Difference> {
    let Ok(ours) = serde_json::from_str::<Value>(&desired.value) else {
        return Vec::new();
    };
    let Ok(theirs) = serde_json::from_slice::<Value>(stored) else {
        return vec![Difference {
            field: "value".into(),
            etcd: Some(Value::String(String::from_utf8_lossy(stored).into_owned())),
            calseg: ours,
        }];
    };
    let mut found = Vec::new();
    for field in ["kind", "apiVersion"] {
        if theirs.get(field) != ours.get(field) {
            found.push(Difference {
                field: field.into(),
                etcd: theirs.get(field).cloned(),
                calseg: ours.get(field).cloned().unwrap_or(Value::Null),
            });
        }
    }
    let Some(spec) = ours.get("spec").and_then(Value::as_object) else {
        // Not a v3 resource (IPAM's settings key): the whole value is compared.
        if theirs != ours {
            found.push(Difference {
                field: "value".into(),
                etcd: Some(theirs),
                calseg: ours,
            });
        }
        return found;
    };
    for (name, value) in spec {
        let stored = theirs.get("spec").and_then(|s| s.get(name));
        let same = if GENERATED.contains(&name.as_str()) {
            stored
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        } else {
            stored == Some(value)
        };
        if !same {
            let calseg = if GENERATED.contains(&name.as_str()) {
                Value::String("(generated)".into())
            } else {
                value.clone()
            };
            found.push(Difference {
                field: format!("spec.{name}"),
                etcd: stored.cloned(),
                calseg,
            });
        }
    }
    found
}

/// Why calico-node will update this stored object at start, if it will: the conditions of
/// `ensureClusterInformation` (assuming its CLUSTER_TYPE is the policy's `cluster_type`, its
/// version `calico_release`) and of `ensureDefaultConfig` for FelixConfiguration `default`.
/// The other kinds it only creates when missing.
pub fn calico_node_updates(kind: Kind, stored: &[u8], settings: &DatastoreSettings) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<Value>(stored) else {
        return vec!["it is not JSON".into()];
    };
    let spec = &value["spec"];
    let text = |field: &str| spec[field].as_str().unwrap_or_default().to_string();
    let mut why = Vec::new();
    match kind {
        Kind::ClusterInformation => {
            let version = text("calicoVersion");
            match &settings.calico_release {
                Some(release) if &version != release => why.push(format!(
                    "calicoVersion is {version:?}, not calico_release {release:?}"
                )),
                None => why.push(format!(
                    "calicoVersion is {version:?} and calico_release is not set to compare"
                )),
                Some(_) => {}
            }
            if text("clusterGUID").is_empty() {
                why.push("it has no clusterGUID".into());
            }
            if spec["datastoreReady"].is_null() {
                why.push("it has no datastoreReady".into());
            }
            let types = text("clusterType");
            let have: Vec<&str> = types.split(',').collect();
            let missing: Vec<&str> = settings
                .cluster_type
                .split(',')
                .filter(|t| !have.contains(t))
                .collect();
            if !missing.is_empty() {
                why.push(format!("clusterType {types:?} lacks {}", missing.join(",")));
            }
        }
        Kind::FelixConfiguration => {
            if spec["reportingInterval"].is_null() {
                why.push("it has no reportingInterval".into());
            }
            if text("logSeverityScreen").is_empty() {
                why.push("it has no logSeverityScreen".into());
            }
        }
        Kind::IpPool | Kind::BgpConfiguration | Kind::IpamConfiguration | Kind::IpamConfig => {}
    }
    why
}
