//! Stage two: raw sections to the validated [`Policy`]. This file owns the top-level flow and the
//! `calico_version`, `[etcd]` and `[identity]` checks; components and host rules have their own
//! files. Every check runs even after an error, so one pass reports everything.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::location::Diagnostics;
use super::model::{EtcdSettings, IdentitySettings, Policy};
use super::names::GENERATION_SEPARATOR;
use super::raw::{RawEtcd, RawIdentity, Scalar};
use super::read::RawPolicy;
use super::version::CalicoVersion;
use super::{budget, checks, components, datastore, duration, hosts};

/// The identity template used when `[identity] user` is absent.
pub const DEFAULT_USER_TEMPLATE: &str = "{component}.{node}";
/// Certificate lifetime when `[identity] lifetime` is absent: 30 days.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(30 * 86_400);
/// Renewal point when `[identity] renew_after` is absent: two thirds of the lifetime.
pub const DEFAULT_RENEW_AFTER: f64 = 2.0 / 3.0;

/// The newest release line calseg's tables were written against.
const NEWEST_KNOWN: CalicoVersion = CalicoVersion::new(3, 99);

/// Validates every section; `None` if any error was reported.
pub(super) fn validate(raw: RawPolicy, diags: &mut Diagnostics<'_>) -> Option<Policy> {
    let version = raw
        .calico_version
        .as_ref()
        .and_then(|v| calico_version(v, diags));
    let etcd = raw.etcd.map(|etcd| etcd_settings(etcd, diags));
    let identity = raw
        .identity
        .map(|identity| identity_settings(identity, diags));

    // With no usable version, check components against the newest tables so that their other
    // errors still show; the policy is rejected anyway.
    let table_version = version.unwrap_or(NEWEST_KNOWN);
    let mut declared = BTreeMap::new();
    let mut built = BTreeMap::new();
    for (name, body) in raw.components {
        declared.insert(name.get_ref().clone(), name.span());
        if let Some(body) = body {
            let component = components::component(&name, body, table_version, diags);
            built.insert(component.name.clone(), component);
        }
    }
    let user = identity
        .as_ref()
        .map(|(settings, span)| (settings.user_template.as_str(), span.clone()));
    let component_wide: BTreeSet<String> = built
        .values()
        .filter(|c| c.component_identity)
        .map(|c| c.name.clone())
        .collect();
    let rules = hosts::host_rules(raw.hosts, &declared, &component_wide, user, diags);
    let rollout = raw
        .rollout
        .map(|rollout| budget::rollout_settings(rollout, diags));
    let datastore = raw
        .datastore
        .map(|section| datastore::datastore_settings(section, version, diags));

    if !diags.errors.is_empty() {
        return None;
    }
    let (Some(calico_version), Some(etcd), Some((identity, _)), Some(rollout), Some(datastore)) =
        (version, etcd, identity, rollout, datastore)
    else {
        return None;
    };
    Some(Policy {
        calico_version,
        etcd,
        identity,
        components: built,
        hosts: rules,
        rollout,
        datastore,
        warnings: Vec::new(),
    })
}

fn calico_version(value: &Spanned<Scalar>, diags: &mut Diagnostics<'_>) -> Option<CalicoVersion> {
    let Scalar::Text(text) = value.get_ref() else {
        diags.error(
            value.span(),
            "calico_version must be a string",
            "quote it, e.g. calico_version = \"3.29\" (a TOML number cannot tell 3.1 from 3.10)",
        );
        return None;
    };
    match CalicoVersion::parse(text) {
        Ok(version) => {
            if version.major > 3 {
                diags.warn(
                    value.span(),
                    format!("calico_version {version} is newer than the tables calseg knows (3.x)"),
                    "the latest 3.x tables are used; compare them with that release's \
                     calico-etcdv3-paths page, or use explicit grants",
                );
            }
            Some(version)
        }
        Err(problem) => {
            diags.problem(value.span(), problem);
            None
        }
    }
}

fn etcd_settings(raw: RawEtcd, diags: &mut Diagnostics<'_>) -> EtcdSettings {
    if raw.endpoints.get_ref().is_empty() {
        diags.error(
            raw.endpoints.span(),
            "etcd endpoints is empty",
            "list at least one endpoint, e.g. endpoints = [\"https://10.0.0.11:2379\"]",
        );
    }
    let mut endpoints = Vec::new();
    for endpoint in raw.endpoints.into_inner() {
        match checks::endpoint(endpoint.get_ref()) {
            Err(problem) => diags.problem(endpoint.span(), problem),
            Ok(()) => {
                if endpoint.get_ref().starts_with("http://") {
                    diags.warn(
                        endpoint.span(),
                        format!("etcd endpoint {:?} is plain http: client certificates are not used", endpoint.get_ref()),
                        "etcd authenticates components by certificate CN only over TLS; use https://",
                    );
                }
                endpoints.push(endpoint.into_inner());
            }
        }
    }
    let ca_file = raw.ca_file.and_then(|path| {
        checks::absolute_path("ca_file", path.get_ref())
            .map_err(|problem| diags.problem(path.span(), problem))
            .ok()
    });
    EtcdSettings { endpoints, ca_file }
}

/// The settings and the span of the user template (or of nothing, when defaulted).
fn identity_settings(
    raw: RawIdentity,
    diags: &mut Diagnostics<'_>,
) -> (IdentitySettings, Range<usize>) {
    let (user_template, user_span) = match raw.user {
        Some(user) => {
            let span = user.span();
            let template = user.into_inner();
            match checks::template_variables(&template, &["component", "node"]) {
                Err(problem) => diags.problem(span.clone(), problem),
                Ok(vars) if !vars.iter().any(|v| v == "node") => diags.error(
                    span.clone(),
                    format!("identity user {template:?} has no {{node}}: every node would share one etcd user"),
                    format!("include {{node}}, e.g. user = \"{DEFAULT_USER_TEMPLATE}\""),
                ),
                Ok(vars) if !vars.iter().any(|v| v == "component") => diags.error(
                    span.clone(),
                    format!(
                        "identity user {template:?} has no {{component}}: a node's components would \
                         share one etcd user, and a node name alone can name any etcd user (root, \
                         calseg's own, one that existed before calseg)"
                    ),
                    format!(
                        "an identity template must contain {{component}} and {{node}}, e.g. user = \"{DEFAULT_USER_TEMPLATE}\""
                    ),
                ),
                Ok(_) => {}
            }
            if template.contains(GENERATION_SEPARATOR) {
                diags.error(
                    span.clone(),
                    format!("identity user {template:?} contains {GENERATION_SEPARATOR:?}"),
                    format!(
                        "{GENERATION_SEPARATOR:?} is reserved: it separates a user name from its node's enrollment \
                         generation (calico-node.node2~g1 after node2 was revoked and came back); \
                         use '.', '-', '@' or ':'"
                    ),
                );
            }
            (template, span)
        }
        None => (DEFAULT_USER_TEMPLATE.to_string(), 0..0),
    };
    let lifetime = match raw.lifetime {
        Some(text) => duration::lifetime(text.get_ref())
            .map_err(|problem| diags.problem(text.span(), problem))
            .unwrap_or(DEFAULT_LIFETIME),
        None => DEFAULT_LIFETIME,
    };
    let renew_after = match raw.renew_after {
        Some(value) => duration::renew_after(value.get_ref())
            .map_err(|problem| diags.problem(value.span(), problem))
            .unwrap_or(DEFAULT_RENEW_AFTER),
        None => DEFAULT_RENEW_AFTER,
    };
    let settings = IdentitySettings {
        user_template,
        lifetime,
        renew_after,
    };
    (settings, user_span)
}
