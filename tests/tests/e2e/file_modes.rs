//! Issue 10: the mode and owner of every file calseg writes, server and agent side, checked
//! against the table in docs/security.md after `calseg-server init`, a served store, an
//! enrollment and a converged agent cycle. A file calseg writes that the table does not list
//! fails the test too.

use calseg_tests::agent_host::AgentHost;
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use std::collections::BTreeMap;

/// Server side, relative to the harness's directory (`etc/` is /etc/calseg, `var/` is
/// /var/lib/calseg). `d` directory, `f` file. policy.toml is the harness's, not calseg's.
const SERVER: &[(&str, &str)] = &[
    ("etc", "750 d"),
    ("etc/server.toml", "640 f"),
    ("etc/admin", "750 d"),
    ("etc/admin/admin.pem", "644 f"),
    ("etc/admin/admin-key.pem", "600 f"),
    ("etc/etcd", "750 d"),
    ("etc/etcd/calseg.pem", "644 f"),
    ("etc/etcd/calseg-key.pem", "600 f"),
    ("var", "750 d"),
    ("var/state.redb", "600 f"),
    ("var/ca", "750 d"),
    ("var/ca/fleet.pem", "644 f"),
    ("var/ca/fleet-key.pem", "600 f"),
    ("var/ca/etcd-client.pem", "644 f"),
    ("var/ca/etcd-client-key.pem", "600 f"),
    ("var/tls", "750 d"),
    ("var/tls/server.pem", "644 f"),
    ("var/tls/server-key.pem", "600 f"),
];

/// Agent side, absolute paths in the host; `<n>` stands for an identity generation number.
/// `l` symbolic link (its own mode is always 777; what counts is the target's).
const AGENT: &[(&str, &str)] = &[
    ("/var/lib/calseg/agent", "700 d"),
    ("/var/lib/calseg/agent/server.url", "644 f"),
    ("/var/lib/calseg/agent/server.current", "644 f"),
    ("/var/lib/calseg/agent/fleet.key", "600 f"),
    ("/var/lib/calseg/agent/fleet.pem", "644 f"),
    ("/var/lib/calseg/agent/fleet-ca.pem", "644 f"),
    ("/var/lib/calseg/agent/manifest.json", "600 f"),
    ("/var/lib/calseg/agent/installed.json", "600 f"),
    ("/var/lib/calseg/agent/last-cycle.json", "600 f"),
    ("/etc/calico/certs/calico-node", "750 d"),
    ("/etc/calico/certs/calico-node/.calseg", "750 d"),
    ("/etc/calico/certs/calico-node/.calseg/current", "777 l"),
    ("/etc/calico/certs/calico-node/.calseg/<n>", "750 d"),
    ("/etc/calico/certs/calico-node/.calseg/<n>/ca.pem", "644 f"),
    (
        "/etc/calico/certs/calico-node/.calseg/<n>/cert.pem",
        "644 f",
    ),
    ("/etc/calico/certs/calico-node/.calseg/<n>/key.pem", "600 f"),
    ("/etc/calico/certs/calico-node/ca.pem", "777 l"),
    ("/etc/calico/certs/calico-node/cert.pem", "777 l"),
    ("/etc/calico/certs/calico-node/key.pem", "777 l"),
    ("/etc/calico/calico-node.env", "644 f"),
];

fn policy(endpoint: &str) -> String {
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[components.calico-node]
grants = [ {{ prefix = "/calico/resources/v3/projectcalico.org/", access = "read" }} ]
node_grants = [ {{ prefix = "/calico/felix/v1/host/{{node}}/", access = "readwrite" }} ]
restart = ["calico-node.service"]
env_file = "/etc/calico/calico-node.env"
[[hosts]]
names = ["modes-node"]
components = ["calico-node"]
"#
    )
}

/// `mode type` of every entry under `root`, keyed by path relative to `strip`, with generation
/// directories written `<n>`.
fn listing(find_output: &str, strip: &str) -> BTreeMap<String, String> {
    find_output
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(4, ' ');
            let (mode, owner, kind, path) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            assert_eq!(owner, "root:root", "{path} is owned by {owner}");
            let path = path.strip_prefix(strip).unwrap_or(path).to_owned();
            let generic = path
                .split('/')
                .map(|part| {
                    if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                        "<n>"
                    } else {
                        part
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            Some((generic, format!("{mode} {kind}")))
        })
        .collect()
}

fn compare(side: &str, table: &[(&str, &str)], found: &BTreeMap<String, String>) {
    let expected: BTreeMap<String, String> = table
        .iter()
        .map(|(p, m)| ((*p).to_owned(), (*m).to_owned()))
        .collect();
    let mut wrong = Vec::new();
    for (path, want) in &expected {
        match found.get(path) {
            Some(got) if got == want => {}
            Some(got) => wrong.push(format!("{path}: {got}, table says {want}")),
            None => wrong.push(format!("{path}: missing, table says {want}")),
        }
    }
    for (path, got) in found {
        if !expected.contains_key(path) {
            wrong.push(format!("{path}: {got}, not in the table"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{side} files differ from docs/security.md:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test]
async fn every_file_calseg_writes_has_the_documented_mode_and_owner() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(&etcd, &policy(&etcd.endpoint(0)), "")
        .await
        .expect("server");
    let agent = AgentHost::boot("modes-node", &server)
        .await
        .expect("sandbox");
    agent.enroll(&server).expect("enroll");
    let (code, out) = agent.once().expect("once");
    assert_eq!(code, 2, "{out}");

    let dir = server.dir().display().to_string();
    let output = std::process::Command::new("find")
        .args([
            &format!("{dir}/etc"),
            &format!("{dir}/var"),
            "-not",
            "-path",
            &format!("{dir}/etc/policy.toml"),
            "-printf",
            "%m %u:%g %y %p\\n",
        ])
        .output()
        .expect("find");
    assert!(output.status.success(), "{output:?}");
    let found = listing(&String::from_utf8_lossy(&output.stdout), &format!("{dir}/"));
    compare("server", SERVER, &found);

    let found = listing(
        &agent
            .host
            .exec_ok(
                "find /var/lib/calseg/agent /etc/calico/certs /etc/calico/calico-node.env \
                 -not -path /etc/calico/certs -printf '%m %u:%g %y %p\\n'",
            )
            .expect("find"),
        "",
    );
    compare("agent", AGENT, &found);
}
