//! The side car's pieces without a server: the node name from the environment, the output
//! directory, the rewritten manifest and its limits, and the install into Calico's names.

use super::*;
use crate::cycle::steps::identity_specs;
use crate::install::install_set;
use crate::testutil::{identity, manifest, me};
use std::os::unix::fs::PermissionsExt;

fn target(dir: &Path) -> Target {
    let (owner, group) = me();
    Target::with_owner(dir, "calico-node", owner, group).unwrap()
}

#[test]
fn node_name_comes_from_the_variable_with_a_clear_error_when_missing_or_empty() {
    assert_eq!(node_from_env(Some("worker-1".into())).unwrap(), "worker-1");
    for value in [None, Some(""), Some("  ")] {
        let e = node_from_env(value.map(OsString::from))
            .unwrap_err()
            .to_string();
        assert!(e.contains("CALSEG_NODE_NAME"), "{e}");
        assert!(e.contains("fieldPath: spec.nodeName"), "{e}");
    }
    let e = node_from_env(Some("a/b".into())).unwrap_err().to_string();
    assert!(
        e.contains("CALSEG_NODE_NAME=\"a/b\"") && e.contains("not a node name"),
        "{e}"
    );
}

#[test]
fn output_dir_must_be_absolute_named_and_without_dot_dot() {
    let (o, g) = me();
    for bad in ["calico-secrets", "/", "/x/..", "/x/../y", "/x/.hidden"] {
        let e = Target::with_owner(Path::new(bad), "c", o.clone(), g.clone());
        assert!(
            matches!(e, Err(SidecarError::OutputBad { .. })),
            "{bad}: {e:?}"
        );
    }
    let t = target(Path::new("/calico-secrets"));
    assert_eq!(t.root, Root::new("/"));
    assert_eq!(t.file(KEY_NAME), Path::new("/calico-secrets/etcd-key"));
}

#[test]
fn check_writable_refuses_a_missing_dir_a_file_and_a_symlink_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = target(&tmp.path().join("missing")).check_writable();
    assert!(matches!(missing, Err(SidecarError::OutputBad { .. })));
    std::fs::write(tmp.path().join("file"), "x").unwrap();
    let file = target(&tmp.path().join("file")).check_writable();
    assert!(matches!(file, Err(SidecarError::OutputBad { .. })));
    std::fs::create_dir(tmp.path().join("real")).unwrap();
    std::os::unix::fs::symlink("real", tmp.path().join("link")).unwrap();
    let link = target(&tmp.path().join("link")).check_writable();
    assert!(matches!(link, Err(SidecarError::OutputBad { .. })));
    target(&tmp.path().join("real")).check_writable().unwrap();
    assert_eq!(
        std::fs::read_dir(tmp.path().join("real")).unwrap().count(),
        0
    );
}

#[test]
fn rewrite_keeps_only_the_component_at_calicos_names_with_no_render_and_no_unit() {
    let t = target(Path::new("/calico-secrets"));
    let mut hostile = identity("calico-node", &["sshd.service"]);
    hostile.files.key = "/etc/shadow".into();
    hostile.files.key_mode = 0o4777;
    hostile.files.owner = "nobody".into();
    hostile.render.calicoctl_cfg = Some("/root/.bashrc".into());
    let m = t.rewrite(manifest(vec![identity("cni-plugin", &[]), hostile]));
    assert_eq!(m.identities.len(), 1);
    let id = &m.identities[0];
    assert_eq!(id.component, "calico-node");
    assert_eq!(id.etcd_user, "calico-node.n1");
    assert_eq!(id.files.ca, "/calico-secrets/etcd-ca");
    assert_eq!(id.files.cert, "/calico-secrets/etcd-cert");
    assert_eq!(id.files.key, "/calico-secrets/etcd-key");
    assert_eq!((id.files.key_mode, id.files.cert_mode), (0o600, 0o644));
    assert_eq!((id.files.owner.clone(), id.files.group.clone()), me());
    assert_eq!(id.render, Render::default());
    assert!(id.restart.is_empty());
    // The side car's limits accept exactly that, and nothing outside the output directory.
    let violations = t.limits().check_manifest(&t.root, &m);
    assert!(
        violations.iter().all(|v| v.field == "etcd.ca_bundle_pem"),
        "{violations:?}"
    );
    let mut other_owner = manifest(vec![identity("calico-node", &[])]);
    other_owner.identities[0].files.owner = "someone-else".into();
    let violations = t.limits().check_manifest(&t.root, &other_owner);
    assert!(
        violations.iter().any(|v| v.field.ends_with("files.owner")),
        "{violations:?}"
    );
    // No identity for the component: none at all.
    assert!(
        t.rewrite(manifest(vec![identity("cni-plugin", &[])]))
            .identities
            .is_empty()
    );
}

#[test]
fn install_writes_calicos_names_as_links_into_one_generation_with_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("calico-secrets");
    std::fs::create_dir(&out).unwrap();
    let t = target(&out);
    let m = t.rewrite(manifest(vec![identity("calico-node", &[])]));
    for (cert, key) in [("CERT 1", "KEY 1"), ("CERT 2", "KEY 2")] {
        let specs = identity_specs(&m, &m.identities[0], cert.as_bytes(), key.as_bytes());
        install_set(&t.root, &specs, true).unwrap();
        assert!(t.files_present());
        assert_eq!(std::fs::read_to_string(t.file(CERT_NAME)).unwrap(), cert);
        assert_eq!(std::fs::read_to_string(t.file(KEY_NAME)).unwrap(), key);
        assert_eq!(
            std::fs::read_to_string(t.file(CA_NAME)).unwrap(),
            "ETCD CA\n"
        );
        for (name, mode) in [(CA_NAME, 0o644), (CERT_NAME, 0o644), (KEY_NAME, 0o600)] {
            let link = std::fs::read_link(t.file(name)).unwrap();
            assert_eq!(link, Path::new(".calseg/current").join(name));
            let meta = std::fs::metadata(t.file(name)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o7777, mode, "{name}");
        }
    }
}

#[test]
fn a_signalling_side_car_restarts_its_own_unit_only() {
    let t = target(Path::new("/calico-secrets")).restarting(Some("calico-node.service".into()));
    let m = t.rewrite(manifest(vec![identity("calico-node", &["sshd.service"])]));
    assert_eq!(m.identities[0].restart, ["calico-node.service"]);
    let mut other = m.clone();
    other.identities[0].restart = vec!["calico-felix.service".into()];
    let violations = t.limits().check_manifest(&t.root, &other);
    assert!(
        violations.iter().any(|v| v.field.ends_with("restart")),
        "{violations:?}"
    );
}
