//! Prerequisite checks. A test whose prerequisite is missing fails with a message that says
//! what to install or how to run; it never passes silently.

use std::path::PathBuf;

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

/// Panics unless the test runs as root (namespaces, mounts and systemd need it).
pub fn require_root() {
    if !nix::unistd::Uid::effective().is_root() {
        panic!(
            "prerequisite missing: this test must run as root (it boots systemd in a \
             namespace sandbox). Run the suite with `sudo ./scripts/test.sh`."
        );
    }
}
