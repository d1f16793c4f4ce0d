//! Issue 21, point 3: the example manifest `packaging/kubernetes/calico-node-sidecar-patch.json`
//! (a strategic-merge patch of the hosted calico-node DaemonSet) reads as Kubernetes' own
//! `PodSpec` (`k8s-openapi`), uses the hosted manifest's names (volume `etcd-certs` at
//! `/calico-secrets`, init container `install-cni` after the side car's), fills the node name
//! from the downward API, and its commands are ones `calseg-agent` accepts.

use calseg_tests::bins;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use std::process::Command;

fn patch() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/kubernetes/calico-node-sidecar-patch.json"
    );
    let text = std::fs::read_to_string(path).expect("the example patch");
    serde_json::from_str(&text).expect("JSON")
}

fn check_container(c: &Container) {
    let mounts = c.volume_mounts.as_ref().expect("mounts");
    assert!(
        mounts
            .iter()
            .any(|m| m.name == "etcd-certs" && m.mount_path == "/calico-secrets"),
        "{}: the hosted manifest's etcd-certs at /calico-secrets",
        c.name
    );
    assert!(
        mounts.iter().any(|m| m.name == "calseg-state"),
        "{}",
        c.name
    );
    let env = c.env.as_ref().expect("env");
    let node = env
        .iter()
        .find(|e| e.name == "CALSEG_NODE_NAME")
        .expect("CALSEG_NODE_NAME");
    let field = node.value_from.as_ref().and_then(|v| v.field_ref.as_ref());
    assert_eq!(field.map(|f| f.field_path.as_str()), Some("spec.nodeName"));

    // calseg-agent accepts the command: without the node-name variable it stops with that
    // error (exit 1), not a usage error (64).
    let command = c.command.as_ref().expect("command");
    assert_eq!(command[0], "calseg-agent");
    let out = Command::new(bins::path("calseg-agent"))
        .args(&command[1..])
        .env_remove("CALSEG_NODE_NAME")
        .output()
        .expect("run");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}: {said}", c.name);
    assert!(said.contains("CALSEG_NODE_NAME is not set"), "{said}");
}

#[test]
fn issue_21_the_calico_node_sidecar_patch_is_a_pod_spec_with_the_hosted_names() {
    let mut patch = patch();
    let spec = patch["spec"]["template"]["spec"]
        .as_object_mut()
        .expect("spec.template.spec");
    let order = spec
        .remove("$setElementOrder/initContainers")
        .expect("the init containers' order");
    let order: Vec<&str> = order
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        order[0], "calseg-init",
        "the files exist before install-cni runs"
    );
    assert!(order.contains(&"install-cni"), "{order:?}");
    let pod: PodSpec =
        serde_json::from_value(serde_json::Value::Object(spec.clone())).expect("a PodSpec");
    assert_eq!(pod.share_process_namespace, Some(true));
    let init = pod.init_containers.as_ref().expect("init containers");
    assert_eq!(init.len(), 1);
    check_container(&init[0]);
    assert!(
        init[0]
            .command
            .as_ref()
            .unwrap()
            .contains(&"--init".to_owned())
    );
    assert_eq!(pod.containers.len(), 1);
    check_container(&pod.containers[0]);
    let volumes = pod.volumes.as_ref().expect("volumes");
    let certs = volumes.iter().find(|v| v.name == "etcd-certs").unwrap();
    assert!(certs.empty_dir.is_some() && certs.secret.is_none());
    assert!(
        spec["volumes"][0]
            .get("secret")
            .is_some_and(|s| s.is_null()),
        "the patch removes the Secret source"
    );
    let state = volumes.iter().find(|v| v.name == "calseg-state").unwrap();
    assert!(
        state.host_path.is_some(),
        "the fleet identity survives the pod"
    );
    let token = volumes.iter().find(|v| v.name == "calseg-token").unwrap();
    assert_eq!(
        token.secret.as_ref().and_then(|s| s.default_mode),
        Some(0o400)
    );
}
