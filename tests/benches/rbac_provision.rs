//! Benchmark: provisioning etcd RBAC for N nodes x 3 components with `calseg-server apply`,
//! then a no-change `plan`, beside the documented manual procedure (one `etcdctl` invocation per
//! operation, as Calico's docs do) measured in the same run on the same kind of etcd.
//!
//! Run: `cargo build --release --bins && cargo bench -p calseg-tests --bench rbac_provision`.
//! BENCH_NODES (default 1000) sizes calseg's run; BENCH_MANUAL_NODES (default 100) sizes the
//! manual baseline, and calseg is measured again at that size for a like-for-like ratio.
//! Figures are printed; nothing is asserted about time.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use calseg_tests::etcd::EtcdCluster;
use calseg_tests::pki::TlsFiles;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const COMPONENTS: [(&str, &str); 3] = [
    ("calico-node", "calico-node"),
    ("cni-plugin", "cni-plugin"),
    ("calicoctl-ro", "calicoctl-read-only"),
];

fn policy(endpoint: &str, nodes: usize) -> String {
    let mut text = format!("calico_version = \"3.29\"\n[etcd]\nendpoints = [\"{endpoint}\"]\n");
    for (name, table) in COMPONENTS {
        text.push_str(&format!("[components.{name}]\ngrants = \"{table}\"\n"));
        if name == "calico-node" {
            text.push_str(
                "extra_grants = [ { prefix = \"/calico/resources/v3/projectcalico.org/tiers/\", access = \"readwrite\" } ]\n\
                 node_grants = [ { prefix = \"/calico/felix/v1/host/{node}/\", access = \"readwrite\" } ]\n",
            );
        }
    }
    let names: Vec<String> = (0..nodes).map(|i| format!("\"node-{i}\"")).collect();
    text.push_str(&format!(
        "[[hosts]]\nnames = [{}]\ncomponents = [\"calico-node\", \"cni-plugin\", \"calicoctl-ro\"]\n",
        names.join(", ")
    ));
    text
}

fn server_bin() -> std::path::PathBuf {
    let release = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/calseg-server");
    if release.is_file() {
        return release;
    }
    calseg_tests::bins::path("calseg-server")
}

fn run_server(command: &str, policy: &Path, files: &TlsFiles) -> (Duration, String) {
    let started = Instant::now();
    let output = calseg_tests::bins::server_direct_with(&server_bin(), command, policy, files)
        .arg("--json")
        .output()
        .expect("run calseg-server");
    let elapsed = started.elapsed();
    let code = output.status.code();
    assert!(
        code == Some(0) || (command == "plan" && code == Some(2)),
        "calseg-server {command} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        elapsed,
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// The manual procedure for the same RBAC: etcdctl role add / grant-permission / user add /
/// user grant-role, one process per operation. Returns (time, operations).
fn manual(etcd: &EtcdCluster, nodes: usize) -> (Duration, usize) {
    let files = etcd.root_files();
    let etcdctl = |args: &[&str]| {
        let status = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", etcd.endpoint(0)))
            .arg(format!("--cacert={}", files.ca.display()))
            .arg(format!("--cert={}", files.cert.display()))
            .arg(format!("--key={}", files.key.display()))
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("run etcdctl");
        assert!(status.success(), "etcdctl {args:?} failed");
    };
    let shared = |table: &str| -> Vec<(String, String)> {
        let version = calseg_server::policy::CalicoVersion::new(3, 29);
        let table = calseg_server::policy::GrantTable::parse(table).expect("table");
        calseg_server::policy::builtin_grants(version, table)
            .into_iter()
            .map(|p| (p.access.to_string(), p.key))
            .collect()
    };
    let started = Instant::now();
    let mut operations = 0;
    for (name, table) in COMPONENTS {
        etcdctl(&["role", "add", &format!("manual.{name}")]);
        operations += 1;
        let mut grants = shared(table);
        if name == "calico-node" {
            grants.push((
                "readwrite".into(),
                "/calico/resources/v3/projectcalico.org/tiers/".into(),
            ));
        }
        for (access, prefix) in grants {
            etcdctl(&[
                "role",
                "grant-permission",
                &format!("manual.{name}"),
                "--prefix=true",
                &access,
                &prefix,
            ]);
            operations += 1;
        }
    }
    for i in 0..nodes {
        let node = format!("node-{i}");
        for (name, _) in COMPONENTS {
            let user = format!("{name}.{node}");
            etcdctl(&["user", "add", &user, "--no-password"]);
            etcdctl(&["user", "grant-role", &user, &format!("manual.{name}")]);
            operations += 2;
            if name == "calico-node" {
                let role = format!("manual.{name}.{node}");
                etcdctl(&["role", "add", &role]);
                etcdctl(&[
                    "role",
                    "grant-permission",
                    &role,
                    "--prefix=true",
                    "readwrite",
                    &format!("/calico/felix/v1/host/{node}/"),
                ]);
                etcdctl(&["user", "grant-role", &user, &role]);
                operations += 3;
            }
        }
    }
    (started.elapsed(), operations)
}

/// Applies from scratch on a fresh etcd, then plans again; returns (apply, plan, changes).
fn calseg(runtime: &tokio::runtime::Runtime, nodes: usize) -> (Duration, Duration, usize) {
    let etcd = runtime.block_on(EtcdCluster::start()).expect("etcd");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, policy(&etcd.endpoint(0), nodes)).expect("policy");
    let (apply, out) = run_server("apply", &path, etcd.root_files());
    let applied: serde_json::Value = serde_json::from_str(out.trim()).expect("apply JSON");
    let changes = applied["applied"].as_u64().unwrap_or(0) as usize;
    let (plan, out) = run_server("plan", &path, etcd.root_files());
    let plan_json: serde_json::Value = serde_json::from_str(&out).expect("plan JSON");
    assert_eq!(
        plan_json["changes"].as_array().map(Vec::len),
        Some(0),
        "second plan not empty"
    );
    (apply, plan, changes)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    calseg_tests::prereq::require_command("etcdctl", "etcd-client");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let nodes = env_usize("BENCH_NODES", 1000);
    let manual_nodes = env_usize("BENCH_MANUAL_NODES", 100);
    println!("calseg-server binary: {}", server_bin().display());

    let (apply, plan, changes) = calseg(&runtime, nodes);
    println!(
        "calseg  {nodes:>5} nodes x 3: apply from scratch {:>8.2}s ({changes} changes, {:.2} ms/change); no-change plan {:>6.2}s",
        apply.as_secs_f64(),
        apply.as_secs_f64() * 1000.0 / changes.max(1) as f64,
        plan.as_secs_f64()
    );

    let (small_apply, small_plan, small_changes) = calseg(&runtime, manual_nodes);
    let etcd = runtime.block_on(EtcdCluster::start()).expect("etcd");
    let (manual_time, operations) = manual(&etcd, manual_nodes);
    println!(
        "calseg  {manual_nodes:>5} nodes x 3: apply from scratch {:>8.2}s ({small_changes} changes); no-change plan {:>6.2}s",
        small_apply.as_secs_f64(),
        small_plan.as_secs_f64()
    );
    println!(
        "manual  {manual_nodes:>5} nodes x 3: {:>8.2}s ({operations} etcdctl invocations, {:.2} ms each)",
        manual_time.as_secs_f64(),
        manual_time.as_secs_f64() * 1000.0 / operations.max(1) as f64
    );
    println!(
        "ratio at {manual_nodes} nodes: manual / calseg apply = {:.1}x",
        manual_time.as_secs_f64() / small_apply.as_secs_f64()
    );
    if manual_nodes != nodes {
        let per_op = manual_time.as_secs_f64() / operations.max(1) as f64;
        let projected = per_op * operations as f64 * nodes as f64 / manual_nodes as f64;
        println!(
            "manual at {nodes} nodes, projected linearly from its per-invocation time (etcd's auth store slows as it grows, so this is a lower bound): {projected:.1}s; ratio >= {:.1}x",
            projected / apply.as_secs_f64()
        );
    }
}
