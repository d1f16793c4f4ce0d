//! The `ca` commands (through the running server): `ca status` shows both CAs and their
//! rotations; `ca rotate etcd-client --begin|--finish|--pause|--resume|--rollback` and
//! `ca rotate fleet --begin|--finish|--rollback` take a step of one.
use super::admin_cmd::{client, unix_time};
use super::output::{Format, OutputArgs};
use crate::config::ServerConfig;
use crate::pki::CaKind;
use anyhow::Result;
use calseg_api::ca::{
    CaStatus, ETCD_CLIENT, FLEET, FleetRotationPhase, FleetRotationStatus, RotationPhase,
    RotationStepped,
};
use calseg_api::exit;
use calseg_api::paths;
use calseg_api::rollout::RolloutState;
use calseg_api::text::printable;
use calseg_control::ca_rotation::{OwnIdentity, RotationFiles, reissue_if_old};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Both CAs (fingerprint, expiry) and the latest rotation of the etcd client CA: its phase,
    /// what each etcd endpoint said to the new CA, the re-issuing waves, and the identities
    /// that still depend on the old CA. Exit status: 0 nothing waits for an operator; 2 the
    /// rotation waits for one (every wave re-issued: `--finish`; paused; rolled back waves).
    Status {
        #[command(flatten)]
        out: OutputArgs,
    },
    /// A step of a CA rotation, in waves, with no moment where a Calico component loses etcd.
    Rotate(RotateArgs),
}

/// The CA a rotation replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RotatedCa {
    /// The CA of component identities, which etcd's --trusted-ca-file holds.
    EtcdClient,
    /// The CA of the agents' and administrators' certificates and the server's TLS
    /// certificate (--begin, --finish, --rollback).
    Fleet,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("step").required(true).args(["begin", "finish", "pause", "resume", "rollback"])))]
pub struct RotateArgs {
    /// Which CA.
    #[arg(value_enum)]
    pub ca: RotatedCa,
    /// Make the new CA and the bundle of old and new for etcd's --trusted-ca-file; calseg
    /// issues nothing from it until every etcd endpoint trusts it, then re-issues every
    /// identity in waves under the restart budget.
    #[arg(long)]
    pub begin: bool,
    /// Retire the old CA once every wave is re-issued and no live identity depends on it.
    #[arg(long)]
    pub finish: bool,
    /// Stop opening re-issuing waves.
    #[arg(long)]
    pub pause: bool,
    /// Go on opening them.
    #[arg(long)]
    pub resume: bool,
    /// Before any identity came from the new CA: drop it. After: send every node back to the
    /// old CA; run it again once none depends on the new one to drop it.
    #[arg(long)]
    pub rollback: bool,
}

impl RotateArgs {
    fn step(&self) -> &'static str {
        [
            (self.begin, "begin"),
            (self.finish, "finish"),
            (self.pause, "pause"),
            (self.resume, "resume"),
            (self.rollback, "rollback"),
        ]
        .into_iter()
        .find(|(set, _)| *set)
        .map_or("begin", |(_, name)| name)
    }
}

/// Runs a `ca` command.
pub async fn run(config: Option<&Path>, command: &CaCommand) -> Result<ExitCode> {
    match command {
        CaCommand::Status { out } => {
            let status: CaStatus = client(config)?.get(paths::ADMIN_CA).await?;
            if out.format() == Format::Json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
            Ok(ExitCode::from(status_exit(&status)))
        }
        CaCommand::Rotate(args) => {
            let ca = match args.ca {
                RotatedCa::EtcdClient => ETCD_CLIENT,
                RotatedCa::Fleet => FLEET,
            };
            let stepped: RotationStepped = client(config)?
                .post(
                    &paths::admin_ca_action(ca, args.step()),
                    &serde_json::json!({}),
                )
                .await?;
            print_status(&stepped.status);
            if let Some(next) = &stepped.next {
                // Line by line: each is made printable, and the server's line breaks stay.
                println!();
                for line in next.lines() {
                    println!("{}", printable(line));
                }
            }
            if args.finish && args.ca == RotatedCa::EtcdClient {
                println!("{}", reissue_own_identity(config));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// After `--finish`, on the server host: re-issues calseg's own etcd certificate from the CA in
/// force when the old CA signed it, or says what to do when this host cannot.
fn reissue_own_identity(config: Option<&Path>) -> String {
    let config = match ServerConfig::load(config) {
        Ok(config) => config,
        Err(error) => return format!("calseg's own etcd certificate: not checked ({error:#})"),
    };
    let (Some(cert), Some(key)) = (&config.etcd.cert_file, &config.etcd.key_file) else {
        return "calseg has no etcd certificate of its own in server.toml: nothing to re-issue"
            .to_owned();
    };
    let now = time::OffsetDateTime::now_utc();
    let ca = RotationFiles::new(&config.ca_dir())
        .current()
        .load(CaKind::EtcdClient, now);
    let done = ca.and_then(|ca| reissue_if_old(cert, key, &ca, now));
    match done {
        Ok(OwnIdentity::Current) => format!(
            "calseg's own etcd certificate ({}) already comes from the CA in force",
            cert.display()
        ),
        Ok(OwnIdentity::Reissued { common_name }) => format!(
            "calseg's own etcd certificate ({}, user {common_name}) came from the old CA: \
             re-issued from the new one. Restart calseg-server (each replica, with a copy of \
             the new files) before you drop the old CA from etcd.",
            cert.display()
        ),
        Err(error) => format!(
            "calseg's own etcd certificate ({}) was not checked or re-issued ({error}): run \
             this command on the server host as root, or re-issue it from the new CA by hand, \
             before you drop the old CA from etcd",
            cert.display()
        ),
    }
}

/// 2 when a rotation waits for an operator, else 0.
fn status_exit(status: &CaStatus) -> u8 {
    if status
        .fleet_rotation
        .as_ref()
        .is_some_and(|r| r.pending_nodes.is_empty())
    {
        return exit::ATTENTION;
    }
    let Some(rotation) = &status.rotation else {
        return exit::OK;
    };
    let waves = rotation.waves.as_ref().map(|w| w.state);
    let waits = !rotation.phase.is_over()
        && (rotation.phase == RotationPhase::Reissued
            || matches!(
                waves,
                Some(RolloutState::Paused | RolloutState::RolledBack | RolloutState::Aborted)
            ));
    if waits { exit::ATTENTION } else { exit::OK }
}

fn print_status(status: &CaStatus) {
    println!(
        "etcd client CA  {}  expires {}",
        status.etcd_client.fingerprint,
        unix_time(status.etcd_client.not_after)
    );
    println!(
        "fleet CA        {}  expires {}",
        status.fleet.fingerprint,
        unix_time(status.fleet.not_after)
    );
    if let Some(fleet) = &status.fleet_rotation {
        print_fleet_rotation(fleet);
    }
    let Some(rotation) = &status.rotation else {
        println!("no rotation of the etcd client CA yet");
        return;
    };
    println!(
        "rotation of the etcd client CA: {} (begun {} by {})",
        rotation.phase,
        unix_time(rotation.begun_at),
        printable(&rotation.begun_by)
    );
    println!("  old CA  {}", rotation.old_fingerprint);
    println!("  new CA  {}", rotation.new_fingerprint);
    if !rotation.bundle_file.is_empty() && !rotation.phase.is_over() {
        println!(
            "  etcd --trusted-ca-file bundle: {}",
            printable(&rotation.bundle_file)
        );
    }
    if !rotation.new_ca_here {
        println!(
            "  this replica does not hold the new CA: copy etcd-client.next.pem and its key here"
        );
    }
    for probe in &rotation.probes {
        println!(
            "  {} {}  {}  (checked {})",
            if probe.trusted { "trusts " } else { "REFUSES" },
            printable(&probe.endpoint),
            printable(&probe.detail),
            unix_time(probe.checked_at)
        );
    }
    if let Some(waves) = &rotation.waves {
        println!(
            "  re-issuing waves: {}, opened {}/{}",
            waves.state, waves.opened_waves, waves.total_waves
        );
        for (i, wave) in waves.waves.iter().enumerate() {
            println!(
                "    wave {:>3}  {:>5} nodes  healthy {:>5}  pending {:>5}  failed {:>5}",
                i + 1,
                wave.size,
                wave.healthy,
                wave.pending,
                wave.failed
            );
        }
    }
    if !rotation.old_ca_identities.is_empty() {
        let count = rotation.old_ca_identities.len();
        let shown: Vec<&str> = rotation
            .old_ca_identities
            .iter()
            .take(20)
            .map(String::as_str)
            .collect();
        println!(
            "  {count} identities still on the CA being replaced: {}{}",
            printable(&shown.join(", ")),
            if count > 20 { ", ..." } else { "" }
        );
    }
    let next = match rotation.phase {
        RotationPhase::Trusting => {
            "next: give etcd the bundle as --trusted-ca-file and restart its members one at a time"
        }
        RotationPhase::Reissuing => "next: wait for the waves (or pause, resume, rollback)",
        RotationPhase::Reissued => "next: `calseg-server ca rotate etcd-client --finish`",
        RotationPhase::Finished => {
            "done: drop the old CA from etcd's --trusted-ca-file (the bundle holds the new CA only)"
        }
        RotationPhase::RolledBack => "rolled back: etcd's --trusted-ca-file needs the old CA only",
    };
    println!("  {next}");
}

fn print_fleet_rotation(rotation: &FleetRotationStatus) {
    println!("rotation of the fleet CA: {}", rotation.phase.name());
    println!(
        "  signing  {}  expires {}",
        rotation.signing.fingerprint,
        unix_time(rotation.signing.not_after)
    );
    println!(
        "  also trusted  {}  expires {}",
        rotation.other.fingerprint,
        unix_time(rotation.other.not_after)
    );
    let count = rotation.pending_nodes.len();
    if count > 0 {
        let shown: Vec<&str> = rotation
            .pending_nodes
            .iter()
            .take(20)
            .map(String::as_str)
            .collect();
        println!(
            "  {count} node(s) still on the other CA: {}{}",
            printable(&shown.join(", ")),
            if count > 20 { ", ..." } else { "" }
        );
    }
    let next = match (rotation.phase, count) {
        (FleetRotationPhase::Overlap, 0) => {
            "next: re-issue administrator certificates (`calseg-server admin issue`), then \
             `calseg-server ca rotate fleet --finish`"
        }
        (FleetRotationPhase::Overlap, _) => "next: wait for the agents to renew (or --rollback)",
        (FleetRotationPhase::RollingBack, 0) => {
            "next: `calseg-server ca rotate fleet --rollback` drops the new CA"
        }
        (FleetRotationPhase::RollingBack, _) => {
            "next: wait for the agents to renew from the old CA"
        }
    };
    println!("  {next}");
}
