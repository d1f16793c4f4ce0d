//! `calico-replay`: performs the etcd operations calico-node and Felix perform, as the identity
//! in the environment, and fails naming the first operation and key etcd refuses. The work is
//! in `calseg_tests::replay`; this parses the command line and maps outcomes to exit codes.

use calseg_tests::replay::{self, settings::Settings};
use std::process::ExitCode;

const HELP: &str = "\
calico-replay: replays Calico's etcd access (calico-node start-up and Felix) as one identity

USAGE:
    calico-replay [run|once] [--trace]
    calico-replay --help

MODES:
    run     (default; for a systemd unit's ExecStart) the sequence below, then every second
            keeps the status lease alive and rewrites the status report, until SIGTERM or
            SIGINT (exit 0). Exits 1 as soon as etcd refuses an operation, so a unit running
            it fails when its identity is wrong.
    once    the sequence below, then exit: 0 when every operation was allowed, 1 otherwise.

THE SEQUENCE (R3 = /calico/resources/v3/projectcalico.org):
    1 startup singletons  get R3/clusterinformations/default, R3/felixconfigurations/default,
                          list R3/ippools/, get R3/bgpconfigurations/default (3.32+); each is
                          created (txn) only when missing, updated only when incomplete or of
                          another release, and the output says when it had to
    2 tiers               txn-create of the release's tiers, at every start (3.29+)
    3 node objects        R3/nodes/<node> create-or-update, R3/felixconfigurations/node.<node>
    4 list and watch      every prefix Felix and confd follow, and /calico/ipam/v2/host/<node>/
    5 status              lease 90s; put /calico/felix/v2/no-region/host/<node>/status (leased),
                          .../last_reported_status, /calico/felix/v1/host/<node>/endpoint/replay-hep
    6 ipam                get /calico/ipam/v2/config (created only when missing), block
                          affinity, block 10.65.<n>.0/26, handle ipip-tunnel-addr-<node>,
                          tunnel address on the Node
    One line per phase, then a summary. --trace also prints every operation with the access
    etcd checked for it.

ENVIRONMENT (as Calico reads it; CALICO_-prefixed names win over the bare ones):
    DATASTORE_TYPE        etcdv3 or unset; anything else is refused
    ETCD_ENDPOINTS        etcd client URLs, comma-separated (required)
    ETCD_CA_CERT_FILE     CA bundle etcd's server certificate chains to (required)
    ETCD_CERT_FILE        client certificate; its CN is the etcd user (required)
    ETCD_KEY_FILE         its private key (required)
    NODENAME              the node name; else HOSTNAME; else the OS hostname, lowercased
    CALICO_VERSION        release to replay, e.g. 3.29 or v3.29.7 (default 3.29)
    NO_DEFAULT_POOLS      true: create no default IP pool when none exists
    CALICO_IPV6POOL_CIDR  none: no default IPv6 pool (nor with FELIX_IPV6SUPPORT=false)
    CLUSTER_TYPE          cluster types ClusterInformation must list
    ETCD_USERNAME/ETCD_PASSWORD are refused: they would replace the certificate identity.

EXIT STATUS:
    0 success (or stopped by a signal in run mode); 1 an operation failed (the message names
    the operation, the key and the phase); 2 bad command line or environment.
";

enum Mode {
    Run,
    Once,
}

fn parse(args: &[String]) -> Result<Option<(Mode, bool)>, String> {
    let mut mode = None;
    let mut trace = false;
    for arg in args {
        match arg.as_str() {
            "-h" | "--help" | "help" => return Ok(None),
            "--trace" => trace = true,
            "run" | "once" if mode.is_some() => return Err("give one mode".into()),
            "run" => mode = Some(Mode::Run),
            "once" => mode = Some(Mode::Once),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some((mode.unwrap_or(Mode::Run), trace)))
}

async fn replay(settings: Settings, mode: Mode, trace: bool) -> ExitCode {
    let mut replayed = match replay::run_sequence(&settings, |line| println!("{line}")).await {
        Ok(replayed) => replayed,
        Err((phase, error)) => {
            let at = if phase == 0 {
                "connecting".to_owned()
            } else {
                format!("phase {phase}")
            };
            eprintln!("calico-replay: node {}: {error} ({at})", settings.node);
            return ExitCode::from(1);
        }
    };
    let ds = &replayed.datastore;
    if trace {
        for op in &ds.performed {
            println!("trace {:<10} {:<16} {}", op.access, op.operation, op.key);
        }
    }
    let c = ds.counts();
    println!(
        "calico-replay: ok: node {}, Calico {}, {} phases: {} reads, {} writes, {} watches, {} lease operations",
        settings.node,
        settings.version,
        replay::phases::COUNT,
        c.reads,
        c.writes,
        c.watches,
        c.leases
    );
    if let Mode::Once = mode {
        return ExitCode::SUCCESS;
    }
    println!(
        "calico-replay: keeping the status of node {} fresh every {:?}",
        settings.node,
        replay::REFRESH_EVERY
    );
    match replay::keep_reporting(&mut replayed, calseg_agent::daemon::signals(), |line| {
        eprintln!("calico-replay: {line}")
    })
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!(
                "calico-replay: node {}: {error} (status refresh)",
                settings.node
            );
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, trace) = match parse(&args) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(problem) => {
            eprintln!("calico-replay: {problem}; see --help");
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(problem) => {
            eprintln!("calico-replay: {problem}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("calico-replay: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(replay(settings, mode, trace))
}
