//! The workspace's binaries, as the end-to-end tests run them: the real `calseg-server` and
//! `calseg-agent` executables that users run, and this crate's own stand-ins (`calico-replay`),
//! built by `cargo build --bins` (the README's test command builds them before the tests).

use std::path::PathBuf;

/// The cargo target directory the running test executable was built in (`target/`).
pub fn target_dir() -> PathBuf {
    // Test executables live in target/<profile>/deps/ (benchmarks too).
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// The path of workspace binary `name` next to the running test executable.
pub fn path(name: &str) -> PathBuf {
    // Test executables live in target/<profile>/deps/; binaries in target/<profile>/.
    let found = std::env::current_exe().ok().and_then(|exe| {
        let profile_dir = exe.parent()?.parent()?.to_path_buf();
        let candidate = profile_dir.join(name);
        candidate.is_file().then_some(candidate)
    });
    match found {
        Some(path) => path,
        None => panic!(
            "prerequisite missing: the `{name}` binary was not built. Run `cargo build --bins` \
             first (the README's test command, ./scripts/test.sh, does)."
        ),
    }
}

/// `calseg-server COMMAND --policy POLICY` talking to etcd directly as the identity in `etcd`
/// (`--etcd-ca/--etcd-cert/--etcd-key`), with an empty configuration (`--config /dev/null`) so
/// nothing under the machine's /etc/calseg is read.
pub fn server_direct(
    command: &str,
    policy: &std::path::Path,
    etcd: &crate::pki::TlsFiles,
) -> std::process::Command {
    server_direct_with(&path("calseg-server"), command, policy, etcd)
}

/// [`server_direct`] with another build of the binary (benchmarks use the release build).
pub fn server_direct_with(
    binary: &std::path::Path,
    command: &str,
    policy: &std::path::Path,
    etcd: &crate::pki::TlsFiles,
) -> std::process::Command {
    let mut server = std::process::Command::new(binary);
    server
        .args(["--config", "/dev/null", command, "--policy"])
        .arg(policy)
        .arg("--etcd-ca")
        .arg(&etcd.ca)
        .arg("--etcd-cert")
        .arg(&etcd.cert)
        .arg("--etcd-key")
        .arg(&etcd.key);
    server
}
