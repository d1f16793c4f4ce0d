//! Asks each etcd endpoint, on a connection of its own, which release it runs (Maintenance
//! Status). One client per endpoint: a client over all of them balances requests, so it would
//! answer for whichever member it reached. Endpoints are asked at once; one that does not
//! answer within [`PROBE_TIMEOUT`] is reported with the reason, never fatal.

use super::version::Reported;
use crate::rbac::{self, EtcdAccess};
use std::time::Duration;

/// How long one endpoint may take to connect and answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What one endpoint said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// It answered with this version.
    Version(Reported),
    /// It did not answer; why.
    NoAnswer(String),
}

/// Asks every endpoint of `access` for its version, in the order given.
pub async fn probe_all(access: &EtcdAccess) -> Vec<(String, Answer)> {
    let probes = access.endpoints.iter().map(|endpoint| async move {
        let answer = probe(access, endpoint).await;
        (endpoint.clone(), answer)
    });
    futures::future::join_all(probes).await
}

/// Asks one endpoint, with calseg's own credentials (the existing connection code).
async fn probe(access: &EtcdAccess, endpoint: &str) -> Answer {
    let one = EtcdAccess {
        endpoints: vec![endpoint.to_owned()],
        ..access.clone()
    };
    let asked = tokio::time::timeout(PROBE_TIMEOUT, async {
        let mut client = rbac::connect(&one).await.map_err(|e| format!("{e:#}"))?;
        client
            .status()
            .await
            .map(|status| status.version().to_owned())
            .map_err(|e| e.to_string())
    })
    .await;
    match asked {
        Ok(Ok(version)) => Answer::Version(Reported::from_status(&version)),
        Ok(Err(reason)) => Answer::NoAnswer(reason),
        Err(_) => Answer::NoAnswer(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())),
    }
}
