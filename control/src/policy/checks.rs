//! Leaf checks on single values (names, units, paths, modes, URLs, templates). Each returns a
//! [`Problem`] with a hint; the caller knows where the value sits and attaches the location.

use std::path::PathBuf;

use super::location::Problem;
use super::raw::Scalar;
use calseg_api::enroll::MAX_NODE_NAME_LEN;

/// Node names are lowercase RFC 1123 subdomains, like Kubernetes and Calico node names, of at
/// most [`MAX_NODE_NAME_LEN`] characters: a node's name is the Common Name of its fleet
/// certificate (RFC 1123 would allow 253, a certificate does not).
pub(super) fn node_name(name: &str) -> Result<(), Problem> {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = name.as_bytes();
    if bytes.len() > MAX_NODE_NAME_LEN {
        return Err(Problem::new(
            format!(
                "invalid node name {:?}...: it is {} characters long, the limit is {MAX_NODE_NAME_LEN}",
                name.chars().take(16).collect::<String>(),
                bytes.len()
            ),
            format!(
                "a node's name is the Common Name of its fleet certificate, which X.509 limits to \
                 {MAX_NODE_NAME_LEN} characters; use a shorter name (Calico's node name can be set \
                 with NODENAME)"
            ),
        ));
    }
    let ok = !bytes.is_empty()
        && bytes.first().is_some_and(|&b| alnum(b))
        && bytes.last().is_some_and(|&b| alnum(b))
        && bytes.iter().all(|&b| alnum(b) || b == b'-' || b == b'.');
    if ok {
        return Ok(());
    }
    Err(Problem::new(
        format!("invalid node name {name:?}"),
        format!(
            "node names are lowercase RFC 1123 subdomains: a-z, 0-9, '-' and '.', starting and \
             ending with a letter or digit, at most {MAX_NODE_NAME_LEN} characters (use the name \
             Calico knows the node by)"
        ),
    ))
}

/// Component names: `[a-z0-9][a-z0-9-]*`. No dots, so `calseg.{component}.{node}` role names
/// and `{component}.{node}` users split unambiguously at the first dot.
pub(super) fn component_name(name: &str) -> Result<(), Problem> {
    let bytes = name.as_bytes();
    let ok = bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        return Ok(());
    }
    Err(Problem::new(
        format!("invalid component name {name:?}"),
        "component names use a-z, 0-9 and '-', start with a letter or digit, at most 63 characters, \
         and no dots (dots separate component from node in etcd user and role names)",
    ))
}

const UNIT_SUFFIXES: [&str; 11] = [
    "service",
    "socket",
    "target",
    "timer",
    "path",
    "mount",
    "automount",
    "swap",
    "slice",
    "scope",
    "device",
];

/// A systemd unit name with its type suffix, e.g. `calico-node.service`.
pub(super) fn unit_name(unit: &str) -> Result<(), Problem> {
    let valid_stem = |stem: &str| {
        !stem.is_empty()
            && stem
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":_.@\\-".contains(&b))
    };
    match unit.rsplit_once('.') {
        Some((stem, suffix)) if valid_stem(stem) && UNIT_SUFFIXES.contains(&suffix) => Ok(()),
        _ => Err(Problem::new(
            format!("{unit:?} is not a systemd unit name"),
            format!(
                "write the full unit name with its type, e.g. \"calico-node.service\" (types: {})",
                UNIT_SUFFIXES.join(", ")
            ),
        )),
    }
}

/// A path on the node, which must be absolute: the agent does not guess a working directory.
/// No `..` (the agent refuses to climb out of its install root, so such a policy would fail on
/// every node instead of here) and no control characters (NUL cannot be in a path at all).
pub(super) fn absolute_path(key: &str, path: &str) -> Result<PathBuf, Problem> {
    if path.split('/').any(|part| part == "..") || path.contains(char::is_control) {
        return Err(Problem::new(
            format!("{key} {path:?} climbs with '..' or holds a control character"),
            "write the plain absolute path, e.g. \"/etc/calico/calico.env\"",
        ));
    }
    if path.starts_with('/') {
        return Ok(PathBuf::from(path));
    }
    Err(Problem::new(
        format!("{key} {path:?} is not an absolute path"),
        format!(
            "write the full path starting with '/', e.g. \"/{}\"",
            path.trim_start_matches("./")
        ),
    ))
}

/// Where no agent may ever write, whatever its `allowed_paths`: a policy naming them is an
/// attack or a mistake, refused here before any agent sees it.
const FORBIDDEN_NODE_DIRS: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/root",
    "/etc/systemd",
    "/etc/ssh",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
];

/// The agent's default `allowed_paths`; a path elsewhere is warned about.
pub(super) const AGENT_DEFAULT_DIRS: &[&str] = &["/etc/calico", "/etc/cni/net.d"];

/// A file or directory the agent manages on a node ([`absolute_path`], and never under
/// [`FORBIDDEN_NODE_DIRS`] after lexical normalization).
pub(super) fn node_path(key: &str, path: &str) -> Result<PathBuf, Problem> {
    let path = absolute_path(key, path)?;
    let normal: PathBuf = path.components().collect();
    if let Some(dir) = FORBIDDEN_NODE_DIRS.iter().find(|d| normal.starts_with(d)) {
        return Err(Problem::new(
            format!(
                "{key} {:?} is under {dir}, where calseg-agent never writes",
                path.display()
            ),
            "Calico's files go under /etc/calico or /etc/cni/net.d (the agent's default allowed_paths)",
        ));
    }
    Ok(path)
}

/// Whether a managed path is under the agent's default `allowed_paths`.
pub(super) fn under_agent_defaults(path: &std::path::Path) -> bool {
    let normal: PathBuf = path.components().collect();
    AGENT_DEFAULT_DIRS
        .iter()
        .any(|d| normal.starts_with(d) && normal != std::path::Path::new(d))
}

/// A unit a component restarts: a [`unit_name`] of a `.service` that is not calseg's own (the
/// agent refuses anything else whatever its `allowed_units`).
pub(super) fn restart_unit(unit: &str) -> Result<(), Problem> {
    unit_name(unit)?;
    if !unit.ends_with(".service") {
        return Err(Problem::new(
            format!("restart {unit:?} is not a .service unit"),
            "calseg-agent restarts only services, never a target, socket or timer; name the Calico service, e.g. \"calico-node.service\"",
        ));
    }
    if unit.starts_with("calseg-") {
        return Err(Problem::new(
            format!("restart {unit:?} is one of calseg's own units"),
            "calseg-agent never restarts calseg-agent.service or calseg-server.service; remove it",
        ));
    }
    Ok(())
}

/// A user or group name for file ownership.
pub(super) fn account_name(key: &str, name: &str) -> Result<(), Problem> {
    if !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == ':' || c == '/') {
        return Ok(());
    }
    Err(Problem::new(
        format!("{key} {name:?} is not a user or group name"),
        format!("write a name from the node's passwd/group database, e.g. {key} = \"root\""),
    ))
}

/// A file mode written as an octal string ("0640"); numbers are refused because TOML reads
/// `640` as decimal.
pub(super) fn file_mode(key: &str, value: &Scalar) -> Result<u32, Problem> {
    let Scalar::Text(text) = value else {
        return Err(Problem::new(
            format!("{key} must be an octal string"),
            format!("quote it, e.g. {key} = \"0640\" (TOML reads a bare 640 as decimal)"),
        ));
    };
    let digits = text.strip_prefix("0o").unwrap_or(text);
    let mode = (!digits.is_empty() && digits.bytes().all(|b| (b'0'..=b'7').contains(&b)))
        .then(|| u32::from_str_radix(digits, 8).ok())
        .flatten()
        .ok_or_else(|| {
            Problem::new(
                format!("{key} {text:?} is not an octal mode"),
                format!("write octal digits 0-7, e.g. {key} = \"0640\""),
            )
        })?;
    if mode > 0o777 {
        return Err(Problem::new(
            format!("{key} {text:?} has bits beyond 0o777"),
            "only permission bits are allowed (no setuid, setgid or sticky), e.g. \"0640\"",
        ));
    }
    if mode & 0o002 != 0 {
        return Err(Problem::new(
            format!("{key} {text:?} is world-writable"),
            "calseg-agent never installs world-writable files; drop the \"other\" write bit, e.g. \"0644\"",
        ));
    }
    Ok(mode)
}

/// An etcd endpoint: `http(s)://host[:port]` with no path, query or user info.
pub(super) fn endpoint(url: &str) -> Result<(), Problem> {
    let bad = |why: &str| {
        Problem::new(
            format!("etcd endpoint {url:?} {why}"),
            "write each endpoint as a URL, e.g. \"https://10.0.0.11:2379\"",
        )
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("is not an https:// or http:// URL"))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() {
        return Err(bad("has no host"));
    }
    if authority.contains(['/', '?', '#', '@']) || authority.contains(char::is_whitespace) {
        return Err(bad(
            "must be scheme://host:port with no path, query or user info",
        ));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') && !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    };
    if host.is_empty() || (host.starts_with('[') != host.ends_with(']')) {
        return Err(bad("has no valid host"));
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(bad("has an invalid port"));
    }
    Ok(())
}

/// The `{...}` variables in a template, which must all be in `allowed`.
pub(super) fn template_variables(template: &str, allowed: &[&str]) -> Result<Vec<String>, Problem> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        let after = rest.get(open + 1..).unwrap_or_default();
        let close = after
            .find('}')
            .filter(|_| rest.get(open..=open) == Some("{"));
        let Some(close) = close.filter(|&c| !after.get(..c).unwrap_or_default().contains('{'))
        else {
            return Err(Problem::new(
                format!("unbalanced '{{' or '}}' in {template:?}"),
                format!("braces only enclose variables: {}", braced(allowed)),
            ));
        };
        let name = after.get(..close).unwrap_or_default();
        if !allowed.contains(&name) {
            return Err(Problem::new(
                format!("unknown variable {{{name}}} in {template:?}"),
                format!("the variables allowed here are {}", braced(allowed)),
            ));
        }
        found.push(name.to_string());
        rest = after.get(close + 1..).unwrap_or_default();
    }
    Ok(found)
}

fn braced(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{{{n}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn node_names_fit_a_certificate_common_name() {
        assert!(node_name(&"a".repeat(MAX_NODE_NAME_LEN)).is_ok());
        for len in [MAX_NODE_NAME_LEN + 1, 253, 300] {
            let problem = node_name(&"a".repeat(len)).unwrap_err();
            assert!(
                problem
                    .message
                    .contains(&format!("{len} characters long, the limit is 64")),
                "{}",
                problem.message
            );
            assert!(problem.hint.contains("Common Name"), "{}", problem.hint);
        }
    }

    #[test]
    fn node_names_follow_rfc_1123() {
        for good in ["node1", "worker-17.example.com", "a"] {
            assert!(node_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Node1", "-a", "a-", "a_b", "a b", &"a".repeat(254)] {
            assert!(node_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn modes_are_octal_strings_within_0777() {
        assert_eq!(
            file_mode("key_mode", &Scalar::Text("0640".into())),
            Ok(0o640)
        );
        assert_eq!(
            file_mode("key_mode", &Scalar::Text("0o600".into())),
            Ok(0o600)
        );
        assert!(
            file_mode("key_mode", &Scalar::Text("4755".into()))
                .unwrap_err()
                .message
                .contains("beyond")
        );
        assert!(file_mode("key_mode", &Scalar::Text("0x1".into())).is_err());
        assert!(
            file_mode("key_mode", &Scalar::Integer(416))
                .unwrap_err()
                .hint
                .contains("quote")
        );
    }

    #[test]
    fn endpoints_are_plain_http_urls() {
        for good in [
            "https://10.0.0.1:2379",
            "http://etcd",
            "https://[::1]:2379",
            "https://e:2379/",
        ] {
            assert!(endpoint(good).is_ok(), "{good}");
        }
        for bad in [
            "10.0.0.1:2379",
            "https://",
            "https://e:2379/v3",
            "https://e:0",
            "https://e:x",
            "unix:///s",
        ] {
            assert!(endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn templates_list_known_variables_and_reject_others() {
        let vars = template_variables("{component}.{node}", &["component", "node"]).unwrap();
        assert_eq!(vars, ["component", "node"]);
        assert!(
            template_variables("{host}", &["node"])
                .unwrap_err()
                .message
                .contains("{host}")
        );
        assert!(template_variables("/a/{node", &["node"]).is_err());
        assert!(template_variables("/a/node}", &["node"]).is_err());
        assert!(unit_name("calico-node.service").is_ok());
        assert!(unit_name("calico-node").is_err());
        assert!(unit_name(".service").is_err());
    }
}
