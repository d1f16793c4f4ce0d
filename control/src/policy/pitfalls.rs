//! Warnings for grant sets that walk into known Calico pitfalls (reference
//! calico-etcd-rbac.md §5): tier creation from 3.29, bgpconfigurations/default from 3.32, and
//! kube-controllers' compaction, which needs etcd's root role.

use std::ops::Range;

use calseg_api::access::Access;

use super::location::Diagnostics;
use super::model::GrantTable;
use super::model::{Component, KeyRange};
use super::version::CalicoVersion;

const R3: &str = "/calico/resources/v3/projectcalico.org/";

/// Warnings for grant sets known to break Calico (reference §5).
pub(super) fn warn(
    component: &Component,
    version: CalicoVersion,
    span: Range<usize>,
    diags: &mut Diagnostics<'_>,
) {
    let writes = |key: &str| {
        component.grants.iter().any(|p| {
            p.access != Access::Read
                && p.range == KeyRange::Prefix
                && key.starts_with(p.key.as_str())
        })
    };
    let name = &component.name;
    if component.table == Some(GrantTable::CalicoNode) {
        if version >= CalicoVersion::new(3, 29) && !writes(&format!("{R3}tiers/")) {
            diags.warn(
                span.clone(),
                format!("{name}: Calico {version} creates tiers at every start, and the calico-node table grants only read on tiers"),
                format!("add extra_grants = [{{ prefix = \"{R3}tiers/\", access = \"readwrite\" }}] or pre-create the tiers as an admin"),
            );
        }
        if version >= CalicoVersion::new(3, 32) && !writes(&format!("{R3}bgpconfigurations/")) {
            diags.warn(
                span.clone(),
                format!("{name}: Calico {version} creates bgpconfigurations/default when missing, and the calico-node table grants only read there"),
                format!("pre-create it as an admin, or add extra_grants = [{{ prefix = \"{R3}bgpconfigurations/\", access = \"readwrite\" }}]"),
            );
        }
    }
    if component.table == Some(GrantTable::KubeControllers) {
        diags.warn(
            span.clone(),
            format!("{name}: kube-controllers compacts etcd every 10 minutes by default, which needs the root role"),
            "set COMPACTION_PERIOD=0 for kube-controllers and enable etcd auto-compaction",
        );
    }
    if component.grants.is_empty() && component.node_grants.is_empty() {
        diags.warn(
            span,
            format!("component {name} grants nothing"),
            "set grants = \"<table>\" or list grants",
        );
    }
}
