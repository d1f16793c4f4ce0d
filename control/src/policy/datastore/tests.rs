//! `[datastore]` in policy text: defaults, every key, each error at its line and column, and
//! the example file's options.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::super::{Diagnostic, PolicyErrors, parse};
use super::values::mask;
use super::*;

/// A valid policy with `section` appended; line 4 is the section's first line.
fn policy(section: &str) -> String {
    format!("calico_version = \"3.29\"\n[etcd]\nendpoints = [\"https://10.0.0.1:2379\"]\n{section}")
}

fn errors_in(section: &str) -> Vec<Diagnostic> {
    match parse(&policy(section), "policy.toml") {
        Ok(p) => panic!("expected errors, got {:?}", p.datastore),
        Err(PolicyErrors(errors)) => errors,
    }
}

/// The one error whose message contains `needle`, at `line:column`, with a hint.
fn at(errors: &[Diagnostic], needle: &str, line: usize, column: usize) -> String {
    let found: Vec<&Diagnostic> = errors
        .iter()
        .filter(|d| d.message.contains(needle))
        .collect();
    assert_eq!(found.len(), 1, "want one {needle:?} among {errors:#?}");
    let d = found[0];
    assert_eq!((d.line, d.column), (line, column), "{d}");
    let hint = d.hint.clone().unwrap_or_default();
    assert!(!hint.is_empty(), "{d}");
    hint
}

#[test]
fn absent_section_gives_calicos_defaults() {
    let p = parse(&policy(""), "policy.toml").unwrap();
    let d = &p.datastore;
    assert_eq!(d.calico_release, None);
    assert_eq!(d.cluster_type, "bgp");
    assert!(d.default_pool && d.nat_outgoing && d.node_to_node_mesh);
    assert_eq!(d.ipv4_pool_cidr, "192.168.0.0/16");
    assert_eq!(
        (d.ipip_mode, d.vxlan_mode),
        (EncapMode::Always, EncapMode::Never)
    );
    assert_eq!((d.block_size, d.as_number), (26, 64512));
    assert_eq!(d.log_severity, "Info");
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn every_key_is_read() {
    let p = parse(
        &policy(
            "[datastore]\ncalico_release = \"v3.29.3\"\ncluster_type = \"k8s,bgp\"\n\
             default_pool = false\nipv4_pool_cidr = \"10.244.0.0/16\"\nipip_mode = \"Never\"\n\
             vxlan_mode = \"CrossSubnet\"\nnat_outgoing = false\nblock_size = 24\n\
             as_number = 65001\nnode_to_node_mesh = false\nlog_severity = \"Warning\"\n",
        ),
        "policy.toml",
    )
    .unwrap();
    let d = p.datastore;
    assert_eq!(d.calico_release.as_deref(), Some("v3.29.3"));
    assert_eq!(d.cluster_type, "k8s,bgp");
    assert!(!d.default_pool && !d.nat_outgoing && !d.node_to_node_mesh);
    assert_eq!(d.ipv4_pool_cidr, "10.244.0.0/16");
    assert_eq!(
        (d.ipip_mode, d.vxlan_mode),
        (EncapMode::Never, EncapMode::CrossSubnet)
    );
    assert_eq!((d.block_size, d.as_number), (24, 65001));
    assert_eq!(d.log_severity, "Warning");
}

#[test]
fn bad_cidrs_point_at_the_value() {
    for (cidr, needle, hint) in [
        ("10.0.0.0", "not an IPv4 CIDR", "e.g. ipv4_pool_cidr"),
        ("10.0.0.0/33", "not an IPv4 CIDR", "prefix length"),
        ("fd00::/48", "not an IPv4 CIDR", "IPv4"),
        ("10.1.2.3/16", "host bits set", "\"10.1.0.0/16\""),
        ("169.254.0.0/24", "link-local", "private range"),
        ("0.0.0.0/0", "link-local", "private range"),
    ] {
        let errors = errors_in(&format!("[datastore]\nipv4_pool_cidr = \"{cidr}\"\n"));
        let got = at(&errors, needle, 5, 18);
        assert!(got.contains(hint), "{cidr}: {got}");
    }
    let errors = errors_in("[datastore]\nipv4_pool_cidr = \"10.0.0.0/28\"\n");
    let got = at(&errors, "smaller than one IPAM block", 5, 18);
    assert!(got.contains("block_size of at least 28"), "{got}");
}

#[test]
fn bad_modes_and_values_point_at_the_value() {
    let errors = errors_in(
        "[datastore]\nipip_mode = \"always\"\nvxlan_mode = \"Sometimes\"\nblock_size = 19\n\
         as_number = 0\nlog_severity = \"Trace\"\ncalico_release = \"3.29.3\"\n\
         cluster_type = \"k8s, bgp\"\n",
    );
    assert!(at(&errors, "ipip_mode \"always\"", 5, 13).contains("\"Always\""));
    assert!(at(&errors, "vxlan_mode \"Sometimes\"", 6, 14).contains("CrossSubnet"));
    assert!(at(&errors, "block_size 19", 7, 14).contains("20 to 32"));
    assert!(at(&errors, "as_number 0", 8, 13).contains("4294967295"));
    assert!(at(&errors, "log_severity \"Trace\"", 9, 16).contains("Warning"));
    assert!(at(&errors, "leading \"v\"", 10, 18).contains("\"v3.29.3\""));
    assert!(at(&errors, "cluster_type", 11, 16).contains("without spaces"));
}

#[test]
fn cross_key_and_release_errors() {
    let errors = errors_in(
        "[datastore]\nipip_mode = \"CrossSubnet\"\nvxlan_mode = \"Always\"\n\
         calico_release = \"v3.30.1\"\n",
    );
    assert!(at(&errors, "both IPIP and VXLAN", 6, 14).contains("\"Never\""));
    assert!(at(&errors, "not a release of calico_version 3.29", 7, 18).contains("3.30"));
    for bad in ["v3.29", "v3.29.x", "v3.29.1.2", "v3.29.1-", "v3.29.1-a b"] {
        let errors = errors_in(&format!("[datastore]\ncalico_release = \"{bad}\"\n"));
        at(&errors, "is not a Calico release", 5, 18);
    }
    let ok = parse(
        &policy("[datastore]\ncalico_release = \"v3.29.0-0.dev\"\n"),
        "policy.toml",
    );
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn unknown_keys_and_wrong_types_are_reported_with_their_place() {
    let errors = errors_in("[datastore]\nipv4_pool = \"10.0.0.0/16\"\nnat_outgoing = \"yes\"\n");
    let hint = at(&errors, "unknown key `ipv4_pool` in [datastore]", 5, 1);
    assert!(hint.contains("ipv4_pool_cidr"), "{hint}");
    at(&errors, "invalid type", 6, 16);
    let errors = errors_in("[datastore]\nzebra = 1\n");
    assert!(at(&errors, "unknown key `zebra`", 5, 1).contains("log_severity"));
}

/// Every commented `[datastore]` option of the example is valid when uncommented, and
/// shows its default (calico_release, which has none, shows an example).
#[test]
fn the_example_datastore_options_are_the_defaults() {
    let example = include_str!("../../../../server/policy.example.toml");
    let keys = [
        "[datastore]",
        "calico_release =",
        "cluster_type =",
        "default_pool =",
        "ipv4_pool_cidr =",
        "ipip_mode =",
        "vxlan_mode =",
        "nat_outgoing =",
        "block_size =",
        "as_number =",
        "node_to_node_mesh =",
        "log_severity =",
    ];
    let mut shown = 0;
    let uncommented: String = example
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if keys.iter().any(|k| rest.starts_with(k)) => {
                shown += 1;
                rest
            }
            _ => line,
        })
        .flat_map(|line| [line, "\n"])
        .collect();
    assert_eq!(shown, keys.len(), "the example shows each option once");
    let policy = parse(&uncommented, "policy.example.toml").unwrap();
    assert!(policy.warnings.is_empty(), "{:?}", policy.warnings);
    let expected = DatastoreSettings {
        calico_release: Some("v3.29.3".into()),
        ..DatastoreSettings::default()
    };
    assert_eq!(policy.datastore, expected);
}

#[test]
fn masks_cover_every_prefix_length() {
    assert_eq!(mask(0), 0);
    assert_eq!(mask(16), 0xffff_0000);
    assert_eq!(mask(32), u32::MAX);
}
