//! What each binary's man page says beyond its command line: exit statuses (as the code
//! returns them), the files it reads and writes, examples, related pages.

use crate::man::Extra;
use calseg_agent::cli::{
    EXIT_CHANGED, EXIT_FAILED, EXIT_OK, EXIT_PENDING, EXIT_REVOKED, EXIT_UNREACHABLE, EXIT_USAGE,
};
use calseg_api::exit;

/// calseg-server(1).
pub const SERVER: Extra = Extra {
    // The table both binaries share (calseg_api::exit); each row starts with what the code
    // means for either binary.
    exit_status: &[
        (
            exit::OK,
            "Success (both binaries). plan: nothing would change (etcd already matches the \
             policy, and no node's manifest changes). apply: everything applied. can-i: \
             allowed. rollout status: no rollout in waves, or one running or done. rollout \
             watch: the rollout is done (or there is none).",
        ),
        (
            exit::FAILED,
            "Failure, with the reason on standard error (both binaries). can-i: denied. \
             nodes revoke: the node is marked revoked but some of its etcd users still exist \
             (they are named). token delete: no such token. rollout status, rollout watch: \
             the rollout was rolled back. rollout watch: --timeout passed. reload: the server \
             refused the policy (it keeps the old one; the reason follows) or did not answer \
             within --timeout.",
        ),
        (
            exit::ATTENTION,
            "Needs attention, nothing failed (both binaries). plan: something would change: \
             etcd RBAC changes or conflicts, or a node's files or units. apply: applied, but \
             users the policy names that calseg does not own were left alone (conflicts). \
             rollout status, rollout watch: the rollout is paused or aborted; resume, roll \
             back or abort it.",
        ),
        (
            exit::USAGE,
            "Usage error: unknown or conflicting flags or arguments (sysexits EX_USAGE; both \
             binaries). --help and --version exit 0.",
        ),
        (
            exit::UNREACHABLE,
            "The running server cannot be reached (no connection or no answer; both \
             binaries): the commands that go through it (token, nodes, rollout, audit, plan \
             and apply under [admin]) did nothing; retry later (sysexits EX_UNAVAILABLE).",
        ),
        (
            141,
            "Standard output was closed by its reader (e.g. `| head -1`): the command stopped \
             quietly, as a tool killed by SIGPIPE.",
        ),
    ],
    files: &[
        (
            "/etc/calseg/server.toml",
            "The server's configuration (--config, or CALSEG_SERVER_CONFIG); see server.toml(5). \
             init writes it when there is none, and otherwise leaves it as it is.",
        ),
        (
            "/etc/calseg/server.toml.d/*.toml",
            "Read after server.toml, in name order, each overriding the keys it sets. init \
             writes 50-init.toml here beside a server.toml it did not write (the package's).",
        ),
        (
            "/etc/default/calseg-server",
            "The unit's environment: RUST_LOG, CALSEG_SERVER_CONFIG, CALSEG_SERVER_OPTS.",
        ),
        (
            "/etc/calseg/policy.toml",
            "The segmentation policy: components, grants, nodes (server.toml's policy, or \
             --policy).",
        ),
        (
            "/etc/calseg/admin/admin.pem, admin-key.pem",
            "The administrator certificate and key the commands that go through the running \
             server present (server.toml's [admin]); written by init and admin issue.",
        ),
        (
            "/etc/calseg/etcd/calseg.pem, calseg-key.pem",
            "calseg's own etcd client certificate and key (init --etcd-user; server.toml's \
             [etcd]).",
        ),
        (
            "/var/lib/calseg/state.redb",
            "The embedded store: nodes, tokens, issued certificates, audit log, rollouts.",
        ),
        (
            "/var/lib/calseg/ca/",
            "The fleet CA and the etcd client CA: fleet.pem, fleet-key.pem, etcd-client.pem, \
             etcd-client-key.pem.",
        ),
        (
            "/var/lib/calseg/tls/server.pem, server-key.pem",
            "The API's TLS certificate and key.",
        ),
        (
            "/var/lib/calseg/reload-status.json",
            "The latest policy reload: its generation, outcome (reloading, ok, refused), time, \
             reason and revision; what reload waits for.",
        ),
    ],
    examples: &[
        (
            "First-time setup; prints the fleet CA hash agents pin:",
            "calseg-server init --san calseg.example.com --etcd-user root",
        ),
        (
            "Validate the policy, then show the etcd RBAC changes it needs (exit 2 when there \
             are some):",
            "calseg-server check && calseg-server plan",
        ),
        (
            "Before a reload: what an edited policy would change, through the running server \
             (the RBAC diff with every enrolled node, then each node's files, units to restart \
             and rollout wave; the server does not adopt it; --json for the same as JSON):",
            "calseg-server plan --policy /etc/calseg/policy.toml.new",
        ),
        (
            "A token for one node, and one for up to 500 nodes matching a glob:",
            "calseg-server token create --node worker-17 --ttl 1h",
        ),
        (
            "",
            "calseg-server token create --match 'worker-*' --uses 500",
        ),
        (
            "Approve a node that enrolled without a token, by the key fingerprint its agent \
             printed:",
            "calseg-server nodes approve worker-18 --fingerprint sha256:HEX",
        ),
        (
            "Whether a node's identity may write another node's keys:",
            "calseg-server can-i calico-node.worker-17 write /calico/felix/v1/host/worker-18/x",
        ),
        (
            "Reload the policy (systemd runs calseg-server reload --pid $MAINPID); fails, \
             keeping the old policy, when the new one has errors:",
            "systemctl reload calseg-server",
        ),
        (
            "Follow a rollout in waves; exit 0 when done, 2 when paused or aborted, 1 when \
             rolled back:",
            "calseg-server rollout watch --timeout 30m",
        ),
        (
            "Calico in Kubernetes: a Secret for a component-wide identity (policy: \
             component_identity = true), key made here, then kubectl apply -f kc.json:",
            "calseg-server k8s secrets --component calico-kube-controllers --name calico-etcd-secrets-kc --out kc.json",
        ),
        (
            "The Prometheus metrics ([metrics] listen), linted; each identity's certificate \
             expiry is calseg_certificate_expiration_timestamp_seconds{node,component}:",
            "curl -s http://127.0.0.1:9464/metrics | promtool check metrics",
        ),
    ],
    see_also: &[
        "server.toml(5)",
        "policy.toml(5)",
        "calseg-agent(1)",
        "etcdctl(1)",
        "systemctl(1)",
        "journalctl(1)",
    ],
};

/// calseg-agent(1).
pub const AGENT: Extra = Extra {
    exit_status: &[
        (
            EXIT_OK,
            "Success (both binaries). once: nothing to do. plan: nothing would change. status: \
             enrolled, every certificate before its renewal point, and \
             the last cycle succeeded.",
        ),
        (
            EXIT_FAILED,
            "Failure, with the reason on standard error (both binaries). once, renew: the cycle \
             failed or its manifest was refused. plan: errors, or a manifest outside the \
             agent's limits. status: not enrolled, the last cycle did not succeed, or a \
             certificate (fleet or identity) has expired.",
        ),
        (
            EXIT_CHANGED,
            "Needs attention, nothing failed (both binaries). once, renew: files changed (and \
             units restarted) and everything converged. plan: something would change. status: a \
             certificate is inside its renewal window (past its renewal point, not expired); \
             the next cycle renews it.",
        ),
        (
            EXIT_PENDING,
            "enroll, sidecar: still waiting for an administrator to approve this node \
             (--no-wait, or --wait ran out).",
        ),
        (
            EXIT_USAGE,
            "Usage error: unknown or conflicting flags or arguments (sysexits EX_USAGE; both \
             binaries). --help and --version exit 0.",
        ),
        (
            EXIT_UNREACHABLE,
            "No server could be reached (both binaries). once, renew: no server could be reached; nothing was changed and the installed \
             identities keep working until they expire (sysexits EX_UNAVAILABLE: try again \
             later).",
        ),
        (
            EXIT_REVOKED,
            "once, renew, status: an administrator revoked this node; its etcd identities are gone. \
             Re-enroll with a new token for it (`calseg-agent enroll --force --token ...`) \
             (sysexits EX_NOPERM).",
        ),
        (
            141,
            "Standard output was closed by its reader (e.g. `| head -1`): the command stopped \
             quietly, as a tool killed by SIGPIPE.",
        ),
    ],
    files: &[
        (
            "/etc/calseg/agent.toml",
            "The agent's configuration (--config, or CALSEG_AGENT_CONFIG): node name, servers, \
             state_dir, and the paths, units and owners it may touch; see agent.toml(5).",
        ),
        (
            "/etc/default/calseg-agent",
            "The unit's environment: RUST_LOG, CALSEG_AGENT_CONFIG, CALSEG_AGENT_OPTS.",
        ),
        (
            "/var/lib/calseg/agent/",
            "The state directory (state_dir, mode 0700): fleet.key, fleet.pem and \
             fleet-ca.pem (the node's fleet credentials), server.url, manifest.json, \
             installed.json, journal.json, last-cycle.json.",
        ),
        (
            "/etc/calico/certs/COMPONENT/",
            "Each identity's cert.pem, key.pem and ca.pem (the policy may name other paths), \
             links into generations under .calseg/.",
        ),
        (
            "/etc/calico/, /etc/cni/net.d/",
            "Where the agent may write by default: Calico's environment files, calicoctl.cfg, \
             the CNI configuration.",
        ),
        (
            "/calico-secrets/",
            "sidecar (--output-dir): etcd-ca, etcd-cert (0644) and etcd-key (0600), Calico's \
             names in its hosted Kubernetes manifest, links into generations under .calseg/.",
        ),
        (
            "TEXTFILE_DIR/calseg.prom",
            "With [metrics] textfile_dir in agent.toml: the node_exporter textfile written \
             after each cycle (mode 0644): each certificate's expiry, the last cycle's time and \
             outcome, whether the node is revoked.",
        ),
    ],
    examples: &[
        (
            "Enroll with a token, pinning the server by its fleet CA hash:",
            "calseg-agent enroll --server https://calseg.example.com:8443 --ca-hash \
             sha256:HEX --token-file /root/calseg.token",
        ),
        (
            "Show what the next cycle would change, without changing it:",
            "calseg-agent plan",
        ),
        (
            "Run one cycle now; exit 2 when it changed something:",
            "calseg-agent once",
        ),
        (
            "Identities, expiries, units and the last cycle, for a script (exit 2 when a \
             certificate is due for renewal, 1 when one expired):",
            "calseg-agent status --json",
        ),
        (
            "As the init container of Calico's hosted calico-node pod (CALSEG_NODE_NAME from \
             the downward API, spec.nodeName); exit 0 once /calico-secrets has the files:",
            "calseg-agent sidecar --init --state-dir /var/lib/calseg/agent --server \
             https://calseg.example.com:8443 --ca-hash sha256:HEX --token-file \
             /etc/calseg/token/token",
        ),
        (
            "As its side car, restarting calico-node's container under a restart lease after \
             a renewal (the pod has shareProcessNamespace: true):",
            "calseg-agent sidecar --signal calico-node --state-dir /var/lib/calseg/agent",
        ),
        (
            "Renew calico-node's certificate now, due or not (new key, restart):",
            "calseg-agent renew --component calico-node",
        ),
    ],
    see_also: &[
        "agent.toml(5)",
        "calseg-server(1)",
        "systemctl(1)",
        "journalctl(1)",
    ],
};
