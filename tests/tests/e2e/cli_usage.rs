//! Issue 18, points 2 and 7: the real binaries' usage errors. A refused command line exits 64
//! (sysexits EX_USAGE) with the usage on stderr, apart from `plan`'s and `apply`'s 2
//! ("changes") and from failures (1); `--help` exits 0.

use calseg_tests::bins;
use std::process::{Command, Output};

fn run(binary: &str, args: &[&str]) -> Output {
    Command::new(bins::path(binary))
        .args(["--config", "/dev/null"])
        .args(args)
        .env_remove("CALSEG_SERVER_CONFIG")
        .output()
        .expect("run the binary")
}

fn assert_usage_error(binary: &str, args: &[&str], says: &str) {
    let out = run(binary, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{binary} {args:?}: {stderr}");
    assert!(stderr.contains(says), "{binary} {args:?}: {stderr}");
    assert!(stderr.contains("Usage:"), "{binary} {args:?}: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "{binary} {args:?}: nothing on stdout"
    );
}

#[test]
fn issue_18_token_create_with_node_and_uses_is_a_usage_error() {
    assert_usage_error(
        "calseg-server",
        &["token", "create", "--node", "worker-1", "--uses", "5"],
        "the argument '--node <NODE>' cannot be used with '--uses <N>'",
    );
}

#[test]
fn issue_18_usage_errors_exit_64_not_2() {
    assert_usage_error(
        "calseg-server",
        &["plan", "--bogus"],
        "unexpected argument '--bogus'",
    );
    assert_usage_error(
        "calseg-server",
        &["no-such-command"],
        "unrecognized subcommand",
    );
    assert_usage_error(
        "calseg-server",
        &["restore", "backup-file"],
        "--ca-hash <sha256:HEX>",
    );
    assert_usage_error("calseg-server", &["backup"], "<FILE>");
    assert_usage_error(
        "calseg-agent",
        &["once", "--bogus"],
        "unexpected argument '--bogus'",
    );
    for binary in ["calseg-server", "calseg-agent"] {
        let help = run(binary, &["--help"]);
        assert_eq!(help.status.code(), Some(0), "{binary} --help");
        assert!(String::from_utf8_lossy(&help.stdout).contains("Usage:"));
    }
}
