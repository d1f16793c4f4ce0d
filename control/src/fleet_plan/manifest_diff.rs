//! The difference between two manifests of one node, as the files its agent would write and
//! the units it would restart. Pure: no I/O, no clock.
//!
//! The agent makes a new key and certificate when anything it made them with changes (see the
//! agent's `decide::policy_changes`), so cert.pem and key.pem hash exactly those fields; ca.pem
//! hashes the CA bundle; a rendered file hashes the endpoints and paths written into it.

use calseg_api::manifest::{Identity, Manifest};
use calseg_api::plan::{FileChange, FileChangeKind};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A file as a manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileSpec {
    component: String,
    hash: String,
    mode: Option<u32>,
    owner: Option<String>,
}

/// The files of `node`'s manifest changed between `now` and `planned`, by path, and the units
/// the agent would restart: those of each planned identity with a changed file, once each, in
/// the order the manifest names them.
pub fn diff(now: Option<&Manifest>, planned: Option<&Manifest>) -> (Vec<FileChange>, Vec<String>) {
    let before = files_of(now);
    let after = files_of(planned);
    let paths: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut changes = Vec::new();
    for path in paths {
        let (old, new) = (before.get(path), after.get(path));
        let change = match (old, new) {
            (None, Some(_)) => FileChangeKind::Added,
            (Some(_), None) => FileChangeKind::Removed,
            (Some(old), Some(new)) if old.hash != new.hash => FileChangeKind::Changed,
            (Some(old), Some(new)) if old != new => FileChangeKind::Attributes,
            _ => continue,
        };
        let octal = |spec: Option<&FileSpec>| spec.and_then(|s| s.mode).map(|m| format!("{m:04o}"));
        changes.push(FileChange {
            path: path.clone(),
            component: new.or(old).map(|s| s.component.clone()).unwrap_or_default(),
            change,
            hash_now: old.map(|s| s.hash.clone()),
            hash_planned: new.map(|s| s.hash.clone()),
            mode_now: octal(old),
            mode_planned: octal(new),
            owner_now: old.and_then(|s| s.owner.clone()),
            owner_planned: new.and_then(|s| s.owner.clone()),
        });
    }
    let touched: BTreeSet<&str> = changes
        .iter()
        .filter(|c| c.change != FileChangeKind::Removed)
        .map(|c| c.component.as_str())
        .collect();
    let mut restart: Vec<String> = Vec::new();
    for identity in planned.map(|m| m.identities.as_slice()).unwrap_or_default() {
        if touched.contains(identity.component.as_str()) {
            for unit in &identity.restart {
                if !restart.contains(unit) {
                    restart.push(unit.clone());
                }
            }
        }
    }
    (changes, restart)
}

fn files_of(manifest: Option<&Manifest>) -> BTreeMap<String, FileSpec> {
    let mut files = BTreeMap::new();
    let Some(manifest) = manifest else {
        return files;
    };
    for identity in &manifest.identities {
        let f = &identity.files;
        let owner = Some(format!("{}:{}", f.owner, f.group));
        let spec = |hash: String, mode: Option<u32>, owner: Option<String>| FileSpec {
            component: identity.component.clone(),
            hash,
            mode,
            owner,
        };
        let issued = Issued::of(manifest, identity);
        let ca = hash_of(&manifest.etcd.ca_bundle_pem);
        files.insert(f.ca.clone(), spec(ca, Some(f.cert_mode), owner.clone()));
        let cert = hash_of(&("cert", &issued));
        files.insert(f.cert.clone(), spec(cert, Some(f.cert_mode), owner.clone()));
        let key = hash_of(&("key", &issued));
        files.insert(f.key.clone(), spec(key, Some(f.key_mode), owner));
        let rendered = [
            ("env_file", &identity.render.env_file),
            ("calicoctl_cfg", &identity.render.calicoctl_cfg),
            ("cni_conflist", &identity.render.cni_conflist),
        ];
        for (kind, path) in rendered {
            if let Some(path) = path {
                let content = (kind, &manifest.etcd.endpoints, &f.ca, &f.cert, &f.key);
                files.insert(path.clone(), spec(hash_of(&content), None, None));
            }
        }
    }
    files
}

/// What the agent makes an identity's key and certificate with: a change to any of it makes a
/// new pair.
#[derive(Serialize)]
struct Issued<'a> {
    etcd_user: &'a str,
    paths: (&'a str, &'a str, &'a str, &'a str),
    owner: (&'a str, &'a str),
    modes: (u32, u32),
    endpoints: &'a [String],
    ca_bundle: &'a str,
}

impl<'a> Issued<'a> {
    fn of(manifest: &'a Manifest, identity: &'a Identity) -> Self {
        let f = &identity.files;
        Self {
            etcd_user: &identity.etcd_user,
            paths: (&f.dir, &f.ca, &f.cert, &f.key),
            owner: (&f.owner, &f.group),
            modes: (f.key_mode, f.cert_mode),
            endpoints: &manifest.etcd.endpoints,
            ca_bundle: &manifest.etcd.ca_bundle_pem,
        }
    }
}

/// SHA-256 (hex) of the value's JSON.
fn hash_of<T: Serialize + ?Sized>(value: &T) -> String {
    let json = serde_json::to_vec(value).unwrap_or_default();
    super::sha256_hex(&json)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
