//! `calseg-docs` run as packaging/build.sh runs it (issue 18, point 8: `calseg-docs --help`
//! wrote the docs into `./--help`).

// Test code: a failed step should panic with its message.
#![allow(clippy::expect_used)]

use std::process::{Command, Output};

fn docs(cwd: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_calseg-docs"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run calseg-docs")
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    let list = std::fs::read_dir(dir).expect("list the directory");
    list.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn issue_18_help_prints_usage_and_writes_nothing() {
    let cwd = tempfile::tempdir().expect("temp dir");
    for help in ["--help", "-h"] {
        let out = docs(cwd.path(), &[help]);
        assert_eq!(out.status.code(), Some(0), "{help}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("Usage: calseg-docs --out <DIR>"),
            "{stdout}"
        );
    }
    assert_eq!(entries(cwd.path()), Vec::<String>::new(), "nothing written");
}

#[test]
fn issue_18_unknown_flags_and_a_bare_directory_are_refused() {
    let cwd = tempfile::tempdir().expect("temp dir");
    for args in [&["--bogus"][..], &["docs"], &[]] {
        let out = docs(cwd.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("Usage: calseg-docs --out <DIR>"),
            "{stderr}"
        );
    }
    assert_eq!(entries(cwd.path()), Vec::<String>::new(), "nothing written");
}

#[test]
fn out_writes_man_pages_and_completions_there() {
    let cwd = tempfile::tempdir().expect("temp dir");
    let out = docs(cwd.path(), &["--out", "docs"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(entries(cwd.path()), ["docs"]);
    let mut written = entries(&cwd.path().join("docs"));
    written.sort();
    assert_eq!(written, ["completions", "man"]);
    assert!(cwd.path().join("docs/man/calseg-agent.1").is_file());
}
