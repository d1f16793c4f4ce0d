//! The replay's identity and options, read from the environment the way Calico reads it:
//! libcalico-go's `LoadClientConfigFromEnvironment` (`envconfig.Process("calico", …)`) takes
//! `CALICO_ETCD_ENDPOINTS` first and falls back to `ETCD_ENDPOINTS` (likewise for every variable
//! of the CalicoAPIConfig), and calico/node's `DetermineNodeName` takes `NODENAME`, then
//! `HOSTNAME`, then the OS hostname lowercased (the `/var/lib/calico/nodename` cache is left out:
//! a stand-in must not pick up the machine's state). The lookup is a parameter, so this is tested
//! without touching the process environment.

use super::version::CalicoVersion;
use std::path::PathBuf;

/// Everything the replay needs to know before it opens a socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// etcd client URLs, as Calico splits `ETCD_ENDPOINTS` (on commas).
    pub endpoints: Vec<String>,
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The Calico node name, which picks the node's own keys.
    pub node: String,
    /// Which release's start-up to replay (tiers, bgpconfigurations/default).
    pub version: CalicoVersion,
    /// `NO_DEFAULT_POOLS=true`: calico-node creates no default IP pool.
    pub no_default_pools: bool,
    /// Whether calico-node would also create a default IPv6 pool when none exists:
    /// `CALICO_IPV6POOL_CIDR` is not `none`, `FELIX_IPV6SUPPORT` is not false and the kernel has
    /// IPv6 (`/proc/sys/net/ipv6`), as in node startup's `ipv6Supported`.
    pub ipv6_pool: bool,
    /// `CLUSTER_TYPE`: ClusterInformation is updated when it lacks one of these types.
    pub cluster_type: String,
}

/// The Calico release replayed when `CALICO_VERSION` is not set.
pub const DEFAULT_VERSION: &str = "3.29";

impl Settings {
    /// Reads the settings through `env` (a variable's value, `None` when unset). `os_hostname`
    /// is asked only when neither `NODENAME` nor `HOSTNAME` is set; `has_ipv6` only when the
    /// environment does not already rule the IPv6 pool out.
    pub fn from_lookup(
        env: impl Fn(&str) -> Option<String>,
        os_hostname: impl FnOnce() -> Option<String>,
        has_ipv6: impl FnOnce() -> bool,
    ) -> Result<Self, String> {
        // Empty counts as unset, as Calico's `os.Getenv(...) != ""` checks do.
        let get = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        let calico = |name: &str| get(&format!("CALICO_{name}")).or_else(|| get(name));
        if let Some(kind) = calico("DATASTORE_TYPE")
            && kind != "etcdv3"
        {
            return Err(format!(
                "DATASTORE_TYPE={kind}: the replay performs Calico's etcd operations and needs \
                 DATASTORE_TYPE=etcdv3 (or unset)"
            ));
        }
        if calico("ETCD_USERNAME").is_some() && calico("ETCD_PASSWORD").is_some() {
            return Err(
                "ETCD_USERNAME and ETCD_PASSWORD are set: Calico would log in with them \
                 and etcd would ignore the certificate's CN, which is the identity to check; \
                 unset them"
                    .into(),
            );
        }
        let endpoints: Vec<String> = calico("ETCD_ENDPOINTS")
            .ok_or("ETCD_ENDPOINTS is not set: give the etcd client URLs, comma-separated")?
            .split(',')
            .map(|url| url.trim().to_owned())
            .filter(|url| !url.is_empty())
            .collect();
        let file = |name: &str| {
            calico(name).map(PathBuf::from).ok_or_else(|| {
                format!("{name} is not set: the replay checks a client-certificate identity")
            })
        };
        let node = match get("NODENAME").or_else(|| get("HOSTNAME")) {
            Some(name) => name.trim().to_owned(),
            None => os_hostname()
                .map(|name| name.trim().to_lowercase())
                .filter(|name| !name.is_empty())
                .ok_or("no node name: set NODENAME (the OS hostname could not be read)")?,
        };
        let version_text = get("CALICO_VERSION").unwrap_or_else(|| DEFAULT_VERSION.into());
        let version = CalicoVersion::parse(&version_text).ok_or_else(|| {
            format!("CALICO_VERSION={version_text}: expected e.g. 3.29 or v3.29.7")
        })?;
        let false_like = |value: Option<String>| {
            value.is_some_and(|v| {
                matches!(v.to_lowercase().as_str(), "false" | "0" | "no" | "n" | "f")
            })
        };
        let ipv6_pool = get("CALICO_IPV6POOL_CIDR").as_deref() != Some("none")
            && !false_like(get("FELIX_IPV6SUPPORT"))
            && has_ipv6();
        Ok(Self {
            endpoints,
            ca_file: file("ETCD_CA_CERT_FILE")?,
            cert_file: file("ETCD_CERT_FILE")?,
            key_file: file("ETCD_KEY_FILE")?,
            node,
            version,
            no_default_pools: get("NO_DEFAULT_POOLS").is_some_and(|v| v.to_lowercase() == "true"),
            ipv6_pool,
            cluster_type: get("CLUSTER_TYPE").unwrap_or_default(),
        })
    }

    /// Reads the settings from the process environment and the machine.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(
            |name| std::env::var(name).ok(),
            || std::fs::read_to_string("/proc/sys/kernel/hostname").ok(),
            || std::path::Path::new("/proc/sys/net/ipv6").exists(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)], hostname: Option<&str>) -> Result<Settings, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(
            |name| vars.get(name).cloned(),
            || hostname.map(str::to_owned),
            || true,
        )
    }

    const BASE: &[(&str, &str)] = &[
        (
            "ETCD_ENDPOINTS",
            "https://10.0.0.1:2379, https://10.0.0.2:2379",
        ),
        ("ETCD_CA_CERT_FILE", "/etc/calico/certs/calico-node/ca.pem"),
        ("ETCD_CERT_FILE", "/etc/calico/certs/calico-node/cert.pem"),
        ("ETCD_KEY_FILE", "/etc/calico/certs/calico-node/key.pem"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        BASE.iter().chain(extra).copied().collect()
    }

    #[test]
    fn reads_calicos_variables_and_splits_the_endpoints() {
        let s = read(&with(&[("NODENAME", "worker-1")]), None).unwrap();
        assert_eq!(
            s.endpoints,
            ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
        );
        assert_eq!(
            s.cert_file,
            PathBuf::from("/etc/calico/certs/calico-node/cert.pem")
        );
        assert_eq!(s.node, "worker-1");
        assert_eq!(s.version, CalicoVersion::parse(DEFAULT_VERSION).unwrap());
        assert!(!s.no_default_pools);
        assert!(s.ipv6_pool);
    }

    #[test]
    fn the_calico_prefixed_variable_wins() {
        let vars = with(&[
            ("CALICO_ETCD_ENDPOINTS", "https://10.9.9.9:2379"),
            ("NODENAME", "a"),
        ]);
        assert_eq!(
            read(&vars, None).unwrap().endpoints,
            ["https://10.9.9.9:2379"]
        );
    }

    #[test]
    fn node_name_is_nodename_then_hostname_then_the_os_hostname_lowercased() {
        let both = with(&[("NODENAME", "n1"), ("HOSTNAME", "h1")]);
        assert_eq!(read(&both, Some("OS")).unwrap().node, "n1");
        let host = with(&[("NODENAME", ""), ("HOSTNAME", "h1")]);
        assert_eq!(read(&host, Some("OS")).unwrap().node, "h1");
        assert_eq!(read(BASE, Some("Worker-7\n")).unwrap().node, "worker-7");
        assert!(read(BASE, None).unwrap_err().contains("NODENAME"));
    }

    #[test]
    fn another_datastore_or_a_password_login_is_refused_clearly() {
        let kdd = with(&[("DATASTORE_TYPE", "kubernetes"), ("NODENAME", "a")]);
        assert!(
            read(&kdd, None)
                .unwrap_err()
                .contains("DATASTORE_TYPE=kubernetes")
        );
        let etcd = with(&[("DATASTORE_TYPE", "etcdv3"), ("NODENAME", "a")]);
        assert!(read(&etcd, None).is_ok());
        let login = with(&[
            ("ETCD_USERNAME", "u"),
            ("ETCD_PASSWORD", "p"),
            ("NODENAME", "a"),
        ]);
        assert!(read(&login, None).unwrap_err().contains("CN"));
    }

    #[test]
    fn a_missing_file_variable_is_named() {
        let vars: Vec<_> = BASE
            .iter()
            .filter(|(k, _)| *k != "ETCD_KEY_FILE")
            .copied()
            .chain([("NODENAME", "a")])
            .collect();
        assert!(read(&vars, None).unwrap_err().starts_with("ETCD_KEY_FILE"));
    }

    #[test]
    fn default_pools_follow_calicos_switches() {
        let none = with(&[("NODENAME", "a"), ("NO_DEFAULT_POOLS", "TRUE")]);
        assert!(read(&none, None).unwrap().no_default_pools);
        let no_v6 = with(&[("NODENAME", "a"), ("CALICO_IPV6POOL_CIDR", "none")]);
        assert!(!read(&no_v6, None).unwrap().ipv6_pool);
        let no_felix_v6 = with(&[("NODENAME", "a"), ("FELIX_IPV6SUPPORT", "false")]);
        assert!(!read(&no_felix_v6, None).unwrap().ipv6_pool);
    }
}
