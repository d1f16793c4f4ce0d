//! Policy parsing end to end on text: every error kind with its line, column and hint, the
//! warnings, the example file, and the model's queries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use calseg_api::access::Access;

/// Lines 1-3 of most test policies.
const HEAD: &str = "calico_version = \"3.29\"\n[etcd]\nendpoints = [\"https://10.0.0.1:2379\"]\n";

fn errors(source: &str) -> Vec<Diagnostic> {
    match parse(source, "policy.toml") {
        Ok(policy) => panic!("expected errors, got a policy: {policy:#?}"),
        Err(PolicyErrors(errors)) => errors,
    }
}

fn warnings(source: &str) -> Vec<Diagnostic> {
    match parse(source, "policy.toml") {
        Ok(policy) => policy.warnings,
        Err(errors) => panic!("expected a policy, got:\n{errors}"),
    }
}

/// The one diagnostic whose message contains `needle`, checked to sit at `line:column`.
fn at(diagnostics: &[Diagnostic], needle: &str, line: usize, column: usize) -> Diagnostic {
    let found: Vec<&Diagnostic> = diagnostics
        .iter()
        .filter(|d| d.message.contains(needle))
        .collect();
    let all = diagnostics
        .iter()
        .map(|d| format!("{d}\n"))
        .collect::<String>();
    assert_eq!(
        found.len(),
        1,
        "want one diagnostic with {needle:?} among:\n{all}"
    );
    let d = found[0].clone();
    assert_eq!((d.line, d.column), (line, column), "{d}");
    assert!(d.hint.as_deref().is_some_and(|h| !h.is_empty()), "{d}");
    d
}

fn hint(d: &Diagnostic) -> &str {
    d.hint.as_deref().unwrap_or_default()
}

#[test]
fn example_file_parses_without_warnings() {
    let policy = parse(
        include_str!("../../../server/policy.example.toml"),
        "policy.example.toml",
    )
    .unwrap();
    assert!(policy.warnings.is_empty(), "{:?}", policy.warnings);
    assert_eq!(policy.calico_version.table_era(), TableEra::V3_19);
    assert_eq!(policy.etcd.endpoints.len(), 3);
    assert_eq!(policy.identity.lifetime, DEFAULT_LIFETIME);
    let names: Vec<&str> = policy
        .components_for("worker-7")
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["calico-node", "cni-plugin"]);
    assert_eq!(
        policy.nodes().into_iter().collect::<Vec<_>>(),
        ["admin1", "admin2"]
    );
    let ro = &policy.components["calicoctl-ro"];
    assert_eq!(
        (ro.key_mode, ro.cert_mode, ro.group.as_str()),
        (0o640, 0o644, "calico-admins")
    );
    assert_eq!(
        ro.cert_dir,
        std::path::PathBuf::from("/etc/calico/certs/calicoctl-ro")
    );
    // The example narrows for real: calico-node and the CNI plugin write only their own
    // node's keys, besides the rows Calico's design keeps shared.
    for name in ["calico-node", "cni-plugin"] {
        let component = &policy.components[name];
        assert!(
            !component.node_grants.is_empty(),
            "{name} has no per-node grants"
        );
        for grant in component.grants.iter().filter(|g| g.access != Access::Read) {
            assert!(
                grant.key.starts_with("/calico/ipam/v2/assignment/")
                    || grant.key.starts_with("/calico/ipam/v2/handle/")
                    || grant.key.ends_with("/workloadendpoints/")
                    || (grant.key.contains("/tiers/") && grant.range == KeyRange::Exact),
                "{name} shares a write that is not shared by design: {grant:?}"
            );
        }
    }
}

#[test]
fn syntax_errors_point_at_the_line() {
    let errs = errors("calico_version = \"3.29\"\n[etcd\nendpoints = []\n");
    assert_eq!(errs[0].line, 2, "{}", errs[0]);
    assert!(errs[0].message.starts_with("TOML syntax"));
}

#[test]
fn unknown_keys_are_all_reported_with_suggestions() {
    let src = format!(
        "{HEAD}ca_fle = \"/x\"\n[components.felix]\ngrants = \"felix\"\nnode_grant = []\nrestrat = []\n\
         [[hosts]]\nname = \"n1\"\ncomponent = [\"felix\"]\ncomponents = [\"felix\"]\n"
    );
    let errs = errors(&src);
    assert!(hint(&at(&errs, "unknown key `ca_fle` in [etcd]", 4, 1)).contains("`ca_file`"));
    assert!(hint(&at(&errs, "`node_grant` in [components.felix]", 7, 1)).contains("`node_grants`"));
    assert!(hint(&at(&errs, "`restrat`", 8, 1)).contains("`restart`"));
    assert!(hint(&at(&errs, "`component` in [[hosts]]", 11, 1)).contains("`components`"));
    // A near miss is checked as the key it resembles: no "missing field" echo, value checked.
    let errs = errors("calico_version = \"3.29\"\n[etcd]\nendpoint = [\"ftp://e\"]\n");
    assert_eq!(errs.len(), 2, "{}", PolicyErrors(errs.clone()));
    at(&errs, "unknown key `endpoint`", 3, 1);
    at(
        &errs,
        "\"ftp://e\" is not an https:// or http:// URL",
        3,
        13,
    );
    let errs = errors(&format!("flavour = 1\n{HEAD}[etcd.tls]\n"));
    assert!(
        hint(&at(&errs, "unknown key `flavour` in the top level", 1, 1)).contains("calico_version")
    );
    at(&errs, "unknown key `tls` in [etcd]", 5, 7);
}

#[test]
fn missing_required_keys_are_reported() {
    let errs = errors("[etcd]\nendpoints = [\"https://e:2379\"]\n");
    assert!(hint(&at(&errs, "missing required key `calico_version`", 1, 1)).contains("3.29"));
    let errs = errors("calico_version = \"3.29\"\n");
    at(&errs, "missing required section [etcd]", 1, 1);
    let src = format!("{HEAD}[components.c]\nextra_grants = [ {{ prefix = \"/a/\" }} ]\n");
    at(&errors(&src), "missing field `access`", 5, 18);
}

#[test]
fn wrong_types_are_reported_per_section() {
    let src = format!("{HEAD}[components.a]\nrestart = 5\n[components.b]\nowner = 0\n");
    let errs = errors(&src);
    at(&errs, "invalid type: integer `5`", 5, 11);
    at(&errs, "invalid type: integer `0`", 7, 9);
}

#[test]
fn calico_2_is_refused_with_the_etcdv2_explanation() {
    let errs = errors("calico_version = \"2.6\"\n[etcd]\nendpoints = [\"https://e:2379\"]\n");
    let d = at(&errs, "etcdv2 datastore", 1, 18);
    assert!(
        d.message.contains("etcd v3 RBAC does not cover")
            && d.message.contains("only etcd v3 RBAC")
    );
    assert!(hint(&d).contains("upgrade to Calico 3"));
    let errs = errors("calico_version = 3.29\n[etcd]\nendpoints = [\"https://e:2379\"]\n");
    assert!(hint(&at(&errs, "must be a string", 1, 18)).contains("3.1 from 3.10"));
    let errs = errors("calico_version = \"latest\"\n[etcd]\nendpoints = [\"https://e:2379\"]\n");
    assert!(hint(&at(&errs, "not a Calico version", 1, 18)).contains("major.minor"));
}

#[test]
fn grant_errors_point_at_the_offending_value() {
    let src = format!(
        "{HEAD}[components.c]\n\
         grants = \"calico-nod\"\n\
         extra_grants = [\n\
         {{ prefix = \"/a/{{node}}/\", access = \"read\" }},\n\
         {{ prefix = \"/a/\", access = \"rw\" }},\n\
         {{ prefix = \"calico/\", access = \"read\" }},\n\
         {{ key = \"\", access = \"read\" }},\n\
         {{ prefix = \"/a/\", key = \"/a/b\", access = \"read\" }},\n\
         {{ access = \"read\" }},\n\
         ]\n\
         node_grants = [ {{ prefix = \"/h/{{host}}/\", access = \"read\" }} ]\n"
    );
    let errs = errors(&src);
    let table = at(&errs, "unknown built-in grant table \"calico-nod\"", 5, 10);
    assert!(
        hint(&table).contains("did you mean \"calico-node\"")
            && hint(&table).contains("calicoctl-full")
    );
    assert!(
        hint(&at(&errs, "{node} in shared grant", 7, 12))
            .contains("move this grant to node_grants")
    );
    assert!(hint(&at(&errs, "unknown access \"rw\"", 8, 28)).contains(Access::WORDS));
    at(&errs, "\"calico/\" is not absolute", 9, 12);
    at(&errs, "grant key \"\" is empty", 10, 9);
    at(&errs, "both prefix and key", 11, 1);
    at(&errs, "neither prefix nor key", 12, 1);
    assert!(hint(&at(&errs, "unknown variable {host}", 14, 28)).contains("{node}"));
}

#[test]
fn identity_errors() {
    let src = format!(
        "{HEAD}[identity]\nuser = \"{{component}}-{{nodename}}\"\nlifetime = \"30m\"\nrenew_after = 1.5\n"
    );
    let errs = errors(&src);
    at(&errs, "unknown variable {nodename}", 5, 8);
    at(&errs, "shorter than one hour", 6, 12);
    assert!(hint(&at(&errs, "renew_after 1.5 is outside (0, 1)", 7, 15)).contains("2/3"));
    let errs = errors(&format!(
        "{HEAD}[identity]\nuser = \"{{component}}\"\nlifetime = \"a month\"\n"
    ));
    at(&errs, "has no {node}", 5, 8);
    at(&errs, "not a duration", 6, 12);
}

#[test]
fn etcd_errors() {
    let errs = errors("calico_version = \"3.29\"\n[etcd]\nendpoints = []\nca_file = \"ca.pem\"\n");
    at(&errs, "etcd endpoints is empty", 3, 13);
    assert!(
        hint(&at(
            &errs,
            "ca_file \"ca.pem\" is not an absolute path",
            4,
            11
        ))
        .contains("/ca.pem")
    );
    let errs = errors(
        "calico_version = \"3.29\"\n[etcd]\nendpoints = [\"https://a:2379\", \"10.0.0.1:2379\"]\n",
    );
    at(
        &errs,
        "\"10.0.0.1:2379\" is not an https:// or http:// URL",
        3,
        32,
    );
}

#[test]
fn component_field_errors() {
    let src = format!(
        "{HEAD}[components.Calico_Node]\nrestart = [\"calico-node\"]\nenv_file = \"calico.env\"\n\
         cert_dir = \"certs\"\nkey_mode = \"0999\"\ncert_mode = \"4755\"\n[components.b]\nkey_mode = 0o640\n\
         cni_conflist = \"x.conflist\"\ncalicoctl_cfg = \"./c.cfg\"\n"
    );
    let errs = errors(&src);
    assert!(hint(&at(&errs, "invalid component name \"Calico_Node\"", 4, 13)).contains("no dots"));
    assert!(
        hint(&at(
            &errs,
            "\"calico-node\" is not a systemd unit name",
            5,
            12
        ))
        .contains("calico-node.service")
    );
    at(
        &errs,
        "env_file \"calico.env\" is not an absolute path",
        6,
        12,
    );
    at(&errs, "cert_dir", 7, 12);
    at(&errs, "key_mode \"0999\" is not an octal mode", 8, 12);
    at(&errs, "cert_mode \"4755\" has bits beyond 0o777", 9, 13);
    assert!(hint(&at(&errs, "key_mode must be an octal string", 11, 12)).contains("\"0640\""));
    at(&errs, "cni_conflist", 12, 16);
    at(&errs, "calicoctl_cfg", 13, 17);
}

#[test]
fn host_rule_errors() {
    let src = format!(
        "{HEAD}[components.a]\n[components.b]\n\
         [[hosts]]\nname = \"n1\"\nmatch = \"n*\"\ncomponents = [\"a\"]\n\
         [[hosts]]\ncomponents = [\"a\"]\n\
         [[hosts]]\nmatch = \"worker-[\"\ncomponents = [\"a\", \"c\"]\n\
         [[hosts]]\nnames = [\"Node_1\", \"n2\", \"n2\"]\ncomponents = [\"a\"]\n"
    );
    let errs = errors(&src);
    at(
        &errs,
        "exactly one of name, names or match (found name and match)",
        6,
        1,
    );
    at(&errs, "(found none)", 10, 1);
    assert!(hint(&at(&errs, "invalid glob \"worker-[\"", 13, 9)).contains("worker-*"));
    assert!(
        hint(&at(&errs, "unknown component \"c\"", 14, 20)).contains("declared components: a, b")
    );
    assert!(hint(&at(&errs, "invalid node name \"Node_1\"", 16, 10)).contains("RFC 1123"));
    at(&errs, "node \"n2\" is listed twice in this rule", 16, 26);
}

#[test]
fn a_node_may_repeat_only_to_add_components() {
    let ok = format!(
        "{HEAD}[components.a]\n[components.b]\n[[hosts]]\nname = \"n1\"\ncomponents = [\"a\"]\n\
         [[hosts]]\nnames = [\"n1\", \"n2\"]\ncomponents = [\"b\"]\n"
    );
    let policy = parse(&ok, "policy.toml").unwrap();
    let names: Vec<&str> = policy
        .components_for("n1")
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
    let dup = format!("{ok}[[hosts]]\nname = \"n2\"\ncomponents = [\"a\", \"b\"]\n");
    let errs = errors(&dup);
    let d = at(
        &errs,
        "node \"n2\" gets component \"b\" from the host rules at lines 9 and 12",
        13,
        8,
    );
    assert!(hint(&d).contains("drop \"b\""));
}

#[test]
fn etcd_users_must_not_collide_or_be_root() {
    let src = format!(
        "{HEAD}[identity]\nuser = \"{{component}}{{node}}\"\n[components.a]\n[components.ab]\n\
         [[hosts]]\nname = \"b1\"\ncomponents = [\"a\"]\n[[hosts]]\nname = \"1\"\ncomponents = [\"ab\"]\n"
    );
    let errs = errors(&src);
    at(
        &errs,
        "etcd user \"ab1\" of ab on 1 collides with a on b1",
        12,
        8,
    );
    let src = format!(
        "{HEAD}[identity]\nuser = \"{{node}}\"\n[components.a]\n[components.b]\n\
         [[hosts]]\nname = \"root\"\ncomponents = [\"a\"]\n[[hosts]]\nmatch = \"w*\"\ncomponents = [\"a\", \"b\"]\n"
    );
    let errs = errors(&src);
    assert!(hint(&at(&errs, "would be \"root\"", 9, 8)).contains("superuser"));
    assert!(hint(&at(&errs, "has no {component}", 5, 8)).contains("{component}.{node}"));
}

/// Issue 17 finding 3: a template a node name can make `root` (or another reserved name) is
/// refused, whatever nodes the rules name, and so is the generation separator.
#[test]
fn templates_that_can_render_reserved_users_are_refused_with_the_rule() {
    let glob = |user: &str, component: &str| {
        format!(
            "{HEAD}[identity]\nuser = \"{user}\"\n[components.{component}]\n\
             [[hosts]]\nmatch = \"*\"\ncomponents = [\"{component}\"]\n"
        )
    };
    let errs = errors(&glob("{node}", "calico-node"));
    let d = at(&errs, "has no {component}", 5, 8);
    assert!(
        hint(&d).contains("must contain {component} and {node}"),
        "{d}"
    );
    at(&errs, "renders the reserved etcd user \"root\"", 5, 8);
    // Component and node glued together spell root: ro + ot.
    let errs = errors(&glob("{component}{node}", "ro"));
    let d = at(
        &errs,
        "renders the reserved etcd user \"root\" (component ro, node ot)",
        5,
        8,
    );
    assert!(d.message.contains("no user calseg does not own"), "{d}");
    let errs = errors(&glob("{component}~{node}", "calico-node"));
    assert!(hint(&at(&errs, "contains '~'", 5, 8)).contains("generation"));
    parse(&glob("{component}.{node}", "calico-node"), "policy.toml").unwrap();

    // calseg's own etcd user is reserved too once the server knows it.
    let policy = parse(&glob("{component}-{node}", "calseg"), "policy.toml").unwrap();
    let refused = policy.check_reserved_users(&["calseg-server".into()]);
    assert!(
        refused
            .unwrap_err()
            .contains("(component calseg, node server)")
    );
    assert!(policy.check_reserved_users(&["root".into()]).is_ok());
}

#[test]
fn every_error_in_a_file_is_reported_in_file_order() {
    let src = "calico_version = \"2.6\"\n[etcd]\nendpoints = [\"ftp://e\"]\n[identity]\nlifetime = \"1s\"\n\
               [components.a]\nrestart = [\"x\"]\n[[hosts]]\nname = \"A\"\ncomponents = [\"zzz\"]\n";
    let errs = errors(src);
    let lines: Vec<usize> = errs.iter().map(|d| d.line).collect();
    assert_eq!(lines, [1, 3, 5, 7, 9, 10], "{}", PolicyErrors(errs.clone()));
    assert!(
        PolicyErrors(errs)
            .to_string()
            .starts_with("policy.toml:1:18: error: calico_version 2.6")
    );
}

#[test]
fn warnings_for_loose_prefixes_http_and_calico_pitfalls() {
    let src = "calico_version = \"3.29\"\n[etcd]\nendpoints = [\"http://e:2379\"]\n\
               [components.node]\ngrants = \"calico-node\"\nnode_grants = [ { prefix = \"/calico/bgp/v1/host/{node}\", access = \"readwrite\" } ]\n\
               key_mode = \"0604\"\n[components.kc]\ngrants = \"kube-controllers\"\n[components.idle]\ngrants = \"felix\"\n\
               [[hosts]]\nname = \"n1\"\ncomponents = [\"node\", \"kc\"]\n";
    let warns = warnings(src);
    assert!(warns.iter().all(|w| w.severity == Severity::Warning));
    at(&warns, "plain http", 3, 14);
    assert!(hint(&at(&warns, "does not end in '/'", 6, 28)).contains("node10"));
    assert!(hint(&at(&warns, "creates tiers", 5, 10)).contains("tiers/"));
    at(&warns, "lets every local user use the private key", 7, 12);
    assert!(hint(&at(&warns, "compacts etcd", 9, 10)).contains("COMPACTION_PERIOD=0"));
    at(&warns, "component idle is used by no host rule", 10, 13);
    assert!(
        warns[0]
            .to_string()
            .starts_with("policy.toml:3:14: warning: ")
    );
    // Before 3.29 there are no tiers to create; with a readwrite grant on them, no warning.
    assert!(
        !warnings(&src.replace("3.29", "3.28"))
            .iter()
            .any(|w| w.message.contains("tiers"))
    );
    let granted = src.replace(
        "grants = \"calico-node\"\n",
        "grants = \"calico-node\"\nextra_grants = [{ prefix = \"/calico/resources/v3/projectcalico.org/\", access = \"readwrite\" }]\n",
    );
    assert!(
        !warnings(&granted)
            .iter()
            .any(|w| w.message.contains("tiers"))
    );
}

#[test]
fn grants_combine_table_extras_and_explicit_lists() {
    let src = format!(
        "{HEAD}[components.a]\ngrants = \"cni-plugin\"\n\
         extra_grants = [{{ key = \"/calico/ipam/v2/config\", access = \"read\" }}, {{ prefix = \"/calico/ipam/v2/\", access = \"readwrite\" }}]\n\
         [components.b]\ngrants = [{{ prefix = \"/calico/felix/v1/\", access = \"write\" }}]\n\
         node_grants = [{{ key = \"/n/{{node}}\", access = \"readwrite\" }}, {{ prefix = \"/h/{{node}}/\", access = \"read\" }}]\n\
         [[hosts]]\nmatch = \"*\"\ncomponents = [\"a\", \"b\"]\n"
    );
    let policy = parse(&src, "policy.toml").unwrap();
    let a = &policy.components["a"];
    assert_eq!(a.table, Some(GrantTable::CniPlugin));
    let mut expected = builtin_grants(CalicoVersion::new(3, 29), GrantTable::CniPlugin);
    expected.push(Permission {
        key: "/calico/ipam/v2/config".into(),
        range: KeyRange::Exact,
        access: Access::Read,
    });
    expected.sort();
    assert_eq!(
        a.grants, expected,
        "the extra ipam/v2 prefix duplicates the table and is deduplicated"
    );
    let b = &policy.components["b"];
    assert_eq!(b.table, None);
    assert_eq!(b.grants.len(), 1);
    let perms = b.node_permissions("w1");
    assert_eq!(
        perms,
        [
            Permission {
                key: "/h/w1/".into(),
                range: KeyRange::Prefix,
                access: Access::Read
            },
            Permission {
                key: "/n/w1".into(),
                range: KeyRange::Exact,
                access: Access::ReadWrite
            },
        ]
    );
}

#[test]
fn queries_over_host_rules_and_identities() {
    let src = format!(
        "{HEAD}[identity]\nuser = \"calico-{{component}}@{{node}}\"\nrenew_after = \"3/4\"\nlifetime = \"12h\"\n\
         [components.node]\n[components.ctl]\n\
         [[hosts]]\nmatch = \"worker-*\"\ncomponents = [\"node\"]\n\
         [[hosts]]\nnames = [\"worker-1\", \"admin\"]\ncomponents = [\"ctl\"]\n"
    );
    let policy = parse(&src, "policy.toml").unwrap();
    let names = |node: &str| -> Vec<String> {
        policy
            .components_for(node)
            .iter()
            .map(|c| c.name.clone())
            .collect()
    };
    assert_eq!(names("worker-1"), ["ctl", "node"]);
    assert_eq!(names("worker-99"), ["node"]);
    assert_eq!(names("admin"), ["ctl"]);
    assert!(names("db-1").is_empty());
    assert_eq!(
        policy.nodes().into_iter().collect::<Vec<_>>(),
        ["admin", "worker-1"]
    );
    assert_eq!(
        policy.etcd_user("node", "worker-1", 0),
        "calico-node@worker-1"
    );
    assert_eq!(policy.identity.renew_after, 0.75);
    assert_eq!(
        policy.identity.lifetime,
        std::time::Duration::from_secs(12 * 3600)
    );
}

#[test]
fn defaults_apply_when_sections_are_absent() {
    let src = format!(
        "{HEAD}[components.c]\ngrants = \"felix\"\n[[hosts]]\nname = \"n1\"\ncomponents = [\"c\"]\n"
    );
    let policy = parse(&src, "policy.toml").unwrap();
    assert_eq!(policy.identity.user_template, DEFAULT_USER_TEMPLATE);
    assert_eq!(policy.etcd_user("c", "n1", 0), "c.n1");
    assert_eq!(policy.identity.renew_after, DEFAULT_RENEW_AFTER);
    let c = &policy.components["c"];
    assert_eq!(
        (c.owner.as_str(), c.group.as_str(), c.key_mode, c.cert_mode),
        ("root", "root", 0o600, 0o644)
    );
    assert_eq!(c.cert_dir, std::path::PathBuf::from("/etc/calico/certs/c"));
}

#[test]
fn load_reads_the_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(
        &path,
        "calico_version = \"2.6\"\n[etcd]\nendpoints = [\"https://e:2379\"]\n",
    )
    .unwrap();
    let errs = load(&path).unwrap_err();
    assert_eq!(errs.0[0].origin, path.display().to_string());
    let missing = load(&dir.path().join("absent.toml")).unwrap_err();
    assert_eq!((missing.0[0].line, missing.0[0].column), (0, 0));
    assert!(
        missing
            .to_string()
            .contains("absent.toml: error: cannot read the policy file")
    );
}

#[test]
fn a_node_grant_shadowed_by_a_shared_grant_is_refused_naming_both() {
    // The case: Calico's published calico-node table, plus a per-node felix grant.
    let src = format!(
        "{HEAD}[components.calico-node]\ngrants = \"calico-node\"\n\
         node_grants = [ {{ prefix = \"/calico/felix/v1/host/{{node}}/\", access = \"readwrite\" }} ]\n\
         [[hosts]]\nname = \"n1\"\ncomponents = [\"calico-node\"]\n"
    );
    let errs = errors(&src);
    let error = at(&errs, "narrows nothing", 6, 17);
    assert!(
        error.message.contains("/calico/felix/v1/host/{node}/"),
        "{error}"
    );
    assert!(error.message.contains("policy.toml:5:10"), "{error}");
    assert!(
        error
            .message
            .contains("readwrite on prefix /calico/felix/v1/"),
        "{error}"
    );
    assert!(hint(&error).contains("calico-node-per-node"), "{error}");

    // An explicit shared grant names its own position; read-only shared grants do not shadow
    // a per-node write.
    let src = format!(
        "{HEAD}[components.c]\ngrants = [ {{ prefix = \"/calico/\", access = \"read\" }} ]\n\
         extra_grants = [ {{ prefix = \"/calico/ipam/v2/\", access = \"readwrite\" }} ]\n\
         node_grants = [ {{ prefix = \"/calico/felix/v1/host/{{node}}/\", access = \"readwrite\" }}, \
         {{ prefix = \"/calico/ipam/v2/host/{{node}}/\", access = \"read\" }} ]\n\
         [[hosts]]\nname = \"n1\"\ncomponents = [\"c\"]\n"
    );
    let errs = errors(&src);
    assert_eq!(errs.len(), 1, "{errs:?}");
    // Read on /calico/ already covers the per-node read (the first covering grant is named).
    let error = at(&errs, "narrows nothing", 7, 85);
    assert!(error.message.contains("policy.toml:5:12"), "{error}");
    assert!(
        error.message.contains("/calico/ipam/v2/host/{node}/"),
        "{error}"
    );

    // The narrowed profile itself is never refused, and a node grant added to it is checked too.
    let src = format!(
        "{HEAD}[components.calico-node]\ngrants = \"calico-node-per-node\"\n\
         [[hosts]]\nname = \"n1\"\ncomponents = [\"calico-node\"]\n"
    );
    let policy = parse(&src, "policy.toml").unwrap();
    assert!(!policy.components["calico-node"].node_grants.is_empty());
}

#[test]
fn a_narrowed_profile_for_an_unknown_calico_release_is_refused() {
    let src = "calico_version = \"3.9\"\n[etcd]\nendpoints = [\"https://10.0.0.1:2379\"]\n\
               [components.n]\ngrants = \"calico-node-per-node\"\n\
               [[hosts]]\nname = \"n1\"\ncomponents = [\"n\"]\n";
    let errs = errors(src);
    let error = at(&errs, "per-node keys of Calico 3.19 to 3.33", 5, 10);
    assert!(error.message.contains("calico_version 3.9"), "{error}");
    assert!(hint(&error).contains("\"calico-node\""), "{error}");
}

/// Issue 17, finding 2: what no agent could ever allow is refused on the server too.
#[test]
fn paths_units_and_modes_no_agent_allows_are_refused() {
    let src = format!(
        "{HEAD}[components.a]\n\
         restart = [\"sshd.service\", \"reboot.target\", \"calseg-agent.service\", \"calico-node.service\"]\n\
         cert_dir = \"/root/.ssh\"\nenv_file = \"/etc/systemd/system/x.service\"\n\
         cni_conflist = \"/etc//ssh/sshd_config\"\ncalicoctl_cfg = \"/proc/self/mem\"\n\
         key_mode = \"0602\"\n[components.b]\nrestart = [\"poweroff.target\", \"calseg-server.service\"]\n\
         cert_mode = \"0777\"\n"
    );
    let errs = errors(&src);
    assert!(
        hint(&at(
            &errs,
            "restart \"reboot.target\" is not a .service unit",
            5,
            28
        ))
        .contains("never a target")
    );
    at(
        &errs,
        "restart \"calseg-agent.service\" is one of calseg's own units",
        5,
        45,
    );
    at(&errs, "cert_dir \"/root/.ssh\" is under /root,", 6, 12);
    at(&errs, "is under /etc/systemd,", 7, 12);
    at(&errs, "is under /etc/ssh,", 8, 16);
    at(&errs, "is under /proc,", 9, 17);
    assert!(hint(&at(&errs, "key_mode \"0602\" is world-writable", 10, 12)).contains("\"0644\""));
    at(
        &errs,
        "restart \"poweroff.target\" is not a .service unit",
        12,
        12,
    );
    at(
        &errs,
        "restart \"calseg-server.service\" is one of calseg's own units",
        12,
        31,
    );
    at(&errs, "cert_mode \"0777\" is world-writable", 13, 13);
    assert!(
        !errs.iter().any(|d| d.message.contains("sshd.service")),
        "a service is the agent's call"
    );
}

#[test]
fn paths_outside_the_agent_defaults_are_warned_about() {
    let src = format!(
        "{HEAD}[components.node]\ngrants = \"calico-node\"\ncert_dir = \"/srv/calico/certs\"\n\
         env_file = \"/etc/calico/calico.env\"\ncni_conflist = \"/etc/cni/net.d/10-calico.conflist\"\n\
         [[hosts]]\nname = \"n1\"\ncomponents = [\"node\"]\n"
    );
    let warns = warnings(&src);
    assert!(
        hint(&at(
            &warns,
            "is outside /etc/calico and /etc/cni/net.d",
            6,
            12
        ))
        .contains("allowed_paths")
    );
}
