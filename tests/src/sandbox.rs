//! `SandboxHost`: a real systemd booted as PID 1 of its own PID, mount and UTS namespaces
//! (optionally its own network namespace, linked to the test by a veth pair), on an overlay of
//! the real root filesystem. Writes inside land in a tmpfs upper layer; the real root is never
//! changed. Dropping the handle SIGKILLs its PID 1, which takes the namespaces and the overlay
//! with it, and removes the sandbox's cgroups.

use crate::prereq::{require_command, require_root};
use crate::process::Guarded;
use anyhow::{Context, Result, bail};
use calseg_agent::systemd::{Systemd, UnitStatus};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tempfile::TempDir;

/// How long systemd may take to reach `running`.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// cgroup hierarchies systemd manages on this machine (v1 `name=systemd` and the v2 unified one).
pub(crate) const CGROUP_ROOTS: [&str; 3] = [
    "/sys/fs/cgroup/systemd",
    "/sys/fs/cgroup/unified",
    "/sys/fs/cgroup",
];

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// How to boot a sandbox.
#[derive(Clone, Debug)]
pub struct SandboxOptions {
    /// The sandbox's hostname (also written to its /etc/hostname).
    pub hostname: String,
    /// Give it its own network namespace with a veth link to the test's namespace.
    pub own_network: bool,
}

pub use crate::veth::VethLink;

/// A host with a real systemd, sandboxed.
pub struct SandboxHost {
    unshare: Guarded,
    pid1: u32,
    hostname: String,
    link: Option<VethLink>,
    cgroup_name: String,
    // Dropped last: holds the boot script and the (namespace-private) scratch mount point.
    dir: TempDir,
}

impl SandboxHost {
    /// Boots a sandbox named `hostname` sharing the test's network namespace.
    pub async fn boot(hostname: &str) -> Result<Self> {
        Self::boot_with(SandboxOptions {
            hostname: hostname.to_owned(),
            own_network: false,
        })
        .await
    }

    /// Boots a sandbox as `options` say and waits until systemd reports `running`.
    pub async fn boot_with(options: SandboxOptions) -> Result<Self> {
        require_root();
        let unshare = require_command("unshare", "util-linux");
        require_command("nsenter", "util-linux");
        require_command("setpriv", "util-linux");
        if !Path::new("/lib/systemd/systemd").exists() {
            panic!(
                "prerequisite missing: /lib/systemd/systemd. Install it with `apt-get install -y systemd dbus`."
            );
        }
        require_command("dbus-daemon", "dbus");
        if options.own_network {
            require_command("ip", "iproute2");
        }
        crate::sweep::sweep_once(&CGROUP_ROOTS);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let cgroup_name = format!("{}{id}", crate::sweep::owned_name("sbx"));
        let dir = tempfile::Builder::new()
            .prefix(&crate::sweep::owned_name("sbx"))
            .tempdir()?;
        let script = dir.path().join("boot.sh");
        std::fs::write(&script, BOOT_SCRIPT)?;
        let mut args = vec![
            "--pid".to_owned(),
            "--fork".into(),
            "--kill-child".into(),
            "--mount".into(),
            "--propagation".into(),
            "private".into(),
            "--uts".into(),
        ];
        if options.own_network {
            args.push("--net".into());
        }
        args.push("/bin/sh".into());
        args.push(script.display().to_string());
        args.push(dir.path().display().to_string());
        args.push(options.hostname.clone());
        args.push(cgroup_name.clone());
        args.push(crate::bins::target_dir().display().to_string());
        let log = dir.path().join("boot.log");
        let guarded = Guarded::spawn("sandbox", &unshare, &args, &log)?;
        let pid1 = find_child(guarded.pid(), Duration::from_secs(10)).with_context(|| {
            format!(
                "sandbox {} did not start; see {}",
                options.hostname,
                log.display()
            )
        })?;
        let mut host = Self {
            unshare: guarded,
            pid1,
            hostname: options.hostname.clone(),
            link: None,
            cgroup_name,
            dir,
        };
        host.wait_running().await.with_context(|| {
            let boot_log = std::fs::read_to_string(&log).unwrap_or_default();
            format!(
                "sandbox {} did not boot; its log:\n{boot_log}",
                options.hostname
            )
        })?;
        if options.own_network {
            host.link = Some(host.make_veth()?);
        }
        Ok(host)
    }

    async fn wait_running(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + BOOT_TIMEOUT;
        let mut last = String::from("bus not up yet");
        while tokio::time::Instant::now() < deadline {
            if let Ok(systemd) = self.systemd().await {
                match systemd.system_state().await {
                    Ok(state) if state == "running" || state == "degraded" => return Ok(()),
                    Ok(state) => last = state,
                    Err(error) => last = error.to_string(),
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("systemd not running after {BOOT_TIMEOUT:?} (last: {last})")
    }

    fn make_veth(&self) -> Result<VethLink> {
        crate::veth::create(&self.pid1.to_string(), &|line: &str| self.exec(line))
    }

    /// The sandbox's systemd over its D-Bus system bus, reached from outside.
    pub async fn systemd(&self) -> Result<Systemd> {
        Ok(Systemd::at_address(&self.bus_address()).await?)
    }

    /// The D-Bus address of the sandbox's system bus as seen from the test.
    pub fn bus_address(&self) -> String {
        format!(
            "unix:path=/proc/{}/root/run/dbus/system_bus_socket",
            self.pid1
        )
    }

    /// The log of the sandbox's boot (unshare and the boot script), for failure messages.
    pub fn boot_log(&self) -> PathBuf {
        self.dir.path().join("boot.log")
    }

    /// The sandbox's hostname.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// The veth link, when the sandbox has its own network namespace.
    pub fn link(&self) -> Option<&VethLink> {
        self.link.as_ref()
    }

    /// PID 1 of the sandbox as the test sees it.
    pub fn pid1(&self) -> u32 {
        self.pid1
    }

    /// A path inside the sandbox, as the test can reach it (through /proc/PID/root).
    pub fn path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid1)).join(inside.trim_start_matches('/'))
    }

    /// Runs `sh -c command` inside all of the sandbox's namespaces, as root.
    pub fn exec(&self, command: &str) -> Result<Output> {
        let mut nsenter = Command::new("nsenter");
        // -n is harmless when the sandbox shares the test's network namespace.
        nsenter.args([
            "-t",
            &self.pid1.to_string(),
            "-m",
            "-p",
            "-u",
            "-n",
            "-r",
            "-w",
        ]);
        let output = nsenter
            .args(["--", "/bin/sh", "-c", command])
            .output()
            .context("run nsenter")?;
        Ok(output)
    }

    /// Like [`exec`](Self::exec), but fails unless the command exits 0; returns its stdout.
    pub fn exec_ok(&self, command: &str) -> Result<String> {
        let output = self.exec(command)?;
        if !output.status.success() {
            bail!(
                "`{command}` in sandbox {} failed ({}): {}",
                self.hostname,
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Writes a file inside the sandbox with the given mode, creating parent directories.
    pub fn write_file(&self, inside: &str, contents: &str, mode: u32) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.path(inside);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, contents).with_context(|| format!("write {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    }

    /// Installs a unit file under /etc/systemd/system and makes systemd load it.
    pub async fn install_unit(&self, name: &str, contents: &str) -> Result<()> {
        self.write_file(&format!("/etc/systemd/system/{name}"), contents, 0o644)?;
        self.systemd().await?.daemon_reload().await?;
        Ok(())
    }

    /// A unit's ActiveState, MainPID and NRestarts, read over D-Bus.
    pub async fn unit_status(&self, unit: &str) -> Result<UnitStatus> {
        Ok(self.systemd().await?.unit_status(unit).await?)
    }

    /// Starts a unit with `systemctl start` and waits until it is active.
    pub async fn start_unit(&self, unit: &str) -> Result<UnitStatus> {
        self.exec_ok(&format!("systemctl start {unit}"))?;
        Ok(self
            .systemd()
            .await?
            .wait_active(unit, Duration::from_secs(20))
            .await?)
    }
}

impl Drop for SandboxHost {
    fn drop(&mut self) {
        // Killing PID 1 ends every process of the PID namespace; the mount namespace, with its
        // overlay and tmpfs, goes with the last of them, and so does a network namespace.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid1 as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        self.unshare.kill();
        if let Some(link) = &self.link {
            let _ = Command::new("ip")
                .args(["link", "del", &link.host_ifname])
                .output();
        }
        remove_cgroups(&self.cgroup_name);
    }
}

/// The boot script run as the new PID namespace's first process (shared with scripts/demo.sh);
/// its arguments are the scratch directory, hostname, cgroup name and the directory bound
/// read-only inside (the workspace's target directory).
const BOOT_SCRIPT: &str = include_str!("../sandbox/boot.sh");

/// Finds the first child of `parent` (unshare's forked PID 1), waiting up to `timeout`.
fn find_child(parent: u32, timeout: Duration) -> Result<u32> {
    let started = std::time::Instant::now();
    let children = format!("/proc/{parent}/task/{parent}/children");
    while started.elapsed() < timeout {
        if let Ok(text) = std::fs::read_to_string(&children)
            && let Some(pid) = text.split_whitespace().next()
        {
            return Ok(pid.parse()?);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("no child of process {parent} after {timeout:?}")
}

/// Removes a sandbox's cgroup directories in every hierarchy.
fn remove_cgroups(name: &str) {
    for root in CGROUP_ROOTS {
        remove_cgroup_tree(&Path::new(root).join(name));
    }
}

/// Removes a cgroup and its children, deepest first, waiting briefly for processes to leave.
pub(crate) fn remove_cgroup_tree(top: &Path) {
    for _ in 0..50 {
        if !top.is_dir() {
            return;
        }
        let mut dirs = Vec::new();
        collect_dirs(top, &mut dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in &dirs {
            let _ = std::fs::remove_dir(d);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_dirs(&entry.path(), out);
            }
        }
    }
}
