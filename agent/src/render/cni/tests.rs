use super::*;
use crate::render::testutil::settings;

const CONFLIST: &str = r#"{
  "name": "k8s-pod-network",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "calico",
      "log_level": "info",
      "etcd_endpoints": "__ETCD_ENDPOINTS__",
      "etcd_key_file": "__ETCD_KEY_FILE__",
      "etcd_cert_file": "__ETCD_CERT_FILE__",
      "etcd_ca_cert_file": "__ETCD_CA_CERT_FILE__",
      "mtu": 1440,
      "ipam": { "type": "calico-ipam", "assign_ipv4": "true" },
      "policy": { "type": "k8s" }
    },
    { "type": "portmap", "snat": true, "capabilities": { "portMappings": true } }
  ]
}"#;

#[test]
fn sets_etcd_fields_in_place_and_keeps_order() -> Result<(), Box<dyn std::error::Error>> {
    let out = cni_conflist(CONFLIST, &settings())?;
    let doc: Value = serde_json::from_str(&out)?;
    let calico = &doc["plugins"][0];
    assert_eq!(
        calico["etcd_endpoints"],
        "https://10.0.0.11:2379,https://10.0.0.12:2379"
    );
    assert_eq!(
        calico["etcd_key_file"],
        "/etc/calico/certs/calico-node/key.pem"
    );
    assert_eq!(calico["datastore_type"], "etcdv3");
    assert_eq!(calico["ipam"]["assign_ipv4"], "true");
    assert_eq!(doc["plugins"][1]["snat"], true);
    let keys: Vec<&str> = calico
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .map(String::as_str)
        .collect();
    let want = [
        "type",
        "log_level",
        "etcd_endpoints",
        "etcd_key_file",
        "etcd_cert_file",
        "etcd_ca_cert_file",
        "mtu",
        "ipam",
        "policy",
        "datastore_type",
    ];
    assert_eq!(keys, want);
    let top: Vec<&str> = doc
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .map(String::as_str)
        .collect();
    assert_eq!(top, ["name", "cniVersion", "plugins"]);
    Ok(())
}

#[test]
fn rendering_twice_yields_the_same_bytes() -> Result<(), Box<dyn std::error::Error>> {
    let once = cni_conflist(CONFLIST, &settings())?;
    assert_eq!(cni_conflist(&once, &settings())?, once);
    assert!(once.ends_with("}\n"));
    Ok(())
}

#[test]
fn plain_conf_is_configured_at_the_top_level() -> Result<(), Box<dyn std::error::Error>> {
    let conf = r#"{"cniVersion": "0.3.1", "name": "calico", "type": "calico",
        "ipam": {"type": "calico-ipam"}}"#;
    let doc: Value = serde_json::from_str(&cni_conflist(conf, &settings())?)?;
    assert_eq!(
        doc["etcd_cert_file"],
        "/etc/calico/certs/calico-node/cert.pem"
    );
    assert_eq!(doc["ipam"]["type"], "calico-ipam");
    Ok(())
}

#[test]
fn errors_name_the_problem() {
    let bad = cni_conflist("{\n  \"plugins\": [,]\n}", &settings());
    let Err(RenderError::InvalidJson { line, column, .. }) = bad else {
        panic!("expected InvalidJson, got {bad:?}");
    };
    assert_eq!((line, column), (2, 15));
    let none = cni_conflist(r#"{"plugins": [{"type": "bridge"}]}"#, &settings());
    assert!(
        matches!(none, Err(RenderError::NoCalicoPlugin { .. })),
        "{none:?}"
    );
    let mut empty = settings();
    empty.endpoints.clear();
    let invalid = cni_conflist(CONFLIST, &empty);
    assert!(matches!(
        invalid,
        Err(RenderError::Invalid {
            field: "endpoints",
            ..
        })
    ));
}
