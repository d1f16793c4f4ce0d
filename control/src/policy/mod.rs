//! The segmentation policy: a TOML file turned into a validated [`Policy`] that says which
//! components run on which nodes, what each may touch in etcd, and how identities are named.
//!
//! Pure code: [`load`] reads one file, everything else works on text. Parsing is staged
//! (TOML → raw sections → validated model) and reports every problem it can find in one pass,
//! each with file, line, column and a hint; non-fatal findings land in [`Policy::warnings`].
//!
//! # Layout
//! - `location`: [`Diagnostic`], [`PolicyErrors`] and byte span → line:column.
//! - `schema`: the key names of every table, for "unknown key, did you mean" reports.
//! - `raw`: serde structs for the file, every value `Spanned`.
//! - `read`: TOML text → raw sections, collecting syntax and type errors per section.
//! - `validate`: raw sections → [`Policy`]; version, `[etcd]`, `[identity]`.
//! - `components`: `[components.*]`: grants, files, modes; `pitfalls`: known Calico traps.
//! - `hosts`: `[[hosts]]` and the checks across rules (duplicates, user collisions).
//! - `budget`: `[rollout]` and per-rule `max_unavailable`: the restart budget.
//! - `waves`: `[rollout]` canary, wave, bake and max_failures: waves with health gates.
//! - `datastore`: `[datastore]`: the values of Calico's cluster-wide objects for
//!   `calseg-server datastore init`.
//! - `checks`, `duration`: checks on single values.
//! - `version`: [`CalicoVersion`]; `tables`: Calico's built-in grant tables per release.
//! - `model`: the validated types and their queries.
//! - `names`: etcd user names: the template rendered, its inverse, enrollment generations,
//!   component-wide users and reserved names.

mod budget;
mod checks;
mod components;
mod datastore;
mod duration;
mod hosts;
mod location;
mod model;
mod names;
mod pitfalls;
mod profiles;
mod raw;
mod read;
mod schema;
mod shadow;
mod state_prefix;
mod tables;
mod validate;
mod version;
mod waves;

#[cfg(test)]
mod component_wide_tests;
#[cfg(test)]
mod tests;

use std::path::Path;

pub use budget::{DEFAULT_LEASE_TTL, DEFAULT_MAX_UNAVAILABLE};
pub use datastore::{
    DEFAULT_AS_NUMBER, DEFAULT_BLOCK_SIZE, DEFAULT_CLUSTER_TYPE, DEFAULT_IPV4_POOL_CIDR,
    DEFAULT_LOG_SEVERITY,
};
pub use location::{Diagnostic, PolicyErrors, Severity};
pub use model::{
    Budget, Canary, Component, DatastoreSettings, EncapMode, EtcdSettings, GrantTable, HostRule,
    HostSelector, IdentitySettings, KeyRange, Permission, PermissionTemplate, Policy,
    RolloutSettings, WaveSettings, prefix_end,
};
pub use names::{
    COMPONENT_WIDE_SUFFIX, GENERATION_SEPARATOR, MAX_COMMON_NAME, Owner, RESERVED_USERS,
    component_user,
};
pub use state_prefix::check_policy_stays_out;
pub use tables::{TableEra, builtin_grants};
pub use validate::{DEFAULT_LIFETIME, DEFAULT_RENEW_AFTER, DEFAULT_USER_TEMPLATE};
pub use version::CalicoVersion;

use location::{Diagnostics, Severity as Level};

/// Checks a node name as the policy does (lowercase RFC 1123 subdomain); the error says how to
/// fix it. Used wherever a node names itself, e.g. at enrollment.
pub fn check_node_name(name: &str) -> Result<(), String> {
    checks::node_name(name).map_err(|problem| format!("{}: {}", problem.message, problem.hint))
}

/// Checks a component name as the policy does (`[a-z0-9][a-z0-9-]*`, at most 63).
pub fn check_component_name(name: &str) -> Result<(), String> {
    checks::component_name(name).map_err(|problem| format!("{}: {}", problem.message, problem.hint))
}

/// Reads and validates the policy file at `path`; diagnostics name it by `path.display()`.
pub fn load(path: &Path) -> Result<Policy, PolicyErrors> {
    let origin = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(source) => parse(&source, &origin),
        Err(error) => Err(PolicyErrors(vec![Diagnostic {
            origin,
            line: 0,
            column: 0,
            message: format!("cannot read the policy file: {error}"),
            hint: Some("check the path and that calseg-server may read it".to_string()),
            severity: Level::Error,
        }])),
    }
}

/// Validates policy text; `origin` names it in diagnostics (usually the file path).
pub fn parse(source: &str, origin: &str) -> Result<Policy, PolicyErrors> {
    let mut diags = Diagnostics::new(origin, source);
    let policy = read::read(source, &mut diags).and_then(|raw| validate::validate(raw, &mut diags));
    match policy {
        Some(mut policy) if diags.errors.is_empty() => {
            sort(&mut diags.warnings);
            policy.warnings = diags.warnings;
            Ok(policy)
        }
        _ => {
            sort(&mut diags.errors);
            Err(PolicyErrors(diags.errors))
        }
    }
}

/// File order, so the operator reads top to bottom.
fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|d| (d.line, d.column));
}
