//! Kubernetes objects for Calico's hosted manifest (`calico-etcd.yaml`), "per component"
//! set-up: the Secret holding one component-wide identity, and the volume and volumeMount each
//! of the component's pods needs to read it at `/calico-secrets`. Names follow the hosted
//! manifest exactly: Secret `calico-etcd-secrets` with keys `etcd-key`, `etcd-cert`,
//! `etcd-ca`; volume `etcd-certs`; the ConfigMap `calico-config` already points Calico at
//! `/calico-secrets/etcd-ca` and friends. Pure: JSON values (JSON is YAML, and `kubectl apply
//! -f` reads it), no I/O.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// The hosted manifest's Secret name (`--name` default).
pub const SECRET_NAME: &str = "calico-etcd-secrets";
/// The hosted manifest's namespace (`--namespace` default).
pub const NAMESPACE: &str = "kube-system";
/// The hosted manifest's volume of the Secret.
pub const VOLUME: &str = "etcd-certs";
/// Where the hosted manifest mounts it; `calico-config`'s `etcd_ca` etc. point here.
pub const MOUNT_PATH: &str = "/calico-secrets";
/// The Secret's data keys, as the hosted manifest names them.
pub const KEY: &str = "etcd-key";
pub const CERT: &str = "etcd-cert";
pub const CA: &str = "etcd-ca";
/// The annotation naming the component a Secret is for (renewal checks it).
pub const COMPONENT_ANNOTATION: &str = "calseg/component";

/// The files of one identity, PEM.
pub struct IdentityFiles<'a> {
    pub key_pem: &'a str,
    pub cert_pem: &'a str,
    pub ca_pem: &'a str,
}

/// What the Secret says about itself beside its data.
pub struct SecretMeta<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub component: &'a str,
    pub etcd_user: &'a str,
    pub serial: &'a str,
    pub not_after: &'a str,
}

/// The Secret: `type: Opaque`, each file base64-encoded under the hosted manifest's key.
pub fn secret(meta: &SecretMeta<'_>, files: &IdentityFiles<'_>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": meta.name,
            "namespace": meta.namespace,
            "labels": {"app.kubernetes.io/managed-by": "calseg"},
            "annotations": {
                COMPONENT_ANNOTATION: meta.component,
                "calseg/etcd-user": meta.etcd_user,
                "calseg/serial": meta.serial,
                "calseg/not-after": meta.not_after,
            },
        },
        "data": {
            KEY: STANDARD.encode(files.key_pem),
            CERT: STANDARD.encode(files.cert_pem),
            CA: STANDARD.encode(files.ca_pem),
        },
    })
}

/// The Secret volume's mode, as the hosted manifest sets it: 0440 for calico-kube-controllers
/// (it runs as non-root, in the group the kubelet gives the files), 0400 for everything else.
pub fn default_mode(component: &str, table: Option<&str>) -> u32 {
    if table == Some("kube-controllers") || component.contains("kube-controllers") {
        0o440
    } else {
        0o400
    }
}

/// The pod's side: `volumes` (add to the pod spec) and `volumeMounts` (add to each container
/// that talks to etcd: calico-node and its install-cni init container, or
/// calico-kube-controllers).
pub fn pod_snippet(secret_name: &str, mode: u32) -> Value {
    json!({
        "volumes": [{
            "name": VOLUME,
            "secret": {"secretName": secret_name, "defaultMode": mode},
        }],
        "volumeMounts": [{"mountPath": MOUNT_PATH, "name": VOLUME}],
    })
}

/// Checks `--name` (an RFC 1123 subdomain, at most 253) or `--namespace` (an RFC 1123 label,
/// at most 63), as the Kubernetes API does.
pub fn check_object_name(flag: &str, value: &str, max: usize, dots: bool) -> Result<(), String> {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= max
        && bytes.first().is_some_and(|&b| alnum(b))
        && bytes.last().is_some_and(|&b| alnum(b))
        && bytes
            .iter()
            .all(|&b| alnum(b) || b == b'-' || (dots && b == b'.'));
    if ok {
        return Ok(());
    }
    let what = if dots { ", '.'" } else { "" };
    Err(format!(
        "{flag} {value:?} is not a Kubernetes name: use a-z, 0-9, '-'{what}, starting and ending \
         with a letter or digit, at most {max} characters"
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_and_snippet_use_the_hosted_manifest_s_names() {
        let files = IdentityFiles {
            key_pem: "K",
            cert_pem: "C",
            ca_pem: "A",
        };
        let meta = SecretMeta {
            name: SECRET_NAME,
            namespace: NAMESPACE,
            component: "kc",
            etcd_user: "kc~all",
            serial: "01",
            not_after: "2027-01-01T00:00:00Z",
        };
        let secret = secret(&meta, &files);
        assert_eq!(secret["data"]["etcd-key"], "Sw==");
        assert_eq!(secret["data"]["etcd-cert"], "Qw==");
        assert_eq!(secret["data"]["etcd-ca"], "QQ==");
        assert_eq!(secret["metadata"]["name"], "calico-etcd-secrets");
        assert_eq!(secret["metadata"]["namespace"], "kube-system");
        let snippet = pod_snippet("calico-etcd-secrets", default_mode("calico-node", None));
        assert_eq!(snippet["volumes"][0]["secret"]["defaultMode"], 0o400);
        assert_eq!(snippet["volumeMounts"][0]["mountPath"], "/calico-secrets");
        assert_eq!(default_mode("x", Some("kube-controllers")), 0o440);
        assert_eq!(default_mode("calico-kube-controllers", None), 0o440);
    }

    #[test]
    fn names_kubernetes_refuses_are_refused() {
        assert!(check_object_name("--name", "calico-etcd-secrets.kc", 253, true).is_ok());
        for bad in ["", "A", "-a", "a-", "a_b", "a/b", "a b"] {
            assert!(
                check_object_name("--name", bad, 253, true).is_err(),
                "{bad}"
            );
        }
        assert!(check_object_name("--namespace", "kube.system", 63, false).is_err());
        assert!(check_object_name("--namespace", &"n".repeat(64), 63, false).is_err());
    }
}
