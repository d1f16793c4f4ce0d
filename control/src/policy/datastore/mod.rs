//! `[datastore]`: the values `calseg-server datastore init` gives Calico's cluster-wide objects
//! (see `crate::datastore`). The checks are libcalico-go's own for those objects, so a value
//! that passes here is one Calico accepts: `lib/validator/v3/validator.go` (`validateIPPoolSpec`:
//! a strictly masked CIDR, no overlap with 169.254.0.0/16, IPIP and VXLAN not both on, a pool
//! at least one block large; `logLevel`: Debug, Info, Warning, Error, Fatal) and
//! `lib/clientv3/ippool.go` (IPv4 block sizes 20 to 32).
//!
//! This file holds the defaults and the checks across keys; `values` the checks of single
//! values; `tests` parses policy text.

use toml::Spanned;

use super::location::{Diagnostics, Problem};
use super::model::{DatastoreSettings, EncapMode};
use super::raw::RawDatastore;
use super::version::CalicoVersion;
use values::{
    as_number, block_size, calico_release, cluster_type, encap_mode, ipv4_cidr, log_severity,
};

mod values;

/// ClusterInformation's `clusterType` when `[datastore] cluster_type` is absent.
pub const DEFAULT_CLUSTER_TYPE: &str = "bgp";
/// Calico's own default IPv4 pool (node `startup.go`, `DEFAULT_IPV4_POOL_CIDR`).
pub const DEFAULT_IPV4_POOL_CIDR: &str = "192.168.0.0/16";
/// Calico's default IPv4 block size (`DEFAULT_IPV4_POOL_BLOCK_SIZE`).
pub const DEFAULT_BLOCK_SIZE: u8 = 26;
/// Calico's default AS number when BGPConfiguration sets none.
pub const DEFAULT_AS_NUMBER: u32 = 64512;
/// calico-node's default `logSeverityScreen` (`defaultLogSeverity` in `startup.go`).
pub const DEFAULT_LOG_SEVERITY: &str = "Info";

impl Default for DatastoreSettings {
    /// What `datastore init` writes with no `[datastore]` section: Calico's own defaults.
    fn default() -> Self {
        Self {
            calico_release: None,
            cluster_type: DEFAULT_CLUSTER_TYPE.to_string(),
            default_pool: true,
            ipv4_pool_cidr: DEFAULT_IPV4_POOL_CIDR.to_string(),
            ipip_mode: EncapMode::Always,
            vxlan_mode: EncapMode::Never,
            nat_outgoing: true,
            block_size: DEFAULT_BLOCK_SIZE,
            as_number: DEFAULT_AS_NUMBER,
            node_to_node_mesh: true,
            log_severity: DEFAULT_LOG_SEVERITY.to_string(),
        }
    }
}

/// Validates `[datastore]`; `version` is the policy's `calico_version` when it is usable.
pub(super) fn datastore_settings(
    raw: RawDatastore,
    version: Option<CalicoVersion>,
    diags: &mut Diagnostics<'_>,
) -> DatastoreSettings {
    let mut settings = DatastoreSettings::default();
    let mut d = Checker { diags };
    d.take(
        raw.calico_release.as_ref(),
        &mut settings.calico_release,
        |text| calico_release(text, version).map(Some),
    );
    d.take(raw.cluster_type.as_ref(), &mut settings.cluster_type, |t| {
        cluster_type(t)
    });
    d.take(raw.default_pool.as_ref(), &mut settings.default_pool, |b| {
        Ok(*b)
    });
    d.take(raw.ipip_mode.as_ref(), &mut settings.ipip_mode, |t| {
        encap_mode("ipip_mode", t)
    });
    d.take(raw.vxlan_mode.as_ref(), &mut settings.vxlan_mode, |t| {
        encap_mode("vxlan_mode", t)
    });
    d.take(raw.nat_outgoing.as_ref(), &mut settings.nat_outgoing, |b| {
        Ok(*b)
    });
    d.take(raw.block_size.as_ref(), &mut settings.block_size, |n| {
        block_size(*n)
    });
    d.take(raw.as_number.as_ref(), &mut settings.as_number, |n| {
        as_number(*n)
    });
    d.take(
        raw.node_to_node_mesh.as_ref(),
        &mut settings.node_to_node_mesh,
        |b| Ok(*b),
    );
    d.take(raw.log_severity.as_ref(), &mut settings.log_severity, |t| {
        log_severity(t)
    });
    let diags = d.diags;

    let cidr_span = raw.ipv4_pool_cidr.as_ref().map(|cidr| cidr.span());
    let prefix = match &raw.ipv4_pool_cidr {
        Some(value) => match ipv4_cidr(value.get_ref()) {
            Ok((network, prefix)) => {
                settings.ipv4_pool_cidr = format!("{network}/{prefix}");
                Some(prefix)
            }
            Err(problem) => {
                diags.problem(value.span(), problem);
                None
            }
        },
        None => ipv4_cidr(DEFAULT_IPV4_POOL_CIDR)
            .ok()
            .map(|(_, prefix)| prefix),
    };
    // Across keys: the pool must hold at least one block; one encapsulation at a time.
    if let Some(prefix) = prefix
        && prefix > settings.block_size
    {
        let span = cidr_span
            .or(raw.block_size.as_ref().map(|b| b.span()))
            .unwrap_or(0..0);
        diags.error(
            span,
            format!(
                "ipv4_pool_cidr {} is smaller than one IPAM block (block_size {})",
                settings.ipv4_pool_cidr, settings.block_size
            ),
            format!(
                "use a pool of prefix length {} or shorter, or a block_size of at least {prefix}",
                settings.block_size
            ),
        );
    }
    if settings.ipip_mode != EncapMode::Never && settings.vxlan_mode != EncapMode::Never {
        let span = raw
            .vxlan_mode
            .as_ref()
            .or(raw.ipip_mode.as_ref())
            .map(|m| m.span())
            .unwrap_or(0..0);
        diags.error(
            span,
            format!(
                "ipip_mode {:?} and vxlan_mode {:?}: Calico refuses a pool with both IPIP and VXLAN enabled",
                settings.ipip_mode.as_str(),
                settings.vxlan_mode.as_str()
            ),
            "set one of them to \"Never\" (the default pool uses ipip_mode = \"Always\", vxlan_mode = \"Never\")",
        );
    }
    settings
}

/// Runs single-value checks, reporting each failure at its value and keeping the default.
struct Checker<'a, 'd> {
    diags: &'a mut Diagnostics<'d>,
}

impl Checker<'_, '_> {
    fn take<T, U>(
        &mut self,
        value: Option<&Spanned<T>>,
        slot: &mut U,
        check: impl FnOnce(&T) -> Result<U, Problem>,
    ) {
        if let Some(value) = value {
            match check(value.get_ref()) {
                Ok(checked) => *slot = checked,
                Err(problem) => self.diags.problem(value.span(), problem),
            }
        }
    }
}

#[cfg(test)]
mod tests;
