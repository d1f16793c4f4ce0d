//! Issue 10: the bad-input catalogue. One table of hostile or broken inputs across policy files,
//! server.toml, agent.toml, manifests, CSRs and API requests; each row names the exact error the
//! user sees and is run against the real binaries (policy, config and manifest rows) or the real
//! server (API and CSR rows). After every row the test proves nothing changed: etcd's auth store,
//! the server's nodes, tokens and issued certificates, and the files of the directories involved.
//!
//! # Layout
//! - this file: the table ([`table`]) and the one test that runs it.
//! - `files`: runs the policy, server.toml, agent.toml and manifest rows (real CLIs).
//! - `api`: one etcd and one server for every API and CSR row, and the "nothing changed" view.
//! - `hostile`: hostile CSRs and client certificates, minted at test time.

mod api;
mod files;
mod hostile;

use crate::bad_policy;

/// What a row attacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Area {
    Policy,
    ServerToml,
    AgentToml,
    Manifest,
    Csrs,
    Api,
    NodeName,
    Sidecar,
}

/// A CSR as a row sends it.
#[derive(Debug, Clone, Copy)]
pub enum Csr {
    /// P-256, Common Name exactly what the call needs (the row attacks something else).
    Good,
    /// P-256 with this Common Name.
    Cn(&'static str),
    /// This text as the CSR.
    Text(&'static str),
    /// A good CSR cut in the middle of its base64.
    Truncated,
    /// A good CSR with one bit of its signed content flipped.
    Tampered,
    /// Ed25519 key (not allowed by default).
    Ed25519,
    /// RSA key of this many bits (made with openssl).
    Rsa(u32),
    /// ECDSA P-521 (made with openssl).
    P521,
    /// P-256 key, signed with ECDSA over this openssl digest, e.g. "sha512".
    Digest(&'static str),
    /// A 20 KiB PEM: over the 16 KiB CSR limit, under the 64 KiB body limit.
    Oversized,
    /// Two CSRs in one text.
    TwoBlocks,
    /// A certificate where the CSR goes.
    Certificate,
}

/// The node name of an enrollment.
#[derive(Debug, Clone, Copy)]
pub enum Name {
    Is(&'static str),
    /// `count` times `c`.
    Repeat(char, usize),
}

/// The token of an enrollment, as the API world prepared it.
#[derive(Debug, Clone, Copy)]
pub enum Token {
    None,
    Literal(&'static str),
    /// Issued for `tok-used`, which enrolled with it.
    Used,
    /// Issued with a one-second lifetime, long expired.
    Expired,
    /// Issued for node `tok-other`.
    ForOtherNode,
    /// A live token's id with a wrong secret.
    WrongSecret,
    /// A glob token (`tok-g*`, one use) already used by `tok-g1`.
    GlobExhausted,
}

/// The client certificate a raw request presents.
#[derive(Debug, Clone, Copy)]
pub enum Who {
    Anonymous,
    /// `cat-a`'s current fleet certificate.
    NodeA,
    Admin,
    /// CN `cat-a`, signed by another CA (etcd's test CA).
    OtherCa,
    /// CN `cat-a`, signed by the fleet CA, expired.
    ExpiredFleet,
    /// CN `cat-a`, signed by the fleet CA, but not the certificate issued to `cat-a`.
    NotIssued,
}

/// One row's input.
#[derive(Debug, Clone, Copy)]
pub enum Input {
    /// `bad_policy::CASES[index]`, run with `calseg-server apply`.
    PolicyCase(usize),
    /// The good policy with `find` replaced by `replace`, run with `calseg-server apply`.
    PolicyEdit(&'static str, &'static str),
    /// An initialized server.toml with `find` replaced by `replace`, run with `serve`.
    ServerToml(&'static str, &'static str),
    /// A good agent.toml with `find` replaced, run with `plan --manifest`.
    AgentToml(&'static str, &'static str),
    /// A valid manifest (JSON) with `find` replaced, run with `calseg-agent plan --manifest`.
    Manifest(&'static str, &'static str),
    /// `calseg-agent sidecar ARGS` with `CALSEG_NODE_NAME` set to `node` (`None`:
    /// unset); `DIR` in an argument is the agent's directory. Refused before any network.
    Sidecar {
        node: Option<&'static str>,
        args: &'static [&'static str],
    },
    /// `POST /v1/enroll`; `extra` is spliced into the JSON object (e.g. unknown fields).
    Enroll {
        node: Name,
        csr: Csr,
        token: Token,
        extra: &'static str,
    },
    /// `POST /v1/certificates` as `cat-a`; `extra` as for enrollment.
    Sign {
        component: &'static str,
        csr: Csr,
        extra: &'static str,
    },
    /// `POST /v1/fleet/renew` as `cat-a`.
    Renew { csr: Csr },
    /// `POST /v1/admin/components/<component>/certificate` (`k8s secrets`) as `who`; a good
    /// CSR names `kc~all`, the component-wide user of `kc`.
    ComponentSign {
        component: &'static str,
        who: Who,
        csr: Csr,
    },
    /// A raw request: method, path, who, content type, body (`None`: a 100 KiB body).
    Raw {
        method: &'static str,
        path: &'static str,
        who: Who,
        content_type: Option<&'static str>,
        body: Option<&'static str>,
    },
}

/// One row: its name, what it attacks, the input, and the text the user sees: for CLI rows a
/// part of stderr (exit status 1), for API rows a part of `"<status> <kind>: <message>"`, for a
/// refused connection (TLS handshake, closed socket) a part of `connection: <error chain>`.
pub struct Row {
    pub name: &'static str,
    pub area: Area,
    pub input: Input,
    pub expect: String,
}

fn row(name: &'static str, area: Area, input: Input, expect: &str) -> Row {
    Row {
        name,
        area,
        input,
        expect: expect.to_owned(),
    }
}

fn enroll(node: Name, csr: Csr, token: Token) -> Input {
    Input::Enroll {
        node,
        csr,
        token,
        extra: "",
    }
}

fn sign(csr: Csr) -> Input {
    Input::Sign {
        component: "calico-node",
        csr,
        extra: "",
    }
}

fn component(component: &'static str, who: Who, csr: Csr) -> Input {
    Input::ComponentSign {
        component,
        who,
        csr,
    }
}

fn raw(path: &'static str, who: Who, body: Option<&'static str>) -> Input {
    Input::Raw {
        method: "POST",
        path,
        who,
        content_type: Some("application/json"),
        body,
    }
}

/// The catalogue.
pub fn table() -> Vec<Row> {
    use Area::*;
    let mut rows: Vec<Row> = bad_policy::CASES
        .iter()
        .enumerate()
        .map(|(index, (case, _, _, place, fragment))| Row {
            name: case,
            area: Policy,
            input: Input::PolicyCase(index),
            expect: format!("bad.toml:{place}…{fragment}"),
        })
        .collect();
    let env = "node_grants =";
    rows.extend([
        // Install paths and templates in the policy.
        row("env_file climbing with ..", Policy, Input::PolicyEdit(env, "env_file = \"/etc/calico/../../root/.bashrc\"\nnode_grants ="),
            "bad.toml:7:12…env_file \"/etc/calico/../../root/.bashrc\" climbs with '..' or holds a control character"),
        row("cert_dir climbing with ..", Policy, Input::PolicyEdit(env, "cert_dir = \"/../etc/ssh\"\nnode_grants ="),
            "bad.toml:7:12…cert_dir \"/../etc/ssh\" climbs with '..'"),
        row("cni_conflist with a NUL byte", Policy, Input::PolicyEdit(env, "cni_conflist = \"/etc/cni/net.d/x\\u0000.conflist\"\nnode_grants ="),
            "bad.toml:7:16…cni_conflist \"/etc/cni/net.d/x\\0.conflist\" climbs with '..' or holds a control character"),
        row("relative calicoctl_cfg", Policy, Input::PolicyEdit(env, "calicoctl_cfg = \"etc/calico/calicoctl.cfg\"\nnode_grants ="),
            "bad.toml:7:17…calicoctl_cfg \"etc/calico/calicoctl.cfg\" is not an absolute path"),
        row("identity user template with a path", Policy, Input::PolicyEdit("[[hosts]]", "[identity]\nuser = \"../{node}/{role}\"\n[[hosts]]"),
            "bad.toml:9:8…unknown variable {role} in \"../{node}/{role}\""),
        row("identity user template that is the node name alone", Policy, Input::PolicyEdit("[[hosts]]", "[identity]\nuser = \"{node}\"\n[[hosts]]"),
            "bad.toml:9:8…renders the reserved etcd user \"root\"…must contain {component} and {node}"),
        row("identity user template with the generation separator", Policy, Input::PolicyEdit("[[hosts]]", "[identity]\nuser = \"{component}~{node}\"\n[[hosts]]"),
            "bad.toml:9:8…contains '~'"),
        row("owner with a slash", Policy, Input::PolicyEdit(env, "owner = \"../root\"\nnode_grants ="),
            "bad.toml:7:9…owner \"../root\" is not a user or group name"),
        row("setuid key mode", Policy, Input::PolicyEdit(env, "key_mode = \"4755\"\nnode_grants ="),
            "bad.toml:7:12…key_mode \"4755\" has bits beyond 0o777"),
        // server.toml.
        row("server.toml: unknown key", ServerToml, Input::ServerToml("[api]\n", "[api]\nlisten_addr = \"0.0.0.0:1\"\n"),
            "unknown field `listen_addr`, expected one of"),
        row("server.toml: wrong type", ServerToml, Input::ServerToml("[api]\n", "[api]\nmax_in_flight = \"many\"\n"),
            "invalid type: string \"many\", expected usize"),
        row("server.toml: truncated", ServerToml, Input::ServerToml("[api]\n", "[api\n"),
            "server.toml:"),
        row("server.toml: bad duration unit", ServerToml, Input::ServerToml("reconcile_interval = \"2s\"", "reconcile_interval = \"2x\""),
            "[etcd] reconcile_interval = \"2x\" has an unknown unit `x`; write a number and a unit s, m, h, d or w, e.g. \"90s\""),
        row("server.toml: duration overflowing u64 seconds", ServerToml, Input::ServerToml("reconcile_interval = \"2s\"", "reconcile_interval = \"999999999999999999d\""),
            "[etcd] reconcile_interval = \"999999999999999999d\" is too long"),
        row("server.toml: a month as a duration (M is not minutes)", ServerToml, Input::ServerToml("reconcile_interval = \"2s\"", "reconcile_interval = \"5M\""),
            "[etcd] reconcile_interval = \"5M\" uses `M`: months and years have no fixed length (`M` is not minutes), use days"),
        row("server.toml: auth_change_duty above 1", ServerToml, Input::ServerToml("reconcile_interval = \"2s\"", "reconcile_interval = \"2s\"\nauth_change_duty = 1.5"),
            "[etcd] auth_change_duty = 1.5: must be above 0 and at most 1"),
        row("server.toml: NUL byte in a path", ServerToml, Input::ServerToml("[api]\n", "[api]\ncert_file = \"/etc/calseg/a\\u0000b.pem\"\n"),
            "server certificate"),
        row("server.toml: bad auto_approve glob", ServerToml, Input::ServerToml("auto_approve = [\"cat-*\"]", "auto_approve = [\"cat-[\"]"),
            "[api] auto_approve: bad glob \"cat-[\""),
        row("server.toml: zero max_in_flight", ServerToml, Input::ServerToml("[api]\n", "[api]\nmax_in_flight = 0\n"),
            "max_in_flight"),
        row("server.toml: zero max_connections", ServerToml, Input::ServerToml("[api]\n", "[api]\nmax_connections = 0\n"),
            "[api] max_connections = 0: the server would refuse every connection; give at least 1"),
        row("server.toml: zero handshake_timeout", ServerToml, Input::ServerToml("[api]\n", "[api]\nhandshake_timeout = \"0s\"\n"),
            "[api] handshake_timeout = \"0s\": give a positive duration, e.g. \"10s\""),
        row("server.toml: idle_timeout without a unit", ServerToml, Input::ServerToml("[api]\n", "[api]\nidle_timeout = \"60\"\n"),
            "[api] idle_timeout = \"60\" has a number without a unit"),
        // agent.toml.
        row("agent.toml: unknown key", AgentToml, Input::AgentToml("interval = \"5m\"", "intervall = \"5m\""),
            "agent.toml:4:1: unknown field `intervall`, expected one of"),
        row("agent.toml: wrong type", AgentToml, Input::AgentToml("interval = \"5m\"", "interval = 5"),
            "agent.toml:4:12: invalid type: integer `5`, expected a string"),
        row("agent.toml: truncated", AgentToml, Input::AgentToml("interval = \"5m\"", "interval = \"5m"),
            "agent.toml:4:"),
        row("agent.toml: relative state_dir", AgentToml, Input::AgentToml("state_dir = \"", "state_dir = \"../var/lib/calseg\"\n# \""),
            "agent.toml:2:13: state_dir: `../var/lib/calseg` must be an absolute path"),
        row("agent.toml: relative [metrics] textfile_dir", AgentToml, Input::AgentToml("interval = \"5m\"", "interval = \"5m\"\n[metrics]\ntextfile_dir = \"prom\""),
            "agent.toml:6:16: metrics.textfile_dir: `prom` must be an absolute path"),
        row("agent.toml: unknown key in [metrics]", AgentToml, Input::AgentToml("interval = \"5m\"", "interval = \"5m\"\n[metrics]\ntextfile = \"/x\""),
            "agent.toml:6:1: unknown field `textfile`, expected `textfile_dir`"),
        row("agent.toml: bad duration unit", AgentToml, Input::AgentToml("interval = \"5m\"", "interval = \"5x\""),
            "agent.toml:4:12: interval: \"5x\" has an unknown unit `x`; write a number and a unit"),
        row("agent.toml: duration too big for u64", AgentToml, Input::AgentToml("interval = \"5m\"", "interval = \"99999999999999999999d\""),
            "agent.toml:4:12: interval: \"99999999999999999999d\" is too long"),
        row("agent.toml: node with a slash", AgentToml, Input::AgentToml("node = \"cat-a\"", "node = \"../cat-a\""),
            "agent.toml:1:8: node: `../cat-a` is not a node name"),
        row("agent.toml: plain-HTTP server", AgentToml, Input::AgentToml("node = \"cat-a\"", "node = \"cat-a\"\nserver = \"http://127.0.0.1:1\""),
            "agent.toml:2:10: server: `http://127.0.0.1:1` must start with https://"),
        row("agent.toml: allowed_groups pattern with a slash", AgentToml, Input::AgentToml("node = \"cat-a\"", "node = \"cat-a\"\nallowed_groups = [\"calico/x\"]"),
            "agent.toml:2:19: allowed_groups: `calico/x` is not an account pattern"),
        // The side car (issue 21): its node name, output directory and signal target.
        row("sidecar: CALSEG_NODE_NAME unset", Sidecar, Input::Sidecar { node: None, args: &[] },
            "CALSEG_NODE_NAME is not set: the side car takes its node name from it; set it from the downward API in the container spec: env: [{name: CALSEG_NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]"),
        row("sidecar: CALSEG_NODE_NAME empty", Sidecar, Input::Sidecar { node: Some(""), args: &[] },
            "CALSEG_NODE_NAME is empty: the side car takes its node name from it"),
        row("sidecar: CALSEG_NODE_NAME with a slash", Sidecar, Input::Sidecar { node: Some("../cat-a"), args: &[] },
            "CALSEG_NODE_NAME=\"../cat-a\": `../cat-a` is not a node name"),
        row("sidecar: output directory missing", Sidecar, Input::Sidecar { node: Some("cat-a"), args: &["--output-dir", "DIR/missing"] },
            "/missing: does not exist; mount an emptyDir there, shared with calico-node"),
        row("sidecar: output directory is a file", Sidecar, Input::Sidecar { node: Some("cat-a"), args: &["--output-dir", "DIR/agent.toml"] },
            "/agent.toml: is not a directory (a symlink is refused too)"),
        row("sidecar: relative output directory", Sidecar, Input::Sidecar { node: Some("cat-a"), args: &["--output-dir", "calico-secrets"] },
            "output directory calico-secrets: not an absolute path"),
        row("sidecar: output directory with ..", Sidecar, Input::Sidecar { node: Some("cat-a"), args: &["--output-dir", "DIR/root/../state"] },
            "contains `..`"),
        row("sidecar: --signal with a slash", Sidecar, Input::Sidecar { node: Some("cat-a"), args: &["--signal", "../calico-node"] },
            "--signal: `../calico-node` is not a process command name"),
        // Manifests (what a compromised or buggy server could send): the agent refuses them.
        row("manifest: env_file climbing out of the root", Manifest, Input::Manifest("\"/etc/calico/calico.env\"", "\"/etc/calico/../../etc/shadow\""),
            "refused by agent.toml limits: identities[calico-node].render.env_file = \"/etc/calico/../../etc/shadow\": contains a `..` component"),
        row("manifest: key path climbing out", Manifest, Input::Manifest("\"/etc/calico/certs/calico-node/key.pem\"", "\"/etc/calico/certs/../../../root/.ssh/id_ed25519\""),
            "identities[calico-node].files.key = \"/etc/calico/certs/../../../root/.ssh/id_ed25519\": contains a `..` component"),
        row("manifest: relative CA path", Manifest, Input::Manifest("\"ca\":\"/etc/calico/certs/calico-node/ca.pem\"", "\"ca\":\"etc/calico/certs/calico-node/ca.pem\""),
            "identities[calico-node].files.ca = \"etc/calico/certs/calico-node/ca.pem\": not an absolute path"),
        row("manifest: key given to the group users", Manifest, Input::Manifest("\"group\":\"root\"", "\"group\":\"users\""),
            "refused by agent.toml limits: identities[calico-node].files.group = \"users\": does not match allowed_groups [root, calico*]"),
        row("manifest: wrong JSON type", Manifest, Input::Manifest("\"key_mode\":384", "\"key_mode\":\"0600\""),
            "is not a manifest"),
        // CSRs, for a component identity of cat-a (etcd user calico-node.cat-a).
        row("CSR: not PEM", Csrs, sign(Csr::Text("hello, please sign me")),
            "400 malformed: the CSR is malformed: no PEM block found; send one PEM block labelled CERTIFICATE REQUEST"),
        row("CSR: truncated", Csrs, sign(Csr::Truncated), "400 malformed: the CSR is malformed:"),
        row("CSR: another identity's CN", Csrs, sign(Csr::Cn("calico-node.cat-x")),
            "403 wrong_common_name: the CSR asks for Common Name \"calico-node.cat-x\", but this identity is \"calico-node.cat-a\""),
        row("CSR: another enrolled node's CN", Csrs, sign(Csr::Cn("calico-node.cat-b")),
            "403 wrong_common_name: the CSR asks for Common Name \"calico-node.cat-b\", but this identity is \"calico-node.cat-a\""),
        row("CSR: etcd root's CN", Csrs, sign(Csr::Cn("root")),
            "403 wrong_common_name: the CSR asks for Common Name \"root\""),
        row("CSR: CN with a NUL and a newline", Csrs, sign(Csr::Cn("calico-node.cat-a\u{0}\nroot")),
            "403 wrong_common_name: the CSR asks for Common Name \"calico-node.cat-a\\0\\nroot\""),
        row("CSR: signature does not match", Csrs, sign(Csr::Tampered),
            "400 bad_signature: the CSR's self-signature does not verify"),
        row("CSR: Ed25519 key", Csrs, sign(Csr::Ed25519),
            "400 key_type_not_allowed: the CSR's key is Ed25519, which is not allowed: make a new key of type ECDSA P-256 or ECDSA P-384"),
        row("CSR: RSA 2048 key", Csrs, sign(Csr::Rsa(2048)), "400 key_type_not_allowed: the CSR's key is RSA 2048-bit"),
        row("CSR: RSA 1024 key", Csrs, sign(Csr::Rsa(1024)), "400 key_type_not_allowed: the CSR's key is RSA 1024-bit"),
        row("CSR: P-521 key", Csrs, sign(Csr::P521), "400 key_type_not_allowed: the CSR's key is ECDSA P-521"),
        // Issue 17: these were reported as "altered after signing".
        row("CSR: ECDSA with SHA-1", Csrs, sign(Csr::Digest("sha1")),
            "400 unsupported_signature_algorithm: the CSR is signed with ecdsa-with-SHA1 (1.2.840.10045.4.1), which calseg does not verify: sign it with one of ecdsa-with-SHA256, ecdsa-with-SHA384, Ed25519"),
        row("CSR: ECDSA with SHA-512", Csrs, sign(Csr::Digest("sha512")),
            "400 unsupported_signature_algorithm: the CSR is signed with ecdsa-with-SHA512 (1.2.840.10045.4.3.4)"),
        row("CSR: oversized", Csrs, sign(Csr::Oversized),
            "413 too_large: the CSR is 20480 bytes, more than the 16384 allowed"),
        row("CSR: two PEM blocks", Csrs, sign(Csr::TwoBlocks),
            "400 multiple: the request holds 2 PEM blocks: send exactly one CERTIFICATE REQUEST"),
        row("CSR: a certificate instead", Csrs, sign(Csr::Certificate),
            "400 malformed: the CSR is malformed: the PEM block is labelled \"CERTIFICATE\""),
        row("CSR: component not assigned", Csrs, Input::Sign { component: "felix", csr: Csr::Good, extra: "" },
            "403 identity_not_assigned: the policy gives node cat-a no component \"felix\""),
        row("CSR: component with a path", Csrs, Input::Sign { component: "../calico-node", csr: Csr::Good, extra: "" },
            "403 identity_not_assigned: the policy gives node cat-a no component \"../calico-node\""),
        row("CSR: unknown field naming root is ignored", Csrs, Input::Sign { component: "calico-node", csr: Csr::Cn("root"), extra: ",\"etcd_user\":\"root\",\"cn\":\"root\"" },
            "403 wrong_common_name: the CSR asks for Common Name \"root\""),
        row("fleet renewal: CSR for another node", Csrs, Input::Renew { csr: Csr::Cn("cat-b") },
            "403 wrong_common_name: the CSR asks for Common Name \"cat-b\", but this identity is \"cat-a\""),
        row("enroll: CSR CN is another node", Csrs, enroll(Name::Is("cat-c"), Csr::Cn("cat-b"), Token::None),
            "403 wrong_common_name: the CSR asks for Common Name \"cat-b\", but this identity is \"cat-c\""),
        // Tokens.
        row("token: replayed after use", Api, enroll(Name::Is("tok-used"), Csr::Good, Token::Used), "403 token_"),
        row("token: expired", Api, enroll(Name::Is("tok-late"), Csr::Good, Token::Expired), "403 token_expired:"),
        row("token: for another node", Api, enroll(Name::Is("tok-thief"), Csr::Good, Token::ForOtherNode), "403 node_not_allowed:"),
        row("token: wrong secret", Api, enroll(Name::Is("tok-other"), Csr::Good, Token::WrongSecret), "403 bad_secret:"),
        row("token: glob token used up", Api, enroll(Name::Is("tok-g2"), Csr::Good, Token::GlobExhausted), "403 token_exhausted:"),
        row("token: malformed", Api, enroll(Name::Is("tok-x"), Csr::Good, Token::Literal("not-a-token")), "400 malformed_token:"),
        row("token: unknown id", Api, enroll(Name::Is("tok-x"), Csr::Good, Token::Literal("deadbeef.0000000000000000000000000000000000000000000000000000000000000000")), "403 unknown_token:"),
        row("enroll: enrolled node's name, new key, no token", Api, enroll(Name::Is("cat-b"), Csr::Good, Token::None),
            "403 already_enrolled: node cat-b is already enrolled; to enroll it again create a token for it"),
        // API requests.
        // The server answers 413 at once and closes: the client may still be writing the body.
        row("API: oversized body", Api, raw("/v1/enroll", Who::Anonymous, None), "413 body_too_large: the request body is larger than the 65536 bytes the API accepts‖connection: …Broken pipe"),
        row("API: truncated JSON", Api, raw("/v1/enroll", Who::Anonymous, Some("{\"node\":\"cat-z\",\"csr_pem\":\"")),
            "400 malformed_request: the request could not be read (Failed to parse the request body as JSON: csr_pem: EOF while parsing a string at line 1 column 27): send a well-formed JSON body"),
        row("API: wrong JSON types", Api, raw("/v1/enroll", Who::Anonymous, Some("{\"node\":5,\"csr_pem\":[]}")),
            "422 invalid_request_body: the JSON body does not have the fields and types this route takes (Failed to deserialize the JSON body into the target type: node: invalid type: integer `5`, expected a string"),
        row("API: JSON array instead of object", Api, raw("/v1/report", Who::NodeA, Some("[1,2,3]")),
            "422 invalid_request_body: the JSON body does not have the fields and types this route takes (Failed to deserialize the JSON body into the target type"),
        row("API: no content type", Api, Input::Raw { method: "POST", path: "/v1/enroll", who: Who::Anonymous, content_type: None, body: Some("{}") },
            "415 unsupported_content_type: the request body must be JSON, sent with `Content-Type: application/json` (Expected request with `Content-Type: application/json`)"),
        row("API: token create with a huge TTL", Api, raw("/v1/admin/tokens", Who::Admin, Some("{\"node\":\"tok-huge\",\"ttl_secs\":18446744073709551615}")),
            "400 invalid_ttl:"),
        row("API: token create with node and glob", Api, raw("/v1/admin/tokens", Who::Admin, Some("{\"node\":\"tok-a\",\"glob\":\"*\",\"ttl_secs\":60}")),
            "400 invalid_scope: give exactly one of node"),
        row("API: no client certificate on a node route", Api, raw("/v1/certificates", Who::Anonymous, Some("{\"component\":\"calico-node\",\"csr_pem\":\"\"}")),
            "401 client_certificate_required: this call needs the node's fleet client certificate"),
        row("API: no client certificate on an admin route", Api, raw("/v1/admin/tokens", Who::Anonymous, Some("{\"node\":\"tok-a\",\"ttl_secs\":60}")),
            "401 client_certificate_required: the admin API needs an administrator certificate"),
        row("API: a certificate from another CA", Api, raw("/v1/certificates", Who::OtherCa, Some("{}")), "connection: "),
        row("API: an expired fleet certificate", Api, raw("/v1/certificates", Who::ExpiredFleet, Some("{}")), "connection: "),
        row("API: a fleet-CA certificate never issued to the node", Api, raw("/v1/report", Who::NotIssued, Some("{\"revision\":\"x\",\"identities\":[],\"units\":[]}")),
            "403 fleet_certificate_superseded: this fleet certificate (serial"),
        row("API: a node certificate on an admin route", Api, raw("/v1/admin/tokens", Who::NodeA, Some("{\"node\":\"tok-a\",\"ttl_secs\":60}")),
            "403 not_admin: node cat-a's certificate may not use the admin API"),
        row("API: an admin certificate on a node route", Api, raw("/v1/certificates", Who::Admin, Some("{\"component\":\"calico-node\",\"csr_pem\":\"\"}")),
            "403 admin_not_node: an administrator certificate cannot act as a node"),
        row("API: encoded .. in an admin path", Api, raw("/v1/admin/nodes/..%2Fcat-a/approve", Who::Admin, Some("")),
            "404 unknown_node:"),
        // Issue 17: approval binds a key, enrolled nodes are revoked rather than deleted, and a
        // name must fit a certificate's Common Name.
        row("API: approve without the key's fingerprint", Api, raw("/v1/admin/nodes/cat-a/approve", Who::Admin, Some("")),
            "400 fingerprint_required: approving cat-a needs --fingerprint"),
        row("API: approve with a malformed fingerprint", Api, raw("/v1/admin/nodes/cat-a/approve", Who::Admin, Some("{\"fingerprint\":\"sha256:12\"}")),
            "400 invalid_fingerprint: \"sha256:12\" is not a key fingerprint"),
        row("API: delete an enrolled node", Api, Input::Raw { method: "DELETE", path: "/v1/admin/nodes/cat-a", who: Who::Admin, content_type: None, body: Some("") },
            "409 node_not_deletable: node \"cat-a\" is approved…`calseg-server nodes revoke cat-a`"),
        row("API: token for a node name of 65 characters", Api, raw("/v1/admin/tokens", Who::Admin, Some(concat!("{\"node\":\"", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "\",\"ttl_secs\":60}"))),
            "400 invalid_node_name: invalid node name \"aaaaaaaaaaaaaaaa\"...: it is 65 characters long, the limit is 64"),
        row("API: unknown node action", Api, raw("/v1/admin/nodes/cat-a/promote", Who::Admin, Some("")),
            "404 unknown_action: unknown node action \"promote\": use approve, deny or revoke"),
        // Issue 18, point 1: a candidate policy for the fleet plan.
        row("API: plan a candidate policy with errors", Api, raw("/v1/admin/rbac/plan", Who::Admin, Some("{\"candidate\":{\"name\":\"cand.toml\",\"text\":\"calico_version = \\\"3.29\\\"\\nbogus = 1\\n\"}}")),
            "400 invalid_policy: cand.toml:1:1: error: missing required section [etcd]…cand.toml:2:1: error: unknown key `bogus` in the top level…the candidate policy was refused; nothing was changed"),
        row("API: plan request with an unknown field", Api, raw("/v1/admin/rbac/plan", Who::Admin, Some("{\"policy\":\"/etc/calseg/policy.toml\"}")),
            "422 invalid_request_body: the JSON body does not have the fields and types this route takes (Failed to deserialize the JSON body into the target type: policy: unknown field `policy`, expected `candidate`"),
        row("API: plan a candidate over 64 KiB", Api, raw("/v1/admin/rbac/plan", Who::Admin, None), "413 body_too_large: the request body is larger than the 65536 bytes the API accepts‖connection: …Broken pipe"),
        row("API: a node certificate plans a candidate", Api, raw("/v1/admin/rbac/plan", Who::NodeA, Some("{\"candidate\":{\"name\":\"cand.toml\",\"text\":\"\"}}")),
            "403 not_admin: node cat-a's certificate may not use the admin API"),
        // Issue 21: certificates of component-wide identities (`k8s secrets`), admin only.
        row("component CSR: a node's certificate", Api, component("kc", Who::NodeA, Csr::Good),
            "403 not_admin: node cat-a's certificate may not use the admin API"),
        row("component CSR: no client certificate", Api, component("kc", Who::Anonymous, Csr::Good),
            "401 client_certificate_required: the admin API needs an administrator certificate"),
        row("component CSR: grants that need {node}", Api, component("cat-node", Who::Admin, Csr::Good),
            "403 component_needs_node: component cat-node's grants need {node} (\"/calico/…{node}/\", from grants = \"calico-node-per-node\"): its identities are per node, and one Secret shared by every pod cannot hold per-node grants"),
        row("component CSR: no component_identity in the policy", Api, component("calico-node", Who::Admin, Csr::Good),
            "403 no_component_identity: the policy declares no component-wide identity for component calico-node: add `component_identity = true` under [components.calico-node]"),
        row("component CSR: unknown component", Api, component("ghost", Who::Admin, Csr::Good),
            "404 unknown_component: the policy has no component \"ghost\" (declared: calico-node, cat-node, kc)"),
        row("component CSR: encoded .. in the component", Api, component("..%2Fkc", Who::Admin, Csr::Good),
            "404 unknown_component: the policy has no component \"../kc\""),
        row("component CSR: a node identity's CN", Api, component("kc", Who::Admin, Csr::Cn("calico-node.cat-a")),
            "403 wrong_common_name: the CSR asks for Common Name \"calico-node.cat-a\", but this identity is \"kc~all\""),
        row("component CSR: etcd root's CN", Api, component("kc", Who::Admin, Csr::Cn("root")),
            "403 wrong_common_name: the CSR asks for Common Name \"root\", but this identity is \"kc~all\""),
        row("component CSR: Ed25519 key", Api, component("kc", Who::Admin, Csr::Ed25519),
            "400 key_type_not_allowed: the CSR's key is Ed25519, which is not allowed"),
        row("component CSR: signature does not match", Api, component("kc", Who::Admin, Csr::Tampered),
            "400 bad_signature: the CSR's self-signature does not verify"),
        row("component CSR: unknown field naming root", Api, raw("/v1/admin/components/kc/certificate", Who::Admin, Some("{\"csr_pem\":\"\",\"etcd_user\":\"root\"}")),
            "422 invalid_request_body: the JSON body does not have the fields and types this route takes (Failed to deserialize the JSON body into the target type: etcd_user: unknown field `etcd_user`, expected `csr_pem`"),
        // Node names at enrollment.
        row("node name with /", NodeName, enroll(Name::Is("cat/a"), Csr::Good, Token::None), "400 invalid_node_name: invalid node name \"cat/a\""),
        row("node name ..", NodeName, enroll(Name::Is(".."), Csr::Good, Token::None), "400 invalid_node_name: invalid node name \"..\""),
        row("node name with NUL", NodeName, enroll(Name::Is("cat-\u{0}a"), Csr::Good, Token::None), "400 invalid_node_name: invalid node name \"cat-\\0a\""),
        row("node name in unicode", NodeName, enroll(Name::Is("kät-ä"), Csr::Good, Token::None), "400 invalid_node_name: invalid node name \"kät-ä\""),
        row("node name of 65 characters", NodeName, enroll(Name::Repeat('a', 65), Csr::Good, Token::None), "400 invalid_node_name: invalid node name \"aaaaaaaaaaaaaaaa\"...: it is 65 characters long, the limit is 64"),
        row("node name of 300 characters", NodeName, enroll(Name::Repeat('a', 300), Csr::Good, Token::None), "400 invalid_node_name: invalid node name \"aaaa"),
        row("node name posing as admin", NodeName, enroll(Name::Is("admin:root"), Csr::Good, Token::None), "400 invalid_node_name: invalid node name \"admin:root\""),
        row("empty node name", NodeName, enroll(Name::Is(""), Csr::Good, Token::None), "400 invalid_node_name: invalid node name \"\""),
        row("node name in capitals", NodeName, enroll(Name::Is("CAT-A"), Csr::Good, Token::None), "400 invalid_node_name: invalid node name \"CAT-A\""),
    ]);
    rows
}

/// A row that did not go as the table says.
pub type Failure = String;

/// Whether `seen` shows `expect`: `…` separates parts that must appear in order, `‖` separates
/// alternatives.
pub fn shows(seen: &str, expect: &str) -> bool {
    expect.split('‖').any(|alternative| {
        let mut rest = seen;
        alternative.split('…').all(|part| match rest.find(part) {
            Some(at) => {
                rest = &rest[at + part.len()..];
                true
            }
            None => false,
        })
    })
}

#[tokio::test]
async fn every_hostile_input_is_refused_with_its_error_and_changes_nothing() {
    let rows = table();
    let mut per_area = std::collections::BTreeMap::new();
    for row in &rows {
        *per_area.entry(row.area).or_insert(0) += 1;
    }
    eprintln!("catalogue: {} rows: {per_area:?}", rows.len());
    assert!(rows.len() >= 40, "the catalogue has {} rows", rows.len());
    let (file_rows, api_rows): (Vec<&Row>, Vec<&Row>) = rows.iter().partition(|r| {
        matches!(
            r.area,
            Area::Policy | Area::ServerToml | Area::AgentToml | Area::Manifest | Area::Sidecar
        )
    });
    let (mut failures, api_failures) = tokio::join!(files::run(&file_rows), api::run(&api_rows));
    failures.extend(api_failures);
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n\n")
    );
}
