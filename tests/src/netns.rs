//! `NetNs`: a bare network namespace of the test's own (`ip netns add`), linked to the test's
//! namespace by a veth pair, for running a real process (a calseg-server replica) on its own
//! network that the test can cut off. Deleted, with its veth pair, when the handle drops;
//! names carry the test process's id so a killed run's leftovers are swept.

use crate::veth::{self, VethLink};
use anyhow::{Context, Result};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A named network namespace with a veth link to the test.
pub struct NetNs {
    name: String,
    link: VethLink,
}

impl NetNs {
    /// Creates the namespace (loopback up) and its veth link.
    pub fn create() -> Result<Self> {
        crate::prereq::require_root();
        crate::prereq::require_command("ip", "iproute2");
        crate::sweep::sweep_netns_once();
        let name = format!(
            "{}{}",
            crate::sweep::owned_name("ns"),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        veth::run_ok(Command::new("ip").args(["netns", "add", &name]))
            .context("create a network namespace")?;
        let exec_name = name.clone();
        let link = veth::create(&name, &move |line: &str| {
            Ok(Command::new("ip")
                .args(["netns", "exec", &exec_name, "sh", "-c", line])
                .output()?)
        });
        match link {
            Ok(link) => Ok(Self { name, link }),
            Err(error) => {
                let _ = Command::new("ip").args(["netns", "del", &name]).output();
                Err(error)
            }
        }
    }

    /// The namespace's name (`ip netns exec NAME …`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The veth link: the test's address, the namespace's address, link up and down.
    pub fn link(&self) -> &VethLink {
        &self.link
    }

    /// The arguments that run `program args…` inside the namespace: `ip netns exec NAME
    /// program args…` (prefix them to a command line).
    pub fn exec_prefix(&self) -> Vec<String> {
        vec!["netns".into(), "exec".into(), self.name.clone()]
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace destroys its end of the pair, and with it the test's end.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.link.host_ifname])
            .output();
    }
}
