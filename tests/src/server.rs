//! `ServerProcess`: the real `calseg-server` binary, set up with `calseg-server init` against a
//! harness etcd (the etcd test CA imported as calseg's etcd client CA, so etcd trusts what calseg
//! signs, and calseg's own etcd identity `root`), serving on a free loopback port, with its
//! plain-HTTP metrics listener on another.

use crate::bins;
use crate::etcd::EtcdCluster;
use crate::netns::NetNs;
use crate::ports::free_port;
use crate::process::Guarded;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use tempfile::TempDir;

/// A running calseg-server and its files.
pub struct ServerProcess {
    process: Option<Guarded>,
    /// The address it serves on: 127.0.0.1, or its network namespace's.
    host: String,
    /// `ip netns exec NAME`, for a replica in a network namespace of its own.
    netns_exec: Vec<String>,
    /// A command that runs the server, e.g. `prlimit --nofile=256:256 --`.
    wrapper: Vec<String>,
    port: u16,
    metrics_port: u16,
    fleet_ca_hash: String,
    dir: TempDir,
    /// The calseg-server executable: this workspace's, or another build's (e.g. the previous
    /// release's, for the mixed-version tests).
    binary: PathBuf,
}

impl ServerProcess {
    /// Initializes and starts a server for `etcd` with `policy` (TOML text) and extra lines
    /// that replace `auto_approve = []` in the `[api]` section of server.toml (e.g.
    /// `auto_approve = ["w-*"]`).
    pub async fn start(etcd: &EtcdCluster, policy: &str, api_extra: &str) -> Result<Self> {
        Self::start_with_binary(etcd, policy, api_extra, &bins::path("calseg-server")).await
    }

    /// Like [`start`](Self::start), with another calseg-server executable (`binary`) for
    /// `init`, the server and its admin CLI.
    pub async fn start_with_binary(
        etcd: &EtcdCluster,
        policy: &str,
        api_extra: &str,
        binary: &Path,
    ) -> Result<Self> {
        let port = free_port()?;
        let dir = init_dir(binary, etcd, &[], port)?;
        let mut server = Self::configure(dir, policy, api_extra, "127.0.0.1", port, |text| text)?;
        server.binary = binary.to_path_buf();
        server.spawn().await?;
        Ok(server)
    }

    /// Like [`start`](Self::start), with the server run by `wrapper` (a program and its
    /// arguments, e.g. `["prlimit", "--nofile=256:256", "--"]` to lower its open-file limit).
    pub async fn start_wrapped(
        etcd: &EtcdCluster,
        policy: &str,
        api_extra: &str,
        wrapper: &[&str],
    ) -> Result<Self> {
        let port = free_port()?;
        let dir = init_dir(&bins::path("calseg-server"), etcd, &[], port)?;
        let mut server = Self::configure(dir, policy, api_extra, "127.0.0.1", port, |text| text)?;
        server.wrapper = wrapper.iter().map(|s| (*s).to_owned()).collect();
        server.spawn().await?;
        Ok(server)
    }

    /// Starts one replica per entry of `places` (`None`: on the test's loopback; `Some(ns)`:
    /// inside that network namespace, reaching etcd through its veth link), all sharing one
    /// store in `etcd` (`[store] backend = "etcd"`, leader lease `leader_ttl`) and one fleet
    /// CA. `etcd` must have been started with each namespace's host address in
    /// `extra_listen_ips`. Replica `i` is named `r{i}`.
    pub async fn start_replicas(
        etcd: &EtcdCluster,
        policy: &str,
        api_extra: &str,
        places: &[Option<&NetNs>],
        leader_ttl: &str,
    ) -> Result<Vec<Self>> {
        let sans: Vec<String> = places
            .iter()
            .flatten()
            .map(|ns| ns.link().sandbox_addr.clone())
            .collect();
        let ports: Vec<u16> = places
            .iter()
            .map(|_| free_port())
            .collect::<std::io::Result<_>>()?;
        let first = init_dir(&bins::path("calseg-server"), etcd, &sans, ports[0])?;
        let mut replicas = Vec::new();
        for (index, place) in places.iter().enumerate() {
            let dir = tempfile::Builder::new()
                .prefix(&format!("calseg-srv-{}-", std::process::id()))
                .tempdir()?;
            copy_tree(first.path(), dir.path())?;
            let (host, etcd_ip) = match place {
                Some(ns) => (ns.link().sandbox_addr.clone(), ns.link().host_addr.clone()),
                None => ("127.0.0.1".to_owned(), "127.0.0.1".to_owned()),
            };
            let endpoints: Vec<String> = (0..etcd.endpoints().len())
                .map(|member| etcd.endpoint_at(member, &etcd_ip))
                .collect();
            let first_admin = format!("server = \"https://127.0.0.1:{}\"", ports[0]);
            let first_listen = format!("listen = \"127.0.0.1:{}\"", ports[0]);
            let port = ports[index];
            let own_listen = format!("listen = \"{host}:{port}\"");
            let own_admin = format!("server = \"https://{host}:{port}\"");
            let ttl_line = format!("leader_ttl = \"{leader_ttl}\"");
            let name_line = format!("replica = \"r{index}\"");
            let endpoints_line = format!("endpoints = {endpoints:?}");
            let mut server = Self::configure(dir, policy, api_extra, &host, port, |text| {
                text.replace(&first_admin, &own_admin)
                    .replace(&first_listen, &own_listen)
                    .replace("# backend = \"embedded\"", "backend = \"etcd\"")
                    .replace("# leader_ttl = \"10s\"", &ttl_line)
                    .lines()
                    .map(|line| {
                        if line.starts_with("# replica = ") {
                            name_line.clone()
                        } else if line.starts_with("endpoints = ") {
                            endpoints_line.clone()
                        } else {
                            line.to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
            if let Some(ns) = place {
                server.netns_exec = ns.exec_prefix();
            }
            replicas.push(server);
        }
        drop(first);
        for replica in &mut replicas {
            replica.spawn().await?;
        }
        Ok(replicas)
    }

    /// Writes the policy and server.toml of an initialized `dir` (see [`init_dir`]): serving on
    /// `host:port`, a metrics port of its own, a 2 s reconcile interval, `api_extra` in place of
    /// `auto_approve = []` (without `enroll_burst` in it, no effective enrollment rate limit),
    /// then `edit` applied to the text.
    fn configure(
        dir: TempDir,
        policy: &str,
        api_extra: &str,
        host: &str,
        port: u16,
        edit: impl FnOnce(String) -> String,
    ) -> Result<Self> {
        let metrics_port = free_port()?;
        let fleet_ca_hash = std::fs::read_to_string(dir.path().join("fleet-ca-hash"))?
            .trim()
            .to_owned();
        let config = dir.path().join("etc/server.toml");
        // Simulated fleets enroll hundreds of nodes from one loopback address: lift the
        // per-source enrollment rate limit unless the test sets it.
        let api_extra = if api_extra.contains("enroll_burst") {
            api_extra.to_owned()
        } else {
            let keep = if api_extra.is_empty() {
                "auto_approve = []"
            } else {
                api_extra
            };
            format!("{keep}\nenroll_burst = 1000000\nenroll_per_minute = 1000000")
        };
        let api_extra = api_extra.as_str();
        let text = std::fs::read_to_string(&config)?
            .replace(
                "reconcile_interval = \"60s\"",
                "reconcile_interval = \"2s\"",
            )
            .replace(
                "listen = \"127.0.0.1:9464\"",
                &format!("listen = \"{host}:{metrics_port}\""),
            )
            .replace(
                &format!("listen = \"127.0.0.1:{port}\""),
                &format!("listen = \"{host}:{port}\""),
            )
            .replace(
                "auto_approve = []",
                if api_extra.is_empty() {
                    "auto_approve = []"
                } else {
                    api_extra
                },
            );
        std::fs::write(&config, edit(text))?;
        std::fs::write(dir.path().join("etc/policy.toml"), policy)?;
        Ok(Self {
            process: None,
            host: host.to_owned(),
            netns_exec: Vec::new(),
            wrapper: Vec::new(),
            port,
            metrics_port,
            fleet_ca_hash,
            dir,
            binary: bins::path("calseg-server"),
        })
    }

    async fn spawn(&mut self) -> Result<()> {
        let args = vec![
            "--config".to_owned(),
            self.config_path().display().to_string(),
            "serve".into(),
        ];
        let log = self.log_path();
        let binary = self.binary.clone();
        self.process = Some(
            if let Some((program, before)) = self.wrapper.split_first() {
                let mut line = before.to_vec();
                line.push(binary.display().to_string());
                line.extend(args);
                Guarded::spawn("calseg-server", Path::new(program), &line, &log)?
            } else if self.netns_exec.is_empty() {
                Guarded::spawn("calseg-server", &binary, &args, &log)?
            } else {
                let mut line = self.netns_exec.clone();
                line.push(binary.display().to_string());
                line.extend(args);
                Guarded::spawn("calseg-server", Path::new("ip"), &line, &log)?
            },
        );
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> Result<()> {
        for _ in 0..200 {
            if let Some(process) = self.process.as_mut()
                && !process.is_running()
            {
                bail!("calseg-server exited at start; log:\n{}", self.log());
            }
            if tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "calseg-server did not listen on {}; log:\n{}",
            self.port,
            self.log()
        )
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let pid = nix::unistd::Pid::from_raw(process.pid() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            for _ in 0..100 {
                if !process.is_running() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            process.kill();
        }
    }

    /// Kills the server with SIGKILL at once (no drain, no shutdown hook): a crash. Its pid, or
    /// `None` when it was not running. [`restart`](Self::restart) starts it again.
    pub fn kill_hard(&mut self) -> Option<u32> {
        let mut process = self.process.take()?;
        let pid = process.pid();
        process.kill();
        Some(pid)
    }

    /// Sets `[api] fleet_cert_lifetime` (init writes the 90-day default) and restarts.
    pub async fn set_fleet_cert_lifetime(&mut self, lifetime: &str) -> Result<()> {
        let config = std::fs::read_to_string(self.config_path())?;
        let default = "fleet_cert_lifetime = \"90d\"";
        if !config.contains(default) {
            bail!(
                "no {default} in {}:\n{config}",
                self.config_path().display()
            );
        }
        std::fs::write(
            self.config_path(),
            config.replace(default, &format!("fleet_cert_lifetime = \"{lifetime}\"")),
        )?;
        self.restart().await
    }

    /// Starts the server again on the same port, files and store.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn().await
    }

    /// Waits until etcd's RBAC matches the server's policy (`plan` through the server exits 0,
    /// "no changes"): the reconciler applies a new policy moments after a start or reload, and
    /// an identity signed before that fails its etcd check.
    pub async fn wait_rbac_applied(&self) -> Result<()> {
        let mut last = String::new();
        for _ in 0..100 {
            let output = self.cli(&["plan"])?;
            if output.status.code() == Some(0) {
                return Ok(());
            }
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("etcd's RBAC did not converge to the policy within 10 s; last plan:\n{last}")
    }

    /// Sends SIGHUP: the server reloads its policy file ([`policy_path`](Self::policy_path)).
    pub fn reload(&self) -> Result<()> {
        let process = self
            .process
            .as_ref()
            .context("calseg-server is not running")?;
        let pid = nix::unistd::Pid::from_raw(process.pid() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP)
            .context("send SIGHUP to calseg-server")
    }

    /// The server's process id, while it runs (for CPU and memory figures in benchmarks).
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Guarded::pid)
    }

    /// `calseg-server rollout status --json`, decoded.
    pub fn rollout_status(&self) -> Result<calseg_api::rollout::RolloutStatus> {
        Ok(self.rollout_status_code()?.1)
    }

    /// `rollout status --json`: its exit status (0 running/done/none, 2 paused or aborted, 1
    /// rolled back) and the status.
    pub fn rollout_status_code(&self) -> Result<(i32, calseg_api::rollout::RolloutStatus)> {
        let output = self.cli(&["rollout", "status", "--json"])?;
        let code = output.status.code().unwrap_or(-1);
        if ![0, 1, 2].contains(&code) || output.stdout.is_empty() {
            bail!(
                "calseg-server rollout status failed ({code}): {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let status = serde_json::from_slice(&output.stdout).context("decode rollout status")?;
        Ok((code, status))
    }

    /// `https://127.0.0.1:PORT` (a replica in a network namespace: that namespace's address).
    pub fn url(&self) -> String {
        format!("https://{}:{}", self.host, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/metrics`, the plain-HTTP metrics endpoint.
    pub fn metrics_url(&self) -> String {
        format!("http://{}:{}/metrics", self.host, self.metrics_port)
    }

    /// One scrape of the metrics endpoint: its body, failing unless the answer is 200 in the
    /// text format 0.0.4 (what a scraper that does not ask for OpenMetrics gets).
    pub async fn scrape(&self) -> Result<String> {
        let (content_type, body) = self.scrape_accepting(None).await?;
        if !content_type.contains("version=0.0.4") {
            bail!("scrape of {} answered {content_type}", self.metrics_url());
        }
        Ok(body)
    }

    /// One scrape with `Accept: accept` (none when `None`): its Content-Type and body, failing
    /// unless the answer is 200.
    pub async fn scrape_accepting(&self, accept: Option<&str>) -> Result<(String, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.metrics_port))
            .await
            .with_context(|| format!("connect to {}", self.metrics_url()))?;
        let accept = accept.map_or(String::new(), |a| format!("accept: {a}\r\n"));
        let request = format!(
            "GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\n{accept}connection: close\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await?;
        let answer = String::from_utf8(answer).context("the scrape is not UTF-8")?;
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .context("no end of headers in the scrape answer")?;
        let content_type = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-type")
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_default();
        if !head.starts_with("HTTP/1.1 200") {
            bail!(
                "scrape of {} answered:\n{head}\n\n{body}",
                self.metrics_url()
            );
        }
        Ok((content_type, body.to_owned()))
    }

    /// `sha256:…` of the fleet CA, as printed by init.
    pub fn fleet_ca_hash(&self) -> &str {
        &self.fleet_ca_hash
    }

    /// The fleet CA certificate (PEM).
    pub fn fleet_ca_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("var/ca/fleet.pem")).unwrap_or_default()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("etc/server.toml")
    }

    pub fn policy_path(&self) -> PathBuf {
        self.dir.path().join("etc/policy.toml")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("var")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs `calseg-server --config <its config> ARGS…` (the admin CLI).
    pub fn cli(&self, args: &[&str]) -> Result<Output> {
        Command::new(&self.binary)
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .output()
            .context("run calseg-server")
    }

    /// Like [`cli`](Self::cli), failing unless it exits 0; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> Result<String> {
        let output = self.cli(args)?;
        if !output.status.success() {
            bail!(
                "calseg-server {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// A new enrollment token for `node` (via the admin CLI).
    pub fn token_for(&self, node: &str, ttl: &str) -> Result<String> {
        Ok(self
            .cli_ok(&["token", "create", "--node", node, "--ttl", ttl])?
            .trim()
            .to_owned())
    }
}

/// Runs `binary init` (calseg-server's) for `etcd` into a new directory (etc/, var/, and the printed
/// fleet CA hash in `fleet-ca-hash`): the etcd test CA imported as the etcd client CA, calseg's
/// own etcd user `root`, a server certificate for 127.0.0.1, localhost and `extra_sans`, and
/// `listen = 127.0.0.1:port`.
fn init_dir(
    binary: &Path,
    etcd: &EtcdCluster,
    extra_sans: &[String],
    port: u16,
) -> Result<TempDir> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("calseg-srv-{}-", std::process::id()))
        .tempdir()?;
    let ca_dir = dir.path().join("etcd-ca");
    std::fs::create_dir_all(&ca_dir)?;
    std::fs::write(ca_dir.join("ca.pem"), &etcd.ca().cert_pem)?;
    std::fs::write(ca_dir.join("ca-key.pem"), &etcd.ca().key_pem)?;
    let mut init = Command::new(binary);
    init.arg("init")
        .arg("--config-dir")
        .arg(dir.path().join("etc"))
        .arg("--state-dir")
        .arg(dir.path().join("var"))
        .args(["--san", "127.0.0.1", "--san", "localhost"]);
    for san in extra_sans {
        init.args(["--san", san]);
    }
    let init = init
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--etcd-ca-cert")
        .arg(ca_dir.join("ca.pem"))
        .arg("--etcd-ca-key")
        .arg(ca_dir.join("ca-key.pem"))
        .arg("--etcd-endpoint")
        .arg(etcd.endpoint(0))
        .args(["--etcd-user", "root"])
        .output()?;
    if !init.status.success() {
        bail!(
            "calseg-server init failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
    }
    std::fs::write(dir.path().join("fleet-ca-hash"), &init.stdout)?;
    Ok(dir)
}

/// Copies the files under `from` into `to`, rewriting absolute paths in server.toml that point
/// into `from`.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()?;
    if !status.success() {
        bail!("cp -a {} {} failed", from.display(), to.display());
    }
    let config = to.join("etc/server.toml");
    let text = std::fs::read_to_string(&config)?;
    std::fs::write(
        &config,
        text.replace(&from.display().to_string(), &to.display().to_string()),
    )?;
    Ok(())
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }
}
