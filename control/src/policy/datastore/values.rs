//! Single-value checks of `[datastore]`, each a [`Problem`] with a hint; the caller knows
//! where the value sits. They mirror libcalico-go's validation of the objects (see the parent).

use std::net::Ipv4Addr;

use super::super::location::Problem;
use super::super::model::EncapMode;
use super::super::version::CalicoVersion;
use super::{DEFAULT_AS_NUMBER, DEFAULT_BLOCK_SIZE, DEFAULT_CLUSTER_TYPE, DEFAULT_IPV4_POOL_CIDR};

/// The log levels libcalico-go's `logLevel` validator accepts.
const LOG_LEVELS: [&str; 5] = ["Debug", "Info", "Warning", "Error", "Fatal"];

/// `v3.29.3`: what calico-node reports and compares ClusterInformation's `calicoVersion` with.
pub(super) fn calico_release(
    text: &str,
    version: Option<CalicoVersion>,
) -> Result<String, Problem> {
    let hint = "write the exact version the running calico-node reports (`calico-node -v`, or its \
                log line \"Starting node ... with version\"), e.g. calico_release = \"v3.29.3\"";
    let bad = || {
        Problem::new(
            format!("calico_release {text:?} is not a Calico release"),
            hint,
        )
    };
    let rest = text.strip_prefix('v').ok_or_else(|| {
        Problem::new(
            format!("calico_release {text:?} lacks the leading \"v\" Calico reports"),
            format!("write it as Calico does, e.g. calico_release = \"v{text}\""),
        )
    })?;
    let (numbers, suffix) = match rest.split_once('-') {
        Some((numbers, suffix)) => (numbers, Some(suffix)),
        None => (rest, None),
    };
    let parts: Vec<&str> = numbers.split('.').collect();
    let number = |part: &str| -> Option<u32> {
        (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse().ok())
            .flatten()
    };
    let [major, minor, patch] = parts.as_slice() else {
        return Err(bad());
    };
    let (Some(major), Some(minor), Some(_)) = (number(major), number(minor), number(patch)) else {
        return Err(bad());
    };
    let suffix_ok = suffix.is_none_or(|s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    });
    if !suffix_ok {
        return Err(bad());
    }
    if let Some(version) = version
        && CalicoVersion::new(major, minor) != version
    {
        return Err(Problem::new(
            format!("calico_release {text:?} is not a release of calico_version {version}"),
            format!(
                "set calico_version = \"{major}.{minor}\" if that is the running release, or \
                 calico_release to the {version} release calico-node reports"
            ),
        ));
    }
    Ok(text.to_string())
}

/// Comma-separated cluster types, e.g. `bgp` or `k8s,bgp`.
pub(super) fn cluster_type(text: &str) -> Result<String, Problem> {
    let ok = text.split(',').all(|part| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    });
    if ok {
        return Ok(text.to_string());
    }
    Err(Problem::new(
        format!("cluster_type {text:?} is not a comma-separated list of cluster types"),
        format!(
            "write names of a-z, 0-9, '-', '_' and '.' separated by commas without spaces, e.g. \
             cluster_type = \"{DEFAULT_CLUSTER_TYPE}\"; include every type in calico-node's \
             CLUSTER_TYPE, or it adds the missing ones itself"
        ),
    ))
}

pub(super) fn encap_mode(key: &str, text: &str) -> Result<EncapMode, Problem> {
    let modes = [EncapMode::Always, EncapMode::CrossSubnet, EncapMode::Never];
    if let Some(mode) = modes.iter().find(|m| m.as_str() == text) {
        return Ok(*mode);
    }
    let hint = match modes.iter().find(|m| m.as_str().eq_ignore_ascii_case(text)) {
        Some(mode) => format!(
            "write it as Calico stores it: {key} = \"{}\"",
            mode.as_str()
        ),
        None => format!("{key} is one of \"Always\", \"CrossSubnet\" or \"Never\""),
    };
    Err(Problem::new(
        format!("{key} {text:?} is not an encapsulation mode"),
        hint,
    ))
}

pub(super) fn block_size(value: i64) -> Result<u8, Problem> {
    match u8::try_from(value) {
        Ok(size) if (20..=32).contains(&size) => Ok(size),
        _ => Err(Problem::new(
            format!("block_size {value} is outside 20..=32"),
            format!(
                "Calico allows IPv4 blocks of prefix length 20 to 32; the default is {DEFAULT_BLOCK_SIZE}"
            ),
        )),
    }
}

pub(super) fn as_number(value: i64) -> Result<u32, Problem> {
    match u32::try_from(value) {
        Ok(number) if number >= 1 => Ok(number),
        _ => Err(Problem::new(
            format!("as_number {value} is not a BGP AS number"),
            format!(
                "write a whole number from 1 to 4294967295; the default is {DEFAULT_AS_NUMBER} (a private AS)"
            ),
        )),
    }
}

pub(super) fn log_severity(text: &str) -> Result<String, Problem> {
    if LOG_LEVELS.contains(&text) {
        return Ok(text.to_string());
    }
    let hint = match LOG_LEVELS.iter().find(|l| l.eq_ignore_ascii_case(text)) {
        Some(level) => format!("write it as Calico expects: log_severity = \"{level}\""),
        None => format!("log_severity is one of {}", LOG_LEVELS.join(", ")),
    };
    Err(Problem::new(
        format!("log_severity {text:?} is not a Calico log level"),
        hint,
    ))
}

/// An IPv4 CIDR whose address is the network address, not overlapping 169.254.0.0/16.
pub(super) fn ipv4_cidr(text: &str) -> Result<(Ipv4Addr, u8), Problem> {
    let bad = || {
        Problem::new(
            format!("ipv4_pool_cidr {text:?} is not an IPv4 CIDR"),
            format!(
                "write an IPv4 network and prefix length, e.g. ipv4_pool_cidr = \"{DEFAULT_IPV4_POOL_CIDR}\""
            ),
        )
    };
    let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
    let address: Ipv4Addr = address.parse().map_err(|_| bad())?;
    let prefix: u8 = match prefix.parse() {
        Ok(p) if p <= 32 && !prefix.starts_with('+') => p,
        _ => return Err(bad()),
    };
    let network = Ipv4Addr::from(u32::from(address) & mask(prefix));
    if network != address {
        return Err(Problem::new(
            format!("ipv4_pool_cidr {text:?} has host bits set"),
            format!("Calico stores pools by their network address: write \"{network}/{prefix}\""),
        ));
    }
    let link_local = u32::from(Ipv4Addr::new(169, 254, 0, 0));
    let shorter = mask(prefix.min(16));
    if u32::from(network) & shorter == link_local & shorter {
        return Err(Problem::new(
            format!("ipv4_pool_cidr {text:?} overlaps the IPv4 link-local range 169.254.0.0/16"),
            "Calico refuses such pools; pick a private range, e.g. 192.168.0.0/16 or 10.244.0.0/16",
        ));
    }
    Ok((network, prefix))
}

/// The netmask of a prefix length (0..=32).
pub(super) fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}
