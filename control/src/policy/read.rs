//! Stage one: TOML text to raw sections. Collects every syntax error, every unknown key and one
//! type error per section (a component or host rule with a bad value does not hide the others).

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::location::Diagnostics;
use super::raw::{RawComponent, RawDatastore, RawEtcd, RawHost, RawIdentity, RawRollout, Scalar};
use super::schema::prune_unknown_keys;

/// The sections of a policy file, each `None` when missing or unreadable (already reported).
#[derive(Debug, Default)]
pub(super) struct RawPolicy {
    pub calico_version: Option<Spanned<Scalar>>,
    pub etcd: Option<RawEtcd>,
    /// Absent `[identity]` reads as all defaults; a broken one as `None`.
    pub identity: Option<RawIdentity>,
    /// Declared names with their bodies; a body is `None` when it could not be read, so host
    /// rules naming it are not reported as unknown.
    pub components: Vec<(Spanned<String>, Option<RawComponent>)>,
    /// Each readable host rule with the span of its table.
    pub hosts: Vec<(Range<usize>, RawHost)>,
    /// Absent `[rollout]` reads as all defaults; a broken one as `None`.
    pub rollout: Option<RawRollout>,
    /// Absent `[datastore]` reads as all defaults; a broken one as `None`.
    pub datastore: Option<RawDatastore>,
}

/// Reads the sections; `None` if the text is not TOML (syntax errors are reported).
pub(super) fn read(source: &str, diags: &mut Diagnostics<'_>) -> Option<RawPolicy> {
    let (root, syntax_errors) = DeTable::parse_recoverable(source);
    if !syntax_errors.is_empty() {
        for error in syntax_errors {
            diags.error(
                error.span().unwrap_or(0..0),
                format!("TOML syntax: {}", error.message().trim()),
                "fix the TOML syntax (see https://toml.io); server/policy.example.toml shows a valid policy",
            );
        }
        return None;
    }
    let mut root = root.into_inner();
    prune_unknown_keys(&mut root, diags);

    let mut raw = RawPolicy {
        identity: Some(RawIdentity::default()),
        rollout: Some(RawRollout::default()),
        datastore: Some(RawDatastore::default()),
        ..RawPolicy::default()
    };
    let (mut seen_version, mut seen_etcd) = (false, false);
    for (key, value) in root {
        seen_version |= key.get_ref() == "calico_version";
        seen_etcd |= key.get_ref() == "etcd";
        match key.get_ref().as_ref() {
            "calico_version" => raw.calico_version = section(value, diags),
            "etcd" => raw.etcd = section(value, diags),
            "identity" => raw.identity = section(value, diags),
            "components" => raw.components = components(value, diags),
            "hosts" => raw.hosts = hosts(value, diags),
            "rollout" => raw.rollout = section(value, diags),
            "datastore" => raw.datastore = section(value, diags),
            _ => {}
        }
    }
    if !seen_version {
        diags.error(
            0..0,
            "missing required key `calico_version`",
            "add calico_version = \"3.29\" (the running Calico release) at the top of the file",
        );
    }
    if !seen_etcd {
        diags.error(
            0..0,
            "missing required section [etcd]",
            "add [etcd] with endpoints = [\"https://<etcd-host>:2379\"]",
        );
    }
    Some(raw)
}

fn components(
    value: Spanned<DeValue<'_>>,
    diags: &mut Diagnostics<'_>,
) -> Vec<(Spanned<String>, Option<RawComponent>)> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        diags.error(
            span,
            "`components` must be a table of [components.<name>] sections",
            "declare each component as a section, e.g. [components.calico-node]",
        );
        return Vec::new();
    };
    table
        .into_iter()
        .map(|(key, value)| {
            let name = Spanned::new(key.span(), key.get_ref().to_string());
            (name, section(value, diags))
        })
        .collect()
}

fn hosts(value: Spanned<DeValue<'_>>, diags: &mut Diagnostics<'_>) -> Vec<(Range<usize>, RawHost)> {
    let span = value.span();
    let DeValue::Array(items) = value.into_inner() else {
        diags.error(
            span,
            "`hosts` must be an array of [[hosts]] tables",
            "write each host rule as a [[hosts]] section",
        );
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| {
            let span = item.span();
            section(item, diags).map(|host| (span, host))
        })
        .collect()
}

/// Deserializes one section, reporting (not propagating) a type error or missing field.
fn section<'i, T: Deserialize<'i>>(
    value: Spanned<DeValue<'i>>,
    diags: &mut Diagnostics<'_>,
) -> Option<T> {
    let fallback = value.span();
    match T::deserialize(ValueDeserializer::from(value)) {
        Ok(section) => Some(section),
        Err(error) => {
            let message = error.message().trim().to_string();
            let hint = match message.strip_prefix("missing field ") {
                Some(field) => format!(
                    "add {field} to this table; server/policy.example.toml shows every key with an example"
                ),
                None => {
                    "server/policy.example.toml shows the expected form of every key".to_string()
                }
            };
            diags.error(error.span().unwrap_or(fallback), message, hint);
            None
        }
    }
}
