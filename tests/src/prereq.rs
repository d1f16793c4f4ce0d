//! Prerequisite checks. A test whose prerequisite is missing fails with a message that says
//! what to install or how to run; it never passes silently.

use std::path::PathBuf;

/// The environment variable naming the directory of the `etcd` and `etcdctl` binaries every
/// test runs (e.g. the etcd 3.5 that `scripts/etcd35.sh` unpacks and prints). Unset: Debian's
/// `etcd-server` and `etcd-client` packages, found on PATH.
pub const ETCD_BIN_DIR_ENV: &str = "CALSEG_ETCD_BIN_DIR";

const HOW: &str = "run the README's test command (`./scripts/test.sh`), which installs it";

/// Finds `command` on PATH, or panics naming the Debian package that provides it.
pub fn require_command(command: &str, debian_package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(command))
            .find(|candidate| candidate.is_file())
    });
    match found {
        Some(path) => path,
        None => panic!(
            "prerequisite missing: `{command}` is not on PATH. Install it with \
             `apt-get install -y {debian_package}`, or {HOW}."
        ),
    }
}

/// The `etcd` or `etcdctl` binary the tests run: from [`ETCD_BIN_DIR_ENV`]'s directory when it
/// is set, else from PATH. Panics, saying what to install or run, when it is missing.
pub fn etcd_tool(command: &str) -> PathBuf {
    let package = if command == "etcd" {
        "etcd-server"
    } else {
        "etcd-client"
    };
    match std::env::var_os(ETCD_BIN_DIR_ENV).filter(|dir| !dir.is_empty()) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            let path = dir.join(command);
            if !path.is_file() {
                panic!(
                    "prerequisite missing: {ETCD_BIN_DIR_ENV}={} has no `{command}`. Point it at \
                     a directory holding etcd and etcdctl (`scripts/etcd35.sh` fetches etcd 3.5 \
                     and prints one), or unset it to use Debian's `{package}` from PATH.",
                    dir.display()
                );
            }
            path
        }
        None => require_command(command, package),
    }
}

/// Panics unless the test runs as root (namespaces, mounts and systemd need it).
pub fn require_root() {
    if !nix::unistd::Uid::effective().is_root() {
        panic!(
            "prerequisite missing: this test must run as root (it boots systemd in a \
             namespace sandbox). Run the suite with `sudo ./scripts/test.sh`."
        );
    }
}
