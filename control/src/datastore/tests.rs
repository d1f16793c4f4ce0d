//! The objects as bytes, per release and settings; comparing stored objects; the per-object
//! states and warnings; the text output. (Against a real etcd: tests/tests/e2e/datastore.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::compare::{calico_node_updates, differences};
use super::init::{Snapshot, classify};
use super::*;
use crate::policy::{CalicoVersion, DatastoreSettings, EncapMode, Policy};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// Returns `[n; 16]` for n = 1, 2, ...: the GUID is drawn first, then one uid per object.
struct Counter(u8);

impl RandomSource for Counter {
    fn bytes16(&mut self) -> Option<[u8; 16]> {
        self.0 += 1;
        Some([self.0; 16])
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
}

fn objects(version: &str, settings: &DatastoreSettings) -> Vec<Object> {
    let (major, minor) = version.split_once('.').unwrap();
    let version = CalicoVersion::new(major.parse().unwrap(), minor.parse().unwrap());
    desired(version, settings, now(), &mut Counter(0)).unwrap()
}

fn spec(object: &Object) -> Value {
    serde_json::from_str::<Value>(&object.value).unwrap()["spec"].clone()
}

fn by_kind(objects: &[Object], kind: Kind) -> &Object {
    objects.iter().find(|o| o.kind == kind).unwrap()
}

#[test]
fn the_bytes_are_libcalico_gos_for_3_29() {
    let objects = objects("3.29", &DatastoreSettings::default());
    // Bytes [n; 16] with the version (4) and variant (8) bits set, for n = 2, 3, 4.
    let meta = |n: u8| {
        let b = format!("0{n}");
        format!(
            r#""metadata":{{"name":"{{NAME}}","uid":"{b}{b}{b}{b}-{b}{b}-4{n}{b}-8{n}{b}-{b}{b}{b}{b}{b}{b}","creationTimestamp":"2023-11-14T22:13:20Z"}}"#
        )
    };
    assert!(meta(2).contains(r#""uid":"02020202-0202-4202-8202-020202020202""#));
    let expected = [
        (
            "/calico/resources/v3/projectcalico.org/clusterinformations/default",
            format!(
                r#"{{"kind":"ClusterInformation","apiVersion":"projectcalico.org/v3",{},"spec":{{"clusterGUID":"01010101010141018101010101010101","clusterType":"bgp","datastoreReady":true}}}}"#,
                meta(2).replace("{NAME}", "default")
            ),
        ),
        (
            "/calico/resources/v3/projectcalico.org/felixconfigurations/default",
            format!(
                r#"{{"kind":"FelixConfiguration","apiVersion":"projectcalico.org/v3",{},"spec":{{"logSeverityScreen":"Info","reportingInterval":"0s","bpfConnectTimeLoadBalancing":"TCP","bpfHostNetworkedNATWithoutCTLB":"Enabled","floatingIPs":"Disabled"}}}}"#,
                meta(3).replace("{NAME}", "default")
            ),
        ),
        (
            "/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool",
            format!(
                r#"{{"kind":"IPPool","apiVersion":"projectcalico.org/v3",{},"spec":{{"cidr":"192.168.0.0/16","vxlanMode":"Never","ipipMode":"Always","natOutgoing":true,"blockSize":26,"nodeSelector":"all()","allowedUses":["Workload","Tunnel"]}}}}"#,
                meta(4).replace("{NAME}", "default-ipv4-ippool")
            ),
        ),
        (
            "/calico/ipam/v2/config",
            r#"{"auto_allocate_blocks":true}"#.to_owned(),
        ),
    ];
    assert_eq!(objects.len(), expected.len());
    for (object, (key, value)) in objects.iter().zip(&expected) {
        assert_eq!(&object.key, key);
        assert_eq!(&object.value, value);
    }
}

#[test]
fn newer_releases_add_bgp_and_ipam_configuration() {
    let kinds = |version: &str, settings: &DatastoreSettings| -> Vec<Kind> {
        objects(version, settings).iter().map(|o| o.kind).collect()
    };
    let all = DatastoreSettings::default();
    use Kind::*;
    let base = [ClusterInformation, FelixConfiguration, IpPool, IpamConfig];
    for version in ["3.0", "3.19", "3.29", "3.31"] {
        assert_eq!(kinds(version, &all), base, "{version}");
    }
    assert_eq!(
        kinds("3.32", &all),
        [
            ClusterInformation,
            FelixConfiguration,
            IpPool,
            BgpConfiguration,
            IpamConfig
        ]
    );
    assert_eq!(
        kinds("3.33", &all),
        [
            ClusterInformation,
            FelixConfiguration,
            IpPool,
            BgpConfiguration,
            IpamConfiguration,
            IpamConfig
        ]
    );
    let no_pool = DatastoreSettings {
        default_pool: false,
        ..DatastoreSettings::default()
    };
    assert_eq!(
        kinds("3.33", &no_pool),
        [
            ClusterInformation,
            FelixConfiguration,
            BgpConfiguration,
            IpamConfiguration,
            IpamConfig
        ]
    );
    let newest = objects("3.33", &all);
    let bgp = by_kind(&newest, BgpConfiguration);
    assert_eq!(
        bgp.key,
        "/calico/resources/v3/projectcalico.org/bgpconfigurations/default"
    );
    assert!(bgp.value.contains(
        r#""spec":{"logSeverityScreen":"Info","nodeToNodeMeshEnabled":true,"asNumber":64512}"#
    ));
    let ipam = by_kind(&newest, IpamConfiguration);
    assert_eq!(
        ipam.key,
        "/calico/resources/v3/projectcalico.org/ipamconfigurations/default"
    );
    assert!(
        ipam.value
            .starts_with(r#"{"kind":"IPAMConfiguration","apiVersion":"projectcalico.org/v3","#)
    );
    // maxBlocksPerHost is `omitempty`: 0 is not written.
    assert!(
        ipam.value
            .ends_with(r#""spec":{"strictAffinity":false,"autoAllocateBlocks":true}}"#)
    );
}

#[test]
fn create_defaults_follow_the_release() {
    let all = DatastoreSettings::default();
    let pool = |v: &str| spec(by_kind(&objects(v, &all), Kind::IpPool));
    let felix = |v: &str| spec(by_kind(&objects(v, &all), Kind::FelixConfiguration));
    assert!(pool("3.21").get("allowedUses").is_none());
    assert_eq!(pool("3.22")["allowedUses"], json!(["Workload", "Tunnel"]));
    assert!(pool("3.29").get("assignmentMode").is_none());
    assert_eq!(pool("3.30")["assignmentMode"], "Automatic");
    assert!(felix("3.22").get("floatingIPs").is_none());
    assert_eq!(felix("3.23")["floatingIPs"], "Disabled");
    assert!(felix("3.26").get("bpfConnectTimeLoadBalancing").is_none());
    assert_eq!(felix("3.27")["bpfConnectTimeLoadBalancing"], "TCP");
    assert_eq!(felix("3.27")["bpfHostNetworkedNATWithoutCTLB"], "Enabled");
    assert_eq!(
        felix("3.19"),
        json!({"logSeverityScreen": "Info", "reportingInterval": "0s"})
    );
}

#[test]
fn the_settings_fill_the_specs() {
    let settings = DatastoreSettings {
        calico_release: Some("v3.29.3".into()),
        cluster_type: "k8s,bgp".into(),
        default_pool: true,
        ipv4_pool_cidr: "10.244.0.0/16".into(),
        ipip_mode: EncapMode::Never,
        vxlan_mode: EncapMode::CrossSubnet,
        nat_outgoing: false,
        block_size: 24,
        as_number: 65001,
        node_to_node_mesh: false,
        log_severity: "Warning".into(),
    };
    let objects = objects("3.32", &settings);
    let info = spec(by_kind(&objects, Kind::ClusterInformation));
    assert_eq!(info["calicoVersion"], "v3.29.3");
    assert_eq!(info["clusterType"], "k8s,bgp");
    let pool = spec(by_kind(&objects, Kind::IpPool));
    assert_eq!(pool["cidr"], "10.244.0.0/16");
    assert_eq!(
        (&pool["ipipMode"], &pool["vxlanMode"]),
        (&json!("Never"), &json!("CrossSubnet"))
    );
    // natOutgoing is `omitempty`: false is not written.
    assert!(pool.get("natOutgoing").is_none());
    assert_eq!(pool["blockSize"], 24);
    let bgp = spec(by_kind(&objects, Kind::BgpConfiguration));
    assert_eq!(
        bgp,
        json!({"logSeverityScreen": "Warning", "nodeToNodeMeshEnabled": false, "asNumber": 65001})
    );
    let felix = spec(by_kind(&objects, Kind::FelixConfiguration));
    assert_eq!(felix["logSeverityScreen"], "Warning");
}

#[test]
fn ids_are_v4_uuids_and_a_32_digit_guid_from_the_system_random_source() {
    let mut random = SystemRandom(ring::rand::SystemRandom::new());
    let settings = DatastoreSettings::default();
    let version = CalicoVersion::new(3, 33);
    let objects = desired(version, &settings, now(), &mut random).unwrap();
    let mut uids = std::collections::BTreeSet::new();
    for object in objects.iter().filter(|o| o.kind != Kind::IpamConfig) {
        let value: Value = serde_json::from_str(&object.value).unwrap();
        let uid = value["metadata"]["uid"].as_str().unwrap().to_string();
        let parts: Vec<&str> = uid.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{uid}");
        assert!("89ab".contains(&parts[3][..1]), "{uid}");
        uids.insert(uid);
    }
    // Every v3 resource has its own uid (IPAM's settings key has no metadata).
    assert_eq!(uids.len(), objects.len() - 1, "every uid differs");
    let guid = spec(&objects[0])["clusterGUID"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(guid.len(), 32);
    assert!(
        guid.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_ne!(
        guid,
        spec(&desired(version, &settings, now(), &mut random).unwrap()[0])["clusterGUID"]
    );
}

#[test]
fn stored_objects_are_compared_on_calsegs_values_only() {
    let objects = objects("3.29", &DatastoreSettings::default());
    let info = by_kind(&objects, Kind::ClusterInformation);
    // Another run's object: other uid, GUID and time, extra fields: the same for calseg.
    let mut other: Value = serde_json::from_str(&info.value).unwrap();
    other["metadata"]["uid"] = json!("x");
    other["metadata"]["resourceVersion"] = json!("7");
    other["spec"]["clusterGUID"] = json!("0123456789abcdef0123456789abcdef");
    other["spec"]["variant"] = json!("Calico");
    assert_eq!(differences(info, other.to_string().as_bytes()), []);

    other["spec"]["clusterGUID"] = json!("");
    other["spec"]["clusterType"] = json!("k8s");
    let found = differences(info, other.to_string().as_bytes());
    let fields: Vec<&str> = found.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(fields, ["spec.clusterGUID", "spec.clusterType"]);
    assert_eq!(found[1].etcd, Some(json!("k8s")));
    assert_eq!(found[1].calseg, json!("bgp"));

    let pool = by_kind(&objects, Kind::IpPool);
    let stored =
        br#"{"kind":"IPPool","apiVersion":"projectcalico.org/v3","spec":{"cidr":"10.9.0.0/16"}}"#;
    let found = differences(pool, stored);
    let cidr = found.iter().find(|d| d.field == "spec.cidr").unwrap();
    assert_eq!(cidr.etcd, Some(json!("10.9.0.0/16")));
    assert_eq!(cidr.calseg, json!("192.168.0.0/16"));
    assert_eq!(
        found.len(),
        7,
        "every other field of calseg's is absent: {found:?}"
    );
    assert!(
        found
            .iter()
            .any(|d| d.field == "spec.natOutgoing" && d.etcd.is_none())
    );
    let found = differences(
        pool,
        br#"{"kind":"Pool","apiVersion":"projectcalico.org/v3"}"#,
    );
    assert_eq!(found[0].field, "kind");
    let found = differences(pool, b"not json");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].field, "value");
}

#[test]
fn calico_node_rewrites_are_foreseen() {
    let settings = DatastoreSettings {
        calico_release: Some("v3.29.3".into()),
        cluster_type: "k8s,bgp".into(),
        ..DatastoreSettings::default()
    };
    let info = |spec: Value| json!({"spec": spec}).to_string();
    let good = info(json!({"clusterGUID": "ab", "calicoVersion": "v3.29.3",
                           "clusterType": "bgp,k8s", "datastoreReady": true}));
    assert!(calico_node_updates(Kind::ClusterInformation, good.as_bytes(), &settings).is_empty());
    let stale = info(json!({"calicoVersion": "v3.29.2", "clusterType": "bgp"}));
    let why = calico_node_updates(Kind::ClusterInformation, stale.as_bytes(), &settings);
    assert_eq!(why.len(), 4, "{why:?}");
    assert!(why[0].contains("\"v3.29.2\""), "{why:?}");
    assert!(why[3].contains("lacks k8s"), "{why:?}");
    let unknown = DatastoreSettings::default();
    assert_eq!(
        calico_node_updates(Kind::ClusterInformation, good.as_bytes(), &unknown).len(),
        1
    );
    let felix = br#"{"spec":{"logSeverityScreen":"Info"}}"#;
    let why = calico_node_updates(Kind::FelixConfiguration, felix, &settings);
    assert_eq!(why, ["it has no reportingInterval"]);
    assert!(calico_node_updates(Kind::IpPool, b"{}", &settings).is_empty());
}

fn policy(settings: DatastoreSettings) -> Policy {
    let mut policy = crate::policy::parse(
        "calico_version = \"3.29\"\n[etcd]\nendpoints = [\"https://10.0.0.1:2379\"]\n",
        "policy.toml",
    )
    .unwrap();
    policy.datastore = settings;
    policy
}

#[test]
fn states_and_warnings_follow_what_etcd_holds() {
    let policy = policy(DatastoreSettings::default());
    let desired = objects("3.29", &policy.datastore);
    // Nothing in etcd: create all; calico_release and the IPv6 pool are warned about.
    let empty = Snapshot {
        revision: 5,
        stored: vec![None, None, None],
        pools: Vec::new(),
    };
    let report = classify(&policy, &desired, &empty, false, 1);
    assert_eq!(report.count(State::Create), 3);
    assert!(report.objects.iter().all(|o| o.value.is_some()));
    assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
    assert!(report.warnings[0].contains("calico_release"));
    assert!(report.warnings[1].contains("CALICO_IPV6POOL_CIDR=none"));

    // The same Felix default, another ClusterInformation, and another IPv4 pool.
    let policy = self::policy(DatastoreSettings {
        calico_release: Some("v3.29.3".into()),
        ..DatastoreSettings::default()
    });
    let desired = objects("3.29", &policy.datastore);
    let stored_info = br#"{"kind":"ClusterInformation","apiVersion":"projectcalico.org/v3","spec":{"clusterGUID":"ab","clusterType":"bgp","datastoreReady":true,"calicoVersion":"v3.28.0"}}"#;
    let snapshot = Snapshot {
        revision: 9,
        stored: vec![
            Some((stored_info.to_vec(), 7)),
            Some((desired[1].value.clone().into_bytes(), 8)),
            None,
        ],
        pools: vec![("mine".into(), false), ("six".into(), true)],
    };
    let report = classify(&policy, &desired, &snapshot, true, 2);
    let states: Vec<State> = report.objects.iter().map(|o| o.state).collect();
    assert_eq!(
        states,
        [State::ExistsDiffers, State::Exists, State::NotNeeded]
    );
    assert_eq!(report.objects[0].differences[0].field, "spec.calicoVersion");
    assert_eq!(report.objects[1].mod_revision, Some(8));
    assert_eq!(report.objects[2].ipv4_pools, ["mine"]);
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(report.warnings[0].contains("calico-node will update"));

    let text = report.render_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "exists, differs  /calico/resources/v3/projectcalico.org/clusterinformations/default: left as it is"
    );
    assert_eq!(
        lines[1],
        "    spec.calicoVersion: etcd \"v3.28.0\", calseg \"v3.29.3\""
    );
    assert_eq!(
        lines[2],
        "exists           /calico/resources/v3/projectcalico.org/felixconfigurations/default"
    );
    assert!(lines[3].starts_with("not needed       /calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool: IPv4 pool(s) mine exist"));
    assert_eq!(
        lines[4],
        "Dry run: would create 0 objects; nothing was written; 1 exists as calseg would \
         write it; 1 exists with other values, left as it is; the default IPv4 pool is not \
         needed."
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["objects"][0]["state"], "exists-differs");
    assert_eq!(json["objects"][2]["state"], "not-needed");
    assert_eq!(json["calico_version"], "3.29");
}
