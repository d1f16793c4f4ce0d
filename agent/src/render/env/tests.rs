use super::*;
use crate::render::testutil::settings;

const MANAGED_BLOCK: &str = "DATASTORE_TYPE=etcdv3
ETCD_ENDPOINTS=https://10.0.0.11:2379,https://10.0.0.12:2379
ETCD_CA_CERT_FILE=/etc/calico/certs/calico-node/ca.pem
ETCD_CERT_FILE=/etc/calico/certs/calico-node/cert.pem
ETCD_KEY_FILE=/etc/calico/certs/calico-node/key.pem
";

#[test]
fn fresh_file_has_the_five_variables() {
    let out = env_file(None, &settings());
    assert_eq!(out.text, MANAGED_BLOCK);
    assert!(out.warnings.is_empty());
}

#[test]
fn replaces_in_place_and_keeps_the_rest() {
    let existing = "# calico-node settings
ETCD_ENDPOINTS=https://old:2379
ETCD_CA_CERT_FILE=\"/pki/ca.pem\"
CALICO_NODENAME=\"\"

NO_DEFAULT_POOLS=\"true\"
CALICO_NETWORKING_BACKEND=bird";
    let out = env_file(Some(existing), &settings());
    let want = "# calico-node settings
ETCD_ENDPOINTS=https://10.0.0.11:2379,https://10.0.0.12:2379
ETCD_CA_CERT_FILE=/etc/calico/certs/calico-node/ca.pem
CALICO_NODENAME=\"\"

NO_DEFAULT_POOLS=\"true\"
CALICO_NETWORKING_BACKEND=bird
DATASTORE_TYPE=etcdv3
ETCD_CERT_FILE=/etc/calico/certs/calico-node/cert.pem
ETCD_KEY_FILE=/etc/calico/certs/calico-node/key.pem
";
    assert_eq!(out.text, want);
    assert!(out.warnings.is_empty());
}

#[test]
fn rendering_twice_yields_the_same_bytes() {
    let existing =
        "A=1\nETCD_KEY_FILE=/x\\\n  continued\n# c\nETCD_KEY_FILE=/dup\nB=2\\\nstill-B\n";
    let once = env_file(Some(existing), &settings());
    let twice = env_file(Some(&once.text), &settings());
    assert_eq!(once.text, twice.text);
    assert!(once.text.contains("B=2\\\nstill-B\n"), "{}", once.text);
    assert!(!once.text.contains("continued") && !once.text.contains("/dup"));
    assert_eq!(
        once.warnings,
        vec!["line 5: duplicate ETCD_KEY_FILE removed"]
    );
}

#[test]
fn warns_about_password_auth_and_shadowing_settings() {
    let existing = "ETCD_USERNAME=calico\nETCD_PASSWORD=hunter2\nFELIX_ETCDCERTFILE=/old\n";
    let out = env_file(Some(existing), &settings());
    assert_eq!(out.warnings.len(), 3, "{:?}", out.warnings);
    assert!(out.warnings[0].starts_with("line 1: ETCD_USERNAME"));
    assert!(out.warnings[1].contains("CN"));
    assert!(out.warnings[2].contains("Felix"));
    assert!(out.warnings.iter().all(|w| !w.contains("hunter2")));
    assert!(out.text.starts_with(existing), "unrelated lines are kept");
}

#[test]
fn quotes_values_systemd_would_split() {
    let mut odd = settings();
    odd.key_file = "/etc/calico/my certs/\"key\".pem".into();
    let out = env_file(None, &odd);
    assert!(
        out.text
            .contains("ETCD_KEY_FILE=\"/etc/calico/my certs/\\\"key\\\".pem\"\n")
    );
}
