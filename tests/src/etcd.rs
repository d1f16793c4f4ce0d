//! `EtcdCluster`: 1 or 3 real etcd members on free loopback ports, with a throwaway test CA,
//! server certificates, `--client-cert-auth`, a `root` user whose certificate CN is `root`, and
//! auth enabled. The etcd binary is Debian's etcd 3.4 from PATH, or the one in the directory
//! `CALSEG_ETCD_BIN_DIR` names (`scripts/etcd35.sh` prints one holding etcd 3.5; see
//! [`crate::prereq::etcd_tool`]). Members can be stopped and started again; every process and
//! directory goes away when the cluster is dropped.

use crate::pki::{KeyedCert, TestCa, TlsFiles};
use crate::ports::free_port;
use crate::prereq::etcd_tool;
use crate::process::Guarded;
use anyhow::{Context, Result, bail};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions, UserAddOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;

/// How long a member may take to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The file of the CAs etcd trusts for client certificates, in the cluster's TLS directory.
const TRUSTED_FILE: &str = "trusted-ca.pem";

/// Writes [`TRUSTED_FILE`]: the test CA and `extra`.
fn write_trusted(tls: &Path, ca: &TestCa, extra: &[String]) -> Result<()> {
    let mut trusted = ca.cert_pem.clone();
    for pem in extra {
        if !trusted.ends_with('\n') {
            trusted.push('\n');
        }
        trusted.push_str(pem);
    }
    std::fs::write(tls.join(TRUSTED_FILE), trusted)?;
    Ok(())
}

/// The client CRL's name in the cluster's TLS directory.
const CRL_FILE: &str = "client-crl.pem";

/// What to start.
#[derive(Clone, Debug, Default)]
pub struct EtcdOptions {
    /// Number of members: 1 or 3.
    pub members: usize,
    /// More CA certificates (PEM) etcd trusts for client certificates, besides the test CA:
    /// for example a CA that calseg generated itself.
    pub extra_trusted_ca_pem: Vec<String>,
    /// Leave auth disabled (root user created, `auth enable` not run): for pre-flight tests.
    pub auth_disabled: bool,
    /// More local addresses every member serves clients on (same port as on 127.0.0.1), e.g.
    /// the test's end of a `NetNs` veth link, so processes in that namespace reach etcd.
    pub extra_listen_ips: Vec<String>,
    /// Start every member with `--client-crl-file` naming [`EtcdCluster::client_crl_file`]: a
    /// CRL signed by the test CA, empty at first, that [`EtcdCluster::write_client_crl`]
    /// rewrites. Without it etcd checks no revocation at all.
    pub client_crl: bool,
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    process: Option<Guarded>,
}

/// A running etcd cluster with client-certificate auth enabled.
pub struct EtcdCluster {
    // Field order matters for Drop: members (processes) die before the directory goes.
    members: Vec<Member>,
    extra_listen_ips: Vec<String>,
    client_crl: bool,
    etcd: PathBuf,
    ca: TestCa,
    root: KeyedCert,
    root_files: TlsFiles,
    initial_cluster: String,
    dir: TempDir,
}

impl EtcdCluster {
    /// Starts a one-member cluster with auth enabled.
    pub async fn start() -> Result<Self> {
        Self::start_with(EtcdOptions {
            members: 1,
            ..EtcdOptions::default()
        })
        .await
    }

    /// Starts a cluster as `options` says, creates `root` and enables auth.
    pub async fn start_with(options: EtcdOptions) -> Result<Self> {
        let etcd = etcd_tool("etcd");
        if options.members != 1 && options.members != 3 {
            bail!(
                "EtcdCluster supports 1 or 3 members, not {}",
                options.members
            );
        }
        crate::sweep::sweep_once(&crate::sandbox::CGROUP_ROOTS);
        let dir = tempfile::Builder::new()
            .prefix(&crate::sweep::owned_name("etcd"))
            .tempdir()?;
        let ca = TestCa::new("calseg test etcd CA")?;
        let mut names = vec!["127.0.0.1", "localhost"];
        names.extend(options.extra_listen_ips.iter().map(String::as_str));
        let server = ca.issue_server(&names)?;
        let server_files = server.write_files(&dir.path().join("tls"), "server", &ca.cert_pem)?;
        // Its own file: `write_files` below rewrites ca.pem with the test CA alone.
        write_trusted(&dir.path().join("tls"), &ca, &options.extra_trusted_ca_pem)?;
        drop(server_files);
        let root = ca.issue_client("root")?;
        let root_files = root.write_files(&dir.path().join("tls"), "root", &ca.cert_pem)?;
        // Written whether etcd is told about it or not: a test shows what a CRL changes.
        std::fs::write(dir.path().join("tls").join(CRL_FILE), ca.crl(&[])?)?;

        let mut members = Vec::new();
        for index in 0..options.members {
            members.push(Member {
                name: format!("m{index}"),
                client_port: free_port()?,
                peer_port: free_port()?,
                data_dir: dir.path().join(format!("m{index}.data")),
                process: None,
            });
        }
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = Self {
            members,
            extra_listen_ips: options.extra_listen_ips.clone(),
            client_crl: options.client_crl,
            etcd,
            ca,
            root,
            root_files,
            initial_cluster,
            dir,
        };
        for index in 0..options.members {
            cluster.spawn_member(index)?;
        }
        for index in 0..options.members {
            cluster.wait_member_ready(index).await?;
        }
        cluster.create_root(!options.auth_disabled).await?;
        Ok(cluster)
    }

    fn spawn_member(&mut self, index: usize) -> Result<()> {
        let tls = self.dir.path().join("tls");
        let member = &self.members[index];
        let client_url = format!("https://127.0.0.1:{}", member.client_port);
        let listen_urls = std::iter::once(client_url.clone())
            .chain(
                self.extra_listen_ips
                    .iter()
                    .map(|ip| format!("https://{ip}:{}", member.client_port)),
            )
            .collect::<Vec<_>>()
            .join(",");
        let peer_url = format!("http://127.0.0.1:{}", member.peer_port);
        let path = |name: &str| tls.join(name).display().to_string();
        let mut args = vec![
            format!("--name={}", member.name),
            format!("--data-dir={}", member.data_dir.display()),
            format!("--listen-client-urls={listen_urls}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster={}", self.initial_cluster),
            "--initial-cluster-state=new".into(),
            "--initial-cluster-token=calseg-test".into(),
            "--client-cert-auth".into(),
            format!("--trusted-ca-file={}", path(TRUSTED_FILE)),
            format!("--cert-file={}", path("server.pem")),
            format!("--key-file={}", path("server-key.pem")),
            "--log-level=warn".into(),
            "--logger=zap".into(),
        ];
        if self.client_crl {
            args.push(format!("--client-crl-file={}", path(CRL_FILE)));
        }
        let log = self.dir.path().join(format!("{}.log", member.name));
        let process = Guarded::spawn(&format!("etcd {}", member.name), &self.etcd, &args, &log)?;
        self.members[index].process = Some(process);
        Ok(())
    }

    async fn wait_member_ready(&mut self, index: usize) -> Result<()> {
        let endpoint = self.endpoint(index);
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let mut last_error = String::from("no attempt yet");
        while tokio::time::Instant::now() < deadline {
            let exited = self.members[index]
                .process
                .as_mut()
                .is_some_and(|process| !process.is_running());
            if exited {
                bail!(
                    "etcd member {index} exited during start-up; its log:\n{}",
                    self.log_tail(index)
                );
            }
            match self
                .connect(std::slice::from_ref(&endpoint), &self.root)
                .await
            {
                Ok(mut client) => match client.status().await {
                    Ok(_) => return Ok(()),
                    Err(error) => last_error = error.to_string(),
                },
                Err(error) => last_error = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "etcd member {index} at {endpoint} not ready after {START_TIMEOUT:?}: {last_error}\nlog:\n{}",
            self.log_tail(index)
        )
    }

    async fn create_root(&self, enable_auth: bool) -> Result<()> {
        let mut client = self.root_client().await?;
        client
            .user_add("root", "", Some(UserAddOptions::new().with_no_pwd()))
            .await
            .context("etcd user add root")?;
        client
            .user_grant_role("root", "root")
            .await
            .context("etcd user grant-role root root")?;
        if enable_auth {
            client.auth_enable().await.context("etcd auth enable")?;
        }
        Ok(())
    }

    fn log_tail(&self, index: usize) -> String {
        let log = self
            .dir
            .path()
            .join(format!("{}.log", self.members[index].name));
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The client URL of member `index`.
    pub fn endpoint(&self, index: usize) -> String {
        self.endpoint_at(index, "127.0.0.1")
    }

    /// The client URL of member `index` on address `ip` (127.0.0.1 or one of
    /// [`EtcdOptions::extra_listen_ips`]).
    pub fn endpoint_at(&self, index: usize, ip: &str) -> String {
        format!("https://{ip}:{}", self.members[index].client_port)
    }

    /// Client URLs of all members.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// The test CA: etcd trusts client certificates it signs, and clients verify etcd with it.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// The certificate and key of etcd's `root` user (CN `root`).
    pub fn root_identity(&self) -> &KeyedCert {
        &self.root
    }

    /// Files of the root identity and the CA, for etcdctl and calseg-server.
    pub fn root_files(&self) -> &TlsFiles {
        &self.root_files
    }

    /// The cluster's scratch directory (logs, TLS files); removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A new client certificate for `common_name`, signed by the test CA.
    pub fn mint_client(&self, common_name: &str) -> Result<KeyedCert> {
        self.ca.issue_client(common_name)
    }

    /// Client URLs of the members that run now.
    pub fn live_endpoints(&self) -> Vec<String> {
        (0..self.members.len())
            .filter(|&i| self.members[i].process.is_some())
            .map(|i| self.endpoint(i))
            .collect()
    }

    /// A client of the running members that authenticates as `identity`. (etcd-client balances
    /// requests over its endpoints without health checks, so a stopped member is left out.)
    pub async fn client_as(&self, identity: &KeyedCert) -> Result<Client> {
        self.connect(&self.live_endpoints(), identity).await
    }

    /// A client that authenticates as `root`.
    pub async fn root_client(&self) -> Result<Client> {
        self.client_as(&self.root).await
    }

    async fn connect(&self, endpoints: &[String], identity: &KeyedCert) -> Result<Client> {
        let tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(&self.ca.cert_pem))
            .identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
        let options = ConnectOptions::new()
            .with_tls(tls)
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(5));
        Ok(Client::connect(endpoints, Some(options)).await?)
    }

    /// Makes the members trust the test CA and `extra` (PEM) for client certificates from their
    /// next start on (`--trusted-ca-file` is read at start): see [`Self::restart_member`].
    pub fn set_trusted_cas(&self, extra: &[String]) -> Result<()> {
        write_trusted(&self.dir.path().join("tls"), &self.ca, extra)
    }

    /// Stops member `index` and starts it again on the same ports and data (a rolling restart
    /// step), waiting until it answers.
    pub async fn restart_member(&mut self, index: usize) -> Result<()> {
        self.stop_member(index);
        self.start_member(index).await
    }

    /// Stops member `index` with SIGKILL (its data directory stays).
    pub fn stop_member(&mut self, index: usize) {
        if let Some(mut process) = self.members[index].process.take() {
            process.kill();
        }
    }

    /// Starts a stopped member again on the same ports and data, and waits until it answers.
    pub async fn start_member(&mut self, index: usize) -> Result<()> {
        if self.members[index].process.is_some() {
            bail!("etcd member {index} is already running");
        }
        self.spawn_member(index)?;
        self.wait_member_ready(index).await
    }

    /// The whole auth store as text (users with their roles, roles with their permissions),
    /// to compare before and after an operation that must change nothing.
    pub async fn auth_snapshot(&self) -> Result<String> {
        let mut client = self.root_client().await?;
        let mut out = String::new();
        let mut users = client.user_list().await?.users().to_vec();
        users.sort();
        for user in users {
            let mut roles = client.user_get(user.as_str()).await?.roles().to_vec();
            roles.sort();
            out.push_str(&format!("user {user}: {}\n", roles.join(",")));
        }
        let mut roles = client.role_list().await?.roles().to_vec();
        roles.sort();
        for role in roles {
            let mut perms: Vec<String> = client
                .role_get(role.as_str())
                .await?
                .permissions()
                .iter()
                .map(|p| {
                    format!(
                        "{}:{}..{}",
                        p.get_type(),
                        String::from_utf8_lossy(p.key()),
                        String::from_utf8_lossy(p.range_end())
                    )
                })
                .collect();
            perms.sort();
            out.push_str(&format!("role {role}: {}\n", perms.join(" ")));
        }
        Ok(out)
    }

    /// The CRL file (PEM) [`EtcdOptions::client_crl`] hands etcd; written also without it.
    pub fn client_crl_file(&self) -> PathBuf {
        self.dir.path().join("tls").join(CRL_FILE)
    }

    /// Rewrites [`client_crl_file`](Self::client_crl_file) to list `revoked` (certificates of
    /// the test CA) and nothing else.
    pub fn write_client_crl(&self, revoked: &[&KeyedCert]) -> Result<()> {
        std::fs::write(self.client_crl_file(), self.ca.crl(revoked)?)?;
        Ok(())
    }

    /// The version a running member reports (Maintenance Status), e.g. `3.5.16`.
    pub async fn server_version(&self) -> Result<String> {
        let mut client = self.root_client().await?;
        Ok(client.status().await?.version().to_owned())
    }

    /// The process id of member `index`, when it runs.
    pub fn member_pid(&self, index: usize) -> Option<u32> {
        self.members[index].process.as_ref().map(Guarded::pid)
    }
}
