//! calseg's end-to-end tests, compiled as one test binary. Each module drives real parts
//! through the harness in `calseg_tests`: real etcd, real systemd in sandboxes.

// Test code: a failed step should panic with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod access;
mod admin_certs;
mod agent;
mod agent_failover;
mod agent_renew;
mod agent_revoked;
mod agent_textfile;
mod api_errors;
mod audit_cli;
mod auth_races;
mod backup;
mod bad_policy;
mod ca_rotation;
mod catalogue;
mod cli_usage;
mod closed_pipe;
mod connection_limits;
mod datastore;
mod enrollment_attacks;
mod etcd_limits;
mod etcd_release;
mod etcd_store;
mod exit_codes;
mod faults;
mod file_modes;
mod fleet_ca_rotation;
mod fleet_plan;
mod ha;
mod harness_etcd;
mod harness_sandbox;
mod hostile_manifest;
mod identity;
mod k8s_manifests;
mod k8s_secrets;
mod leases;
mod least_privilege;
mod longpoll;
mod metrics;
mod metrics_exposition;
mod mixed_versions;
mod ownership_attacks;
mod packages;
mod rbac;
mod rbac_pacing;
mod replay;
mod rollout;
mod rollout_real;
mod server_unit;
mod sidecar;
mod sidecar_signal;
mod terminal_injection;
