//! Issue 21, point 1: per-component Secrets for Calico's hosted manifest. The real
//! `calseg-server k8s secrets` against the real server and etcd: the Secret and the pod snippet
//! are what Kubernetes' own types read, with the hosted manifest's names; the key in the Secret
//! is the certificate's, and works in etcd as the component-wide user on the component's keys
//! only; `--renew` gives a new key and certificate for the same user; a component whose grants
//! need `{node}`, a user calseg does not own and a node's certificate are refused.

use calseg_tests::api_client::{TestNode, call};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::pki::KeyedCert;
use calseg_tests::server::ServerProcess;
use k8s_openapi::api::core::v1::{Secret, Volume, VolumeMount};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const KC: &str = "calico-kube-controllers";

fn policy(endpoint: &str) -> String {
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[components.calico-node]
grants = "calico-node-per-node"
[components.{KC}]
grants = "kube-controllers"
component_identity = true
[components.other-kc]
grants = "kube-controllers"
component_identity = true
[[hosts]]
match = "node*"
components = ["calico-node"]
"#
    )
}

/// What one `k8s secrets` run wrote: the Secret (typed), its files, and the pod snippet.
struct Written {
    secret: Secret,
    identity: KeyedCert,
    ca_pem: String,
    volume: Volume,
    mount: VolumeMount,
}

/// Runs `k8s secrets ARGS`, failing unless it exits 0; reads `out` and stdout back through
/// Kubernetes' types, checking that nothing in them was lost on the way (every field known).
fn secrets(server: &ServerProcess, args: &[&str], out: &Path) -> Written {
    let mut cli = vec!["k8s", "secrets"];
    cli.extend(args);
    let stdout = server.cli_ok(&cli).expect("k8s secrets");
    let text = std::fs::read_to_string(out).expect("the Secret file");
    let raw: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let secret: Secret = serde_json::from_str(&text).expect("a Kubernetes Secret");
    assert_eq!(serde_json::to_value(&secret).expect("to JSON"), raw);
    let snippet: serde_json::Value = serde_json::from_str(&stdout).expect("snippet JSON");
    let volume: Volume = serde_json::from_value(snippet["volumes"][0].clone()).expect("Volume");
    let mount: VolumeMount =
        serde_json::from_value(snippet["volumeMounts"][0].clone()).expect("VolumeMount");
    assert_eq!(
        serde_json::to_value(&volume).expect("to JSON"),
        snippet["volumes"][0]
    );
    assert_eq!(
        serde_json::to_value(&mount).expect("to JSON"),
        snippet["volumeMounts"][0]
    );
    let data = secret.data.clone().expect("data");
    let file = |key: &str| String::from_utf8(data[key].0.clone()).expect("UTF-8 PEM");
    assert_eq!(
        data.keys().map(String::as_str).collect::<Vec<_>>(),
        ["etcd-ca", "etcd-cert", "etcd-key"],
        "the hosted manifest's keys"
    );
    Written {
        identity: KeyedCert {
            cert_pem: file("etcd-cert"),
            key_pem: file("etcd-key"),
        },
        ca_pem: file("etcd-ca"),
        secret,
        volume,
        mount,
    }
}

/// The certificate's CN and serial; panics unless its public key is the key's.
fn matching(identity: &KeyedCert) -> (String, String) {
    let (_, pem) = x509_parser::pem::parse_x509_pem(identity.cert_pem.as_bytes()).expect("PEM");
    let cert = pem.parse_x509().expect("X.509");
    let key = rcgen::KeyPair::from_pem(&identity.key_pem).expect("key");
    assert_eq!(
        cert.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key).as_slice(),
        "the key in the Secret is not the certificate's"
    );
    let cn = cert.subject().iter_common_name().next().expect("CN");
    (
        cn.as_str().expect("CN text").to_owned(),
        hex::encode(cert.raw_serial()),
    )
}

/// Whether `identity` may put `key` in etcd.
async fn may_put(etcd: &EtcdCluster, identity: &KeyedCert, key: &str) -> bool {
    let mut client = etcd.client_as(identity).await.expect("etcd client");
    match client.put(key, "v", None).await {
        Ok(_) => true,
        Err(error) if error.to_string().contains("permission denied") => false,
        Err(error) => panic!("etcd failed otherwise on {key}: {error}"),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

#[tokio::test]
async fn a_component_secret_works_in_etcd_renews_and_refuses_node_components() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(&etcd, &policy(&etcd.endpoint(0)), "")
        .await
        .expect("server");
    server.wait_rbac_applied().await.expect("RBAC applied");
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("kc.json");
    let out_arg = out.to_str().expect("UTF-8");
    let name = "calico-etcd-secrets-kc";
    let args = ["--component", KC, "--name", name, "--out", out_arg];

    let first = secrets(&server, &args, &out);
    assert_eq!(mode(&out), 0o600, "the Secret file's mode");
    let meta = &first.secret.metadata;
    assert_eq!(meta.name.as_deref(), Some(name));
    assert_eq!(meta.namespace.as_deref(), Some("kube-system"));
    assert_eq!(first.secret.type_.as_deref(), Some("Opaque"));
    // The pod side, as the hosted manifest has it for calico-kube-controllers (non-root: 0440).
    assert_eq!(first.volume.name, "etcd-certs");
    let source = first.volume.secret.as_ref().expect("a secret volume");
    assert_eq!(source.secret_name.as_deref(), Some(name));
    assert_eq!(source.default_mode, Some(0o440));
    assert_eq!(first.mount.name, "etcd-certs");
    assert_eq!(first.mount.mount_path, "/calico-secrets");
    // The key in the Secret is the certificate's, for the component-wide user; the CA is the
    // one etcd's clients verify it with.
    let (cn, serial) = matching(&first.identity);
    assert_eq!(cn, format!("{KC}~all"));
    assert_eq!(first.ca_pem, etcd.ca().cert_pem);

    // In etcd: allowed on the component's keys, denied elsewhere.
    assert!(may_put(&etcd, &first.identity, "/calico/ipam/v2/assignment/x").await);
    assert!(
        !may_put(
            &etcd,
            &first.identity,
            "/calico/felix/v2/no-region/host/node1/x"
        )
        .await
    );
    assert!(
        !may_put(
            &etcd,
            &first.identity,
            "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/x"
        )
        .await
    );

    // The same command again does not replace the Secret; --renew does, with a new key and
    // certificate for the same user, and the new identity works.
    let again = server
        .cli(&["k8s", "secrets", "--component", KC, "--out", out_arg])
        .expect("cli");
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("exists (the Secret of component calico-kube-controllers): give --renew"),
        "{stderr}"
    );
    let mut renew = args.to_vec();
    renew.push("--renew");
    let renewed = secrets(&server, &renew, &out);
    assert_eq!(mode(&out), 0o600);
    let (renewed_cn, renewed_serial) = matching(&renewed.identity);
    assert_eq!(renewed_cn, cn);
    assert_ne!(renewed_serial, serial);
    assert_ne!(renewed.identity.key_pem, first.identity.key_pem);
    assert_eq!(renewed.secret.metadata.name, first.secret.metadata.name);
    assert!(may_put(&etcd, &renewed.identity, "/calico/ipam/v2/assignment/y").await);
    // --renew never turns one component's Secret into another's.
    let other = server
        .cli(&[
            "k8s",
            "secrets",
            "--component",
            "other-kc",
            "--out",
            out_arg,
            "--renew",
        ])
        .expect("cli");
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(
        stderr.contains("holds the Secret of component calico-kube-controllers, not other-kc"),
        "{stderr}"
    );

    // A component whose grants need {node}: refused with the reason, nothing written.
    let node_out = dir.path().join("node.json");
    let refused = server
        .cli(&[
            "k8s",
            "secrets",
            "--component",
            "calico-node",
            "--out",
            node_out.to_str().expect("UTF-8"),
        ])
        .expect("cli");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("403 Forbidden, component_needs_node"),
        "{stderr}"
    );
    assert!(
        stderr.contains("component calico-node's grants need {node}"),
        "{stderr}"
    );
    assert!(
        stderr.contains("from grants = \"calico-node-per-node\""),
        "{stderr}"
    );
    assert!(!node_out.exists());

    // A node's certificate on the route: refused (as every admin route refuses it).
    let mut node = TestNode::new("node1", &server.url(), &server.fleet_ca_pem()).expect("node");
    let token = server.token_for("node1", "1h").expect("token");
    assert_eq!(node.enroll(Some(&token)).await.expect("enroll").status, 200);
    let (_, csr_pem) = calseg_tests::api_client::key_and_csr(&cn).expect("CSR");
    let path = calseg_api::paths::admin_component_certificate(KC);
    let answer = call(
        node.client()
            .expect("node client")
            .post(format!("{}{path}", server.url()))
            .json(&serde_json::json!({ "csr_pem": csr_pem })),
    )
    .await
    .expect("call");
    assert_eq!(
        (answer.status.as_u16(), answer.kind()),
        (403, "not_admin"),
        "{answer:?}"
    );

    // A component-wide user someone else holds in etcd: the signing guard refuses it.
    let other_user = "other-kc~all";
    let mut root = etcd.root_client().await.expect("root");
    root.role_add("handmade").await.expect("role");
    root.user_grant_role(other_user, "handmade")
        .await
        .expect("grant");
    root.user_revoke_role(other_user, "calseg.other-kc")
        .await
        .expect("revoke");
    let other_out = dir.path().join("other.json");
    let guarded = server
        .cli(&[
            "k8s",
            "secrets",
            "--component",
            "other-kc",
            "--out",
            other_out.to_str().expect("UTF-8"),
        ])
        .expect("cli");
    let stderr = String::from_utf8_lossy(&guarded.stderr);
    assert!(stderr.contains("etcd_user_not_owned"), "{stderr}");
    assert!(!other_out.exists());

    // Bad flags are refused before the server signs anything (the audit count below).
    let missing = dir.path().join("no-such-dir/kc.json");
    for (flags, says) in [
        (
            vec!["--name", "Calico_Secrets"],
            "--name \"Calico_Secrets\" is not a Kubernetes name",
        ),
        (
            vec!["--namespace", "kube.system"],
            "--namespace \"kube.system\" is not a Kubernetes name",
        ),
        (
            vec!["--out", missing.to_str().expect("UTF-8")],
            "no-such-dir does not exist; create it first",
        ),
    ] {
        let mut cli = vec!["k8s", "secrets", "--component", KC];
        cli.extend(flags);
        let output = server.cli(&cli).expect("cli");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.code() == Some(1) && stderr.contains(says),
            "{cli:?}: {stderr}"
        );
    }
    let output = server
        .cli(&[
            "k8s",
            "secrets",
            "--component",
            "../kc",
            "--out",
            out_arg,
            "--renew",
        ])
        .expect("cli");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--component: invalid component name \"../kc\""),
        "{stderr}"
    );

    // The audit log has each certificate under the administrator's name, and each refusal.
    let audit = server.cli_ok(&["audit", "-o", "json"]).expect("audit");
    let issued = audit
        .lines()
        .filter(|l| l.contains("component-wide identity of calico-kube-controllers"))
        .count();
    assert!(audit.contains("admin:root"), "{audit}");
    assert_eq!(issued, 2, "{audit}");
    assert!(audit.contains("component_needs_node"), "{audit}");
    assert!(audit.contains("etcd_user_not_owned"), "{audit}");

    // What the CSR asks beyond its key is ignored, as for a node's identity: a CSR asking for
    // SANs and an organisation gets CN=<the user> alone, clientAuth only.
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params =
        rcgen::CertificateParams::new(vec!["etcd.example".to_owned()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn.as_str());
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:masters");
    let csr_pem = params
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .expect("CSR");
    let admin = calseg_tests::api_client::admin_client(&server).expect("admin client");
    let answer = call(
        admin
            .post(format!("{}{path}", server.url()))
            .json(&serde_json::json!({ "csr_pem": csr_pem })),
    )
    .await
    .expect("call");
    assert_eq!(answer.status, 200, "{answer:?}");
    let cert_pem = answer.body["cert_pem"].as_str().expect("cert_pem");
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).expect("PEM");
    let cert = pem.parse_x509().expect("X.509");
    assert_eq!(cert.subject().to_string(), format!("CN={cn}"));
    assert!(
        cert.subject_alternative_name()
            .expect("extensions")
            .is_none()
    );
    let usage = cert.extended_key_usage().expect("EKU").expect("an EKU");
    assert!(usage.value.client_auth && !usage.value.server_auth);
    // The keys never reached the server: nothing of them in its log or audit log.
    let key_body = |pem: &str| pem.lines().nth(2).expect("a key line").to_owned();
    for key in [&first.identity.key_pem, &renewed.identity.key_pem] {
        let line = key_body(key);
        assert!(!server.log().contains(&line) && !audit.contains(&line));
    }

    // Reconciled like every other user: without component_identity in the policy, the user
    // goes at the next apply, and the Secret's identity with it.
    let text = std::fs::read_to_string(server.policy_path()).expect("policy");
    let text = text.replace("component_identity = true\n", "");
    std::fs::write(server.policy_path(), text).expect("write policy");
    server.reload().expect("SIGHUP");
    let mut gone = false;
    for _ in 0..100 {
        let mut client = etcd.client_as(&renewed.identity).await;
        let put = match client.as_mut() {
            Ok(client) => client
                .put("/calico/ipam/v2/assignment/z", "v", None)
                .await
                .err(),
            Err(error) => Some(etcd_client::Error::InvalidArgs(error.to_string())),
        };
        if let Some(error) = put {
            let text = error.to_string();
            assert!(
                text.contains("user name not found")
                    || text.contains("authentication failed")
                    || text.contains("permission denied"),
                "{text}"
            );
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        gone,
        "calico-kube-controllers~all still works after its removal from the policy"
    );
    let after = server
        .cli(&[
            "k8s",
            "secrets",
            "--component",
            KC,
            "--out",
            out_arg,
            "--renew",
        ])
        .expect("cli");
    let stderr = String::from_utf8_lossy(&after.stderr);
    assert!(stderr.contains("no_component_identity"), "{stderr}");
}
