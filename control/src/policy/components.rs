//! `[components.<name>]`: grants (built-in table, explicit list, extras, per-node templates),
//! restart units, file locations, ownership and modes.

use std::ops::Range;
use std::path::PathBuf;

use calseg_api::access::Access;
use toml::Spanned;

use super::location::{Diagnostics, Problem};
use super::model::GrantTable;
use super::model::{Component, KeyRange, Permission, PermissionTemplate};
use super::profiles::builtin_profile;
use super::raw::{RawComponent, RawGrant, RawGrants};
use super::schema::closest;
use super::shadow::{self, SharedOrigin};
use super::version::CalicoVersion;
use super::{checks, pitfalls};

/// Validates one component; problems are reported and the offending values left out.
pub(super) fn component(
    name: &Spanned<String>,
    raw: RawComponent,
    version: CalicoVersion,
    diags: &mut Diagnostics<'_>,
) -> Component {
    if let Err(problem) = checks::component_name(name.get_ref()) {
        diags.problem(name.span(), problem);
    }
    let name_text = name.get_ref().clone();
    let mut table = None;
    // Every shared grant with the place that says it, for the shadowing check below.
    let mut shared: Vec<SharedOrigin> = Vec::new();
    // Node grants of a built-in profile, at the `grants =` line.
    let mut node_sourced: Vec<(PermissionTemplate, Range<usize>)> = Vec::new();
    let grants_span = raw.grants.as_ref().map_or(name.span(), Spanned::span);
    match raw.grants.map(Spanned::into_inner) {
        None => {}
        Some(RawGrants::Table(table_name)) => match GrantTable::parse(&table_name) {
            Some(found) => match builtin_profile(version, found) {
                Ok(profile) => {
                    table = Some(found);
                    shared.extend(profile.shared.into_iter().map(|permission| SharedOrigin {
                        permission,
                        span: grants_span.clone(),
                        table: Some(found),
                    }));
                    node_sourced.extend(
                        profile
                            .per_node
                            .into_iter()
                            .map(|t| (t, grants_span.clone())),
                    );
                }
                Err(problem) => diags.problem(grants_span.clone(), problem),
            },
            None => diags.problem(grants_span.clone(), unknown_table(&table_name)),
        },
        Some(RawGrants::List(list)) => shared.extend(list.iter().filter_map(|g| {
            shared_grant(g, diags).map(|permission| SharedOrigin {
                permission,
                span: g.span(),
                table: None,
            })
        })),
    }
    shared.extend(raw.extra_grants.iter().filter_map(|g| {
        shared_grant(g, diags).map(|permission| SharedOrigin {
            permission,
            span: g.span(),
            table: None,
        })
    }));
    node_sourced.extend(
        raw.node_grants
            .iter()
            .filter_map(|g| node_grant(g, diags).map(|t| (t, g.span()))),
    );
    shadow::refuse_shadowed(&name_text, &shared, &node_sourced, diags);
    let mut grants: Vec<Permission> = shared.into_iter().map(|s| s.permission).collect();
    grants.sort();
    grants.dedup();
    let mut node_grants: Vec<PermissionTemplate> =
        node_sourced.into_iter().map(|(t, _)| t).collect();
    node_grants.sort();
    node_grants.dedup();

    for unit in &raw.restart {
        if let Err(problem) = checks::restart_unit(unit.get_ref()) {
            diags.problem(unit.span(), problem);
        }
    }
    let mut path =
        |key: &str, value: Option<Spanned<String>>| {
            value.and_then(|v| {
                let path = checks::node_path(key, v.get_ref())
                    .map_err(|p| diags.problem(v.span(), p))
                    .ok()?;
                if !checks::under_agent_defaults(&path) {
                    diags.warn(
                    v.span(),
                    format!("{key} {:?} is outside /etc/calico and /etc/cni/net.d", path.display()),
                    "agents refuse it unless their agent.toml allowed_paths names its directory",
                );
                }
                Some(path)
            })
        };
    let env_file = path("env_file", raw.env_file);
    let cni_conflist = path("cni_conflist", raw.cni_conflist);
    let calicoctl_cfg = path("calicoctl_cfg", raw.calicoctl_cfg);
    let cert_dir = path("cert_dir", raw.cert_dir)
        .unwrap_or_else(|| PathBuf::from(format!("/etc/calico/certs/{name_text}")));
    let mut account = |key: &str, value: Option<Spanned<String>>| match value {
        None => "root".to_string(),
        Some(v) => {
            if let Err(problem) = checks::account_name(key, v.get_ref()) {
                diags.problem(v.span(), problem);
            }
            v.into_inner()
        }
    };
    let owner = account("owner", raw.owner);
    let group = account("group", raw.group);
    let key_mode = mode("key_mode", raw.key_mode.as_ref(), 0o600, diags);
    let cert_mode = mode("cert_mode", raw.cert_mode.as_ref(), 0o644, diags);
    if let Some(span) = raw.key_mode.as_ref().map(Spanned::span)
        && key_mode & 0o007 != 0
    {
        diags.warn(
            span,
            format!(
                "key_mode {key_mode:04o} lets every local user use the private key of {name_text}"
            ),
            "drop the \"other\" bits, e.g. \"0640\" with group set to the service's group",
        );
    }

    let component_identity = raw
        .component_identity
        .as_ref()
        .is_some_and(|wide| component_wide(&name_text, wide, &grants, &node_grants, diags));

    let component = Component {
        name: name_text,
        table,
        grants,
        node_grants,
        restart: raw.restart.into_iter().map(Spanned::into_inner).collect(),
        env_file,
        cni_conflist,
        calicoctl_cfg,
        cert_dir,
        owner,
        group,
        key_mode,
        cert_mode,
        component_identity,
    };
    pitfalls::warn(&component, version, grants_span, diags);
    component
}

/// `component_identity = true`: allowed only for a component whose grants are the same on
/// every node (no `{node}`), that grants something, and whose user fits a Common Name. Reports
/// why not and returns whether the component gets its component-wide identity.
fn component_wide(
    name: &str,
    wide: &Spanned<bool>,
    grants: &[Permission],
    node_grants: &[PermissionTemplate],
    diags: &mut Diagnostics<'_>,
) -> bool {
    if !*wide.get_ref() {
        return false;
    }
    if let Some(template) = node_grants.first() {
        diags.error(
            wide.span(),
            format!(
                "component {name} has per-node grants ({{node}} in {:?}): one component-wide \
                 identity cannot hold them, since every pod would share every node's keys or none",
                template.key_template
            ),
            "use a published table without {node} for a per-component identity (e.g. grants = \
             \"calico-node\" rather than \"calico-node-per-node\", and no node_grants), or drop \
             component_identity and run calseg-agent on each node",
        );
        return false;
    }
    if grants.is_empty() {
        diags.error(
            wide.span(),
            format!(
                "component {name} grants nothing: its component-wide identity would be useless"
            ),
            "give the component grants (a built-in table or an array), or drop component_identity",
        );
        return false;
    }
    let user = super::names::component_user(name);
    if user.len() > super::names::MAX_COMMON_NAME {
        diags.error(
            wide.span(),
            format!(
                "component {name}'s component-wide etcd user {user:?} is {} characters; a \
                 certificate's Common Name holds at most {}",
                user.len(),
                super::names::MAX_COMMON_NAME
            ),
            "use a shorter component name",
        );
        return false;
    }
    true
}

fn unknown_table(name: &str) -> Problem {
    let names: Vec<&str> = GrantTable::ALL.iter().map(|t| t.name()).collect();
    let near = closest(name, &names)
        .map(|n| format!("did you mean \"{n}\"? "))
        .unwrap_or_default();
    Problem::new(
        format!("unknown built-in grant table {name:?}"),
        format!(
            "{near}built-in tables: {}; or write an explicit array of grants",
            names.join(", ")
        ),
    )
}

fn mode(
    key: &str,
    value: Option<&Spanned<super::raw::Scalar>>,
    default: u32,
    diags: &mut Diagnostics<'_>,
) -> u32 {
    let Some(value) = value else { return default };
    checks::file_mode(key, value.get_ref())
        .map_err(|problem| diags.problem(value.span(), problem))
        .unwrap_or(default)
}

/// The checks common to shared and per-node grants: one of prefix/key, absolute, known access.
fn grant_parts<'g>(
    grant: &'g Spanned<RawGrant>,
    diags: &mut Diagnostics<'_>,
) -> Option<(&'g Spanned<String>, KeyRange, Access)> {
    let raw = grant.get_ref();
    let access = Access::parse(raw.access.get_ref());
    if access.is_none() {
        diags.error(
            raw.access.span(),
            format!("unknown access {:?}", raw.access.get_ref()),
            format!("access is one of {}", Access::WORDS),
        );
    }
    let (key, range) = match (&raw.prefix, &raw.key) {
        (Some(prefix), None) => (prefix, KeyRange::Prefix),
        (None, Some(key)) => (key, KeyRange::Exact),
        (prefix, _) => {
            let (message, hint) = match prefix {
                Some(_) => (
                    "grant has both prefix and key",
                    "keep one: prefix = \"/a/\" grants a key range, key = \"/a/b\" one key",
                ),
                None => (
                    "grant has neither prefix nor key",
                    "add prefix = \"/calico/...\" for a range or key = \"/calico/...\" for one key",
                ),
            };
            diags.error(grant.span(), message, hint);
            return None;
        }
    };
    if key.get_ref().is_empty() || !key.get_ref().starts_with('/') {
        let what = if key.get_ref().is_empty() {
            "is empty"
        } else {
            "is not absolute"
        };
        diags.error(
            key.span(),
            format!("grant key {:?} {what}", key.get_ref()),
            "etcd keys used by Calico start with '/', e.g. prefix = \"/calico/felix/v1/\"",
        );
        return None;
    }
    Some((key, range, access?))
}

fn shared_grant(grant: &Spanned<RawGrant>, diags: &mut Diagnostics<'_>) -> Option<Permission> {
    let (key, range, access) = grant_parts(grant, diags)?;
    if key.get_ref().contains("{node}") {
        diags.error(
            key.span(),
            format!("{{node}} in shared grant {:?}", key.get_ref()),
            "shared grants are the same for every node; move this grant to node_grants",
        );
        return None;
    }
    if let Err(problem) = checks::template_variables(key.get_ref(), &["node"]) {
        diags.error(
            key.span(),
            problem.message,
            "shared grants take no variables; remove the braces",
        );
        return None;
    }
    Some(Permission {
        key: key.get_ref().clone(),
        range,
        access,
    })
}

fn node_grant(
    grant: &Spanned<RawGrant>,
    diags: &mut Diagnostics<'_>,
) -> Option<PermissionTemplate> {
    let (key, range, access) = grant_parts(grant, diags)?;
    let template = key.get_ref();
    match checks::template_variables(template, &["node"]) {
        Err(problem) => {
            diags.problem(key.span(), problem);
            return None;
        }
        Ok(vars) if vars.is_empty() => diags.warn(
            key.span(),
            format!("node grant {template:?} has no {{node}}: every node gets the same key"),
            "move it to extra_grants, or add {node} where the node name goes",
        ),
        Ok(_) => {}
    }
    if range == KeyRange::Prefix && !template.ends_with('/') {
        diags.warn(
            key.span(),
            format!("node grant prefix {template:?} does not end in '/'"),
            "without the slash the prefix for node1 also matches node10, node11, ...; add a trailing '/'",
        );
    }
    Some(PermissionTemplate {
        key_template: template.clone(),
        range,
        access,
    })
}
