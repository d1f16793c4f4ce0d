//! Packages (issue 6): the .deb and .rpm packages that `packaging/build.sh` makes. The .debs are
//! installed, upgraded, removed and purged with the real dpkg inside sandboxed hosts running a
//! real systemd; the .rpms are inspected with `rpm -qp`. The packages hold the dev build of the
//! binaries (already built by the test command), stripped: the same files, scripts and units as
//! a release, without a second compile in CI.

use calseg_tests::prereq::require_command;
use calseg_tests::sandbox::{SandboxHost, SandboxOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const SERVER_UNIT: &str = "calseg-server.service";
const AGENT_UNIT: &str = "calseg-agent.service";

/// The packages of one `packaging/build.sh` run.
struct Built {
    dir: PathBuf,
}

impl Built {
    /// The one file in the output directory whose name starts with `prefix` and ends with `ext`.
    fn file(&self, prefix: &str, ext: &str) -> PathBuf {
        let found: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .expect("read the packages directory")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with(prefix) && name.ends_with(ext)
            })
            .collect();
        assert_eq!(found.len(), 1, "{prefix}*{ext} in {}", self.dir.display());
        found.into_iter().next().unwrap()
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The target directory the test binaries (and the dev binaries next to them) are in.
fn target_dir() -> PathBuf {
    let server = calseg_tests::bins::path("calseg-server");
    server.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Runs `packaging/build.sh` on the dev build with `args`, into `target/packages-e2e/<name>`.
fn build(name: &str, args: &[&str]) -> Built {
    for tool in ["deb", "generate-rpm"] {
        let found = Command::new("cargo")
            .args([tool, "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "prerequisite missing: cargo-{tool}. Install it with `cargo install --locked \
             cargo-{tool}`, or run the README's test command (`./scripts/test.sh`), which does"
        );
    }
    require_command("strip", "binutils");
    require_command("rpm", "rpm");
    calseg_tests::bins::path("calseg-docs");
    let dir = target_dir().join("packages-e2e").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let output = Command::new("bash")
        .arg(workspace_root().join("packaging/build.sh"))
        .args(["--profile", "dev", "--no-build", "--fast", "--out"])
        .arg(&dir)
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir())
        .current_dir(workspace_root())
        .output()
        .expect("run packaging/build.sh");
    assert!(
        output.status.success(),
        "packaging/build.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Built { dir }
}

/// The four packages at Cargo's version, built once per test process.
fn packages() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| build("current", &[]))
}

/// The server's .deb rebuilt at a higher version, for the upgrade.
fn upgrade_deb() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let version = format!("{VERSION}+e2e1");
        build(
            "upgrade",
            &[
                "--version",
                &version,
                "--package",
                "calseg-server",
                "--only",
                "deb",
            ],
        )
    })
}

fn rpm_query(package: &Path, query: &[&str]) -> String {
    let output = Command::new("rpm")
        .arg("-qp")
        .args(query)
        .arg(package)
        .output()
        .expect("run rpm");
    assert!(
        output.status.success(),
        "rpm -qp {query:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn assert_lines(text: &str, wanted: &[&str], what: &str) {
    for line in wanted {
        assert!(
            text.lines().any(|l| l.trim() == *line),
            "{what}: no line {line:?} in:\n{text}"
        );
    }
}

#[test]
fn rpm_packages_declare_files_config_scriptlets_and_dependencies() {
    let built = packages();
    let server = built.file("calseg-server-", ".rpm");
    let agent = built.file("calseg-agent-", ".rpm");

    assert_eq!(
        rpm_query(&server, &["--qf", "%{NAME} %{VERSION}"]),
        format!("calseg-server {VERSION}")
    );
    let files = rpm_query(&server, &["--filesbypkg"]);
    let files: String = files
        .lines()
        .map(|l| l.trim_start_matches("calseg-server").trim())
        .collect::<Vec<_>>()
        .join("\n");
    assert_lines(
        &files,
        &[
            "/usr/bin/calseg-server",
            "/etc/calseg/server.toml",
            "/etc/calseg/policy.toml",
            "/usr/lib/systemd/system/calseg-server.service",
            "/usr/lib/systemd/system-preset/80-calseg-server.preset",
            "/usr/lib/sysusers.d/calseg-server.conf",
            "/usr/lib/tmpfiles.d/calseg-server.conf",
            "/usr/share/man/man1/calseg-server.1.gz",
            "/usr/share/man/man1/calseg-server-init.1.gz",
            "/usr/share/man/man5/server.toml.5.gz",
            "/usr/share/man/man5/policy.toml.5.gz",
            "/etc/default/calseg-server",
            "/usr/share/bash-completion/completions/calseg-server",
            "/usr/share/zsh/site-functions/_calseg-server",
            "/usr/share/fish/vendor_completions.d/calseg-server.fish",
        ],
        "server rpm files",
    );
    assert_eq!(
        rpm_query(&server, &["--configfiles"]).trim(),
        "/etc/calseg/policy.toml\n/etc/calseg/server.toml\n/etc/default/calseg-server"
    );
    // %config(noreplace): flags c (config) and n (noreplace).
    let flags = rpm_query(&server, &["--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]"]);
    assert_lines(
        &flags,
        &[
            "cn /etc/calseg/server.toml",
            "cn /etc/calseg/policy.toml",
            "cn /etc/default/calseg-server",
        ],
        "config flags",
    );
    let scripts = rpm_query(&server, &["--scripts"]);
    for needle in [
        "preinstall scriptlet",
        "useradd -r -g calseg -d /var/lib/calseg -M -s /sbin/nologin",
        "systemctl --no-reload preset calseg-server.service",
        "systemd-tmpfiles --create /usr/lib/tmpfiles.d/calseg-server.conf",
        "systemctl --no-reload disable calseg-server.service",
        "systemctl try-restart calseg-server.service",
        "[ -d /run/systemd/system ]",
    ] {
        assert!(scripts.contains(needle), "no {needle:?} in:\n{scripts}");
    }
    let requires = rpm_query(&server, &["--requires"]);
    assert_lines(
        &requires,
        &["/bin/sh", "systemd", "/usr/sbin/useradd"],
        "server requires",
    );
    assert!(
        requires.lines().any(|l| l.starts_with("libc.so.6(")),
        "no libc requirement found by auto-req:\n{requires}"
    );

    let files = rpm_query(&agent, &["--filesbypkg"]);
    for needle in [
        "/usr/bin/calseg-agent",
        "/etc/calseg/agent.toml",
        "/usr/lib/systemd/system/calseg-agent.service",
        "/usr/share/man/man1/calseg-agent.1.gz",
        "/usr/share/man/man5/agent.toml.5.gz",
        "/etc/default/calseg-agent",
    ] {
        assert!(files.contains(needle), "agent rpm lacks {needle}:\n{files}");
    }
    assert_eq!(
        rpm_query(&agent, &["--configfiles"]).trim(),
        "/etc/calseg/agent.toml\n/etc/default/calseg-agent"
    );
    let scripts = rpm_query(&agent, &["--scripts"]);
    assert!(
        !scripts.contains("useradd"),
        "the agent runs as root: no user"
    );
    assert!(scripts.contains("systemctl try-restart calseg-agent.service"));
    assert_lines(
        &rpm_query(&agent, &["--requires"]),
        &["/bin/sh", "systemd"],
        "agent requires",
    );
}

/// Boots a sandbox that behaves like a real host for dpkg: this machine's root is a container
/// image whose /usr/sbin/policy-rc.d forbids starting and stopping services (exit 101), which
/// would turn every systemctl call of the maintainer scripts into a no-op. Removed inside only.
/// `own_network`: a network namespace of its own, for the packaged server, which binds its
/// default addresses (metrics on 127.0.0.1:9464) that another calseg-server on this machine may
/// hold. Without it the sandbox shares the test's loopback (an agent reaching a test server).
async fn boot(name: &str, own_network: bool) -> SandboxHost {
    let host = SandboxHost::boot_with(SandboxOptions {
        hostname: name.to_owned(),
        own_network,
    })
    .await
    .expect("boot");
    host.exec_ok("rm -f /usr/sbin/policy-rc.d").unwrap();
    host
}

/// Runs dpkg inside `host`, non-interactively (a prompt fails rather than hangs).
fn dpkg(host: &SandboxHost, args: &str) -> String {
    host.exec_ok(&format!(
        "DEBIAN_FRONTEND=noninteractive dpkg {args} </dev/null 2>&1"
    ))
    .unwrap_or_else(|error| panic!("dpkg {args}: {error:#}"))
}

/// Whether a path exists inside the sandbox.
fn exists(host: &SandboxHost, inside: &str) -> bool {
    host.exec(&format!("test -e {inside}"))
        .unwrap()
        .status
        .success()
}

/// First-time setup as the README says, with nothing else: `init` as root, no `--force`, no
/// chown. The packaged server.toml (a conffile) stays as shipped; init's settings go to the
/// drop-in, and the server's files are the calseg user's from their creation.
fn init_server(host: &SandboxHost, port: u16, extra: &str) {
    host.exec_ok(&format!(
        "calseg-server init --san 127.0.0.1 --listen 127.0.0.1:{port} {extra} >/dev/null"
    ))
    .expect("calseg-server init");
    let verify = host
        .exec("dpkg --verify calseg-server 2>&1")
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap();
    assert!(
        !verify.contains("/etc/calseg/server.toml"),
        "init changed the conffile: {verify}"
    );
    let owners = host
        .exec_ok(
            "stat -c '%n %U:%G %a' /etc/calseg/server.toml.d/50-init.toml \
             /var/lib/calseg/ca/fleet-key.pem /var/lib/calseg/tls/server-key.pem",
        )
        .unwrap();
    assert_eq!(
        owners,
        "/etc/calseg/server.toml.d/50-init.toml root:calseg 640\n\
         /var/lib/calseg/ca/fleet-key.pem calseg:calseg 600\n\
         /var/lib/calseg/tls/server-key.pem calseg:calseg 600\n"
    );
}

/// Before first-time setup, a start of `unit` is skipped by its ConditionPathExists=: it stays
/// inactive, not failed, and is not restarted.
async fn assert_start_waits_quietly(host: &SandboxHost, unit: &str) {
    host.exec_ok(&format!("systemctl start {unit}"))
        .unwrap_or_else(|error| panic!("systemctl start {unit}: {error:#}"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let shown = host
        .exec_ok(&format!(
            "systemctl show -p ActiveState -p Result -p ConditionResult -p NRestarts {unit}"
        ))
        .unwrap();
    for wanted in [
        "ActiveState=inactive",
        "Result=success",
        "ConditionResult=no",
        "NRestarts=0",
    ] {
        assert!(shown.contains(wanted), "{unit} before setup: {shown}");
    }
}

async fn start_server(host: &SandboxHost) -> calseg_agent::systemd::UnitStatus {
    match host.start_unit(SERVER_UNIT).await {
        Ok(status) => status,
        Err(error) => panic!(
            "{SERVER_UNIT} did not become active (READY=1): {error:#}\n{}",
            host.exec("journalctl -u calseg-server --no-pager -n 40 2>&1")
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        ),
    }
}

fn exposure(host: &SandboxHost, unit: &str) -> f64 {
    let text = host
        .exec_ok(&format!(
            "systemd-analyze security --no-pager {unit} 2>&1 | tail -n 1"
        ))
        .expect("systemd-analyze security");
    // "→ Overall exposure level for calseg-server.service: 1.8 OK 🙂"
    text.split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in {text:?}"))
}

#[tokio::test]
async fn server_deb_starts_ready_with_etcd_unreachable_then_remove_keeps_state_and_purge_clears_it()
{
    let deb = packages().file("calseg-server_", ".deb");
    let host = boot("pkg-server", true).await;
    dpkg(&host, &format!("-i {}", deb.display()));

    // What the package installed.
    let user = host
        .exec_ok("getent passwd calseg")
        .expect("the calseg user");
    let fields: Vec<&str> = user.trim().split(':').collect();
    assert_eq!(fields[5], "/var/lib/calseg", "home: {user}");
    assert!(fields[6].ends_with("nologin"), "shell: {user}");
    assert_eq!(
        host.exec_ok("stat -c '%U:%G %a' /var/lib/calseg /etc/calseg")
            .unwrap(),
        "calseg:calseg 750\nroot:calseg 750\n"
    );
    let conffiles = host
        .exec_ok("dpkg-query -W -f='${Conffiles}' calseg-server")
        .unwrap();
    assert!(conffiles.contains("/etc/calseg/server.toml"), "{conffiles}");
    assert!(conffiles.contains("/etc/calseg/policy.toml"), "{conffiles}");
    for file in [
        "/usr/share/man/man1/calseg-server.1.gz",
        "/usr/share/man/man1/calseg-server-serve.1.gz",
        "/usr/share/bash-completion/completions/calseg-server",
    ] {
        assert!(exists(&host, file), "{file} not installed");
    }
    assert_eq!(
        host.exec_ok("systemctl is-enabled calseg-server").unwrap(),
        "enabled\n"
    );
    host.exec_ok("systemd-analyze verify calseg-server.service")
        .expect("the unit verifies");
    let score = exposure(&host, SERVER_UNIT);
    eprintln!("systemd-analyze security {SERVER_UNIT}: {score}");
    assert!(score <= 2.0, "{SERVER_UNIT} exposure {score} > 2.0");

    // Before `init`, a start is skipped quietly (no crash loop).
    assert_start_waits_quietly(&host, SERVER_UNIT).await;
    // The environment file the unit reads, and the configuration pages.
    for file in [
        "/etc/default/calseg-server",
        "/usr/share/man/man5/server.toml.5.gz",
        "/usr/share/man/man5/policy.toml.5.gz",
    ] {
        assert!(exists(&host, file), "{file} not installed");
    }
    assert!(
        conffiles.contains("/etc/default/calseg-server"),
        "{conffiles}"
    );

    // Configured against an etcd nobody listens on, with the packaged example policy (whose
    // endpoints do not exist either): the server must still start and report ready.
    let port = calseg_tests::ports::free_port().unwrap();
    let nobody = calseg_tests::ports::free_port().unwrap();
    init_server(
        &host,
        port,
        &format!("--etcd-user root --etcd-endpoint https://127.0.0.1:{nobody}"),
    );
    let status = start_server(&host).await;
    assert_eq!(status.active_state, "active");
    let shown = host
        .exec_ok("systemctl show -p StatusText -p User -p WatchdogUSec calseg-server")
        .unwrap();
    assert!(shown.contains("StatusText=serving on"), "{shown}");
    assert!(shown.contains("User=calseg"), "{shown}");
    assert!(shown.contains("WatchdogUSec=30s"), "{shown}");
    let uid = host
        .exec_ok(&format!("stat -c %U /proc/{}", status.main_pid))
        .unwrap();
    assert_eq!(uid.trim(), "calseg", "the server runs as calseg");
    // `systemctl reload` (ExecReload= runs `calseg-server reload`) reaches the running server:
    // it reloads the (valid) packaged policy, and lives on.
    host.exec_ok("systemctl reload calseg-server")
        .expect("systemctl reload calseg-server");
    let mut reloaded = String::new();
    for _ in 0..50 {
        reloaded = host
            .exec_ok("journalctl -u calseg-server --no-pager -o cat 2>&1")
            .unwrap_or_default();
        if reloaded.contains("policy reload") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reloaded.contains("policy reload"),
        "no reload in the server's journal after systemctl reload:\n{reloaded}"
    );
    assert_eq!(
        host.unit_status(SERVER_UNIT).await.unwrap().main_pid,
        status.main_pid,
        "the server restarted instead of reloading"
    );
    host.exec_ok(&format!(
        "timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}'"
    ))
    .expect("the API port accepts connections (inside the host's network namespace)");

    // remove: binary gone, unit stopped, configuration and state kept.
    dpkg(&host, "-r calseg-server");
    assert!(!exists(&host, "/usr/bin/calseg-server"));
    let after = host.unit_status(SERVER_UNIT).await.unwrap();
    assert_ne!(after.active_state, "active", "still running after remove");
    assert!(
        !Path::new(&format!("/proc/{}", status.main_pid)).exists(),
        "the server process outlived remove"
    );
    for kept in [
        "/etc/calseg/server.toml",
        "/etc/calseg/policy.toml",
        "/etc/calseg/etcd/calseg-key.pem",
        "/var/lib/calseg/state.redb",
        "/var/lib/calseg/ca/fleet-key.pem",
    ] {
        assert!(exists(&host, kept), "{kept} removed by `dpkg -r`");
    }
    assert!(host.exec_ok("getent passwd calseg").is_ok());
    assert!(
        host.exec_ok("dpkg-query -W -f='${Status}' calseg-server")
            .unwrap()
            .ends_with("config-files")
    );

    // purge: configuration, state and the user gone.
    dpkg(&host, "-P calseg-server");
    for gone in ["/etc/calseg", "/var/lib/calseg"] {
        assert!(!exists(&host, gone), "{gone} left after purge");
    }
    assert!(host.exec_ok("getent passwd calseg").is_err(), "user left");
    assert!(host.exec_ok("getent group calseg").is_err(), "group left");
}

#[tokio::test]
async fn server_deb_upgrade_keeps_edited_conffiles_and_state_and_restarts_the_server() {
    let old = packages().file("calseg-server_", ".deb");
    let new = upgrade_deb().file("calseg-server_", ".deb");
    let host = boot("pkg-upgrade", true).await;
    dpkg(&host, &format!("-i {}", old.display()));
    // No etcd credentials at all: the server signs certificates and does not manage RBAC.
    let port = calseg_tests::ports::free_port().unwrap();
    init_server(&host, port, "");
    host.exec_ok("echo '# edited by the operator' >> /etc/calseg/policy.toml")
        .unwrap();
    let before = start_server(&host).await;
    let fingerprint = || {
        host.exec_ok("sha256sum /var/lib/calseg/ca/fleet.pem /etc/calseg/server.toml")
            .unwrap()
    };
    let kept = fingerprint();

    dpkg(&host, &format!("-i {}", new.display()));
    assert_eq!(
        host.exec_ok("dpkg-query -W -f='${Version}' calseg-server")
            .unwrap(),
        format!("{VERSION}+e2e1-1")
    );
    assert_eq!(fingerprint(), kept, "state or server.toml changed");
    assert!(
        host.exec_ok("tail -n 1 /etc/calseg/policy.toml")
            .unwrap()
            .contains("edited by the operator"),
        "the edited policy.toml was replaced"
    );
    for left in ["policy.toml", "server.toml"] {
        for suffix in ["dpkg-dist", "dpkg-new", "dpkg-old"] {
            let path = format!("/etc/calseg/{left}.{suffix}");
            assert!(
                !exists(&host, &path),
                "{path}: the upgrade asked about a conffile"
            );
        }
    }
    let after = host
        .systemd()
        .await
        .unwrap()
        .wait_active(SERVER_UNIT, Duration::from_secs(20))
        .await
        .expect("active after the upgrade");
    assert_ne!(
        after.main_pid, before.main_pid,
        "a running server is restarted on upgrade"
    );
}

#[tokio::test]
async fn agent_deb_installs_a_valid_enabled_unit_and_purge_removes_only_its_state() {
    let deb = packages().file("calseg-agent_", ".deb");
    let host = boot("pkg-agent", false).await;
    dpkg(&host, &format!("-i {}", deb.display()));

    assert!(
        host.exec_ok("calseg-agent --version")
            .unwrap()
            .contains(VERSION)
    );
    let conffiles = host
        .exec_ok("dpkg-query -W -f='${Conffiles}' calseg-agent")
        .unwrap();
    assert!(conffiles.contains("/etc/calseg/agent.toml"), "{conffiles}");
    for dir in ["/etc/calico", "/etc/cni/net.d", "/var/lib/calseg"] {
        assert!(
            exists(&host, dir),
            "{dir} missing: the unit would not start"
        );
    }
    assert!(exists(
        &host,
        "/usr/share/man/man1/calseg-agent-enroll.1.gz"
    ));
    host.exec_ok("systemd-analyze verify calseg-agent.service")
        .expect("the unit verifies");
    eprintln!(
        "systemd-analyze security {AGENT_UNIT}: {}",
        exposure(&host, AGENT_UNIT)
    );
    assert_eq!(
        host.exec_ok("systemctl is-enabled calseg-agent").unwrap(),
        "enabled\n"
    );
    // Enabled, but not started before `calseg-agent enroll`; a start waits quietly.
    let status = host.unit_status(AGENT_UNIT).await.unwrap();
    assert_eq!(status.active_state, "inactive");
    assert_start_waits_quietly(&host, AGENT_UNIT).await;
    for file in [
        "/etc/default/calseg-agent",
        "/usr/share/man/man5/agent.toml.5.gz",
    ] {
        assert!(exists(&host, file), "{file} not installed");
    }
    assert!(
        conffiles.contains("/etc/default/calseg-agent"),
        "{conffiles}"
    );

    host.exec_ok("mkdir -m 0700 /var/lib/calseg/agent && touch /var/lib/calseg/agent/fleet-key.pem /etc/calico/keep")
        .unwrap();
    dpkg(&host, "-r calseg-agent");
    assert!(!exists(&host, "/usr/bin/calseg-agent"));
    assert!(exists(&host, "/etc/calseg/agent.toml"));
    assert!(exists(&host, "/var/lib/calseg/agent/fleet-key.pem"));
    dpkg(&host, "-P calseg-agent");
    assert!(!exists(&host, "/etc/calseg"));
    assert!(!exists(&host, "/var/lib/calseg"));
    assert!(exists(&host, "/etc/calico/keep"), "Calico's files stay");
}

/// The packaged agent, enrolled and started as its systemd service (Type=notify, hardened
/// unit), converges the host on its own: the stand-in calico-node gets its identity and runs.
#[tokio::test]
async fn agent_deb_service_converges_an_enrolled_host() {
    let deb = packages().file("calseg-agent_", ".deb");
    let node = "pkg-agent-run";
    let etcd = calseg_tests::etcd::EtcdCluster::start()
        .await
        .expect("etcd");
    let policy = format!(
        "calico_version = \"3.29\"\n[etcd]\nendpoints = [\"{}\"]\n\
         [components.calico-node]\ngrants = [ {{ prefix = \"/calico/ipam/v2/\", access = \"readwrite\" }} ]\n\
         node_grants = [ {{ prefix = \"/calico/felix/v1/host/{{node}}/\", access = \"readwrite\" }} ]\n\
         restart = [\"calico-node.service\"]\nenv_file = \"/etc/calico/calico-node.env\"\n\
         [[hosts]]\nname = \"{node}\"\ncomponents = [\"calico-node\"]\n",
        etcd.endpoint(0)
    );
    let server = calseg_tests::server::ServerProcess::start(&etcd, &policy, "")
        .await
        .expect("server");
    let host = boot(node, false).await;
    host.write_file("/tmp/agent.deb", "", 0o644)
        .expect("placeholder");
    std::fs::copy(&deb, host.path("/tmp/agent.deb")).expect("copy the package in");
    dpkg(&host, "-i /tmp/agent.deb");
    calseg_tests::agent_host::install_standin(&host)
        .await
        .expect("stand-in");
    host.write_file(
        "/etc/calseg/agent.toml",
        &format!(
            "server = \"{}\"\nnode = \"{node}\"\nrestart_timeout = \"8s\"\ninterval = \"10s\"\n",
            server.url()
        ),
        0o644,
    )
    .expect("agent.toml");
    let token = server.token_for(node, "10m").expect("token");
    host.exec_ok(&format!(
        "calseg-agent enroll --ca-hash {} --token {token}",
        server.fleet_ca_hash()
    ))
    .expect("enroll with the packaged binary");

    let agent = host.start_unit(AGENT_UNIT).await.unwrap_or_else(|error| {
        panic!(
            "{AGENT_UNIT} did not become active (READY=1): {error:#}\n{}",
            host.exec("journalctl -u calseg-agent --no-pager -n 40 2>&1")
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        )
    });
    assert!(agent.main_pid > 0);
    let mut standin = host
        .unit_status(calseg_tests::agent_host::STANDIN_UNIT)
        .await
        .expect("status");
    for _ in 0..150 {
        if standin.active_state == "active" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        standin = host
            .unit_status(calseg_tests::agent_host::STANDIN_UNIT)
            .await
            .expect("status");
    }
    let journal = host
        .exec("journalctl -u calseg-agent --no-pager -n 40 2>&1")
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert_eq!(
        standin.active_state, "active",
        "the service did not converge the host:\n{journal}"
    );
    let subject = host
        .exec_ok("openssl x509 -noout -subject -in /etc/calico/certs/calico-node/cert.pem")
        .expect("installed certificate");
    assert!(
        subject.contains(&format!("calico-node.{node}")),
        "{subject}"
    );
    let after = host.unit_status(AGENT_UNIT).await.expect("status");
    assert_eq!(
        (after.active_state.as_str(), after.main_pid),
        ("active", agent.main_pid),
        "{journal}"
    );
}
