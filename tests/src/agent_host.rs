//! `AgentHost`: a sandboxed host (real systemd) running the real `calseg-agent` against a
//! `ServerProcess`, with a stand-in Calico service: a unit that reads the env file calseg
//! wrote and writes its node's felix status key in etcd with the installed certificate every
//! second, so a restart also proves the new identity works.

use crate::bins;
use crate::sandbox::SandboxHost;
use crate::server::ServerProcess;
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};
use std::process::Output;

/// The Calico build the replay stand-in plays (see [`AgentHost::use_replay`]).
pub const REPLAY_CALICO_RELEASE: &str = "v3.29.3";

/// The stand-in calico-node unit.
pub const STANDIN_UNIT: &str = "calico-node.service";

/// The stand-in's program, shared with scripts/demo.sh.
const STANDIN_SCRIPT: &str = include_str!("../sandbox/calico-standin.sh");

/// The `etcdctl` inside hosts with the stand-in: a wrapper that runs the harness's etcdctl
/// ([`crate::prereq::etcd_tool`], so `CALSEG_ETCD_BIN_DIR` holds inside too). It comes before
/// /usr/bin on systemd's PATH, so the stand-in's plain `etcdctl` is this one; tests that run
/// etcdctl in a host call it by this path.
pub const SANDBOX_ETCDCTL: &str = "/usr/local/bin/etcdctl";

const STANDIN: &str = "[Unit]
Description=stand-in for calico-node (calseg tests)
[Service]
EnvironmentFile=/etc/calico/calico-node.env
ExecStart=/usr/local/bin/calico-standin
Restart=on-failure
RestartSec=1
";

/// A sandboxed host with calseg-agent configured for `server`.
pub struct AgentHost {
    pub host: SandboxHost,
    pub node: String,
    /// The calseg-agent executable run inside: this workspace's, or another build's (e.g. the
    /// previous release's, for the mixed-version tests).
    binary: PathBuf,
}

/// A policy giving calico-node (restarting the stand-in unit [`STANDIN_UNIT`], certificates
/// valid 2 h, an env file) to the hosts of `hosts` (the body of one `[[hosts]]` table, e.g.
/// `names = ["node1"]`).
pub fn standin_policy(endpoint: &str, hosts: &str) -> String {
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[identity]
lifetime = "2h"
[components.calico-node]
grants = [ {{ prefix = "/calico/resources/v3/projectcalico.org/", access = "read" }} ]
node_grants = [ {{ prefix = "/calico/felix/v1/host/{{node}}/", access = "readwrite" }} ]
restart = ["calico-node.service"]
env_file = "/etc/calico/calico-node.env"
[[hosts]]
{hosts}
components = ["calico-node"]
"#
    )
}

/// Installs the stand-in calico-node unit, its script and [`SANDBOX_ETCDCTL`] in `host` (the
/// unit is not started).
pub async fn install_standin(host: &SandboxHost) -> Result<()> {
    let etcdctl = crate::prereq::etcd_tool("etcdctl");
    let etcdctl = std::fs::canonicalize(&etcdctl).unwrap_or(etcdctl);
    // The host sees the machine's files through an overlay of /, but a fresh /tmp and /run.
    if !host.path(&etcdctl.display().to_string()).is_file() {
        bail!(
            "{} is not visible inside sandboxed hosts (their /tmp and /run are their own): put \
             the directory {} names elsewhere, e.g. under the workspace's target/ as \
             scripts/etcd35.sh does",
            etcdctl.display(),
            crate::prereq::ETCD_BIN_DIR_ENV
        );
    }
    host.write_file(
        SANDBOX_ETCDCTL,
        &format!(
            "#!/bin/sh\n# The test harness's etcdctl (calseg-tests, agent_host.rs).\nexec {} \"$@\"\n",
            etcdctl.display()
        ),
        0o755,
    )?;
    host.write_file("/usr/local/bin/calico-standin", STANDIN_SCRIPT, 0o755)?;
    host.install_unit(STANDIN_UNIT, STANDIN).await
}

/// A whole test world: a fresh etcd, a server with `policy(etcd endpoint)`, and `node`'s
/// sandbox configured for it (not enrolled yet).
pub struct AgentWorld {
    pub etcd: crate::etcd::EtcdCluster,
    pub server: ServerProcess,
    pub agent: AgentHost,
}

impl AgentWorld {
    /// Starts etcd and the server, creates Calico's cluster-wide objects (`calseg-server
    /// datastore init`), then boots `node`.
    pub async fn start(node: &str, policy: impl Fn(&str) -> String) -> Result<Self> {
        let etcd = crate::etcd::EtcdCluster::start().await?;
        let server = ServerProcess::start(&etcd, &policy(&etcd.endpoint(0)), "").await?;
        server.cli_ok(&["datastore", "init"])?;
        let agent = AgentHost::boot(node, &server).await?;
        Ok(Self {
            etcd,
            server,
            agent,
        })
    }
}

impl AgentHost {
    /// Boots `node`, installs the stand-in unit (not started) and writes agent.toml.
    pub async fn boot(node: &str, server: &ServerProcess) -> Result<Self> {
        Self::boot_with_binary(node, server, &bins::path("calseg-agent")).await
    }

    /// Like [`boot`](Self::boot), running another calseg-agent executable (`binary`, a path
    /// the sandbox sees: not under /tmp or /run).
    pub async fn boot_with_binary(
        node: &str,
        server: &ServerProcess,
        binary: &Path,
    ) -> Result<Self> {
        let host = SandboxHost::boot(node).await?;
        install_standin(&host).await?;
        let agent = Self {
            host,
            node: node.to_owned(),
            binary: binary.to_path_buf(),
        };
        agent.write_config(&server.url())?;
        Ok(agent)
    }

    /// (Re)writes /etc/calseg/agent.toml for `server_url`.
    pub fn write_config(&self, server_url: &str) -> Result<()> {
        self.host.write_file(
            "/etc/calseg/agent.toml",
            &format!(
                "server = \"{server_url}\"\nnode = \"{}\"\nstate_dir = \"/var/lib/calseg/agent\"\nrestart_timeout = \"8s\"\ninterval = \"10s\"\n",
                self.node
            ),
            0o644,
        )
    }

    /// (Re)writes /etc/calseg/agent.toml with `servers = [...]`: replicas in failover order.
    pub fn write_config_servers(&self, urls: &[&str]) -> Result<()> {
        let list = urls
            .iter()
            .map(|url| format!("\"{url}\""))
            .collect::<Vec<_>>()
            .join(", ");
        self.host.write_file(
            "/etc/calseg/agent.toml",
            &format!(
                "servers = [{list}]\nnode = \"{}\"\nstate_dir = \"/var/lib/calseg/agent\"\nrestart_timeout = \"8s\"\ninterval = \"10s\"\n",
                self.node
            ),
            0o644,
        )
    }

    /// Runs `calseg-agent ARGS` inside the sandbox.
    pub fn agent(&self, args: &str) -> Result<Output> {
        self.host.exec(&format!("{} {args}", self.binary.display()))
    }

    /// Enrolls with a fresh token; fails with the agent's output otherwise.
    pub fn enroll(&self, server: &ServerProcess) -> Result<()> {
        let token = server.token_for(&self.node, "10m")?;
        let output = self.agent(&format!(
            "enroll --ca-hash {} --token {token}",
            server.fleet_ca_hash()
        ))?;
        if !output.status.success() {
            bail!("enroll failed: {}", describe(&output));
        }
        Ok(())
    }

    /// Starts `calseg-agent run` in the background inside the sandbox (it dies with the
    /// sandbox); its output goes to /var/log/calseg-agent.log.
    pub fn start_daemon(&self) -> Result<()> {
        self.host.exec_ok(&format!(
            "setsid nohup {} run </dev/null >/var/log/calseg-agent.log 2>&1 &",
            self.binary.display()
        ))?;
        Ok(())
    }

    /// What the background agent logged so far.
    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.host.path("/var/log/calseg-agent.log")).unwrap_or_default()
    }

    /// Makes the stand-in unit run the Calico access replay (`calico-replay run`: calico-node's
    /// and Felix's etcd operations, failing on any permission error) instead of its etcdctl
    /// loop, as Calico [`REPLAY_CALICO_RELEASE`] with `NO_DEFAULT_POOLS=true` (as Calico's
    /// bare-metal env file sample has it). The policy must give calico-node what Calico needs
    /// (e.g. the per-node profile, with `[datastore] calico_release` set to that release and
    /// `calseg-server datastore init` run).
    pub async fn use_replay(&self) -> Result<()> {
        self.host.write_file(
            &format!("/etc/systemd/system/{STANDIN_UNIT}.d/replay.conf"),
            &format!(
                "[Service]\nEnvironment=CALICO_REPLAY={} CALICO_VERSION={REPLAY_CALICO_RELEASE} NO_DEFAULT_POOLS=true\n",
                bins::path("calico-replay").display()
            ),
            0o644,
        )?;
        self.host.systemd().await?.daemon_reload().await?;
        Ok(())
    }

    /// Makes systemd append a line to /var/log/standin-starts at every start of the stand-in
    /// unit (a drop-in), so tests count its starts.
    pub async fn count_standin_starts(&self) -> Result<()> {
        self.host.write_file(
            &format!("/etc/systemd/system/{STANDIN_UNIT}.d/count-starts.conf"),
            "[Service]\nExecStartPre=/bin/sh -c 'echo started >> /var/log/standin-starts'\n",
            0o644,
        )?;
        self.host.systemd().await?.daemon_reload().await?;
        Ok(())
    }

    /// How often the stand-in unit started since [`count_standin_starts`](Self::count_standin_starts).
    pub fn standin_starts(&self) -> usize {
        std::fs::read_to_string(self.host.path("/var/log/standin-starts"))
            .map_or(0, |s| s.lines().count())
    }

    /// Asserts the stand-in unit started exactly `starts` times (`why` says which), is active,
    /// and its journal holds no failed etcd request.
    pub async fn assert_standin_ran_clean(&self, starts: usize, why: &str) {
        let journal = self
            .host
            .exec_ok("journalctl -u calico-node.service --no-pager")
            .unwrap_or_else(|e| format!("no journal: {e:#}"));
        assert_eq!(
            self.standin_starts(),
            starts,
            "{}: {why}\n{}\n{journal}",
            self.node,
            self.daemon_log()
        );
        let state = match self.host.unit_status(STANDIN_UNIT).await {
            Ok(unit) => unit.active_state,
            Err(error) => format!("unknown ({error:#})"),
        };
        assert_eq!(state, "active", "{}: the stand-in unit", self.node);
        assert!(
            !journal.contains("etcd error:"),
            "{}: a failed etcd request\n{journal}",
            self.node
        );
    }

    /// `calseg-agent once`: the exit code and the output.
    pub fn once(&self) -> Result<(i32, String)> {
        let output = self.agent("once")?;
        Ok((output.status.code().unwrap_or(-1), describe(&output)))
    }
}

/// Exit status, stdout and stderr of a command, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
