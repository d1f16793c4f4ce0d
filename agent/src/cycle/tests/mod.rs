//! The pass driven with fakes for the server, etcd and systemd, and the real installer on a
//! temporary root.

mod fakes;
mod leases;
mod revoked;

use super::*;
use crate::testutil::{TestCa, TestResult, identity, manifest};
use fakes::{Host, T0, captured_logs};

#[tokio::test]
async fn issued_identities_restart_each_unit_once_and_an_unchanged_pass_restarts_nothing()
-> TestResult {
    let m = manifest(vec![
        identity("calico-node", &["calico-node.service"]),
        identity("felix", &["calico-node.service", "felix.service"]),
    ]);
    let mut host = Host::new(m, &["calico-node.service", "felix.service"])?;

    let first = host.cycle(T0).await;
    assert_eq!(first.outcome, Outcome::Changed, "{:?}", first.errors);
    assert_eq!(first.outcome.exit_code(), 2);
    assert_eq!(
        host.ports.restarter.restarts,
        ["calico-node.service", "felix.service"]
    );
    assert_eq!(host.statuses(), ["installed", "installed"]);
    assert_eq!(host.ports.verifier.probes, ["calico-node.n1", "felix.n1"]);
    let key = host
        .file("/etc/calico/certs/calico-node/key.pem")
        .unwrap_or_default();
    assert!(key.contains("PRIVATE KEY"));
    let env = host.file("/etc/calico/calico-node.env").unwrap_or_default();
    assert!(
        env.contains("ETCD_CERT_FILE=/etc/calico/certs/calico-node/cert.pem"),
        "{env}"
    );
    assert_eq!(
        host.state().journal()?,
        None,
        "journal cleared after the pass"
    );

    let second = host.cycle(T0 + time::Duration::hours(1)).await;
    assert_eq!(second.outcome, Outcome::Unchanged, "{:?}", second.errors);
    assert_eq!(second.outcome.exit_code(), 0);
    assert_eq!(
        host.ports.restarter.restarts.len(),
        2,
        "no restart when nothing changed"
    );
    assert_eq!(host.ports.signer.calls, 2, "nothing signed");
    assert_eq!(host.statuses(), ["unchanged", "unchanged"]);
    Ok(())
}

#[tokio::test]
async fn renewal_issues_a_new_key_and_restarts_once() -> TestResult {
    let mut host = Host::new(
        manifest(vec![identity("calico-node", &["calico-node.service"])]),
        &["calico-node.service"],
    )?;
    host.cycle(T0).await;
    let old_serial = host.serial_on_disk("calico-node");
    let old_key = host.file("/etc/calico/certs/calico-node/key.pem");

    let before = host.cycle(T0 + time::Duration::days(19)).await;
    assert_eq!(before.outcome, Outcome::Unchanged);
    let after = host.cycle(T0 + time::Duration::days(24)).await;
    assert_eq!(after.outcome, Outcome::Changed, "{:?}", after.errors);
    assert_ne!(host.serial_on_disk("calico-node"), old_serial);
    assert_ne!(
        host.file("/etc/calico/certs/calico-node/key.pem"),
        old_key,
        "new key per certificate"
    );
    assert_eq!(
        host.ports.restarter.restarts,
        ["calico-node.service", "calico-node.service"]
    );
    Ok(())
}

#[tokio::test]
async fn verify_failure_installs_nothing_and_restarts_nothing() -> TestResult {
    let mut host = Host::new(
        manifest(vec![identity("calico-node", &["calico-node.service"])]),
        &["calico-node.service"],
    )?;
    host.ports.verifier.fail = true;
    let result = host.cycle(T0).await;
    assert_eq!(result.outcome, Outcome::Failed);
    assert_eq!(result.outcome.exit_code(), 1);
    assert_eq!(host.statuses(), ["verify_failed"]);
    assert_eq!(host.file("/etc/calico/certs/calico-node/cert.pem"), None);
    assert_eq!(host.file("/etc/calico/calico-node.env"), None);
    assert!(host.ports.restarter.restarts.is_empty());
    assert!(
        result
            .errors
            .iter()
            .any(|e| e.contains("permission denied")),
        "{:?}",
        result.errors
    );

    // With old files in place, a failed verification keeps them.
    host.ports.verifier.fail = false;
    host.cycle(T0).await;
    let serial = host.serial_on_disk("calico-node");
    host.ports.verifier.fail = true;
    let renewal = host.cycle(T0 + time::Duration::days(25)).await;
    assert_eq!(renewal.outcome, Outcome::Failed);
    assert_eq!(host.serial_on_disk("calico-node"), serial);
    assert_eq!(host.ports.restarter.restarts.len(), 1);
    Ok(())
}

#[tokio::test]
async fn unit_failing_after_restart_rolls_back_and_restarts_again() -> TestResult {
    let m = manifest(vec![
        identity("calico-node", &["calico-node.service"]),
        identity("cni", &[]),
    ]);
    let mut host = Host::new(m, &["calico-node.service"])?;
    host.cycle(T0).await;
    let good_serial = host.serial_on_disk("calico-node");
    let good_record = host.state().installed()?.get("calico-node").cloned();

    host.ports
        .restarter
        .failing
        .insert("calico-node.service".into());
    let result = host.cycle(T0 + time::Duration::days(25)).await;
    assert_eq!(result.outcome, Outcome::Failed);
    assert_eq!(
        host.serial_on_disk("calico-node"),
        good_serial,
        "old files are back"
    );
    assert_eq!(
        host.state().installed()?.get("calico-node").cloned(),
        good_record
    );
    let restarts = &host.ports.restarter.restarts;
    assert_eq!(
        restarts, &["calico-node.service"; 3],
        "first install, failed restart, restart after rollback"
    );
    assert_eq!(host.statuses()[0], "rolled_back");
    let report = host.ports.reporter.reports.last().cloned();
    let unit = report.as_ref().and_then(|r| r.units.first()).cloned();
    assert_eq!(
        unit.map(|u| (u.active_state, u.restarted)),
        Some(("active".into(), true))
    );
    assert!(report.is_some_and(|r| r.errors.iter().any(|e| e.contains("NRestarts"))));

    // The rolled-back identity is retried next pass.
    let retry = host.cycle(T0 + time::Duration::days(25)).await;
    assert_eq!(retry.outcome, Outcome::Changed, "{:?}", retry.errors);
    Ok(())
}

#[tokio::test]
async fn first_install_rolled_back_removes_the_files() -> TestResult {
    let mut host = Host::new(
        manifest(vec![identity("calico-node", &["calico-node.service"])]),
        &["calico-node.service"],
    )?;
    host.ports
        .restarter
        .failing
        .insert("calico-node.service".into());
    let result = host.cycle(T0).await;
    assert_eq!(result.outcome, Outcome::Failed);
    assert_eq!(host.file("/etc/calico/certs/calico-node/cert.pem"), None);
    assert_eq!(host.file("/etc/calico/calico-node.env"), None);
    assert!(host.state().installed()?.is_empty());
    Ok(())
}

#[tokio::test]
async fn unit_not_installed_is_reported_and_others_proceed() -> TestResult {
    let m = manifest(vec![
        identity("calico-node", &["calico-node.service"]),
        identity("felix", &["felix.service"]),
    ]);
    let mut host = Host::new(m, &["felix.service"])?;
    let result = host.cycle(T0).await;
    assert_eq!(result.outcome, Outcome::Failed);
    assert_eq!(host.ports.restarter.restarts, ["felix.service"]);
    assert!(
        host.serial_on_disk("calico-node").is_some(),
        "files installed anyway"
    );
    assert!(host.serial_on_disk("felix").is_some());
    let report = host.ports.reporter.reports.last().cloned();
    let units: Vec<(String, String)> = report
        .iter()
        .flat_map(|r| {
            r.units
                .iter()
                .map(|u| (u.unit.clone(), u.active_state.clone()))
        })
        .collect();
    assert_eq!(
        units,
        [
            ("calico-node.service".into(), "not-found".into()),
            ("felix.service".into(), "active".into())
        ]
    );
    assert!(
        result
            .errors
            .iter()
            .any(|e| e.contains("calico-node.service is not installed")),
        "{:?}",
        result.errors
    );
    Ok(())
}

#[tokio::test]
async fn missing_cni_conflist_is_an_error_for_that_identity_only() -> TestResult {
    let mut cni = identity("cni-plugin", &[]);
    cni.render.cni_conflist = Some("/etc/cni/net.d/10-calico.conflist".into());
    let mut host = Host::new(
        manifest(vec![cni, identity("calico-node", &["calico-node.service"])]),
        &["calico-node.service"],
    )?;
    let result = host.cycle(T0).await;
    assert_eq!(result.outcome, Outcome::Failed);
    assert_eq!(host.statuses(), ["error", "installed"]);
    assert!(
        result
            .errors
            .iter()
            .any(|e| e.contains("10-calico.conflist does not exist")),
        "{:?}",
        result.errors
    );
    assert_eq!(host.ports.restarter.restarts, ["calico-node.service"]);
    Ok(())
}

#[tokio::test]
async fn unreachable_server_keeps_everything() -> TestResult {
    let mut host = Host::new(
        manifest(vec![identity("calico-node", &["calico-node.service"])]),
        &["calico-node.service"],
    )?;
    host.cycle(T0).await;
    host.ports.manifest.unreachable = true;
    let result = host.cycle(T0 + time::Duration::days(25)).await;
    assert_eq!(result.outcome, Outcome::Unreachable);
    // Issue 18, point 2: apart from a failed install (1), retrying later may help.
    assert_eq!(result.outcome.exit_code(), crate::cli::EXIT_UNREACHABLE);
    assert_eq!(host.ports.signer.calls, 1);
    assert_eq!(
        host.state().last_cycle()?.map(|c| c.outcome),
        Some(Outcome::Unreachable)
    );
    Ok(())
}

#[tokio::test]
async fn stop_before_install_changes_nothing() -> TestResult {
    let mut host = Host::new(manifest(vec![identity("calico-node", &[])]), &[])?;
    let ctx = CycleContext {
        node: "n1".into(),
        key_algorithm: crate::keys::KeyAlgorithm::P256,
        restart_timeout: Duration::from_secs(5),
        lease_wait: Duration::from_secs(1),
        state: host.state(),
        now: T0,
        stop: Arc::new(AtomicBool::new(true)),
        limits: fakes::test_limits(),
        renew: crate::decide::Renew::AsDue,
    };
    let result = host.ports.run_cycle(&ctx).await;
    assert_eq!(result.outcome, Outcome::Interrupted);
    assert_eq!(host.file("/etc/calico/certs/calico-node/cert.pem"), None);
    Ok(())
}

#[tokio::test]
async fn the_private_key_never_appears_in_logs_reports_or_state() -> TestResult {
    let captured = captured_logs();
    let m = manifest(vec![identity("calico-node", &["calico-node.service"])]);
    let mut host = Host::new(m, &["calico-node.service"])?;
    host.ports
        .restarter
        .failing
        .insert("calico-node.service".into());
    host.cycle(T0).await;
    host.ports.verifier.fail = true;
    host.cycle(T0).await;
    host.ports.verifier.fail = false;
    let result = host.cycle(T0).await;
    assert_eq!(result.outcome, Outcome::Changed);

    let key = host
        .file("/etc/calico/certs/calico-node/key.pem")
        .unwrap_or_default();
    let body: Vec<&str> = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!body.is_empty());
    let logs = String::from_utf8(captured.0.lock().map(|l| l.clone()).unwrap_or_default())?;
    assert!(
        logs.contains("issuing a new certificate"),
        "logs were captured: {logs}"
    );
    let mut haystacks = vec![
        logs,
        format!("{result:?}"),
        serde_json::to_string(&host.ports.reporter.reports)?,
    ];
    for entry in std::fs::read_dir(host.state().dir)? {
        haystacks.push(std::fs::read_to_string(entry?.path()).unwrap_or_default());
    }
    for text in &haystacks {
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        for line in &body {
            assert!(!text.contains(line), "key material leaked");
        }
    }
    Ok(())
}

/// Issue 17, finding 2: one value outside agent.toml's limits refuses the whole pass, even
/// when the other identities of the manifest are fine and were installed before.
#[tokio::test]
async fn a_manifest_outside_the_limits_is_refused_whole_and_reported() -> TestResult {
    let good = identity("calico-node", &["calico-node.service"]);
    let mut host = Host::new(manifest(vec![good.clone()]), &["calico-node.service"])?;
    let first = host.cycle(T0).await;
    assert_eq!(first.outcome, Outcome::Changed, "{:?}", first.errors);
    let cert_before = host.file("/etc/calico/certs/calico-node/cert.pem");
    let (signed, restarted) = (host.ports.signer.calls, host.ports.restarter.restarts.len());

    // A new CA (every identity would be reissued), plus a hostile second identity.
    let mut hostile = identity("evil", &["sshd.service"]);
    hostile.files.key_mode = 0o4777;
    let m = &mut host.ports.manifest.manifest;
    m.revision = "rev2".into();
    m.etcd.ca_bundle_pem = TestCa::new("new etcd CA")?.cert_pem;
    m.identities.push(hostile);

    let result = host.cycle(T0 + time::Duration::hours(1)).await;
    assert_eq!(result.outcome, Outcome::Refused, "{:?}", result.errors);
    assert_eq!(result.outcome.exit_code(), 1);
    assert_eq!(host.ports.signer.calls, signed, "nothing signed");
    assert_eq!(
        host.ports.restarter.restarts.len(),
        restarted,
        "nothing restarted"
    );
    assert_eq!(
        host.file("/etc/calico/certs/calico-node/cert.pem"),
        cert_before
    );
    assert_eq!(host.file("/etc/calico/certs/evil/key.pem"), None);
    let report = host.ports.reporter.reports.last().cloned();
    let report = report.ok_or("no report")?;
    assert_eq!(report.revision, "rev2");
    assert_eq!(host.statuses(), ["refused", "refused"]);
    let errors = report.errors.join("\n");
    assert!(
        errors.contains("identities[evil].files.key_mode = \"0o4777\""),
        "{errors}"
    );
    assert!(
        errors.contains("identities[evil].restart = \"sshd.service\""),
        "{errors}"
    );
    assert_eq!(
        host.state().last_cycle()?.map(|c| c.outcome),
        Some(Outcome::Refused)
    );
    Ok(())
}
