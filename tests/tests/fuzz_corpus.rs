//! Issue 10: the fuzz corpora as a regression test. Every file under `fuzz/corpus/<target>/`
//! (the committed seeds) and `fuzz/regressions/<target>/` (inputs that once crashed a target)
//! goes through the same body the cargo-fuzz target runs, on the stable toolchain, in the normal
//! test suite. A fuzz crash is fixed by adding its input to `fuzz/regressions/<target>/`.

// Test code: a failed step should panic with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

type Body = fn(&[u8]);

/// Every fuzz target and its body, as `fuzz/fuzz_targets/*.rs` call them.
const TARGETS: &[(&str, Body)] = &[
    ("policy", calseg_testkit::fuzz::server::policy),
    ("csr", calseg_testkit::fuzz::server::csr),
    ("api_json", calseg_testkit::fuzz::server::api_json),
    ("server_config", calseg_testkit::fuzz::server::server_config),
    (
        "cni_conflist",
        calseg_testkit::fuzz::agent::cni_conflist_patch,
    ),
    ("agent_config", calseg_testkit::fuzz::agent::agent_config),
    ("backup", calseg_testkit::fuzz::server::backup),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.is_file());
    files.sort();
    files
}

#[test]
fn every_corpus_and_regression_input_runs_through_its_target() {
    let mut seeds = 0;
    for (target, body) in TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(target));
        assert!(!corpus.is_empty(), "fuzz/corpus/{target}/ has no seeds");
        let regressions = files(&fuzz_dir().join("regressions").join(target));
        for file in corpus.iter().chain(&regressions) {
            let data = std::fs::read(file).expect("read");
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(outcome.is_ok(), "{target}: {} panicked", file.display());
            seeds += 1;
        }
    }
    eprintln!("{seeds} inputs ran through {} targets", TARGETS.len());
}

#[test]
fn every_fuzz_target_file_calls_its_shared_body() {
    for (target, _) in TARGETS {
        let path = fuzz_dir().join(format!("fuzz_targets/{target}.rs"));
        let source = std::fs::read_to_string(&path).expect("fuzz target source");
        assert!(
            source.contains("calseg_testkit::fuzz::"),
            "{} does not call a shared body",
            path.display()
        );
    }
}
