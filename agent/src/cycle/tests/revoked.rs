//! Issue 18, point 4: a revoked node's pass ends `revoked` (not "unreachable"), records when
//! it learned it, logs it once at error level with what to do, never claims the certificates
//! keep working, and forgets it when the server serves the node again.

use super::*;
use crate::testutil::{TestResult, identity, manifest};
use fakes::{Host, T0, captured_logs};

const SAID: &str = "the server says this node was revoked";

fn count(logs: &fakes::Captured, what: &str) -> usize {
    let text = logs.0.lock().map(|l| l.clone()).unwrap_or_default();
    String::from_utf8_lossy(&text).matches(what).count()
}

#[tokio::test]
async fn a_revocation_is_recorded_and_logged_once_and_is_not_an_outage() -> TestResult {
    let logs = captured_logs();
    let mut host = Host::new(
        manifest(vec![identity("calico-node", &["calico-node.service"])]),
        &["calico-node.service"],
    )?;
    assert_eq!(host.cycle(T0).await.outcome, Outcome::Changed);
    let said_before = count(&logs, SAID);
    let keeps_working = "certificate keeps working";
    let keeps_before = count(&logs, keeps_working);

    host.ports.manifest.revoked = true;
    let later = T0 + time::Duration::hours(1);
    let first = host.cycle(later).await;
    assert_eq!(first.outcome, Outcome::Revoked);
    assert_eq!(first.outcome.as_str(), "revoked");
    assert_eq!(first.outcome.exit_code(), crate::cli::EXIT_REVOKED);
    assert!(
        first.errors.iter().any(|e| e.contains("node_revoked")),
        "{first:?}"
    );
    let record = host.state().revoked()?.ok_or("no revoked.json")?;
    assert_eq!(record.learned_at, later);
    assert_eq!(record.server, "https://server/v1/manifest");
    let second = host.cycle(later + time::Duration::hours(1)).await;
    assert_eq!(second.outcome, Outcome::Revoked);
    assert_eq!(
        host.state().revoked()?.map(|r| r.learned_at),
        Some(later),
        "the first time it was learned is kept"
    );
    assert_eq!(
        count(&logs, SAID) - said_before,
        1,
        "logged once over two passes"
    );
    let text = String::from_utf8_lossy(&logs.0.lock().map(|l| l.clone()).unwrap_or_default())
        .lines()
        .filter(|l| l.contains(SAID))
        .map(str::to_owned)
        .collect::<String>();
    assert!(
        text.contains("ERROR") && text.contains("enroll --force --token"),
        "{text}"
    );
    assert_eq!(
        count(&logs, keeps_working),
        keeps_before,
        "a revoked node's certificates do not keep working"
    );
    assert_eq!(
        host.state().last_cycle()?.map(|c| c.outcome),
        Some(Outcome::Revoked)
    );

    // Served again (re-enrolled): the record goes.
    host.ports.manifest.revoked = false;
    let served = host.cycle(later + time::Duration::hours(2)).await;
    assert_ne!(served.outcome, Outcome::Revoked);
    assert_eq!(host.state().revoked()?, None);
    Ok(())
}

#[tokio::test]
async fn an_unreachable_server_still_warns_how_long_certificates_last() -> TestResult {
    let logs = captured_logs();
    let mut host = Host::new(
        manifest(vec![identity("calico-node", &["calico-node.service"])]),
        &["calico-node.service"],
    )?;
    host.cycle(T0).await;
    let before = count(&logs, "server unreachable; certificate keeps working");
    host.ports.manifest.unreachable = true;
    let result = host.cycle(T0 + time::Duration::hours(1)).await;
    assert_eq!(result.outcome, Outcome::Unreachable);
    assert_ne!(result.outcome.exit_code(), crate::cli::EXIT_REVOKED);
    assert!(count(&logs, "server unreachable; certificate keeps working") > before);
    assert_eq!(host.state().revoked()?, None);
    Ok(())
}

/// A server's revocation message is kept as a bounded excerpt: a hostile server cannot fill
/// revoked.json (and `status`) with a page of text.
#[tokio::test]
async fn a_revocation_message_is_kept_as_a_bounded_excerpt() -> TestResult {
    let mut host = Host::new(
        manifest(vec![identity("calico-node", &["calico-node.service"])]),
        &["calico-node.service"],
    )?;
    host.ports.manifest.revoked = true;
    host.ports.manifest.revoked_message = format!("revoked {}", "x".repeat(100_000));
    assert_eq!(host.cycle(T0).await.outcome, Outcome::Revoked);
    let record = host.state().revoked()?.ok_or("no revoked.json")?;
    assert_eq!(record.message.chars().count(), 300);
    assert!(record.message.starts_with("revoked xxx"));
    Ok(())
}
