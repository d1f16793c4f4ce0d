use super::*;
use crate::testutil::{identity, manifest};
use time::macros::datetime;

fn record(component: &str, m: &Manifest, serial: &str) -> InstalledIdentity {
    let id = m.identities.iter().find(|i| i.component == component);
    let id = id.cloned().unwrap_or_else(|| identity(component, &[]));
    InstalledIdentity {
        component: component.into(),
        etcd_user: id.etcd_user,
        files: id.files,
        render: id.render,
        endpoints: m.etcd.endpoints.clone(),
        ca_sha256: sha256_hex(m.etcd.ca_bundle_pem.as_bytes()),
        serial: serial.into(),
        not_before: datetime!(2025-01-01 0:00 UTC),
        not_after: datetime!(2025-01-31 0:00 UTC),
        issuer: None,
    }
}

#[test]
fn a_manifest_naming_another_issuer_reissues_only_that_identity() {
    let mut m = manifest(vec![identity("calico-node", &[]), identity("cni", &[])]);
    let mut installed: BTreeMap<String, InstalledIdentity> = ["calico-node", "cni"]
        .iter()
        .map(|c| (c.to_string(), record(c, &m, "01")))
        .collect();
    let on_disk: BTreeMap<String, Option<String>> = ["calico-node", "cni"]
        .iter()
        .map(|c| (c.to_string(), Some("01".to_owned())))
        .collect();
    let now = datetime!(2025-01-02 0:00 UTC);
    // No issuer named (no rotation, or an older server): nothing to do.
    let kept = decide(&m, &installed, &on_disk, now);
    assert!(kept.iter().all(|d| matches!(d.action, Action::Keep { .. })));
    // The rotation's wave opened: both identities must come from the new CA.
    for identity in &mut m.identities {
        identity.issuer = Some("sha256:new".into());
    }
    if let Some(cni) = installed.get_mut("cni") {
        cni.issuer = Some("sha256:new".into());
    }
    let decided = decide(&m, &installed, &on_disk, now);
    assert_eq!(
        decided[0].action,
        Action::Issue(Reason::PolicyChanged {
            fields: vec!["issuer"]
        })
    );
    assert!(matches!(decided[1].action, Action::Keep { .. }));
}

#[test]
fn renew_at_is_fraction_of_lifetime_plus_jitter_capped_at_expiry() {
    let nb = datetime!(2025-01-01 0:00 UTC);
    let na = datetime!(2025-01-31 0:00 UTC);
    assert_eq!(
        renew_at(nb, na, 2.0 / 3.0, time::Duration::ZERO),
        datetime!(2025-01-21 0:00 UTC)
    );
    let jitter = time::Duration::hours(6);
    assert_eq!(
        renew_at(nb, na, 2.0 / 3.0, jitter),
        datetime!(2025-01-21 6:00 UTC)
    );
    assert_eq!(
        renew_at(nb, na, 2.0 / 3.0, time::Duration::days(60)),
        na,
        "never after expiry"
    );
    assert_eq!(
        renew_at(nb, na, 2.0 / 3.0, -jitter),
        datetime!(2025-01-21 0:00 UTC),
        "no negative jitter"
    );
    assert_eq!(renew_at(nb, na, f64::NAN, jitter), na);
}

#[test]
fn jitter_is_stable_per_seed_bounded_and_spread() {
    let a = jitter_fraction("n1/calico-node/01");
    assert_eq!(a, jitter_fraction("n1/calico-node/01"));
    let values: Vec<f64> = (0..100)
        .map(|i| jitter_fraction(&format!("node-{i}")))
        .collect();
    assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
    assert!(values.iter().any(|v| *v < 0.3) && values.iter().any(|v| *v > 0.7));
    let m = manifest(vec![identity("calico-node", &[])]);
    let r = record("calico-node", &m, "01");
    let j = renewal_jitter(&r, "n1");
    assert!(
        j >= time::Duration::ZERO && j <= time::Duration::days(3),
        "{j}"
    );
}

#[test]
fn decides_missing_policy_change_renewal_and_keep() {
    let m = manifest(vec![
        identity("calico-node", &[]),
        identity("cni-plugin", &[]),
    ]);
    let mut installed = BTreeMap::new();
    let mut on_disk = BTreeMap::new();
    let early = datetime!(2025-01-05 0:00 UTC);

    let all = |installed: &BTreeMap<_, _>, on_disk: &BTreeMap<_, _>, now| {
        decide(&m, installed, on_disk, now)
            .into_iter()
            .map(|d| d.action)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        all(&installed, &on_disk, early),
        vec![Action::Issue(Reason::Missing); 2]
    );

    installed.insert("calico-node".to_owned(), record("calico-node", &m, "01"));
    on_disk.insert("calico-node".to_owned(), Some("01".to_owned()));
    let got = all(&installed, &on_disk, early);
    assert!(matches!(got[0], Action::Keep { .. }), "{got:?}");
    assert_eq!(got[1], Action::Issue(Reason::Missing));

    // Someone replaced the file on disk.
    on_disk.insert("calico-node".to_owned(), Some("02".to_owned()));
    assert_eq!(
        all(&installed, &on_disk, early)[0],
        Action::Issue(Reason::Missing)
    );
    on_disk.insert("calico-node".to_owned(), Some("01".to_owned()));

    // Renewal after 2/3 of 30 days (+ up to 3 days of jitter); not before.
    assert!(matches!(
        all(&installed, &on_disk, datetime!(2025-01-20 23:00 UTC))[0],
        Action::Keep { .. }
    ));
    let late = all(&installed, &on_disk, datetime!(2025-01-24 0:01 UTC));
    assert!(
        matches!(late[0], Action::Issue(Reason::Renewal { .. })),
        "{late:?}"
    );

    // Policy changes: endpoints and CA bundle, then the etcd user.
    let mut changed = m.clone();
    changed.etcd.endpoints.push("https://10.0.0.2:2379".into());
    changed.etcd.ca_bundle_pem = "OTHER CA".into();
    changed.identities[0].etcd_user = "calico-node.other".into();
    changed.identities[0].files.key_mode = 0o640;
    let got = decide(&changed, &installed, &on_disk, early);
    let want = vec!["etcd_user", "modes", "endpoints", "ca_bundle"];
    assert_eq!(
        got[0].action,
        Action::Issue(Reason::PolicyChanged { fields: want })
    );
}

/// Issue 18, point 7: `calseg-agent renew [--component C]` turns kept certificates into
/// forced renewals (all, or the one named); other decisions stay; an unknown component is an
/// error naming the ones there are.
#[test]
fn issue_18_renew_forces_kept_certificates_only_those_named() {
    let at = datetime!(2025-01-10 0:00 UTC);
    let keep = |c: &str| Decision {
        component: c.into(),
        action: Action::Keep { renew_at: at },
    };
    let base = vec![
        keep("calico-node"),
        keep("felix"),
        Decision {
            component: "cni".into(),
            action: Action::Issue(Reason::Missing),
        },
    ];
    let mut as_due = base.clone();
    force(&mut as_due, &Renew::AsDue).unwrap();
    assert_eq!(as_due, base);
    let mut one = base.clone();
    force(&mut one, &Renew::Component("felix".into())).unwrap();
    assert_eq!(one[0].action, Action::Keep { renew_at: at });
    assert_eq!(one[1].action, Action::Issue(Reason::Forced));
    assert_eq!(one[2].action, Action::Issue(Reason::Missing));
    let mut all = base.clone();
    force(&mut all, &Renew::All).unwrap();
    assert_eq!(all[0].action, Action::Issue(Reason::Forced));
    assert_eq!(all[2].action, Action::Issue(Reason::Missing), "not renamed");
    let mut unknown = base.clone();
    let error = force(&mut unknown, &Renew::Component("bird".into())).unwrap_err();
    assert!(
        error.contains("\"bird\"") && error.contains("calico-node, felix, cni"),
        "{error}"
    );
    assert_eq!(unknown, base, "nothing forced");
}
