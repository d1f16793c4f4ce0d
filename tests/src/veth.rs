//! veth pairs between the test's network namespace and one a test made (a sandbox's or a bare
//! `NetNs`): interface names `csg{slot}h` (the test's end) and `csg{slot}s`, addresses
//! `10.231.{slot}.1/30` and `.2/30`. A slot is taken by creating its interface, so parallel
//! tests never share one.

use anyhow::{Result, bail};
use std::process::{Command, Output};

/// The veth link between the test and a namespace of its own.
#[derive(Clone, Debug)]
pub struct VethLink {
    /// Address of the test's end: services the namespace must reach listen here.
    pub host_addr: String,
    /// Address of the namespace's end.
    pub sandbox_addr: String,
    pub(crate) host_ifname: String,
}

impl VethLink {
    /// Takes the link down (`up = false`) or up again, from the test's end: the namespace is
    /// cut off from the test's network, and back.
    pub fn set_up(&self, up: bool) -> Result<()> {
        run_ok(Command::new("ip").args([
            "link",
            "set",
            &self.host_ifname,
            if up { "up" } else { "down" },
        ]))
    }
}

/// Creates a veth pair, moves one end into `netns` (a pid or a named namespace, as `ip link set
/// … netns` takes it) and configures it there with `run_inside` (a shell command line).
pub(crate) fn create(netns: &str, run_inside: &dyn Fn(&str) -> Result<Output>) -> Result<VethLink> {
    for slot in 1..=250u32 {
        let host_ifname = format!("csg{slot}h");
        let inner_ifname = format!("csg{slot}s");
        let added = Command::new("ip")
            .args(["link", "add", &host_ifname, "type", "veth", "peer", "name"])
            .arg(&inner_ifname)
            .output()?;
        if !added.status.success() {
            continue; // name taken by another test: try the next slot
        }
        let host_addr = format!("10.231.{slot}.1");
        let sandbox_addr = format!("10.231.{slot}.2");
        run_ok(Command::new("ip").args(["link", "set", &inner_ifname, "netns", netns]))?;
        run_ok(Command::new("ip").args([
            "addr",
            "add",
            &format!("{host_addr}/30"),
            "dev",
            &host_ifname,
        ]))?;
        run_ok(Command::new("ip").args(["link", "set", &host_ifname, "up"]))?;
        let inside = format!(
            "ip link set lo up && ip addr add {sandbox_addr}/30 dev {inner_ifname} && ip link set {inner_ifname} up"
        );
        let output = run_inside(&inside)?;
        if !output.status.success() {
            bail!(
                "configuring the namespace's veth failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        return Ok(VethLink {
            host_addr,
            sandbox_addr,
            host_ifname,
        });
    }
    bail!("no free veth slot (csg1h..csg250h all exist)")
}

pub(crate) fn run_ok(command: &mut Command) -> Result<()> {
    let output = command.output()?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
