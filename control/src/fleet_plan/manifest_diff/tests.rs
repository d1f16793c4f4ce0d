use super::*;
use crate::manifest::manifest_for;

const BASE: &str = r#"
calico_version = "3.29"
[etcd]
endpoints = ["https://127.0.0.1:2379"]
[components.calico-node]
grants = "calico-node"
restart = ["calico-node.service"]
env_file = "/etc/calico/calico.env"
[components.cni-plugin]
grants = "cni-plugin"
restart = ["cni-watch.service"]
cni_conflist = "/etc/cni/net.d/10-calico.conflist"
[[hosts]]
names = ["node1"]
components = ["calico-node"]
"#;

fn manifest(text: &str, ca: &str) -> Manifest {
    let policy = crate::policy::parse(text, "p.toml").unwrap();
    manifest_for(&policy, "node1", 0, ca).unwrap()
}

fn kinds(changes: &[FileChange]) -> Vec<(&str, FileChangeKind)> {
    changes
        .iter()
        .map(|c| (c.path.as_str(), c.change))
        .collect()
}

#[test]
fn the_same_manifest_changes_nothing() {
    let m = manifest(BASE, "CA");
    let (files, restart) = diff(Some(&m), Some(&m));
    assert!(files.is_empty(), "{files:?}");
    assert!(restart.is_empty());
}

#[test]
fn a_new_component_adds_its_files_and_restarts_only_its_units() {
    let now = manifest(BASE, "CA");
    let more = BASE.replace(
        "components = [\"calico-node\"]",
        "components = [\"calico-node\", \"cni-plugin\"]",
    );
    let planned = manifest(&more, "CA");
    let (files, restart) = diff(Some(&now), Some(&planned));
    assert_eq!(
        kinds(&files),
        [
            ("/etc/calico/certs/cni-plugin/ca.pem", FileChangeKind::Added),
            (
                "/etc/calico/certs/cni-plugin/cert.pem",
                FileChangeKind::Added
            ),
            (
                "/etc/calico/certs/cni-plugin/key.pem",
                FileChangeKind::Added
            ),
            ("/etc/cni/net.d/10-calico.conflist", FileChangeKind::Added),
        ]
    );
    assert!(files.iter().all(|f| f.component == "cni-plugin"));
    assert_eq!(files[2].mode_planned.as_deref(), Some("0600"));
    assert!(files[0].hash_now.is_none() && files[0].hash_planned.is_some());
    assert_eq!(restart, ["cni-watch.service"]);

    // And the other way: removed, nothing to restart for an identity that is gone.
    let (files, restart) = diff(Some(&planned), Some(&now));
    assert!(files.iter().all(|f| f.change == FileChangeKind::Removed));
    assert_eq!(files.len(), 4);
    assert!(restart.is_empty());
}

#[test]
fn a_key_mode_change_makes_a_new_key_pair_and_a_cert_mode_change_touches_the_ca_file() {
    let now = manifest(BASE, "CA");
    let key_mode = BASE.replace(
        "env_file = \"/etc/calico/calico.env\"",
        "env_file = \"/etc/calico/calico.env\"\nkey_mode = \"0640\"",
    );
    let (files, restart) = diff(Some(&now), Some(&manifest(&key_mode, "CA")));
    assert_eq!(
        kinds(&files),
        [
            (
                "/etc/calico/certs/calico-node/cert.pem",
                FileChangeKind::Changed
            ),
            (
                "/etc/calico/certs/calico-node/key.pem",
                FileChangeKind::Changed
            ),
        ]
    );
    assert_eq!(files[1].mode_now.as_deref(), Some("0600"));
    assert_eq!(files[1].mode_planned.as_deref(), Some("0640"));
    assert_eq!(restart, ["calico-node.service"]);

    let cert_mode = BASE.replace(
        "env_file = \"/etc/calico/calico.env\"",
        "env_file = \"/etc/calico/calico.env\"\ncert_mode = \"0640\"",
    );
    let (files, _) = diff(Some(&now), Some(&manifest(&cert_mode, "CA")));
    assert_eq!(
        kinds(&files),
        [
            (
                "/etc/calico/certs/calico-node/ca.pem",
                FileChangeKind::Attributes
            ),
            (
                "/etc/calico/certs/calico-node/cert.pem",
                FileChangeKind::Changed
            ),
            (
                "/etc/calico/certs/calico-node/key.pem",
                FileChangeKind::Changed
            ),
        ]
    );
}

#[test]
fn a_new_ca_changes_the_certificate_files_and_new_endpoints_the_rendered_ones() {
    let now = manifest(BASE, "CA");
    let (files, _) = diff(Some(&now), Some(&manifest(BASE, "OTHER CA")));
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(files.iter().all(|f| f.change == FileChangeKind::Changed));
    assert!(files.iter().all(|f| !f.path.ends_with(".env")));

    let moved = BASE.replace("127.0.0.1:2379", "127.0.0.2:2379");
    let (files, restart) = diff(Some(&now), Some(&manifest(&moved, "CA")));
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/etc/calico/calico.env",
            "/etc/calico/certs/calico-node/cert.pem",
            "/etc/calico/certs/calico-node/key.pem",
        ]
    );
    assert_eq!(restart, ["calico-node.service"]);
}

#[test]
fn a_node_without_a_manifest_now_gets_every_file() {
    let planned = manifest(BASE, "CA");
    let (files, restart) = diff(None, Some(&planned));
    assert_eq!(files.len(), 4);
    assert!(files.iter().all(|f| f.change == FileChangeKind::Added));
    assert_eq!(restart, ["calico-node.service"]);
    assert!(diff(None, None).0.is_empty());
}
