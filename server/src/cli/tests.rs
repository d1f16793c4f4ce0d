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

/// Issue 18, point 2: `rollout status` and `watch` exit by the rollout's state, in the table
/// both binaries share: 0 none/running/done, 2 paused or aborted, 1 rolled back.
#[test]
fn issue_18_rollout_states_map_to_the_shared_exit_table() {
    use calseg_api::exit;
    use calseg_api::rollout::RolloutState as S;
    let cases = [
        (None, exit::OK),
        (Some(S::Running), exit::OK),
        (Some(S::Done), exit::OK),
        (Some(S::Paused), exit::ATTENTION),
        (Some(S::Aborted), exit::ATTENTION),
        (Some(S::RolledBack), exit::FAILED),
    ];
    for (state, code) in cases {
        assert_eq!(rollout_cmd::state_exit(state), code, "{state:?}");
    }
}

/// Issue 18, point 2: a server that cannot be reached exits 69, apart from other failures.
#[tokio::test]
async fn issue_18_unreachable_server_exits_69() {
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap();
    // A port just freed: nobody listens there, the connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = client
        .get(format!("https://127.0.0.1:{port}/"))
        .send()
        .await;
    let error = crate::admin_client::decode_for_test(refused).await;
    assert_eq!(
        error_exit(&error),
        calseg_api::exit::UNREACHABLE,
        "{error:#}"
    );
    assert_eq!(
        error_exit(&anyhow::anyhow!("other")),
        calseg_api::exit::FAILED
    );
}

/// Issue 18, point 7: `token list` shows the scope in words, not the JSON it is stored as.
#[test]
fn issue_18_token_scope_is_words_not_json() {
    let node = serde_json::json!({"scope": {"node": "worker-1"}, "uses": []});
    let glob = serde_json::json!({"scope": {"match": {"glob": "worker-*", "uses_max": 5}}, "uses": ["a", "b"]});
    assert_eq!(admin_cmd::scope_text(&node["scope"]), "node worker-1");
    assert_eq!(admin_cmd::uses_text(&node), "0/1");
    assert_eq!(admin_cmd::scope_text(&glob["scope"]), "match worker-*");
    assert_eq!(admin_cmd::uses_text(&glob), "2/5");
}
