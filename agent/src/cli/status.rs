//! `calseg-agent status`: what the state directory and the installed files say, without
//! calling the server or systemd.

use super::{EXIT_CHANGED, EXIT_FAILED, EXIT_OK, EXIT_REVOKED};
use crate::config::Settings;
use crate::decide::{renew_at, renewal_jitter};
use crate::enroll::fleet_renew_at;
use crate::keys;
use crate::state::{Outcome, REVOKED_WHAT_TO_DO, StateDir};
use anyhow::Result;
use calseg_api::report::UnitReport;
use calseg_api::when::rfc3339;
use serde::Serialize;
use std::fmt::Write as _;
use time::OffsetDateTime;

/// The status as shown (`--json` prints this).
#[derive(Debug, Serialize)]
pub struct StatusView {
    pub node: String,
    /// The server in use: the one that answered last (the first of the list until one did).
    pub server: Option<String>,
    /// Every server this host may call, in failover order.
    pub servers: Vec<String>,
    pub enrolled: bool,
    pub enrollment_pending: bool,
    /// Set while the server says an operator revoked this node.
    pub revoked: Option<RevokedView>,
    pub fleet_not_after: Option<String>,
    pub fleet_renew_at: Option<String>,
    /// The fleet certificate against the clock: ok, renewal due or expired.
    pub fleet_expiry: Option<Expiry>,
    pub manifest_revision: Option<String>,
    pub identities: Vec<IdentityView>,
    pub units: Vec<UnitReport>,
    pub last_cycle: Option<LastCycle>,
}

/// The server refused this node as revoked: since when, what it said, what to do.
#[derive(Debug, Serialize)]
pub struct RevokedView {
    /// When the agent learned it (RFC 3339).
    pub learned_at: String,
    pub server: String,
    pub message: String,
    pub what_to_do: String,
}

#[derive(Debug, Serialize)]
pub struct IdentityView {
    pub component: String,
    pub etcd_user: String,
    pub serial: String,
    pub not_after: String,
    pub renew_at: String,
    /// The certificate against the clock: ok, renewal due or expired.
    pub expiry: Expiry,
    /// Status in the last cycle's report, if any.
    pub last_status: Option<calseg_api::report::IdentityStatus>,
}

#[derive(Debug, Serialize)]
pub struct LastCycle {
    pub started_at: String,
    pub finished_at: String,
    pub outcome: Outcome,
    pub errors: Vec<String>,
}

/// Where a certificate stands at a given time, from its renewal point and its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expiry {
    /// Before its renewal point.
    Ok,
    /// Past its renewal point, not yet expired: the next cycle renews it (`status` exits 2).
    RenewalDue,
    /// Past its notAfter: etcd refuses it (`status` exits 1).
    Expired,
}

impl Expiry {
    /// Where a certificate renewed at `renew_at` and ending at `not_after` stands at `now`.
    pub fn at(now: OffsetDateTime, renew_at: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        if now >= not_after {
            Self::Expired
        } else if now >= renew_at {
            Self::RenewalDue
        } else {
            Self::Ok
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::RenewalDue => "renewal due",
            Self::Expired => "EXPIRED",
        }
    }
}

/// Builds the view from the state directory, against the clock.
pub fn view(settings: &Settings, state: &StateDir) -> Result<StatusView> {
    view_at(settings, state, OffsetDateTime::now_utc())
}

/// Builds the view from the state directory as it stands at `now`.
pub fn view_at(settings: &Settings, state: &StateDir, now: OffsetDateTime) -> Result<StatusView> {
    let fleet = state.fleet()?;
    let fleet_info = fleet
        .as_ref()
        .and_then(|f| keys::cert_info(&f.cert_pem).ok());
    let manifest = state.manifest().ok().flatten();
    let last = state.last_cycle()?;
    let report = last.as_ref().and_then(|l| l.report.clone());
    let renew_after = manifest.as_ref().map_or(2.0 / 3.0, |m| m.renew_after);
    let identities = state
        .installed()?
        .values()
        .map(|r| {
            let renew = renew_at(
                r.not_before,
                r.not_after,
                renew_after,
                renewal_jitter(r, &settings.node),
            );
            (r, renew)
        })
        .map(|(r, renew)| IdentityView {
            component: r.component.clone(),
            etcd_user: r.etcd_user.clone(),
            serial: r.serial.clone(),
            not_after: rfc3339(&r.not_after),
            renew_at: rfc3339(&renew),
            expiry: Expiry::at(now, renew, r.not_after),
            last_status: report
                .as_ref()
                .and_then(|rep| rep.identities.iter().find(|i| i.component == r.component))
                .map(|i| i.status.clone()),
        })
        .collect();
    let fleet_renew = fleet
        .as_ref()
        .and_then(|f| fleet_renew_at(&f.cert_pem).ok());
    let servers = crate::client::host::urls(&settings.servers, state)?;
    Ok(StatusView {
        node: settings.node.clone(),
        server: crate::client::host::current(&servers, state)?,
        servers,
        enrolled: fleet.is_some(),
        enrollment_pending: state.read(StateDir::PENDING_KEY)?.is_some(),
        revoked: state.revoked()?.map(|r| RevokedView {
            learned_at: rfc3339(&r.learned_at),
            server: r.server,
            message: r.message,
            what_to_do: REVOKED_WHAT_TO_DO.replace("NODE", &settings.node),
        }),
        fleet_not_after: fleet_info.as_ref().map(|i| rfc3339(&i.not_after)),
        fleet_renew_at: fleet_renew.as_ref().map(rfc3339),
        fleet_expiry: fleet_info
            .as_ref()
            .zip(fleet_renew)
            .map(|(i, renew)| Expiry::at(now, renew, i.not_after)),
        manifest_revision: manifest.map(|m| m.revision),
        identities,
        units: report.map(|r| r.units).unwrap_or_default(),
        last_cycle: last.map(|l| LastCycle {
            started_at: rfc3339(&l.started_at),
            finished_at: rfc3339(&l.finished_at),
            outcome: l.outcome,
            errors: l.errors,
        }),
    })
}

/// The view as text.
pub fn to_text(v: &StatusView) -> String {
    let mut out = String::new();
    let or_dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    let _ = writeln!(out, "node:        {}", v.node);
    let _ = writeln!(out, "server:      {}", or_dash(&v.server));
    if v.servers.len() > 1 {
        let _ = writeln!(out, "servers:     {}", v.servers.join(", "));
    }
    let enrolled = match (v.enrolled, v.enrollment_pending) {
        (true, _) => format!(
            "yes, fleet certificate until {} (renew at {}){}",
            or_dash(&v.fleet_not_after),
            or_dash(&v.fleet_renew_at),
            match v.fleet_expiry {
                Some(e @ (Expiry::RenewalDue | Expiry::Expired)) => format!(" [{}]", e.as_str()),
                _ => String::new(),
            }
        ),
        (false, true) => "pending approval".into(),
        (false, false) => "no (run `calseg-agent enroll`)".into(),
    };
    let _ = writeln!(out, "enrolled:    {enrolled}");
    if let Some(r) = &v.revoked {
        let _ = writeln!(
            out,
            "revoked:     yes, since {} ({} said so); {}",
            r.learned_at, r.server, r.what_to_do
        );
    }
    let _ = writeln!(out, "manifest:    {}", or_dash(&v.manifest_revision));
    match &v.last_cycle {
        Some(c) => {
            let _ = writeln!(
                out,
                "last cycle:  {} at {}",
                c.outcome.as_str(),
                c.finished_at
            );
            for e in &c.errors {
                let _ = writeln!(out, "  error: {e}");
            }
        }
        None => {
            let _ = writeln!(out, "last cycle:  none yet");
        }
    }
    let _ = writeln!(out, "\nidentities:");
    if v.identities.is_empty() {
        let _ = writeln!(out, "  none installed");
    }
    for i in &v.identities {
        let status = i.last_status.as_ref().map_or("-", |s| s.as_str());
        let _ = writeln!(
            out,
            "  {:<16} {:<28} serial {}  expires {}  renew {}  {}  [{status}]",
            i.component,
            i.etcd_user,
            i.serial,
            i.not_after,
            i.renew_at,
            i.expiry.as_str()
        );
    }
    if !v.units.is_empty() {
        let _ = writeln!(out, "\nunits (last cycle):");
        for u in &v.units {
            let restarted = if u.restarted { "restarted" } else { "" };
            let _ = writeln!(
                out,
                "  {:<28} {:<10} NRestarts={} {restarted}",
                u.unit, u.active_state, u.n_restarts
            );
        }
    }
    out
}

/// `calseg-agent status [--json]`: exit 77 when the node is revoked; 1 when the last cycle
/// failed, the host is not enrolled or a certificate (fleet or identity) expired; 2 when one is
/// inside its renewal window; else 0.
pub fn show(settings: &Settings, state: &StateDir, json: bool) -> Result<u8> {
    let v = view(settings, state)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        // Component names, users and units come from the server's manifest.
        print!("{}", calseg_api::text::printable_lines(&to_text(&v)));
    }
    Ok(exit_code(&v))
}

/// The exit status `status` gives for a view (the agent's side of the shared table).
pub fn exit_code(v: &StatusView) -> u8 {
    let healthy = v.enrolled
        && v.last_cycle
            .as_ref()
            .is_none_or(|c| matches!(c.outcome, Outcome::Unchanged | Outcome::Changed));
    let worst = v
        .identities
        .iter()
        .map(|i| i.expiry)
        .chain(v.fleet_expiry)
        .max()
        .unwrap_or(Expiry::Ok);
    if v.revoked.is_some() {
        EXIT_REVOKED
    } else if !healthy || worst == Expiry::Expired {
        EXIT_FAILED
    } else if worst == Expiry::RenewalDue {
        EXIT_CHANGED
    } else {
        EXIT_OK
    }
}
