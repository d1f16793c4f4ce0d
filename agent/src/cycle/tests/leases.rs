//! The restart lease around the restart step: asked for only when a unit must restart, waited
//! for while the budget is full, renewed while units settle, released after, and a rollback
//! instead of a restart when none is granted.

use super::*;
use crate::testutil::{TestResult, identity, manifest};
use fakes::{Host, T0};
use std::time::Instant;

fn one_unit_host() -> Result<Host, Box<dyn std::error::Error>> {
    Host::new(
        manifest(vec![
            identity("calico-node", &["calico-node.service"]),
            identity("cni", &[]),
        ]),
        &["calico-node.service"],
    )
}

#[tokio::test]
async fn units_restart_inside_a_granted_lease_which_is_then_released() -> TestResult {
    let mut host = one_unit_host()?;
    let result = host.cycle(T0).await;
    assert_eq!(result.outcome, Outcome::Changed, "{:?}", result.errors);
    assert_eq!(
        host.events(),
        [
            "granted lease-1",
            "restart calico-node.service",
            "released lease-1"
        ]
    );
    let request = &host.ports.leases.requests[0];
    assert_eq!(request.units, ["calico-node.service"]);
    assert_eq!(request.revision, host.ports.manifest.manifest.revision);

    let unchanged = host.cycle(T0 + time::Duration::hours(1)).await;
    assert_eq!(unchanged.outcome, Outcome::Unchanged);
    assert_eq!(host.ports.leases.requests.len(), 1, "no restart, no lease");
    Ok(())
}

#[tokio::test]
async fn a_full_budget_is_waited_out_then_units_restart() -> TestResult {
    let mut host = one_unit_host()?;
    host.ports.leases.refusals = [Duration::from_millis(150); 2].into();
    let started = Instant::now();
    let result = host.cycle(T0).await;
    assert_eq!(result.outcome, Outcome::Changed, "{:?}", result.errors);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "Retry-After was honoured"
    );
    assert_eq!(
        host.events(),
        [
            "refused",
            "refused",
            "granted lease-3",
            "restart calico-node.service",
            "released lease-3"
        ]
    );
    assert_eq!(host.statuses(), ["installed", "installed"]);
    Ok(())
}

#[tokio::test]
async fn no_lease_in_time_rolls_back_restarts_nothing_and_retries_next_pass() -> TestResult {
    let mut host = one_unit_host()?;
    host.cycle(T0).await;
    let good_serial = host.serial_on_disk("calico-node");
    let good_record = host.state().installed()?.get("calico-node").cloned();
    let cni_serial = host.serial_on_disk("cni");

    host.ports.leases.full = true;
    host.lease_wait = Duration::from_millis(300);
    let renewal = host.cycle(T0 + time::Duration::days(25)).await;
    assert_eq!(renewal.outcome, Outcome::Failed);
    assert_eq!(host.statuses(), ["lease_denied", "installed"]);
    assert_eq!(
        host.serial_on_disk("calico-node"),
        good_serial,
        "old files are back"
    );
    assert_eq!(
        host.state().installed()?.get("calico-node").cloned(),
        good_record
    );
    assert_ne!(
        host.serial_on_disk("cni"),
        cni_serial,
        "files-only identities stay installed"
    );
    assert_eq!(
        host.ports.restarter.restarts.len(),
        1,
        "only the first pass restarted"
    );
    assert!(host.ports.leases.requests.len() > 2, "it kept asking");
    assert!(
        renewal
            .errors
            .iter()
            .any(|e| e.contains("no restart lease within")),
        "{:?}",
        renewal.errors
    );
    assert_eq!(host.state().journal()?, None);

    host.ports.leases.full = false;
    let retry = host.cycle(T0 + time::Duration::days(25)).await;
    assert_eq!(retry.outcome, Outcome::Changed, "{:?}", retry.errors);
    assert_ne!(host.serial_on_disk("calico-node"), good_serial);
    assert_eq!(host.ports.restarter.restarts.len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_first_install_without_a_lease_leaves_no_files() -> TestResult {
    let mut host = one_unit_host()?;
    host.ports.leases.full = true;
    host.lease_wait = Duration::ZERO;
    let result = host.cycle(T0).await;
    assert_eq!(result.outcome, Outcome::Failed);
    assert_eq!(host.file("/etc/calico/certs/calico-node/cert.pem"), None);
    assert_eq!(host.file("/etc/calico/calico-node.env"), None);
    assert!(host.serial_on_disk("cni").is_some());
    assert_eq!(host.ports.leases.requests.len(), 1, "a zero wait asks once");
    assert!(host.ports.restarter.restarts.is_empty());
    Ok(())
}

#[tokio::test]
async fn the_lease_is_renewed_while_units_settle() -> TestResult {
    let mut host = one_unit_host()?;
    host.ports.leases.ttl_secs = 1;
    host.ports.restarter.settle = Duration::from_millis(1200);
    let result = host.cycle(T0).await;
    assert_eq!(result.outcome, Outcome::Changed, "{:?}", result.errors);
    assert!(host.ports.leases.renewals >= 1, "{:?}", host.events());
    assert_eq!(
        host.events().last().map(String::as_str),
        Some("released lease-1")
    );
    Ok(())
}
