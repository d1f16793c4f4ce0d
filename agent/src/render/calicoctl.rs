//! calicoctl's `/etc/calico/calicoctl.cfg`: a `projectcalico.org/v3` `CalicoAPIConfig` naming
//! the etcd endpoints and the identity's certificate files.

use super::EtcdFiles;
use std::fmt::Write as _;

/// Renders the whole file (calseg owns it; local edits are replaced). YAML is written by hand:
/// every value is a double-quoted scalar, so no path or URL can change the document's shape.
/// Call [`EtcdFiles::validate`] first.
pub fn calicoctl_cfg(settings: &EtcdFiles) -> String {
    let path = |p: &std::path::Path| quote(&p.to_string_lossy());
    format!(
        "# Managed by calseg: changes here are overwritten.\n\
         apiVersion: projectcalico.org/v3\n\
         kind: CalicoAPIConfig\n\
         metadata: {{}}\n\
         spec:\n  \
           datastoreType: \"etcdv3\"\n  \
           etcdEndpoints: {}\n  \
           etcdCACertFile: {}\n  \
           etcdCertFile: {}\n  \
           etcdKeyFile: {}\n",
        quote(&settings.endpoints_joined()),
        path(&settings.ca_file),
        path(&settings.cert_file),
        path(&settings.key_file),
    )
}

/// A YAML double-quoted scalar: backslash, quote and control characters escaped.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testutil::settings;

    #[test]
    fn renders_the_documented_shape() {
        let want = "# Managed by calseg: changes here are overwritten.
apiVersion: projectcalico.org/v3
kind: CalicoAPIConfig
metadata: {}
spec:
  datastoreType: \"etcdv3\"
  etcdEndpoints: \"https://10.0.0.11:2379,https://10.0.0.12:2379\"
  etcdCACertFile: \"/etc/calico/certs/calico-node/ca.pem\"
  etcdCertFile: \"/etc/calico/certs/calico-node/cert.pem\"
  etcdKeyFile: \"/etc/calico/certs/calico-node/key.pem\"
";
        assert_eq!(calicoctl_cfg(&settings()), want);
        assert_eq!(calicoctl_cfg(&settings()), calicoctl_cfg(&settings()));
    }

    #[test]
    fn quotes_what_yaml_would_misread() {
        assert_eq!(quote("a: #b"), "\"a: #b\"");
        assert_eq!(quote("x\"y\\z"), "\"x\\\"y\\\\z\"");
        assert_eq!(quote("l1\nl2\u{7}"), "\"l1\\nl2\\u0007\"");
    }
}
