//! The workspace's crate boundaries, read from `cargo metadata`: what the shipped binaries
//! may depend on (never the test kit), and which way the calseg crates point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Each package's normal (not dev, not build) dependencies, by package name.
fn normal_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata JSON");
    let names: BTreeMap<&str, &str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let mut graph = BTreeMap::new();
    for node in metadata["resolve"]["nodes"].as_array().expect("resolve") {
        let deps = node["deps"]
            .as_array()
            .expect("deps")
            .iter()
            .filter(|dep| {
                dep["dep_kinds"]
                    .as_array()
                    .expect("dep_kinds")
                    .iter()
                    .any(|kind| kind["kind"].is_null())
            })
            .map(|dep| names[dep["pkg"].as_str().unwrap()].to_owned())
            .collect();
        graph.insert(names[node["id"].as_str().unwrap()].to_owned(), deps);
    }
    graph
}

/// Every package `package` depends on, directly or not, through normal dependencies.
fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, package: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![package.to_owned()];
    while let Some(next) = todo.pop() {
        for dep in graph.get(&next).into_iter().flatten() {
            if seen.insert(dep.clone()) {
                todo.push(dep.clone());
            }
        }
    }
    seen
}

#[test]
fn the_shipped_crates_never_depend_on_the_test_kit() {
    let graph = normal_dependencies();
    for shipped in [
        "calseg-server",
        "calseg-agent",
        "calseg-api",
        "calseg-service",
    ] {
        let deps = reaches(&graph, shipped);
        assert!(
            !deps.contains("calseg-testkit"),
            "{shipped} depends on calseg-testkit: {deps:?}"
        );
    }
    assert!(reaches(&graph, "calseg-tests").contains("calseg-testkit"));
}

#[test]
fn the_api_crate_depends_on_no_other_calseg_crate() {
    let graph = normal_dependencies();
    let calseg: Vec<String> = reaches(&graph, "calseg-api")
        .into_iter()
        .filter(|name| name.starts_with("calseg-"))
        .collect();
    assert!(calseg.is_empty(), "calseg-api depends on {calseg:?}");
}

#[test]
fn the_domain_crate_has_no_http_server_and_points_only_at_the_api() {
    let graph = normal_dependencies();
    // Directly: etcd-client's gRPC transport brings hyper and tonic's router below it.
    let direct = &graph["calseg-control"];
    for forbidden in [
        "axum",
        "hyper",
        "hyper-util",
        "tower",
        "tower-http",
        "reqwest",
    ] {
        assert!(
            !direct.contains(forbidden),
            "calseg-control depends on {forbidden}"
        );
    }
    let deps = reaches(&graph, "calseg-control");
    let calseg: Vec<&String> = deps.iter().filter(|d| d.starts_with("calseg-")).collect();
    assert_eq!(
        calseg,
        ["calseg-api"],
        "calseg-control's calseg dependencies"
    );
    assert!(graph["calseg-server"].contains("calseg-control"));
}
