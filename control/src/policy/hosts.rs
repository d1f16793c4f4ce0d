//! `[[hosts]]`: node selectors and their components, plus the checks across rules: a node given
//! the same component twice, colliding etcd users, and components no rule uses.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use toml::Spanned;

use super::location::Diagnostics;
use super::model::{HostRule, HostSelector};
use super::names::{RESERVED_USERS, owner_in, render, reserved_message};
use super::raw::RawHost;
use super::schema::closest;
use super::{budget, checks};

/// A node name as written in a rule, for the cross-rule checks.
struct Mention {
    node: Spanned<String>,
    rule_line: usize,
    components: Vec<String>,
}

/// Validates the rules; `declared` maps every declared component to its name's span and `user`
/// is the identity template with its span. Components in `component_wide` have an identity of
/// their own, so no host rule need name them.
pub(super) fn host_rules(
    raw: Vec<(Range<usize>, RawHost)>,
    declared: &BTreeMap<String, Range<usize>>,
    component_wide: &BTreeSet<String>,
    user: Option<(&str, Range<usize>)>,
    diags: &mut Diagnostics<'_>,
) -> Vec<HostRule> {
    let mut rules = Vec::new();
    let mut mentions = Vec::new();
    let mut used = BTreeSet::new();
    for (span, host) in raw {
        let components = rule_components(&host, declared, diags);
        used.extend(
            host.components
                .get_ref()
                .iter()
                .map(|c| c.get_ref().clone()),
        );
        let max_unavailable = host.max_unavailable.as_ref().and_then(|value| {
            budget::budget(value.get_ref())
                .map_err(|problem| diags.problem(value.span(), problem))
                .ok()
        });
        let Some((selector, names)) = selector(&span, host, diags) else {
            continue;
        };
        let rule_line = diags.line_of(span.start);
        mentions.extend(names.into_iter().map(|node| Mention {
            node,
            rule_line,
            components: components.clone(),
        }));
        rules.push(HostRule {
            selector,
            components,
            max_unavailable,
        });
    }
    duplicate_assignments(&mentions, diags);
    if let Some((template, user_span)) = user {
        user_collisions(template, user_span, declared, &mentions, diags);
    }
    for (name, span) in declared {
        if !used.contains(name) && !component_wide.contains(name) {
            diags.warn(
                span.clone(),
                format!("component {name} is used by no host rule"),
                format!(
                    "add \"{name}\" to the components of a [[hosts]] rule, or remove the component"
                ),
            );
        }
    }
    rules
}

/// The declared components a rule names, sorted and deduplicated; unknown names are reported.
fn rule_components(
    host: &RawHost,
    declared: &BTreeMap<String, Range<usize>>,
    diags: &mut Diagnostics<'_>,
) -> Vec<String> {
    let mut seen = BTreeSet::new();
    if host.components.get_ref().is_empty() {
        diags.warn(
            host.components.span(),
            "host rule lists no components",
            "list the components these nodes run",
        );
    }
    for name in host.components.get_ref() {
        let text = name.get_ref();
        if !declared.contains_key(text) {
            let known: Vec<&str> = declared.keys().map(String::as_str).collect();
            let hint = match closest(text, &known) {
                Some(near) => format!("did you mean \"{near}\"?"),
                None if known.is_empty() => "declare it as [components.<name>]".to_string(),
                None => format!(
                    "declared components: {}; or declare [components.{text}]",
                    known.join(", ")
                ),
            };
            diags.error(name.span(), format!("unknown component {text:?}"), hint);
        } else if !seen.insert(text.clone()) {
            diags.warn(
                name.span(),
                format!("component {text:?} is listed twice"),
                "list it once",
            );
        }
    }
    seen.into_iter().collect()
}

/// The rule's selector and the node names it mentions (valid ones only).
fn selector(
    span: &Range<usize>,
    host: RawHost,
    diags: &mut Diagnostics<'_>,
) -> Option<(HostSelector, Vec<Spanned<String>>)> {
    let given: Vec<&str> = [
        ("name", host.name.is_some()),
        ("names", host.names.is_some()),
        ("match", host.pattern.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, present)| present.then_some(key))
    .collect();
    if given.len() != 1 {
        let found = if given.is_empty() {
            "none".to_string()
        } else {
            given.join(" and ")
        };
        diags.error(
            span.clone(),
            format!("host rule needs exactly one of name, names or match (found {found})"),
            "write name = \"node1\", names = [\"node1\", \"node2\"] or match = \"worker-*\"",
        );
        return None;
    }
    if let Some(pattern) = host.pattern {
        return match glob::Pattern::new(pattern.get_ref()) {
            Ok(glob) => Some((HostSelector::Match(glob), Vec::new())),
            Err(error) => {
                diags.error(
                    pattern.span(),
                    format!("invalid glob {:?}: {} at position {}", pattern.get_ref(), error.msg, error.pos),
                    "globs use * (any run), ? (one character) and [a-z] (a class), e.g. match = \"worker-*\"",
                );
                None
            }
        };
    }
    let names = match (host.name, host.names) {
        (Some(name), _) => vec![name],
        (None, Some(names)) => {
            if names.get_ref().is_empty() {
                diags.error(
                    names.span(),
                    "names is empty",
                    "list at least one node, or remove the rule",
                );
            }
            names.into_inner()
        }
        (None, None) => Vec::new(),
    };
    let mut valid: Vec<Spanned<String>> = Vec::new();
    for name in names {
        if let Err(problem) = checks::node_name(name.get_ref()) {
            diags.problem(name.span(), problem);
        } else if valid.iter().any(|v| v.get_ref() == name.get_ref()) {
            diags.error(
                name.span(),
                format!("node {:?} is listed twice in this rule", name.get_ref()),
                "list each node once",
            );
        } else {
            valid.push(name);
        }
    }
    let selector = HostSelector::Names(valid.iter().map(|n| n.get_ref().clone()).collect());
    Some((selector, valid))
}

/// A node may appear in several rules to add components, never to get one component twice.
fn duplicate_assignments(mentions: &[Mention], diags: &mut Diagnostics<'_>) {
    let mut first: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for mention in mentions {
        for component in &mention.components {
            let key = (mention.node.get_ref().as_str(), component.as_str());
            match first.get(&key) {
                Some(&line) => diags.error(
                    mention.node.span(),
                    format!(
                        "node {:?} gets component {component:?} from the host rules at lines {line} and {}",
                        mention.node.get_ref(),
                        mention.rule_line
                    ),
                    format!("drop {component:?} from one of the two rules (a node may appear again only to add other components)"),
                ),
                None => {
                    first.insert(key, mention.rule_line);
                }
            }
        }
    }
}

/// Every (component, node) pair must get its own etcd user, none may be `root`, and no node
/// name at all may make the template render a reserved user (a glob rule admits any name).
fn user_collisions(
    template: &str,
    span: Range<usize>,
    declared: &BTreeMap<String, Range<usize>>,
    mentions: &[Mention],
    diags: &mut Diagnostics<'_>,
) {
    let template_hint = "use an identity user template that keeps component and node apart, e.g. \"{component}.{node}\"";
    for reserved in RESERVED_USERS {
        if let Some(owner) = owner_in(template, declared.keys().map(String::as_str), reserved) {
            diags.error(
                span.clone(),
                reserved_message(template, reserved, &owner),
                "calseg never signs a certificate for a user it does not own: etcd gives root every \
                 right, and a node may enroll under any name a glob or token admits",
            );
        }
    }
    let mut users: BTreeMap<String, (String, String)> = BTreeMap::new();
    for mention in mentions {
        let node = mention.node.get_ref();
        for component in &mention.components {
            let user = render(template, component, node, 0);
            if user == "root" {
                diags.error(
                    mention.node.span(),
                    format!("etcd user of {component} on {node} would be \"root\""),
                    "etcd gives the user root every right (superuser); use a template whose users cannot \
                     equal \"root\", e.g. \"{component}.{node}\"",
                );
                continue;
            }
            let pair = (component.clone(), node.clone());
            match users.get(&user) {
                Some(other) if *other != pair => diags.error(
                    mention.node.span(),
                    format!(
                        "etcd user {user:?} of {component} on {node} collides with {} on {}",
                        other.0, other.1
                    ),
                    template_hint,
                ),
                Some(_) => {}
                None => {
                    users.insert(user, pair);
                }
            }
        }
    }
}
