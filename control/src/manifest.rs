//! A node's manifest, computed from the policy for that node only: its identities (etcd user,
//! files, owner and modes), what to render, which units to restart, and a revision that changes
//! whenever any of it changes. During a rotation of the etcd client CA, each identity also
//! names the CA its certificate must come from ([`Trust`]).

use crate::etcd_signers::IssuerWaves;
use crate::policy::{Component, KeyRange, Policy};
use calseg_api::access::Access;
use calseg_api::manifest::{EtcdTarget, Identity, IdentityFiles, Manifest, Render};
use std::sync::Arc;

/// What a manifest says about etcd's CAs: the bundle that verifies etcd's server certificate
/// and, while the etcd client CA rotates in waves, which CA each node's identities come from.
#[derive(Clone, Debug)]
pub struct Trust<'a> {
    pub ca_bundle_pem: &'a str,
    pub issuers: Option<Arc<IssuerWaves>>,
    /// During a fleet CA rotation, the fingerprint of the CA fleet certificates come from.
    pub fleet_ca: Option<String>,
}

impl<'a> From<&'a str> for Trust<'a> {
    fn from(ca_bundle_pem: &'a str) -> Self {
        Self {
            ca_bundle_pem,
            issuers: None,
            fleet_ca: None,
        }
    }
}

impl<'a> From<&'a String> for Trust<'a> {
    fn from(ca_bundle_pem: &'a String) -> Self {
        Self::from(ca_bundle_pem.as_str())
    }
}

impl<'a> From<&Trust<'a>> for Trust<'a> {
    fn from(trust: &Trust<'a>) -> Self {
        trust.clone()
    }
}

/// The manifest of `node` in its enrollment `generation` (which names its etcd users), or `None`
/// when the policy gives it no component.
pub fn manifest_for<'a>(
    policy: &Policy,
    node: &str,
    generation: u32,
    trust: impl Into<Trust<'a>>,
) -> Option<Manifest> {
    let trust = trust.into();
    let components = policy.components_for(node);
    if components.is_empty() {
        return None;
    }
    let issuer = trust
        .issuers
        .as_ref()
        .and_then(|waves| waves.issuer_for(node).map(str::to_owned));
    let identities = components
        .iter()
        .map(|component| Identity {
            issuer: issuer.clone(),
            ..identity(policy, component, node, generation)
        })
        .collect();
    let mut manifest = Manifest {
        node: node.to_owned(),
        revision: String::new(),
        etcd: EtcdTarget {
            endpoints: policy.etcd.endpoints.clone(),
            ca_bundle_pem: trust.ca_bundle_pem.to_owned(),
        },
        identities,
        lifetime_secs: policy.identity.lifetime.as_secs(),
        renew_after: policy.identity.renew_after,
        // Set by the caller after `revision` is computed: never part of the content hash.
        policy_revision: None,
        fleet_ca: trust.fleet_ca.clone(),
    };
    manifest.revision = revision_of(&manifest);
    Some(manifest)
}

/// Whether `node` may hold the identity `component` (and which etcd user it is in the node's
/// enrollment `generation`).
pub fn etcd_user_for(
    policy: &Policy,
    node: &str,
    generation: u32,
    component: &str,
) -> Option<String> {
    policy
        .components_for(node)
        .iter()
        .any(|c| c.name == component)
        .then(|| policy.etcd_user(component, node, generation))
}

fn identity(policy: &Policy, component: &Component, node: &str, generation: u32) -> Identity {
    let dir = component.cert_dir.display().to_string();
    let file = |name: &str| component.cert_dir.join(name).display().to_string();
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    Identity {
        component: component.name.clone(),
        etcd_user: policy.etcd_user(&component.name, node, generation),
        files: IdentityFiles {
            dir,
            ca: file("ca.pem"),
            cert: file("cert.pem"),
            key: file("key.pem"),
            owner: component.owner.clone(),
            group: component.group.clone(),
            key_mode: component.key_mode,
            cert_mode: component.cert_mode,
        },
        render: Render {
            env_file: path(&component.env_file),
            calicoctl_cfg: path(&component.calicoctl_cfg),
            cni_conflist: path(&component.cni_conflist),
        },
        restart: component.restart.clone(),
        probe_key: probe_key(component, node),
        issuer: None,
    }
}

/// A key the identity may read: the agent reads it with a new certificate before installing.
/// Empty when the component may read nothing.
fn probe_key(component: &Component, node: &str) -> String {
    let readable = |access: Access| access != Access::Write;
    component
        .grants
        .iter()
        .chain(component.node_permissions(node).iter())
        .find(|p| readable(p.access))
        .map(|p| match p.range {
            // The prefix itself lies in its own range.
            KeyRange::Prefix | KeyRange::Exact => p.key.clone(),
        })
        .unwrap_or_default()
}

/// SHA-256 of the manifest's canonical JSON with an empty revision, as hex (first 16 bytes).
fn revision_of(manifest: &Manifest) -> String {
    let json = serde_json::to_vec(manifest).unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, &json);
    hex::encode(&digest.as_ref()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
calico_version = "3.29"
[etcd]
endpoints = ["https://127.0.0.1:2379"]
[components.calico-node]
grants = "calico-node"
extra_grants = [ { prefix = "/calico/resources/v3/projectcalico.org/tiers/", access = "readwrite" } ]
restart = ["calico-node.service"]
env_file = "/etc/calico/calico.env"
[components.cni-plugin]
grants = "cni-plugin"
cni_conflist = "/etc/cni/net.d/10-calico.conflist"
[[hosts]]
names = ["node1"]
components = ["calico-node", "cni-plugin"]
[[hosts]]
match = "worker-*"
components = ["cni-plugin"]
"#;

    #[test]
    fn a_node_gets_only_its_own_identities_and_the_revision_tracks_content() {
        let policy = crate::policy::parse(POLICY, "p.toml").unwrap();
        let manifest = manifest_for(&policy, "node1", 0, "CA").unwrap();
        let users: Vec<&str> = manifest
            .identities
            .iter()
            .map(|i| i.etcd_user.as_str())
            .collect();
        assert_eq!(users, ["calico-node.node1", "cni-plugin.node1"]);
        let node = &manifest.identities[0];
        assert_eq!(node.files.cert, "/etc/calico/certs/calico-node/cert.pem");
        assert_eq!(node.restart, ["calico-node.service"]);
        assert_eq!(
            node.render.env_file.as_deref(),
            Some("/etc/calico/calico.env")
        );
        assert!(!node.probe_key.is_empty());

        let worker = manifest_for(&policy, "worker-3", 0, "CA").unwrap();
        assert_eq!(worker.identities.len(), 1);
        assert!(manifest_for(&policy, "stranger", 0, "CA").is_none());

        assert_eq!(
            manifest_for(&policy, "node1", 0, "CA").unwrap().revision,
            manifest.revision
        );
        assert_ne!(
            manifest_for(&policy, "node1", 0, "CA2").unwrap().revision,
            manifest.revision
        );
        // Back after a revocation: new user names, so a new revision and new certificates.
        let again = manifest_for(&policy, "node1", 1, "CA").unwrap();
        assert_eq!(again.identities[0].etcd_user, "calico-node.node1~g1");
        assert_ne!(again.revision, manifest.revision);
        assert_eq!(etcd_user_for(&policy, "worker-3", 0, "calico-node"), None);
        assert_eq!(
            etcd_user_for(&policy, "worker-3", 0, "cni-plugin").as_deref(),
            Some("cni-plugin.worker-3")
        );
    }
}
