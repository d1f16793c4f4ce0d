//! Issue 17, finding 2: a compromised server cannot take the host. The real agent, enrolled
//! with the real server in a sandboxed host, is pointed at a [`RogueServer`] that holds the
//! real server's TLS key (what an attacker with calseg's keys has) and serves hand-built
//! hostile manifests: the server-side `check` never sees them. For each attack the agent must
//! refuse the whole pass (exit 1, naming the field), report it to the server, install nothing
//! else of that pass (a harmless calicoctl.cfg rides along in every hostile manifest as a
//! witness), restart nothing, and leave /root/.ssh, /etc/shadow, /etc/systemd/system and
//! /etc/calico as they were. A last, honest manifest from the same rogue server is applied,
//! so the refusals are the limits at work, not a server the agent cannot talk to.

use calseg_api::manifest::{Identity, Manifest};
use calseg_tests::agent_host::{AgentWorld, STANDIN_UNIT, standin_policy};
use calseg_tests::rogue_server::RogueServer;

const NODE: &str = "hostile1";
const WITNESS: &str = "/etc/calico/calicoctl.cfg";
const SSH_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAttackerAttackerAttackerAttacker evil@rogue";

/// What must never change: the files the attacks aim at and calseg's own tree.
fn snapshot(world: &AgentWorld) -> String {
    world
        .agent
        .host
        .exec_ok(
            "for p in /root/.ssh /etc/shadow /etc/systemd/system /etc/calico; do \
               find $p -exec stat -c '%n %F %a %U %s %Y' {} + 2>&1; \
               find $p -type f -exec sha256sum {} + 2>&1; \
             done | sort",
        )
        .expect("snapshot")
}

/// The calico-node identity of `m`.
fn node_identity(m: &mut Manifest) -> &mut Identity {
    m.identities
        .iter_mut()
        .find(|i| i.component == "calico-node")
        .expect("calico-node in the manifest")
}

/// A second identity like calico-node's, whose files go to `dir` (`ca` named `ca_name`).
fn second_identity(m: &Manifest, dir: &str, ca_name: &str, cert_name: &str) -> Identity {
    let mut id = m.identities[0].clone();
    id.component = "calico-rogue".into();
    id.files.dir = dir.into();
    id.files.ca = format!("{dir}/{ca_name}");
    id.files.cert = format!("{dir}/{cert_name}");
    id.files.key = format!("{dir}/rogue-key.pem");
    id.render = Default::default();
    id
}

#[tokio::test]
async fn a_compromised_server_cannot_take_the_host() {
    let world = AgentWorld::start(NODE, |endpoint| {
        standin_policy(endpoint, &format!("names = [\"{NODE}\"]"))
    })
    .await
    .expect("etcd, server and sandbox");
    let agent = &world.agent;
    agent.enroll(&world.server).expect("enroll");
    let (code, out) = agent.once().expect("once");
    assert_eq!(code, 2, "the honest first cycle installs:\n{out}");
    let honest: Manifest = serde_json::from_str(
        &std::fs::read_to_string(agent.host.path("/var/lib/calseg/agent/manifest.json"))
            .expect("cached manifest"),
    )
    .expect("manifest json");

    // The attacker: the real server's certificate and key, a port of its own.
    let tls = world.server.state_dir().join("tls");
    let rogue = RogueServer::start(&tls.join("server.pem"), &tls.join("server-key.pem"))
        .expect("rogue server");
    agent.write_config(&rogue.url()).expect("agent.toml");
    agent
        .host
        .exec_ok("mkdir -p /root/.ssh && chmod 700 /root/.ssh && echo 'ssh-ed25519 AAAA owner@host' > /root/.ssh/authorized_keys")
        .expect("an authorized_keys to protect");

    type Attack = (&'static str, &'static str, fn(&mut Manifest));
    let attacks: [Attack; 11] = [
        (
            "authorized_keys text before the CA's PEM block",
            "etcd.ca_bundle_pem",
            |m| {
                m.etcd.ca_bundle_pem = format!("{SSH_KEY}\n{}", m.etcd.ca_bundle_pem);
            },
        ),
        (
            "cert_dir=/root/.ssh, ca=authorized_keys",
            "identities[calico-rogue].files.dir = \"/root/.ssh\"",
            |m| {
                m.etcd.ca_bundle_pem = format!("{SSH_KEY}\n{}", m.etcd.ca_bundle_pem);
                let id = second_identity(m, "/root/.ssh", "authorized_keys", "rogue-cert.pem");
                m.identities.push(id);
            },
        ),
        (
            "cert=/etc/shadow (the stable name would become a symlink)",
            "identities[calico-rogue].files.cert = \"/etc/shadow\"",
            |m| {
                let id = second_identity(m, "/etc", "rogue-ca.pem", "shadow");
                m.identities.push(id);
            },
        ),
        (
            "`..` out of /etc/calico",
            "identities[calico-rogue].files.dir = \"/etc/calico/../ssh\"",
            |m| {
                let id = second_identity(m, "/etc/calico/../ssh", "ca.pem", "cert.pem");
                m.identities.push(id);
            },
        ),
        (
            "env_file in /etc/systemd/system",
            "identities[calico-node].render.env_file = \"/etc/systemd/system/x.service\"",
            |m| {
                node_identity(m).render.env_file = Some("/etc/systemd/system/x.service".into());
            },
        ),
        (
            "key_mode 04777",
            "identities[calico-node].files.key_mode = \"0o4777\"",
            |m| {
                node_identity(m).files.key_mode = 0o4777;
            },
        ),
        (
            "key readable by group users",
            "identities[calico-node].files.group = \"users\"",
            |m| {
                let files = &mut node_identity(m).files;
                files.group = "users".into();
                files.key_mode = 0o640;
            },
        ),
        (
            "restart sshd.service",
            "identities[calico-node].restart = \"sshd.service\"",
            |m| {
                node_identity(m).restart.push("sshd.service".into());
            },
        ),
        (
            "restart reboot.target",
            "identities[calico-node].restart = \"reboot.target\"",
            |m| {
                node_identity(m).restart.push("reboot.target".into());
            },
        ),
        (
            "restart poweroff.target",
            "identities[calico-node].restart = \"poweroff.target\"",
            |m| {
                node_identity(m).restart.push("poweroff.target".into());
            },
        ),
        (
            "restart calseg-agent.service",
            "identities[calico-node].restart = \"calseg-agent.service\"",
            |m| {
                node_identity(m).restart.push("calseg-agent.service".into());
            },
        ),
    ];

    let before = snapshot(&world);
    let unit_before = agent.host.unit_status(STANDIN_UNIT).await.expect("unit");
    for (n, (what, field, attack)) in attacks.iter().enumerate() {
        let mut m = honest.clone();
        m.revision = format!("hostile-{n}");
        // The witness: allowed on its own, so only refusing the whole pass keeps it out.
        node_identity(&mut m).render.calicoctl_cfg = Some(WITNESS.into());
        attack(&mut m);
        rogue.serve(m);
        let seen = rogue.requests().len();

        let (code, out) = agent.once().expect("once");
        assert_eq!(code, 1, "{what}: refused with exit 1:\n{out}");
        assert!(
            out.contains("refused by agent.toml limits")
                && out.contains(field)
                && out.contains("cycle refused"),
            "{what}: the agent's output names {field}:\n{out}"
        );
        let report = rogue.reports().into_iter().last().expect("a report");
        assert_eq!(report.revision, format!("hostile-{n}"), "{what}");
        assert!(
            report.errors.iter().any(|e| e.contains(field)),
            "{what}: the report names {field}: {:?}",
            report.errors
        );
        assert!(
            report.identities.iter().all(|i| i.status == "refused"),
            "{what}: {:?}",
            report.identities
        );
        let requests = rogue.requests()[seen..].to_vec();
        assert!(
            requests
                .iter()
                .all(|r| r == "GET /v1/manifest" || r == "POST /v1/report"),
            "{what}: nothing signed or leased: {requests:?}"
        );
        assert!(
            !agent.host.path(WITNESS).exists(),
            "{what}: nothing else of the pass installed"
        );
        assert_eq!(
            snapshot(&world),
            before,
            "{what}: the host's files are unchanged"
        );
        let unit = agent.host.unit_status(STANDIN_UNIT).await.expect("unit");
        assert_eq!(
            (unit.main_pid, unit.n_restarts),
            (unit_before.main_pid, unit_before.n_restarts),
            "{what}: nothing restarted"
        );
    }
    let sandbox_alive = agent
        .host
        .exec_ok("systemctl is-system-running || true")
        .expect("systemd");
    assert!(!sandbox_alive.contains("stopping"), "{sandbox_alive}");

    // The control: the same rogue server with only the witness change is obeyed (within
    // limits a server does change Calico's files and restart Calico's units).
    let mut m = honest.clone();
    m.revision = "honest-witness".into();
    node_identity(&mut m).render.calicoctl_cfg = Some(WITNESS.into());
    rogue.serve(m);
    let (code, out) = agent.once().expect("once");
    assert_eq!(code, 2, "an allowed change is applied:\n{out}");
    assert!(agent.host.path(WITNESS).exists(), "{out}");
    let unit = agent.host.unit_status(STANDIN_UNIT).await.expect("unit");
    assert_ne!(
        unit.main_pid, unit_before.main_pid,
        "calico-node restarted:\n{out}"
    );
}

/// The honest server with a hostile (or careless) policy: calico-node's key handed to the
/// group `users` with mode 0640, which the server's `check` cannot know the hosts forbid. The
/// real agent refuses the whole pass and the real server records the refusal in its audit log.
#[tokio::test]
async fn a_manifest_outside_the_agent_s_limits_is_refused_and_audited_by_the_server() {
    const NODE: &str = "hostile2";
    let world = AgentWorld::start(NODE, |endpoint| {
        standin_policy(endpoint, &format!("names = [\"{NODE}\"]")).replace(
            "restart = [\"calico-node.service\"]",
            "restart = [\"calico-node.service\"]\ngroup = \"users\"\nkey_mode = \"0640\"",
        )
    })
    .await
    .expect("etcd, server and sandbox");
    let agent = &world.agent;
    agent.enroll(&world.server).expect("enroll");
    let before = snapshot(&world);
    let (code, out) = agent.once().expect("once");
    assert_eq!(code, 1, "refused with exit 1:\n{out}");
    assert!(
        out.contains("identities[calico-node].files.group = \"users\"")
            && out.contains("does not match allowed_groups"),
        "the agent names the field and the limit:\n{out}"
    );
    assert!(
        !agent.host.path("/etc/calico/certs/calico-node").exists(),
        "nothing of the pass was installed"
    );
    assert_eq!(snapshot(&world), before, "the host's files are unchanged");
    let audit = world.server.cli_ok(&["audit"]).expect("audit");
    assert!(
        audit.contains(NODE) && audit.contains("refused by the node's agent.toml limits"),
        "the server audits the refusal:\n{audit}"
    );
    let listed = world
        .server
        .cli_ok(&["nodes", "list", "--json"])
        .expect("nodes list");
    assert!(
        listed.contains("calico-node: refused"),
        "the inventory shows the refusal as drift:\n{listed}"
    );
}
