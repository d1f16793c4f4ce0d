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
    let listing = |json| serde_json::from_value::<calseg_api::admin::TokenListing>(json).unwrap();
    let node = listing(
        serde_json::json!({"id": "t1", "scope": {"node": "worker-1"}, "uses": [], "expires_at": 1, "created_at": 0, "created_by": "admin:ops"}),
    );
    let glob = listing(
        serde_json::json!({"id": "t2", "scope": {"match": {"glob": "worker-*", "uses_max": 5}}, "uses": ["a", "b"], "expires_at": 1, "created_at": 0, "created_by": "admin:ops"}),
    );
    assert_eq!(admin_cmd::scope_text(&node.scope), "node worker-1");
    assert_eq!(admin_cmd::uses_text(&node), "0/1");
    assert_eq!(admin_cmd::scope_text(&glob.scope), "match worker-*");
    assert_eq!(admin_cmd::uses_text(&glob), "2/5");
}

/// Issue 19, point 2: what the server lists of a token is what the CLI reads, typed.
#[test]
fn a_listed_token_reads_as_the_cli_s_token_listing() {
    use crate::store::{TokenInfo, TokenScope};
    let at = |s| time::OffsetDateTime::from_unix_timestamp(s).unwrap();
    for scope in [
        TokenScope::Node("worker-1".into()),
        TokenScope::Match {
            glob: "worker-*".into(),
            uses_max: 5,
        },
    ] {
        let info = TokenInfo {
            id: "t1".into(),
            scope: scope.clone(),
            uses: vec!["worker-1".into()],
            expires_at: at(1_750_000_900),
            created_at: at(1_750_000_000),
            created_by: "admin:ops".into(),
        };
        let listing: calseg_api::admin::TokenListing =
            serde_json::from_value(serde_json::to_value(&info).unwrap()).unwrap();
        assert_eq!(listing.id, "t1");
        assert_eq!(listing.uses, info.uses);
        assert_eq!(listing.uses_max(), scope.uses_max());
        assert_eq!(listing.expires_at, 1_750_000_900);
        assert_eq!(listing.created_at, 1_750_000_000);
        assert_eq!(listing.created_by, "admin:ops");
        assert_eq!(
            admin_cmd::uses_text(&listing),
            format!("1/{}", scope.uses_max())
        );
    }
}

/// Issue 19, point 2: an audit entry as the server stores and sends it is what the CLI reads.
#[test]
fn an_audit_entry_reads_as_the_cli_s_audit_listing() {
    use crate::store::{AuditAction, AuditEntry, AuditOutcome};
    let entry = AuditEntry {
        seq: 7,
        at: time::OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap(),
        actor: "admin:ops".into(),
        action: AuditAction::Revoke,
        subject: "worker-1".into(),
        outcome: AuditOutcome::Denied,
        detail: "revoke by admin:ops".into(),
    };
    let listing: calseg_api::admin::AuditListing =
        serde_json::from_value(serde_json::to_value(&entry).unwrap()).unwrap();
    assert_eq!(listing.seq, 7);
    assert_eq!(listing.at, 1_750_000_000);
    assert_eq!(listing.actor, "admin:ops");
    assert_eq!(listing.action, "revoke");
    assert_eq!(listing.subject, "worker-1");
    assert_eq!(listing.outcome, "denied");
    assert_eq!(listing.detail, "revoke by admin:ops");
    let table = super::audit_cmd::audit_table(&[&listing]);
    assert!(table.contains("2025-06-15T15:06:40Z"), "{table}");
}

/// Issue 19, point 2: the server's apply answer is what `apply` reads: its conflicts set the
/// exit status.
#[test]
fn an_rbac_apply_answer_reads_as_the_cli_s_with_its_conflicts() {
    use calseg_api::admin::{PlanConflicts, RbacApplied};
    let plan = crate::rbac::Plan {
        changes: Vec::new(),
        conflicts: vec![crate::rbac::Conflict::ForeignUser {
            user: "calico-node.w1".into(),
            roles: std::collections::BTreeSet::from(["handmade".to_owned()]),
        }],
    };
    let sent = RbacApplied {
        applied: 3,
        etcd_warnings: vec!["etcd 3.5.0: known bypass".into()],
        text: plan.render_text(),
        plan,
    };
    let json = serde_json::to_value(&sent).unwrap();
    let read: RbacApplied<PlanConflicts> = serde_json::from_value(json).unwrap();
    assert_eq!(read.applied, 3);
    assert_eq!(read.etcd_warnings, sent.etcd_warnings);
    assert_eq!(read.text, sent.text);
    assert_eq!(read.plan.conflicts.len(), 1);
}
