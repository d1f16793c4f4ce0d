//! The command line's shape: which flag combinations clap refuses, and the exit status of a
//! usage error. (That every argument carries help text is checked with the man pages, in
//! packaging/docs.)

use super::*;
use clap::error::ErrorKind;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("calseg-server").chain(args.iter().copied()))
}

/// Issue 18, point 7: `--uses` counts the nodes of a `--match` token; with `--node` it meant
/// nothing and was accepted silently (clap drops `requires = "glob"` once `--node`, which
/// conflicts with `--match`, is present).
#[test]
fn issue_18_token_create_refuses_uses_with_node() {
    let Err(error) = parse(&["token", "create", "--node", "x", "--uses", "5"]) else {
        panic!("--node with --uses is accepted");
    };
    assert_eq!(error.kind(), ErrorKind::ArgumentConflict);
    let message = error.to_string();
    assert!(
        message.contains("--uses") && message.contains("--node"),
        "names both flags: {message}"
    );
    assert!(message.contains("Usage:"), "shows the usage: {message}");
}

#[test]
fn token_create_accepts_node_alone_and_match_with_uses() {
    assert!(parse(&["token", "create", "--node", "x"]).is_ok());
    assert!(parse(&["token", "create", "--match", "worker-*", "--uses", "5"]).is_ok());
    assert!(parse(&["token", "create", "--match", "worker-*"]).is_ok());
    let alone = parse(&["token", "create", "--uses", "5"]).err();
    assert_eq!(
        alone.map(|e| e.kind()),
        Some(ErrorKind::MissingRequiredArgument),
        "--uses needs --match"
    );
}

/// Issue 18, point 2: a usage error exits 64, apart from `plan`'s 2 ("changes"); help is 0.
#[test]
fn issue_18_usage_errors_exit_64_not_2() {
    for args in [
        &["plan", "--bogus"][..],
        &["token", "create", "--node", "x", "--uses", "5"],
        &["no-such-command"],
        &[],
    ] {
        let Err(error) = parse(args) else {
            panic!("{args:?} parsed");
        };
        assert_eq!(parse_error_exit(&error), EXIT_USAGE, "{args:?}");
    }
    for args in [&["--help"][..], &["plan", "--help"], &["--version"]] {
        let Err(error) = parse(args) else {
            panic!("{args:?} parsed");
        };
        assert_eq!(parse_error_exit(&error), 0, "{args:?}");
    }
}
