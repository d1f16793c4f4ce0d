//! `calseg-server`: the control plane's command line. Thin: it parses arguments and calls the
//! library.

use clap::Parser;

/// calseg's control plane: segmentation policy, etcd RBAC and component certificates.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
