//! Issue 3: malformed policies are refused with a precise error (file:line:column and what to
//! do), and etcd's auth state is byte-for-byte what it was before. This file is the table; the
//! bad-input catalogue (`catalogue.rs`, issue 10) runs it with `calseg-server apply` against a
//! real etcd, together with every other hostile input.

/// A policy that applies; each case breaks it in one place. `ENDPOINT` is the etcd URL.
pub(crate) const GOOD: &str = r#"calico_version = "3.29"
[etcd]
endpoints = ["ENDPOINT"]
[components.calico-node]
grants = "calico-node"
extra_grants = [ { prefix = "/calico/resources/v3/projectcalico.org/tiers/", access = "readwrite" } ]
node_grants = [ { prefix = "/calico/bgp/v1/host/{node}/", access = "readwrite" } ]
[[hosts]]
names = ["node1", "node2"]
components = ["calico-node"]
"#;

/// (case, text to replace in GOOD, replacement, expected "line:column", expected message part)
pub(crate) const CASES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "unknown top-level key",
        "[etcd]",
        "colour = \"blue\"\n[etcd]",
        "2:1",
        "unknown key `colour`",
    ),
    (
        "misspelt key",
        "endpoints =",
        "endpoint =",
        "3:1",
        "unknown key `endpoint`",
    ),
    (
        "unknown built-in table",
        "grants = \"calico-node\"",
        "grants = \"calico-nod\"",
        "5:10",
        "unknown built-in grant table \"calico-nod\"",
    ),
    (
        "unknown component on a host",
        "components = [\"calico-node\"]",
        "components = [\"calico-nodes\"]",
        "10:15",
        "calico-nodes",
    ),
    (
        "unknown template variable",
        "host/{node}/",
        "host/{host}/",
        "7:28",
        "{host}",
    ),
    (
        "{node} in a shared grant",
        "tiers/\"",
        "tiers/{node}/\"",
        "6:29",
        "{node}",
    ),
    (
        "bad access word",
        "access = \"readwrite\" } ]\nnode_grants",
        "access = \"rw\" } ]\nnode_grants",
        "6:87",
        "\"rw\"",
    ),
    (
        "relative prefix",
        "{ prefix = \"/calico/bgp",
        "{ prefix = \"calico/bgp",
        "7:28",
        "absolute",
    ),
    (
        "empty prefix",
        "{ prefix = \"/calico/resources/v3/projectcalico.org/tiers/\"",
        "{ prefix = \"\"",
        "6:29",
        "empty",
    ),
    (
        "both prefix and key",
        "{ prefix = \"/calico/bgp/v1/host/{node}/\",",
        "{ prefix = \"/calico/bgp/v1/host/{node}/\", key = \"/k\",",
        "7:17",
        "both prefix and key",
    ),
    (
        "node grant shadowed by the shared table",
        "\"/calico/bgp/v1/host/{node}/\"",
        "\"/calico/felix/v1/host/{node}/\"",
        "7:17",
        "narrows nothing: grants = \"calico-node\" at",
    ),
    (
        "invalid node name",
        "\"node2\"",
        "\"Node_2\"",
        "9:19",
        "Node_2",
    ),
    (
        "node listed twice",
        "\"node2\"",
        "\"node1\"",
        "9:19",
        "node1",
    ),
    (
        "Calico 2.x (etcdv2)",
        "\"3.29\"",
        "\"2.6\"",
        "1:18",
        "etcdv2",
    ),
    (
        "unparseable version",
        "\"3.29\"",
        "\"three\"",
        "1:18",
        "three",
    ),
    (
        "endpoint not a URL",
        "ENDPOINT\"]",
        "ENDPOINT\", \"etcd-1:2379\"]",
        "3:",
        "etcd-1:2379",
    ),
    (
        "user template without {node}",
        "[[hosts]]",
        "[identity]\nuser = \"calico\"\n[[hosts]]",
        "9:8",
        "{node}",
    ),
    (
        "user colliding with root",
        "[[hosts]]\nnames = [\"node1\", \"node2\"]",
        "[identity]\nuser = \"{node}\"\n[[hosts]]\nnames = [\"node1\", \"root\"]",
        "11:19",
        "would be \"root\"",
    ),
    (
        "lifetime too short",
        "[[hosts]]",
        "[identity]\nlifetime = \"10m\"\n[[hosts]]",
        "9:12",
        "shorter than one hour",
    ),
    (
        "host rule with two selectors",
        "names = [\"node1\", \"node2\"]",
        "names = [\"node1\", \"node2\"]\nmatch = \"worker-*\"",
        "",
        "exactly one",
    ),
    (
        "invalid glob",
        "names = [\"node1\", \"node2\"]",
        "match = \"worker-[\"",
        "9:9",
        "worker-[",
    ),
    (
        "TOML syntax",
        "[\"ENDPOINT\"]",
        "[\"ENDPOINT\"",
        "4:1",
        "TOML syntax: missing comma between array elements",
    ),
];
