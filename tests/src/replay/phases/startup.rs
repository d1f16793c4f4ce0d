//! Phases 1 and 2: what node start-up and libcalico-go's `EnsureInitialized` do with the
//! cluster-wide objects (node `pkg/lifecycle/startup/startup.go`: `configureIPPools`,
//! `ensureDefaultConfig`, `ensureDefaultBGPConfigExists`; libcalico-go `lib/clientv3/client.go`:
//! `ensureClusterInformation`, `ensureTierExists`). The singletons are read, and written only
//! when missing or incomplete; the tiers are created with a transaction at every start.

use super::Report;
use crate::replay::datastore::{Created, Datastore};
use crate::replay::error::ReplayError;
use crate::replay::keys::{self, BGP_CONFIGURATION, CLUSTER_INFORMATION, FELIX_CONFIGURATION};
use crate::replay::settings::Settings;
use crate::replay::values;
use serde_json::{Value, json};
use time::OffsetDateTime;

/// Calico's default IPv4 pool (it picks another /16 only when this one overlaps the host).
const DEFAULT_IPV4_CIDR: &str = "192.168.0.0/16";
/// Calico generates a random ULA /48 for its default IPv6 pool; the replay uses a fixed one.
const DEFAULT_IPV6_CIDR: &str = "fd65:ca11:c0de::/48";

/// Phase 1: ClusterInformation, FelixConfiguration `default`, the IP pools, and from v3.32
/// BGPConfiguration `default`.
pub async fn singletons(
    ds: &mut Datastore,
    s: &Settings,
    now: OffsetDateTime,
) -> Result<Report, ReplayError> {
    let mut report = Report::new(1, "startup singletons", "");
    let mut read = vec![
        "clusterinformations/default",
        "felixconfigurations/default",
        "ippools/",
    ];
    match ds.get(CLUSTER_INFORMATION).await? {
        None => {
            let value = values::cluster_information(s.version, &s.cluster_type, now);
            ensure(ds, &mut report, CLUSTER_INFORMATION, &value).await?;
        }
        Some(stored) => {
            if let Some((value, why)) = cluster_information_update(stored.value, s) {
                ds.update(CLUSTER_INFORMATION, &value, stored.mod_revision)
                    .await?;
                report.notes.push(format!(
                    "had to update {CLUSTER_INFORMATION} ({why}): cluster-wide write"
                ));
            }
        }
    }
    match ds.get(FELIX_CONFIGURATION).await? {
        None => {
            ensure(
                ds,
                &mut report,
                FELIX_CONFIGURATION,
                &values::felix_configuration_default(now),
            )
            .await?
        }
        Some(stored) => {
            if let Some(value) = felix_default_update(stored.value) {
                ds.update(FELIX_CONFIGURATION, &value, stored.mod_revision)
                    .await?;
                report.notes.push(format!(
                    "had to update {FELIX_CONFIGURATION}: cluster-wide write"
                ));
            }
        }
    }
    let (pools, _) = ds.list(keys::IPPOOLS).await?;
    if !s.no_default_pools {
        let has = |v6: bool| {
            pools.iter().any(|p| {
                p["spec"]["cidr"]
                    .as_str()
                    .is_some_and(|c| c.contains(':') == v6)
            })
        };
        if !has(false) {
            let key = keys::resource("ippools", keys::DEFAULT_IPV4_POOL);
            let value = values::ip_pool(keys::DEFAULT_IPV4_POOL, DEFAULT_IPV4_CIDR, false, now);
            ensure(ds, &mut report, &key, &value).await?;
        }
        if s.ipv6_pool && !has(true) {
            let key = keys::resource("ippools", keys::DEFAULT_IPV6_POOL);
            let value = values::ip_pool(keys::DEFAULT_IPV6_POOL, DEFAULT_IPV6_CIDR, true, now);
            ensure(ds, &mut report, &key, &value).await?;
        }
    }
    if s.version.ensures_bgp_configuration() {
        read.push("bgpconfigurations/default");
        if ds.get(BGP_CONFIGURATION).await?.is_none() {
            ensure(
                ds,
                &mut report,
                BGP_CONFIGURATION,
                &values::bgp_configuration(now),
            )
            .await?;
        }
    }
    let pools = match pools.len() {
        1 => "1 pool".to_owned(),
        n => format!("{n} pools"),
    };
    report.summary = format!("read {} ({pools})", read.join(", "));
    Ok(report)
}

/// Phase 2: a Create transaction for each tier of the release; "already exists" is success.
pub async fn tiers(
    ds: &mut Datastore,
    s: &Settings,
    now: OffsetDateTime,
) -> Result<Report, ReplayError> {
    let tiers = s.version.tiers();
    let mut report = Report::new(2, "tiers", "");
    for tier in tiers {
        let key = keys::resource("tiers", tier.name);
        if ds.create(&key, &values::tier(tier, now), None).await? == Created::New {
            report.notes.push(format!("created {key}"));
        }
    }
    let names: Vec<&str> = tiers.iter().map(|t| t.name).collect();
    report.summary = match names.len() {
        0 => format!("Calico {} creates no tiers", s.version),
        _ => format!(
            "txn-create of {} (write checked even when they exist)",
            names.join(", ")
        ),
    };
    Ok(report)
}

/// Creates a missing cluster-wide object, and says so: a narrowed identity cannot.
async fn ensure(
    ds: &mut Datastore,
    report: &mut Report,
    key: &str,
    value: &Value,
) -> Result<(), ReplayError> {
    if ds.create(key, value, None).await? == Created::New {
        report
            .notes
            .push(format!("had to create {key}: cluster-wide write"));
    }
    Ok(())
}

/// The ClusterInformation Calico would write back, and why, or `None` when it leaves it alone:
/// a different `calicoVersion`, no `clusterGUID`, no `datastoreReady`, or a `CLUSTER_TYPE`
/// entry it lacks.
pub fn cluster_information_update(stored: Value, s: &Settings) -> Option<(Value, String)> {
    let mut value = values::for_update(stored);
    let mut why = Vec::new();
    let spec = &mut value["spec"];
    let stored_version = spec["calicoVersion"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if !s.version.matches_stored(&stored_version) {
        spec["calicoVersion"] = json!(s.version.to_string());
        why.push(format!(
            "calicoVersion {stored_version:?} is not {}",
            s.version
        ));
    }
    if spec["clusterGUID"].as_str().unwrap_or_default().is_empty() {
        spec["clusterGUID"] = json!(values::cluster_guid());
        why.push("no clusterGUID".into());
    }
    if spec["datastoreReady"].is_null() {
        spec["datastoreReady"] = json!(true);
        why.push("no datastoreReady".into());
    }
    if !s.cluster_type.is_empty() {
        let stored_types = spec["clusterType"].as_str().unwrap_or_default().to_owned();
        let mut types: Vec<&str> = stored_types.split(',').filter(|t| !t.is_empty()).collect();
        let before = types.len();
        for wanted in s.cluster_type.split(',').filter(|t| !t.is_empty()) {
            if !types.contains(&wanted) {
                types.push(wanted);
            }
        }
        if types.len() != before {
            spec["clusterType"] = json!(types.join(","));
            why.push(format!("clusterType lacks part of {:?}", s.cluster_type));
        }
    }
    (!why.is_empty()).then(|| (value, why.join(", ")))
}

/// FelixConfiguration `default` as node start-up would complete it, or `None` when it has a
/// `reportingInterval` and a `logSeverityScreen` already.
pub fn felix_default_update(stored: Value) -> Option<Value> {
    let mut value = values::for_update(stored);
    let mut changed = false;
    if value["spec"]["reportingInterval"].is_null() {
        value["spec"]["reportingInterval"] = json!("0s");
        changed = true;
    }
    if value["spec"]["logSeverityScreen"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
    {
        value["spec"]["logSeverityScreen"] = json!("Info");
        changed = true;
    }
    changed.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::version::CalicoVersion;

    fn settings(version: &str, cluster_type: &str) -> Settings {
        Settings {
            endpoints: vec![],
            ca_file: "ca".into(),
            cert_file: "c".into(),
            key_file: "k".into(),
            node: "n1".into(),
            version: CalicoVersion::parse(version).unwrap(),
            no_default_pools: false,
            ipv6_pool: true,
            cluster_type: cluster_type.into(),
        }
    }

    fn info(version: &str) -> Value {
        json!({"kind": "ClusterInformation", "metadata": {"name": "default", "resourceVersion": "7"},
               "spec": {"calicoVersion": version, "clusterGUID": "abc", "datastoreReady": true}})
    }

    #[test]
    fn a_complete_cluster_information_of_the_release_is_left_alone() {
        assert!(cluster_information_update(info("v3.29.7"), &settings("3.29", "")).is_none());
    }

    #[test]
    fn another_release_or_a_missing_field_makes_calico_write_it() {
        let (value, why) =
            cluster_information_update(info("v3.28.2"), &settings("3.29.1", "")).unwrap();
        assert_eq!(value["spec"]["calicoVersion"], "v3.29.1");
        assert!(why.contains("v3.28.2"), "{why}");
        assert!(value["metadata"].get("resourceVersion").is_none());
        let mut no_guid = info("v3.29.0");
        no_guid["spec"]["clusterGUID"] = json!("");
        let (value, _) = cluster_information_update(no_guid, &settings("3.29", "")).unwrap();
        assert_eq!(value["spec"]["clusterGUID"].as_str().unwrap().len(), 32);
        let (value, _) =
            cluster_information_update(info("v3.29.0"), &settings("3.29", "bare-metal")).unwrap();
        assert_eq!(value["spec"]["clusterType"], "bare-metal");
    }

    #[test]
    fn felix_default_is_completed_only_when_fields_are_missing() {
        let full = json!({"spec": {"reportingInterval": "0s", "logSeverityScreen": "Info"}});
        assert!(felix_default_update(full).is_none());
        let bare = felix_default_update(json!({"spec": {}})).unwrap();
        assert_eq!(bare["spec"]["reportingInterval"], "0s");
        assert_eq!(bare["spec"]["logSeverityScreen"], "Info");
    }
}
