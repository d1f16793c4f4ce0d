//! Leftovers of test processes that were killed before their handles could clean up. Child
//! processes die with their parent (parent-death signal) and namespaces with their processes,
//! but scratch directories and sandbox cgroups stay. Every harness name carries the owning test
//! process's id; the first harness use in a process removes those whose owner is gone.

use std::path::Path;
use std::sync::Once;

/// Prefix of the scratch directories and cgroups this harness creates.
pub(crate) const PREFIX: &str = "calseg-";

static SWEPT: Once = Once::new();
static SWEPT_NETNS: Once = Once::new();

/// A name for a harness resource of `kind` owned by this process: `calseg-{kind}-{pid}-`.
pub(crate) fn owned_name(kind: &str) -> String {
    format!("{PREFIX}{kind}-{}-", std::process::id())
}

/// Removes, once per process, leftovers whose owning process no longer exists.
pub(crate) fn sweep_once(cgroup_roots: &[&str]) {
    SWEPT.call_once(|| {
        let temp = std::env::temp_dir();
        for entry in std::fs::read_dir(&temp).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if owner_is_gone(&name) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        for root in cgroup_roots {
            for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if owner_is_gone(&name) {
                    crate::sandbox::remove_cgroup_tree(&entry.path());
                }
            }
        }
    });
}

/// Removes, once per process, named network namespaces (`calseg-ns-{pid}-N`) whose owning
/// process no longer exists; their veth pairs go with them.
pub(crate) fn sweep_netns_once() {
    SWEPT_NETNS.call_once(|| {
        for entry in std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if owner_is_gone(&name) {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", &name])
                    .output();
            }
        }
    });
}

/// True for `calseg-{kind}-{pid}-…` names whose pid is not a running process.
fn owner_is_gone(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return false;
    };
    let mut parts = rest.splitn(3, '-');
    let (Some(_kind), Some(pid), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    match pid.parse::<u32>() {
        Ok(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_of_dead_owners_are_swept() {
        assert!(!owner_is_gone(&format!(
            "calseg-etcd-{}-x",
            std::process::id()
        )));
        assert!(owner_is_gone("calseg-etcd-4000000-x"));
        assert!(!owner_is_gone("calseg-etcd-notapid-x"));
        assert!(!owner_is_gone("other-etcd-4000000-x"));
    }
}
