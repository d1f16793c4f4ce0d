//! Issue 5 end to end: the real calseg-agent inside a sandboxed host with real systemd and a
//! stand-in Calico unit, the real calseg-server, a real etcd. The stand-in is the Calico
//! access replay (calico-node's and Felix's etcd operations) on the narrowed per-node profile,
//! so every restart also proves that the installed identity is enough for Calico.

use calseg_tests::agent_host::{
    AgentHost, AgentWorld, REPLAY_CALICO_RELEASE, SANDBOX_ETCDCTL, STANDIN_UNIT,
};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use std::time::Duration;

fn policy(endpoint: &str, nodes: &[&str], cert_mode: &str, extra_component: bool) -> String {
    let names = nodes
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let extra = if extra_component {
        "\n[[hosts]]\nnames = [NAMES]\ncomponents = [\"calicoctl-ro\"]\n".replace("NAMES", &names)
    } else {
        String::new()
    };
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[identity]
lifetime = "2h"
[components.calico-node]
grants = "calico-node-per-node"
restart = ["calico-node.service"]
env_file = "/etc/calico/calico-node.env"
cert_mode = "{cert_mode}"
[components.calicoctl-ro]
grants = "calicoctl-read-only"
calicoctl_cfg = "/etc/calico/calicoctl.cfg"
[datastore]
calico_release = "{REPLAY_CALICO_RELEASE}"
[[hosts]]
names = [{names}]
components = ["calico-node"]
{extra}"#
    )
}

struct Setup {
    etcd: EtcdCluster,
    server: ServerProcess,
    agent: AgentHost,
}

async fn setup(node: &str) -> Setup {
    setup_with(node, |endpoint| {
        policy(endpoint, &[node, "other"], "0644", false)
    })
    .await
}

async fn setup_with(node: &str, policy: impl Fn(&str) -> String) -> Setup {
    let AgentWorld {
        etcd,
        server,
        agent,
    } = AgentWorld::start(node, policy)
        .await
        .expect("etcd, server and sandbox");
    agent.use_replay().await.expect("replay stand-in");
    agent.enroll(&server).expect("enroll");
    Setup {
        etcd,
        server,
        agent,
    }
}

impl Setup {
    async fn unit(&self) -> calseg_agent::systemd::UnitStatus {
        self.agent
            .host
            .unit_status(STANDIN_UNIT)
            .await
            .expect("unit status")
    }

    /// Rewrites the policy and makes the server reload it (SIGHUP via restart of the process).
    async fn change_policy(&mut self, text: &str) {
        std::fs::write(self.server.policy_path(), text).expect("write policy");
        self.server.restart().await.expect("restart server");
        self.server
            .wait_rbac_applied()
            .await
            .expect("the new policy's RBAC");
    }

    /// The value the stand-in wrote for this node, read as root.
    async fn status_value(&self) -> Option<String> {
        let mut root = self.etcd.root_client().await.expect("root");
        let key = format!("/calico/felix/v2/no-region/host/{}/status", self.agent.node);
        let response = root.get(key, None).await.expect("get");
        response
            .kvs()
            .first()
            .map(|kv| kv.value_str().unwrap_or_default().to_owned())
    }
}

#[tokio::test]
async fn identities_install_units_restart_once_and_the_new_identity_works() {
    let mut s = setup("agent-node1").await;
    let (code, out) = s.agent.once().expect("once");
    assert_eq!(code, 2, "first cycle must install and converge:\n{out}");
    let first = s.unit().await;
    assert_eq!(first.active_state, "active", "{first:?}\n{out}");

    // Files with the policy's owner and modes; key and certificate match.
    let host = &s.agent.host;
    let modes = host
        .exec_ok("stat -L -c '%a %U:%G %n' /etc/calico/certs/calico-node/key.pem /etc/calico/certs/calico-node/cert.pem /etc/calico/certs/calico-node/ca.pem")
        .expect("stat");
    assert!(
        modes.contains("600 root:root /etc/calico/certs/calico-node/key.pem"),
        "{modes}"
    );
    assert!(
        modes.contains("644 root:root /etc/calico/certs/calico-node/cert.pem"),
        "{modes}"
    );
    let env = host
        .exec_ok("cat /etc/calico/calico-node.env")
        .expect("env");
    assert!(
        env.contains("ETCD_CERT_FILE=") && env.contains("DATASTORE_TYPE=etcdv3"),
        "{env}"
    );

    // The stand-in writes its own key with the new identity...
    let pid = first.main_pid;
    let mut value = None;
    for _ in 0..50 {
        value = s.status_value().await;
        if value.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        value.is_some(),
        "the stand-in never wrote its status with the installed identity"
    );
    // ...and the installed identity is denied another node's keys.
    let denied = host.exec(&format!(
        "ETCDCTL_API=3 {SANDBOX_ETCDCTL} --endpoints=$(grep ETCD_ENDPOINTS /etc/calico/calico-node.env | cut -d= -f2 | tr -d '\"') \
         --cacert=/etc/calico/certs/calico-node/ca.pem --cert=/etc/calico/certs/calico-node/cert.pem \
         --key=/etc/calico/certs/calico-node/key.pem put /calico/felix/v1/host/other/status forged",
    )).expect("etcdctl");
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("permission denied"),
        "{denied:?}"
    );

    // Nothing changed: no restart.
    let (code, out) = s.agent.once().expect("once");
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        s.unit().await.main_pid,
        pid,
        "restarted although nothing changed"
    );

    // A policy change that does not touch calico-node's inputs: files for the new component
    // only, no restart.
    let text = policy(&s.etcd.endpoint(0), &["agent-node1", "other"], "0644", true);
    s.change_policy(&text).await;
    let (code, out) = s.agent.once().expect("once");
    assert_eq!(code, 2, "{out}");
    assert!(
        s.agent.host.path("/etc/calico/calicoctl.cfg").exists(),
        "{out}"
    );
    assert_eq!(
        s.unit().await.main_pid,
        pid,
        "calico-node restarted for a change that is not its own"
    );

    // A change to its own files (cert mode): new identity, exactly one restart.
    let text = policy(&s.etcd.endpoint(0), &["agent-node1", "other"], "0640", true);
    s.change_policy(&text).await;
    let (code, out) = s.agent.once().expect("once");
    assert_eq!(code, 2, "{out}");
    let after = s.unit().await;
    assert_ne!(
        after.main_pid, pid,
        "not restarted for its new identity:\n{out}"
    );
    assert_eq!(after.active_state, "active");
    let mode = s
        .agent
        .host
        .exec_ok("stat -L -c %a /etc/calico/certs/calico-node/cert.pem")
        .expect("stat");
    assert_eq!(mode.trim(), "640");
    let (code, out) = s.agent.once().expect("once");
    assert_eq!(code, 0, "{out}");
    assert_eq!(s.unit().await.main_pid, after.main_pid);
}

#[tokio::test]
async fn a_unit_that_fails_with_the_new_identity_is_rolled_back_and_reported() {
    let mut s = setup("agent-node2").await;
    let (code, out) = s.agent.once().expect("once");
    assert_eq!(code, 2, "{out}");
    let host = &s.agent.host;
    let good = host
        .exec_ok("openssl x509 -noout -serial -in /etc/calico/certs/calico-node/cert.pem | cut -d= -f2 | tr 'A-F' 'a-f' | sed 's/^0*//'")
        .expect("serial");
    host.write_file("/etc/calico/break-unless-serial", good.trim(), 0o644)
        .expect("write");

    let text = policy(
        &s.etcd.endpoint(0),
        &["agent-node2", "other"],
        "0640",
        false,
    );
    s.change_policy(&text).await;
    let (code, out) = s.agent.once().expect("once");
    assert_eq!(
        code, 1,
        "a unit failing with the new identity must fail the cycle:\n{out}"
    );
    let host = &s.agent.host;
    let serial = host
        .exec_ok("openssl x509 -noout -serial -in /etc/calico/certs/calico-node/cert.pem | cut -d= -f2 | tr 'A-F' 'a-f' | sed 's/^0*//'")
        .expect("serial");
    assert_eq!(
        serial.trim(),
        good.trim(),
        "the old identity was not restored:\n{out}"
    );
    let unit = s.unit().await;
    assert_eq!(
        unit.active_state, "active",
        "not running again on the old identity: {unit:?}\n{out}"
    );
    let status = s.agent.agent("status --json").expect("status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("rolled_back"), "{text}");
    let nodes = s
        .server
        .cli_ok(&["nodes", "list", "--json"])
        .expect("nodes");
    assert!(
        nodes.contains("rolled_back"),
        "the server did not get the report: {nodes}"
    );
}

#[tokio::test]
async fn a_certificate_that_fails_the_etcd_check_is_never_installed() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    // A server without etcd credentials signs certificates but creates no etcd users: every
    // new identity fails the agent's check against etcd.
    let server = ServerProcess::start(
        &etcd,
        &policy(&etcd.endpoint(0), &["agent-node3"], "0644", false),
        "",
    )
    .await
    .expect("server");
    let config = std::fs::read_to_string(server.config_path()).expect("config");
    let unmanaged: String = config
        .lines()
        .filter(|l| !l.starts_with("cert_file = ") || !l.contains("etcd"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(server.config_path(), unmanaged).expect("config");
    let mut server = server;
    server.restart().await.expect("restart");
    // The first start may already have created the etcd user; the restarted server will not
    // recreate it.
    let mut root = etcd.root_client().await.expect("root");
    let _ = root.user_delete("calico-node.agent-node3").await;
    let agent = AgentHost::boot("agent-node3", &server)
        .await
        .expect("sandbox");
    agent.enroll(&server).expect("enroll");
    let (code, out) = agent.once().expect("once");
    assert_eq!(code, 1, "{out}");
    assert!(
        !agent
            .host
            .path("/etc/calico/certs/calico-node/cert.pem")
            .exists(),
        "installed anyway:\n{out}"
    );
    let unit = agent.host.unit_status(STANDIN_UNIT).await.expect("status");
    assert_ne!(
        unit.active_state, "active",
        "restarted for an identity that failed its check"
    );
    assert!(out.contains("verify") || out.contains("etcd"), "{out}");
}

#[tokio::test]
async fn sigkill_during_install_never_leaves_a_mismatched_identity() {
    // An identity without a unit: every round installs, none restarts (systemd would rate-limit).
    let s = setup_with("agent-node4", |endpoint| {
        policy(endpoint, &["other"], "0644", false)
            + "[[hosts]]\nname = \"agent-node4\"\ncomponents = [\"calicoctl-ro\"]\n"
    })
    .await;
    let (code, out) = s.agent.once().expect("once");
    assert_eq!(code, 2, "{out}");
    let host = &s.agent.host;
    let agent = calseg_tests::bins::path("calseg-agent");
    let check = "for d in /etc/calico/certs/calicoctl-ro; do \
        a=$(openssl x509 -noout -pubkey -in $d/cert.pem | sha256sum); \
        b=$(openssl pkey -pubout -in $d/key.pem | sha256sum); \
        [ \"$a\" = \"$b\" ] || { echo MISMATCH; exit 1; }; done; echo OK";
    // How long one installing cycle takes here; kills are spread over that time.
    host.exec_ok("rm -f /var/lib/calseg/agent/installed.json")
        .expect("rm");
    let timed = host
        .exec_ok(&format!("s=$(date +%s%N); {} once >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000000 ))", agent.display()))
        .expect("time a cycle");
    let cycle_ms: u64 = timed.trim().parse().expect("milliseconds");
    // 50 kills that land while the agent runs, at points spread over its cycle. A kill that
    // comes after the cycle ended does not count (under load a cycle takes longer), so keep
    // going, within a bound, until 50 have landed.
    let mut killed_mid_cycle = 0u64;
    let mut round = 0u64;
    while killed_mid_cycle < 50 {
        assert!(
            round < 300,
            "only {killed_mid_cycle} of {round} kills landed mid-cycle (a cycle took {cycle_ms} ms)"
        );
        // Forget what is installed so the cycle issues and installs a new identity.
        host.exec_ok("rm -f /var/lib/calseg/agent/installed.json")
            .expect("rm");
        // A point in the first 90% of a cycle, spread by a multiplicative hash of the round.
        let delay_ms = (round.wrapping_mul(2_654_435_761) % 1000) * cycle_ms * 9 / 10_000;
        let output = host
            .exec(&format!(
                "{} once >/dev/null 2>&1 & pid=$!; sleep {}; kill -9 $pid 2>/dev/null && echo KILLED; wait $pid 2>/dev/null; true",
                agent.display(),
                delay_ms as f64 / 1000.0
            ))
            .expect("run");
        if String::from_utf8_lossy(&output.stdout).contains("KILLED") {
            killed_mid_cycle += 1;
        }
        let verdict = host
            .exec_ok(check)
            .unwrap_or_else(|e| format!("check failed: {e}"));
        assert!(
            verdict.contains("OK"),
            "round {round} (killed after {delay_ms} ms): {verdict}"
        );
        round += 1;
    }
    // And the agent recovers: the next cycle converges.
    let (code, out) = s.agent.once().expect("once");
    assert!(code == 0 || code == 2, "{out}");
}

#[tokio::test]
async fn the_host_keeps_working_while_the_server_is_down_and_converges_when_it_returns() {
    let mut s = setup("agent-node5").await;
    let (code, out) = s.agent.once().expect("once");
    assert_eq!(code, 2, "{out}");
    let pid = s.unit().await.main_pid;
    s.server.stop();
    let (code, out) = s.agent.once().expect("once");
    // Unreachable (69), not failed (1): nothing was touched and a later try may work.
    assert_eq!(code, 69, "{out}");
    assert!(
        out.to_lowercase().contains("expire"),
        "no warning with the time left:\n{out}"
    );
    let unit = s.unit().await;
    assert_eq!(
        (unit.active_state.as_str(), unit.main_pid),
        ("active", pid),
        "the host suffered from the server being down"
    );
    assert!(
        s.agent
            .host
            .path("/etc/calico/certs/calico-node/cert.pem")
            .exists()
    );

    s.server.restart().await.expect("server back");
    let (code, out) = s.agent.once().expect("once");
    assert_eq!(code, 0, "{out}");
}
