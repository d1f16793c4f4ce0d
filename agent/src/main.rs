//! `calseg-agent`: the node agent's command line. Thin: it parses arguments and calls the library.

use clap::Parser;

/// calseg's node agent: installs this host's Calico etcd identities and restarts Calico units.
///
/// The enrollment and reconcile commands arrive with the agent work; today the binary only
/// reports its version.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
