//! Issue 17, finding 9: administrator certificates are short-lived. A one-year administrator
//! certificate (what `init` used to make, or what someone with a copy of an old one holds) is
//! refused by the running server; `calseg-server admin issue` makes a short-lived one on the
//! server host, refuses lifetimes beyond the limit and names that could pass for a node.

use calseg_tests::api_client::{call, https_client};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
use std::os::unix::fs::PermissionsExt;

fn policy(endpoint: &str) -> String {
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[components.calico-node]
grants = "calico-node-per-node"
restart = ["calico-node.service"]
[[hosts]]
match = "node*"
components = ["calico-node"]
"#
    )
}

/// An `admin:NAME` certificate signed with the server's own fleet CA key, valid `days` days.
fn forged_admin(server: &ServerProcess, name: &str, days: i64) -> (String, String) {
    let ca_dir = server.state_dir().join("ca");
    let ca_key = std::fs::read_to_string(ca_dir.join("fleet-key.pem")).expect("fleet key");
    let issuer = Issuer::from_ca_cert_pem(
        &server.fleet_ca_pem(),
        KeyPair::from_pem(&ca_key).expect("CA key"),
    )
    .expect("CA");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, format!("admin:{name}"));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(days);
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &issuer).expect("sign");
    (cert.pem(), key.serialize_pem())
}

/// GET /v1/admin/nodes with `identity`: the status and the error kind.
async fn list_nodes(server: &ServerProcess, cert: &str, key: &str) -> (u16, String) {
    let client = https_client(&server.fleet_ca_pem(), Some((cert, key))).expect("client");
    let answer = call(client.get(format!("{}/v1/admin/nodes", server.url())))
        .await
        .expect("call");
    (answer.status.as_u16(), answer.kind().to_owned())
}

#[tokio::test]
async fn long_lived_admin_certificates_are_refused_and_admin_issue_makes_short_ones() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(&etcd, &policy(&etcd.endpoint(0)), "")
        .await
        .expect("server");

    // init's certificate is short-lived and works.
    let init_cert =
        std::fs::read_to_string(server.dir().join("etc/admin/admin.pem")).expect("admin.pem");
    let (_, parsed) = x509_parser::pem::parse_x509_pem(init_cert.as_bytes()).expect("pem");
    let validity = parsed.parse_x509().expect("x509").validity().clone();
    let days = (validity.not_after.timestamp() - validity.not_before.timestamp()) / 86_400;
    assert!(days <= 7, "init's admin certificate lives {days} days");
    server.cli_ok(&["nodes", "list"]).expect("nodes list");

    // A one-year admin certificate from the real fleet CA: refused, and the log says why.
    let (cert, key) = forged_admin(&server, "old", 365);
    assert_eq!(
        list_nodes(&server, &cert, &key).await,
        (403, "admin_certificate_too_long_lived".to_owned())
    );
    // 31 days is the limit, and still accepted.
    let (cert, key) = forged_admin(&server, "month", 31);
    assert_eq!(list_nodes(&server, &cert, &key).await.0, 200);
    assert!(
        server.log().contains("administrator certificate refused"),
        "{}",
        server.log()
    );

    // admin issue: a new named certificate in its own directory, key mode 0600.
    let out = server.dir().join("ops-admin");
    let out_arg = out.to_str().expect("utf-8");
    server
        .cli_ok(&[
            "admin",
            "issue",
            "--name",
            "ops",
            "--lifetime",
            "8h",
            "--out",
            out_arg,
        ])
        .expect("admin issue");
    let mode = |file: &str| {
        std::fs::metadata(out.join(file))
            .expect("metadata")
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("admin-key.pem"), 0o600);
    let cert = std::fs::read_to_string(out.join("admin.pem")).expect("cert");
    let key = std::fs::read_to_string(out.join("admin-key.pem")).expect("key");
    assert_eq!(list_nodes(&server, &cert, &key).await.0, 200);
    // The audit log names the new administrator.
    let client = https_client(&server.fleet_ca_pem(), Some((&cert, &key))).expect("client");
    let created = call(
        client
            .post(format!("{}/v1/admin/tokens", server.url()))
            .json(&serde_json::json!({"node": "node1", "ttl_secs": 60})),
    )
    .await
    .expect("token");
    assert_eq!(created.status, 200, "{created:?}");
    assert!(
        server
            .cli_ok(&["audit"])
            .expect("audit")
            .contains("admin:ops"),
        "the audit log names admin:ops"
    );
    // It never replaces files in --out, and refuses long lifetimes and node-like names.
    for (args, says) in [
        (vec!["--name", "ops", "--out", out_arg], "exists"),
        (
            vec!["--name", "ops2", "--lifetime", "90d"],
            "at most 31 days",
        ),
        (vec!["--name", "node1:x"], "administrator name"),
    ] {
        let mut cli = vec!["admin", "issue"];
        cli.extend(args.iter().copied());
        let output = server.cli(&cli).expect("cli");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(says),
            "{cli:?}: {stderr}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(out.join("admin.pem")).expect("cert"),
        cert,
        "a refused issue changed the files"
    );
}
