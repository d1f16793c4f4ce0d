//! calseg-tests: the harness every end-to-end test stands on, and those tests (in `tests/`).
//!
//! The harness runs the real parts calseg's promises are about: real etcd servers with
//! client-certificate auth, and real systemd managers booted in sandboxes that cannot touch the
//! machine's root filesystem. Every handle cleans up after itself when dropped, also when the
//! test panics; child processes also die with the test process (parent-death signal).
//!
//! # Layout
//! - [`agent_host`]: a sandboxed host running the real calseg-agent and a stand-in Calico unit.
//! - [`api_client`]: a minimal client of the server's API, for the server's own tests.
//! - [`bench`]: the benchmark measurements the bench targets and the report share.
//! - [`bins`]: paths of the real `calseg-server` and `calseg-agent` executables.
//! - [`previous_release`]: the previous calseg release's server and agent, built from its
//!   pinned commit once and cached under target/compat/, for the mixed-version tests.
//! - [`prereq`]: checks for root and for the Debian packages the tests need, failing loudly;
//!   which etcd and etcdctl the tests run (`CALSEG_ETCD_BIN_DIR`, default: PATH).
//! - [`promtool`]: `promtool check metrics` on a scrape or a textfile; the strict OpenMetrics
//!   parser on an OpenMetrics scrape.
//! - [`ports`]: free loopback ports, never handed out twice in one test process.
//! - [`pki`]: a throwaway CA minting server and client certificates with rcgen.
//! - [`process`]: a child process that is killed when its handle drops or its parent dies.
//! - [`replay`]: a Calico access replay, the `calico-replay` binary's library: calico-node's and
//!   Felix's etcd operations performed as one identity.
//! - [`etcd`]: `EtcdCluster`, 1 or 3 real etcd members with TLS, client-cert auth and a root user.
//! - [`server`]: `ServerProcess`, the real calseg-server initialized against a harness etcd.
//! - [`rogue_server`]: `RogueServer`, a compromised server holding the real server's TLS key
//!   that serves a hand-built manifest and keeps the agent's reports.
//! - [`sandbox`]: `SandboxHost`, a real systemd as PID 1 on an overlay of `/`.
//! - [`netns`]: `NetNs`, a bare network namespace with a veth link the test can take down.
//! - `veth`: the veth pairs of sandboxes and `NetNs`.
//! - `sweep`: removes what test processes killed halfway left behind.

/// Sandboxed hosts running calseg-agent.
pub mod agent_host;
/// A minimal API client for tests.
pub mod api_client;
/// Benchmark measurements.
pub mod bench;
/// The workspace's binaries.
pub mod bins;
/// Real etcd clusters.
pub mod etcd;
/// Network namespaces of the test's own.
pub mod netns;
/// A throwaway test CA.
pub mod pki;
/// Free loopback TCP ports.
pub mod ports;
/// Prerequisite checks that fail with what to install.
pub mod prereq;
/// The previous release, built from its pinned commit.
pub mod previous_release;
/// Child processes tied to the test's lifetime.
pub mod process;
/// promtool's check of metrics.
pub mod promtool;
/// Calico's etcd access, replayed.
pub mod replay;
/// A compromised calseg-server serving hand-built manifests.
pub mod rogue_server;
/// Sandboxed hosts running a real systemd.
pub mod sandbox;
/// The real calseg-server.
pub mod server;
/// Leftovers of killed test processes.
mod sweep;
/// veth pairs to namespaces the tests made.
mod veth;
