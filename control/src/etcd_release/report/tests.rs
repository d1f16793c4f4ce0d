use super::*;

fn answered(endpoint: &str, version: &str) -> (String, Answer) {
    (
        endpoint.to_owned(),
        Answer::Version(Reported::from_status(version)),
    )
}

fn silent(endpoint: &str) -> (String, Answer) {
    (
        endpoint.to_owned(),
        Answer::NoAnswer("connection refused".into()),
    )
}

#[test]
fn a_debian_12_member_is_named_with_its_version_advisories_and_fixes() {
    let report = ReleaseReport::from_answers(vec![answered("https://a:2379", "3.4.23")]);
    let warnings = report.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    let w = &warnings[0];
    assert!(w.starts_with("etcd at https://a:2379 runs 3.4.23, "), "{w}");
    assert!(w.contains("5 known RBAC bypasses"), "{w}");
    assert!(
        w.contains("GHSA-xg4h-6gfc-h4m8 (CVE-2026-73499) (no fix known in 3.4; fixed in 3.5.33, 3.6.14, 3.7.1)"),
        "{w}"
    );
    assert!(
        w.contains("GHSA-rfx7-8w68-q57q (CVE-2026-33343) (fixed in 3.4.42)"),
        "{w}"
    );
    assert!(
        w.contains("GHSA-3p4g-rcw5-8298 (CVE-2023-32082) (fixed in 3.4.26)"),
        "{w}"
    );
    assert!(
        w.ends_with("3.4 has no release without them: upgrade to at least 3.5.33, 3.6.14 or 3.7.1"),
        "{w}"
    );
    assert!(report.has_known_bypasses());
    assert_eq!(
        report.status_line(),
        "etcd 3.4.23 on 1/1 members: 5 known RBAC bypasses"
    );
    assert_eq!(report.effects().len(), 5);
}

#[test]
fn a_debian_13_member_gets_the_first_fixed_release_of_its_line() {
    let report = ReleaseReport::from_answers(vec![answered("https://b:2379", "3.5.16")]);
    let w = &report.warnings()[0];
    assert!(
        w.contains("GHSA-xg4h-6gfc-h4m8 (CVE-2026-73499) (fixed in 3.5.33)"),
        "{w}"
    );
    assert!(w.ends_with("first 3.5 release without them: 3.5.33"), "{w}");
    assert!(!w.contains("GHSA-3p4g-rcw5-8298"), "{w}");
}

#[test]
fn a_fixed_cluster_has_no_warnings_and_is_not_refused() {
    let report = ReleaseReport::from_answers(vec![
        answered("https://a:2379", "3.6.14"),
        answered("https://b:2379", "3.6.14"),
    ]);
    assert!(report.warnings().is_empty(), "{:?}", report.warnings());
    assert!(report.refuse_known_bypasses().is_ok());
    assert!(report.bypass_series().is_empty());
    assert_eq!(
        report.status_line(),
        "etcd 3.6.14 on 2/2 members: no known RBAC bypasses"
    );
}

#[test]
fn different_versions_unknown_ones_and_silent_members_are_all_said() {
    let report = ReleaseReport::from_answers(vec![
        answered("https://a:2379", "3.5.33"),
        answered("https://b:2379", "3.5.16"),
        answered("https://c:2379", "three point five"),
        silent("https://d:2379"),
    ]);
    let warnings = report.warnings().join("\n");
    assert!(!warnings.contains("etcd at https://a:2379"), "{warnings}");
    assert!(
        warnings.contains("etcd at https://b:2379 runs 3.5.16"),
        "{warnings}"
    );
    assert!(
        warnings.contains(
            "etcd at https://c:2379 runs a version calseg cannot read (\"three point five\"), so it counts as affected by all 6 known RBAC bypasses: "
        ),
        "{warnings}"
    );
    assert!(
        warnings.contains("etcd at https://d:2379 did not report its version (connection refused)"),
        "{warnings}"
    );
    assert!(
        warnings.contains(
            "etcd members run different versions: 3.5.33 at https://a:2379, 3.5.16 at https://b:2379, unknown at https://c:2379"
        ),
        "{warnings}"
    );
    assert!(report.has_silent_members());
    assert_eq!(
        report.status_line(),
        "etcd 3.5.16 ×1, 3.5.33 ×1, unknown ×1 on 3/4 members: 6 known RBAC bypasses"
    );
    assert_eq!(
        report.member_series(),
        [
            ("https://a:2379".to_owned(), "3.5.33".to_owned()),
            ("https://b:2379".to_owned(), "3.5.16".to_owned()),
            ("https://c:2379".to_owned(), "unknown".to_owned()),
        ]
    );
    let bypasses = report.bypass_series();
    assert_eq!(
        bypasses
            .iter()
            .filter(|(e, _)| e == "https://b:2379")
            .count(),
        4
    );
    assert_eq!(
        bypasses
            .iter()
            .filter(|(e, _)| e == "https://c:2379")
            .count(),
        ADVISORIES.len()
    );
    assert!(!bypasses.iter().any(|(e, _)| e == "https://d:2379"));
}

#[test]
fn the_refusal_names_each_affected_member_and_where_to_go() {
    let report = ReleaseReport::from_answers(vec![
        answered("https://a:2379", "3.6.14"),
        answered("https://b:2379", "3.4.23"),
    ]);
    let refused = report
        .refuse_known_bypasses()
        .expect_err("3.4.23 must be refused")
        .to_string();
    assert!(
        refused.starts_with("etcd at https://b:2379 runs 3.4.23, which has known RBAC bypasses GHSA-xg4h-6gfc-h4m8, "),
        "{refused}"
    );
    assert!(!refused.contains("https://a:2379"), "{refused}");
    assert!(
        refused.contains("refuse_known_bypasses = true"),
        "{refused}"
    );
    assert!(
        refused.contains("Upgrade every member to at least 3.5.33, 3.6.14 or 3.7.1, or set"),
        "{refused}"
    );
}

#[test]
fn a_silent_member_alone_is_not_a_known_bypass() {
    let report = ReleaseReport::from_answers(vec![
        answered("https://a:2379", "3.7.1"),
        silent("https://b:2379"),
    ]);
    assert!(!report.has_known_bypasses());
    assert!(report.refuse_known_bypasses().is_ok());
    assert_eq!(report.warnings().len(), 1);
    assert_eq!(
        report.status_line(),
        "etcd 3.7.1 on 1/2 members: no known RBAC bypasses"
    );
}

#[test]
fn upgrade_targets_are_the_first_clean_release_of_each_line() {
    assert_eq!(first_clean_release((3, 4)), None);
    assert_eq!(
        first_clean_release((3, 5)),
        Some(EtcdVersion::release(3, 5, 33))
    );
    assert_eq!(
        first_clean_release((3, 7)),
        Some(EtcdVersion::release(3, 7, 1))
    );
    assert_eq!(first_clean_release((3, 3)), None);
    assert_eq!(upgrade_targets(Some((3, 6))), "at least 3.7.1");
}
