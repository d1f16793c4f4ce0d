//! The workspace's crate boundaries, read from `cargo metadata`: what the shipped binaries
//! may depend on (never the test kit), and which way the calseg crates point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Each workspace package's normal (not dev, not build) dependencies, by package name, as its
/// Cargo.toml declares them (`--no-deps`: no registry access, so it runs offline).
fn normal_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata JSON");
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|package| {
            let deps = package["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|dep| dep["kind"].is_null())
                .map(|dep| dep["name"].as_str().expect("name").to_owned())
                .collect();
            (package["name"].as_str().expect("name").to_owned(), deps)
        })
        .collect()
}

/// Every package `package` depends on, directly or through workspace packages, through normal
/// dependencies.
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
    // Directly (etcd-client's gRPC transport brings hyper below it).
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

/// The top-level modules of a crate's `src/` and, for each, the other top-level modules its code
/// names as `crate::…` (comments left out).
fn module_graph(crate_dir: &str) -> BTreeMap<String, BTreeSet<String>> {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(crate_dir)
        .join("src");
    let modules: BTreeSet<String> = std::fs::read_dir(&src)
        .expect("read src")
        .map(|entry| entry.expect("entry").path())
        .filter_map(|path| {
            let stem = path.file_stem()?.to_str()?.to_owned();
            (path.is_dir() || path.extension().is_some_and(|e| e == "rs")).then_some(stem)
        })
        .filter(|name| name != "lib" && name != "main")
        .collect();
    modules
        .iter()
        .map(|module| {
            let mut text = String::new();
            collect_code(
                &src.join(module),
                &src.join(format!("{module}.rs")),
                &mut text,
            );
            let named = crate_refs(&text)
                .into_iter()
                .filter(|name| name != module && modules.contains(name))
                .collect();
            (module.clone(), named)
        })
        .collect()
}

/// The code (not comments) of a module: its file, or every file under its folder.
fn collect_code(dir: &std::path::Path, file: &std::path::Path, text: &mut String) {
    let mut files = vec![file.to_path_buf()];
    let mut todo = vec![dir.to_path_buf()];
    while let Some(next) = todo.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    for path in files {
        for line in std::fs::read_to_string(&path).unwrap_or_default().lines() {
            let code = line.split("//").next().unwrap_or_default();
            text.push_str(code);
            text.push('\n');
        }
    }
}

/// The names `crate::NAME` mentions in `text`.
fn crate_refs(text: &str) -> BTreeSet<String> {
    text.match_indices("crate::")
        .filter(|(at, _)| {
            // `calseg_crate::` or `$crate::` are not this crate's paths.
            !text[..*at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$')
        })
        .map(|(at, m)| {
            text[at + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// A cycle in `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            return Some(path[start..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_import_cycle_between_the_top_level_modules_of_the_server_or_the_domain() {
    for crate_dir in ["server", "control"] {
        let graph = module_graph(crate_dir);
        assert!(graph.len() > 5, "{crate_dir}: {graph:?}");
        assert_eq!(find_cycle(&graph), None, "{crate_dir}: {graph:#?}");
    }
    // The check finds a cycle when there is one.
    let mut cyclic = module_graph("control");
    cyclic
        .get_mut("policy")
        .expect("policy")
        .insert("rollout".into());
    assert!(find_cycle(&cyclic).is_some());
}
