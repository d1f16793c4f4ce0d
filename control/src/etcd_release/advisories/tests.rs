use super::*;

fn version(text: &str) -> Reported {
    let reported = Reported::from_status(text);
    assert!(
        matches!(reported, Reported::Parsed(_)),
        "{text:?} should parse"
    );
    reported
}

fn ids(text: &str) -> Vec<&'static str> {
    affecting(&Reported::from_status(text))
        .into_iter()
        .map(|(advisory, _)| advisory.id)
        .collect()
}

fn advisory(id: &str) -> &'static Advisory {
    ADVISORIES
        .iter()
        .find(|a| a.id == id)
        .unwrap_or_else(|| panic!("{id} is not in the table"))
}

const FROM_KEY_WATCH: &str = "GHSA-xg4h-6gfc-h4m8";
const NESTED_TXN: &str = "GHSA-rfx7-8w68-q57q";
const PREV_KV: &str = "GHSA-x35m-3gp4-4fh5";
const CLUSTER_APIS: &str = "GHSA-q8m4-xhhv-38mg";
const LEASE_KEYS: &str = "GHSA-3p4g-rcw5-8298";
const GATEWAY_CN: &str = "CVE-2018-16886";

#[test]
fn debian_12_and_13_releases_have_the_from_key_watch_bypass() {
    // Debian 12 ships 3.4.23, Debian 13 3.5.16.
    assert_eq!(
        ids("3.4.23"),
        [
            FROM_KEY_WATCH,
            NESTED_TXN,
            PREV_KV,
            CLUSTER_APIS,
            LEASE_KEYS
        ]
    );
    assert_eq!(
        ids("3.5.16"),
        [FROM_KEY_WATCH, NESTED_TXN, PREV_KV, CLUSTER_APIS]
    );
    // 3.4 ended without a fix for the watch bypass: no 3.4 release is safe from it.
    assert_eq!(
        advisory(FROM_KEY_WATCH).verdict(&version("3.4.23")),
        Verdict::NoFixInLine { line: (3, 4) }
    );
    assert_eq!(ids("3.4.45"), [FROM_KEY_WATCH]);
    assert_eq!(
        advisory(FROM_KEY_WATCH).verdict(&version("3.5.16")),
        Verdict::FixedIn(EtcdVersion::release(3, 5, 33))
    );
}

#[test]
fn fixed_releases_are_not_affected_and_the_release_before_is() {
    assert!(ids("3.5.33").is_empty(), "{:?}", ids("3.5.33"));
    assert!(ids("3.6.14").is_empty(), "{:?}", ids("3.6.14"));
    assert!(ids("3.7.1").is_empty(), "{:?}", ids("3.7.1"));
    assert_eq!(ids("3.5.32"), [FROM_KEY_WATCH]);
    assert_eq!(ids("3.6.13"), [FROM_KEY_WATCH]);
    assert_eq!(ids("3.7.0"), [FROM_KEY_WATCH]);
    // Every boundary of every row: the fixed release is fixed, the one before is not.
    for advisory in ADVISORIES {
        for row in advisory.lines {
            let Fix::In(patch) = row.fix else { continue };
            let fixed = version(&format!("{}.{}.{patch}", row.major, row.minor));
            assert_eq!(advisory.verdict(&fixed), Verdict::Fixed, "{}", advisory.id);
            if patch > 0 {
                let before = version(&format!("{}.{}.{}", row.major, row.minor, patch - 1));
                assert!(advisory.verdict(&before).affected(), "{}", advisory.id);
            }
        }
    }
}

#[test]
fn boundaries_of_each_advisory() {
    let verdict = |id: &str, v: &str| advisory(id).verdict(&version(v));
    assert!(verdict(NESTED_TXN, "3.4.41").affected());
    assert!(!verdict(NESTED_TXN, "3.4.42").affected());
    assert!(verdict(NESTED_TXN, "3.5.27").affected());
    assert!(!verdict(NESTED_TXN, "3.5.28").affected());
    assert!(verdict(NESTED_TXN, "3.6.8").affected());
    assert!(!verdict(NESTED_TXN, "3.6.9").affected());
    assert!(verdict(PREV_KV, "3.4.43").affected());
    assert!(!verdict(PREV_KV, "3.4.44").affected());
    assert!(verdict(PREV_KV, "3.5.29").affected());
    assert!(!verdict(PREV_KV, "3.5.30").affected());
    assert!(verdict(PREV_KV, "3.6.10").affected());
    assert!(!verdict(PREV_KV, "3.6.11").affected());
    assert!(verdict(CLUSTER_APIS, "3.6.8").affected());
    assert!(!verdict(CLUSTER_APIS, "3.6.9").affected());
    assert!(verdict(LEASE_KEYS, "3.4.25").affected());
    assert!(!verdict(LEASE_KEYS, "3.4.26").affected());
    assert!(verdict(LEASE_KEYS, "3.5.8").affected());
    assert!(!verdict(LEASE_KEYS, "3.5.9").affected());
    assert!(!verdict(LEASE_KEYS, "3.6.0").affected());
    assert!(verdict(GATEWAY_CN, "3.2.25").affected());
    assert!(!verdict(GATEWAY_CN, "3.2.26").affected());
    assert!(verdict(GATEWAY_CN, "3.3.10").affected());
    assert!(!verdict(GATEWAY_CN, "3.3.11").affected());
    assert!(!verdict(GATEWAY_CN, "3.4.0").affected());
}

#[test]
fn pre_releases_of_a_fixed_release_count_as_affected() {
    assert!(
        advisory(NESTED_TXN)
            .verdict(&version("3.7.0-rc.0"))
            .affected()
    );
    assert!(
        advisory(LEASE_KEYS)
            .verdict(&version("3.6.0-alpha.0"))
            .affected()
    );
    assert!(
        advisory(FROM_KEY_WATCH)
            .verdict(&version("3.5.33-rc.1"))
            .affected()
    );
    // Build metadata does not make a release older or newer.
    assert!(ids("3.5.33+git").is_empty());
}

#[test]
fn an_unknown_version_is_affected_by_everything() {
    let unknown = Reported::from_status("3.5");
    assert_eq!(affecting(&unknown).len(), ADVISORIES.len());
    assert!(
        affecting(&unknown)
            .iter()
            .all(|(_, v)| *v == Verdict::Unknown)
    );
}

#[test]
fn lines_older_than_the_table_have_no_fix_and_newer_lines_are_fixed() {
    // 3.3 predates the 2026 advisories' rows: affected, no fix known.
    assert_eq!(
        advisory(NESTED_TXN).verdict(&version("3.3.27")),
        Verdict::NoFixInLine { line: (3, 3) }
    );
    assert_eq!(
        advisory(GATEWAY_CN).verdict(&version("3.1.20")),
        Verdict::NoFixInLine { line: (3, 1) }
    );
    assert_eq!(ids("3.3.27").len(), ADVISORIES.len() - 1);
    // Lines after the table branch from main, which has every fix.
    assert!(ids("3.8.0").is_empty());
    assert!(ids("4.0.0").is_empty());
}

#[test]
fn the_table_is_well_formed() {
    let mut seen = std::collections::BTreeSet::new();
    for advisory in ADVISORIES {
        assert!(seen.insert(advisory.id), "{} twice", advisory.id);
        assert!(!advisory.effect.is_empty() && !advisory.effect.contains('\n'));
        let lines: Vec<(u64, u64)> = advisory.lines.iter().map(|l| (l.major, l.minor)).collect();
        assert!(
            lines.windows(2).all(|w| w[0] < w[1]),
            "{}: rows must ascend",
            advisory.id
        );
    }
    assert_eq!(
        advisory(FROM_KEY_WATCH).fixed_releases(),
        "3.5.33, 3.6.14, 3.7.1"
    );
    assert_eq!(
        advisory(LEASE_KEYS).name(),
        "GHSA-3p4g-rcw5-8298 (CVE-2023-32082)"
    );
}
