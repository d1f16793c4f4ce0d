use super::*;
use crate::testutil::{TestCa, TestResult, identity, manifest};

/// A config under a temp dir (root and state inside it) and a manifest file.
fn setup() -> Result<(tempfile::TempDir, PathBuf, PathBuf), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("root");
    std::fs::create_dir(&root)?;
    let config = tmp.path().join("agent.toml");
    let text = format!(
        "node = \"n1\"\nroot = \"{}\"\nstate_dir = \"{}\"\n",
        root.display(),
        tmp.path().join("state").display()
    );
    std::fs::write(&config, text)?;
    let mut m = manifest(vec![identity("calico-node", &["calico-node.service"])]);
    m.etcd.ca_bundle_pem = TestCa::new("etcd CA")?.cert_pem;
    let manifest_path = tmp.path().join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_string(&m)?)?;
    Ok((tmp, config, manifest_path))
}

fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("calseg-agent").chain(args.iter().copied()))
}

#[tokio::test]
async fn plan_from_a_manifest_file_reports_changes_and_touches_nothing() -> TestResult {
    let (tmp, config, manifest) = setup()?;
    let config = config.to_string_lossy().into_owned();
    let manifest = manifest.to_string_lossy().into_owned();
    let code = execute(cli(&[
        "--config",
        &config,
        "plan",
        "--manifest",
        &manifest,
        "--json",
    ])?)
    .await?;
    assert_eq!(code, EXIT_CHANGED);
    assert_eq!(
        std::fs::read_dir(tmp.path().join("root"))?.count(),
        0,
        "plan wrote nothing"
    );
    assert!(!tmp.path().join("state").exists(), "plan kept no state");
    Ok(())
}

#[tokio::test]
async fn plan_of_a_manifest_outside_the_limits_fails_and_touches_nothing() -> TestResult {
    let (tmp, config, manifest_path) = setup()?;
    let mut m: calseg_api::manifest::Manifest =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path)?)?;
    m.identities[0].restart.push("reboot.target".into());
    std::fs::write(&manifest_path, serde_json::to_string(&m)?)?;
    let (config, manifest) = (config.to_string_lossy(), manifest_path.to_string_lossy());
    let args = ["--config", &config, "plan", "--manifest", &manifest];
    assert_eq!(execute(cli(&args)?).await?, EXIT_FAILED);
    assert_eq!(std::fs::read_dir(tmp.path().join("root"))?.count(), 0);
    Ok(())
}

#[test]
fn plan_lists_new_certificates_renders_and_units() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let m = manifest(vec![
        identity("calico-node", &["calico-node.service"]),
        identity("cni", &[]),
    ]);
    let installer = crate::cycle::real::FsInstaller {
        root: crate::install::Root::new(tmp.path()),
    };
    let plan = plan::plan(
        &m,
        &Default::default(),
        &installer,
        time::OffsetDateTime::now_utc(),
    );
    assert!(plan.changes());
    assert_eq!(plan.units, ["calico-node.service"]);
    let changes: Vec<&str> = plan.identities[0].files.iter().map(|f| f.change).collect();
    assert_eq!(
        changes,
        ["create", "new_certificate", "new_certificate", "create"]
    );
    let ca = &plan.identities[0].files[0];
    assert_eq!(
        ca.new_sha256.as_deref(),
        Some(crate::install::sha256_hex(b"ETCD CA\n").as_str())
    );
    let text = plan::to_text(&plan);
    assert!(
        text.contains("units that would restart: calico-node.service"),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn status_of_a_host_that_never_enrolled_says_so() -> TestResult {
    let (_tmp, config, _) = setup()?;
    let config = config.to_string_lossy().into_owned();
    let settings = load_settings(std::path::Path::new(&config))?;
    let view = status::view(&settings, &StateDir::new(&settings.state_dir))?;
    assert!(!view.enrolled);
    assert!(status::to_text(&view).contains("run `calseg-agent enroll`"));
    let code = execute(cli(&["--config", &config, "status", "--json"])?).await?;
    assert_eq!(code, EXIT_FAILED);
    Ok(())
}

#[tokio::test]
async fn once_without_enrollment_fails_with_a_hint() -> TestResult {
    let (_tmp, config, _) = setup()?;
    let config = config.to_string_lossy().into_owned();
    let err = execute(cli(&["--config", &config, "once"])?).await.err();
    let text = err.map(|e| format!("{e:#}")).unwrap_or_default();
    assert!(
        text.contains("not enrolled") && text.contains("calseg-agent enroll"),
        "{text}"
    );
    Ok(())
}

#[test]
fn arguments_parse_and_usage_errors_are_not_exit_2() {
    let enroll = cli(&[
        "enroll",
        "--server",
        "https://s:8443",
        "--ca-hash",
        "sha256:00",
        "--no-wait",
    ]);
    assert!(matches!(
        enroll.map(|c| c.command),
        Ok(Command::Enroll(EnrollArgs { no_wait: true, .. }))
    ));
    assert!(cli(&["enroll", "--ca-hash", "x", "--wait", "1m", "--no-wait"]).is_err());
    // Several servers: repeated, or a comma list, in order.
    for args in [
        &[
            "enroll",
            "--server",
            "https://a:1",
            "--server",
            "https://b:2",
            "--ca-hash",
            "x",
        ][..],
        &[
            "enroll",
            "--server",
            "https://a:1,https://b:2",
            "--ca-hash",
            "x",
        ][..],
    ] {
        let servers = match cli(args).map(|c| c.command) {
            Ok(Command::Enroll(args)) => args.server,
            other => panic!("{other:?}"),
        };
        assert_eq!(servers, ["https://a:1", "https://b:2"]);
    }
    assert!(
        cli(&[
            "enroll",
            "--ca-hash",
            "x",
            "--token",
            "a",
            "--token-file",
            "f"
        ])
        .is_err()
    );
    let err = cli(&["bogus"]).err();
    assert!(
        err.is_some_and(|e| e.use_stderr()),
        "usage errors map to EXIT_USAGE ({EXIT_USAGE})"
    );
}

#[test]
fn status_shows_the_server_in_use_and_the_list() -> TestResult {
    let (tmp, config, _) = setup()?;
    let settings = load_settings(&config)?;
    let state = StateDir::new(tmp.path().join("state"));
    let urls = ["https://a:1".to_owned(), "https://b:2".to_owned()];
    state.save_servers(&urls)?;
    let v = status::view(&settings, &state)?;
    assert_eq!(
        v.server.as_deref(),
        Some("https://a:1"),
        "the first until one answered"
    );
    state.save_current_server("https://b:2")?;
    let v = status::view(&settings, &state)?;
    assert_eq!(v.server.as_deref(), Some("https://b:2"));
    assert_eq!(v.servers, urls);
    let text = status::to_text(&v);
    assert!(
        text.contains("server:      https://b:2\n")
            && text.contains("servers:     https://a:1, https://b:2"),
        "{text}"
    );
    Ok(())
}

/// Issue 18, point 4: a revoked node says `revoked` (lowercase), since when, and what to do,
/// in text and JSON, and `status` exits 77, not 1.
#[tokio::test]
async fn status_of_a_revoked_node_says_revoked_since_when_and_what_to_do() -> TestResult {
    let (tmp, config, _) = setup()?;
    let settings = load_settings(&config)?;
    let state = StateDir::new(tmp.path().join("state"));
    let learned_at = time::OffsetDateTime::from_unix_timestamp(1_796_623_200)?;
    state.save_revoked(&crate::state::RevokedRecord {
        learned_at,
        server: "https://a:1/v1/manifest".into(),
        message: "node n1 was revoked by an operator".into(),
    })?;
    state.save_last_cycle(&crate::state::CycleRecord {
        started_at: learned_at,
        finished_at: learned_at,
        outcome: crate::state::Outcome::Revoked,
        report: None,
        errors: vec!["revoked: 403 node_revoked".into()],
    })?;
    let v = status::view(&settings, &state)?;
    let text = status::to_text(&v);
    assert!(
        text.contains("revoked:     yes, since 2026-12-07T06:00:00Z")
            && text.contains("calseg-agent enroll --force --token")
            && text.contains("token create --node n1")
            && text.contains("last cycle:  revoked at"),
        "{text}"
    );
    assert!(!text.contains("Revoked"), "Debug casing: {text}");
    let json = serde_json::to_value(&v)?;
    assert_eq!(json["revoked"]["learned_at"], "2026-12-07T06:00:00Z");
    assert_eq!(json["last_cycle"]["outcome"], "revoked");
    let what = json["revoked"]["what_to_do"].as_str().unwrap_or_default();
    assert!(what.contains("enroll --force --token"), "{json}");
    let config = config.to_string_lossy().into_owned();
    let code = execute(cli(&["--config", &config, "status", "--json"])?).await?;
    assert_eq!(code, EXIT_REVOKED);
    assert_ne!(EXIT_REVOKED, EXIT_FAILED);

    state.clear_revoked()?;
    let v = status::view(&settings, &state)?;
    assert!(v.revoked.is_none() && !status::to_text(&v).contains("revoked:     yes"));
    Ok(())
}

/// Issue 18, point 2: a certificate is ok before its renewal point, due inside the window,
/// expired from its notAfter on; the worst one decides `status`'s exit (2 due, 1 expired).
#[test]
fn issue_18_status_exit_says_renewal_due_and_expired() -> TestResult {
    use status::Expiry;
    let t = |s: i64| time::OffsetDateTime::from_unix_timestamp(1_800_000_000 + s);
    let (renew, end) = (t(600)?, t(900)?);
    assert_eq!(Expiry::at(t(0)?, renew, end), Expiry::Ok);
    assert_eq!(Expiry::at(t(600)?, renew, end), Expiry::RenewalDue);
    assert_eq!(Expiry::at(t(899)?, renew, end), Expiry::RenewalDue);
    assert_eq!(Expiry::at(t(900)?, renew, end), Expiry::Expired);
    assert!(Expiry::Expired > Expiry::RenewalDue && Expiry::RenewalDue > Expiry::Ok);
    assert_eq!(
        serde_json::to_value(Expiry::RenewalDue)?,
        serde_json::json!("renewal_due")
    );
    Ok(())
}
