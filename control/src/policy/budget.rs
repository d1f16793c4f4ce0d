//! `[rollout]` and the `max_unavailable` of `[[hosts]]` rules: the restart budget.
//!
//! `max_unavailable` is a count (`5`, `"5"`) or a percentage (`"2%"`) of live restart leases;
//! a percentage is of the approved nodes in scope (the fleet, or the nodes a rule matches),
//! rounded down, and never less than 1, so a rollout always makes progress.

use std::time::Duration;

use super::location::{Diagnostics, Problem};
use super::model::{Budget, RolloutSettings};
use super::raw::{RawRollout, Scalar};

/// Fleet-wide budget when `[rollout] max_unavailable` is absent: 10% of the approved nodes
/// (at least one).
pub const DEFAULT_MAX_UNAVAILABLE: Budget = Budget::Percent(10);
/// Lease lifetime when `[rollout] lease_ttl` is absent.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(120);
/// `[rollout] max_lease_life` when absent: this many lease lifetimes.
pub const DEFAULT_LEASE_LIVES: u32 = 10;
/// The longest `max_lease_life`: a restart that takes longer than a day is not settling.
const MAX_LEASE_LIFE: Duration = Duration::from_secs(86_400);
/// Shorter leases would need renewing faster than an agent's calls reliably go through.
const MIN_LEASE_TTL: Duration = Duration::from_secs(1);
/// Longer leases would keep a dead agent's slot for too long.
const MAX_LEASE_TTL: Duration = Duration::from_secs(3600);

/// Parses `max_unavailable`: a positive whole number, or a whole percentage from 1% to 100%.
pub(super) fn budget(value: &Scalar) -> Result<Budget, Problem> {
    let hint = "write a count such as max_unavailable = 5 or a percentage such as \
                max_unavailable = \"2%\" (of the approved nodes, at least 1)";
    let count = |n: i64, shown: &str| match u32::try_from(n) {
        Ok(n) if n >= 1 => Ok(Budget::Count(n)),
        _ => Err(Problem::new(
            format!(
                "max_unavailable {shown} must be at least 1: with 0 no unit could ever restart"
            ),
            hint,
        )),
    };
    match value {
        Scalar::Integer(n) => count(*n, &n.to_string()),
        Scalar::Float(f) => Err(Problem::new(
            format!("max_unavailable {f} is not a whole number"),
            hint,
        )),
        Scalar::Text(text) => {
            let trimmed = text.trim();
            match trimmed.strip_suffix('%') {
                Some(number) => match number.trim().parse::<u32>() {
                    Ok(p) if (1..=100).contains(&p) => Ok(Budget::Percent(p)),
                    Ok(_) => Err(Problem::new(
                        format!("max_unavailable {text:?} is outside 1% to 100%"),
                        hint,
                    )),
                    Err(_) => Err(Problem::new(
                        format!("max_unavailable {text:?} is not a whole percentage"),
                        hint,
                    )),
                },
                None => match trimmed.parse::<i64>() {
                    Ok(n) => count(n, &format!("{text:?}")),
                    Err(_) => Err(Problem::new(
                        format!("max_unavailable {text:?} is neither a count nor a percentage"),
                        hint,
                    )),
                },
            }
        }
    }
}

/// Parses `lease_ttl`: a duration (calseg_api::duration), from 1s to 1h.
pub(super) fn lease_ttl(text: &str) -> Result<Duration, Problem> {
    let hint = "write a duration between 1s and 1h, e.g. \
                lease_ttl = \"120s\"; agents renew a lease while their units settle";
    let ttl = super::duration::parse("lease_ttl", text, hint)?;
    if !(MIN_LEASE_TTL..=MAX_LEASE_TTL).contains(&ttl) {
        return Err(Problem::new(
            format!("lease_ttl {text:?} is outside 1s to 1h"),
            hint,
        ));
    }
    Ok(ttl)
}

/// Parses `max_lease_life`: a duration (calseg_api::duration), from `ttl` to 24h.
pub(super) fn max_lease_life(text: &str, ttl: Duration) -> Result<Duration, Problem> {
    let hint = "write a duration, at least lease_ttl and at most 24h, \
                e.g. max_lease_life = \"20m\"; a lease is never renewed past it";
    let life = super::duration::parse("max_lease_life", text, hint)?;
    if life < ttl || life > MAX_LEASE_LIFE {
        return Err(Problem::new(
            format!(
                "max_lease_life {text:?} is outside lease_ttl ({}s) to 24h",
                ttl.as_secs()
            ),
            hint,
        ));
    }
    Ok(life)
}

/// The default `max_lease_life` for leases of `ttl`: [`DEFAULT_LEASE_LIVES`] of them (at most
/// ten hours, as `lease_ttl` is at most one).
pub fn default_max_lease_life(ttl: Duration) -> Duration {
    (ttl * DEFAULT_LEASE_LIVES).min(MAX_LEASE_LIFE)
}

/// Validates `[rollout]` (all defaults when absent).
pub(super) fn rollout_settings(raw: RawRollout, diags: &mut Diagnostics<'_>) -> RolloutSettings {
    let waves = super::waves::wave_settings(&raw, diags);
    let max_unavailable = match raw.max_unavailable {
        Some(value) => budget(value.get_ref())
            .map_err(|problem| diags.problem(value.span(), problem))
            .unwrap_or(DEFAULT_MAX_UNAVAILABLE),
        None => DEFAULT_MAX_UNAVAILABLE,
    };
    let lease_ttl = match raw.lease_ttl {
        Some(text) => lease_ttl(text.get_ref())
            .map_err(|problem| diags.problem(text.span(), problem))
            .unwrap_or(DEFAULT_LEASE_TTL),
        None => DEFAULT_LEASE_TTL,
    };
    let max_lease_life = match raw.max_lease_life {
        Some(text) => max_lease_life(text.get_ref(), lease_ttl)
            .map_err(|problem| diags.problem(text.span(), problem))
            .unwrap_or(default_max_lease_life(lease_ttl)),
        None => default_max_lease_life(lease_ttl),
    };
    RolloutSettings {
        max_unavailable,
        lease_ttl,
        max_lease_life,
        waves,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_counts_or_whole_percentages_and_never_zero() {
        let text = |s: &str| budget(&Scalar::Text(s.into()));
        assert_eq!(budget(&Scalar::Integer(5)), Ok(Budget::Count(5)));
        assert_eq!(text("5"), Ok(Budget::Count(5)));
        assert_eq!(text("2%"), Ok(Budget::Percent(2)));
        assert_eq!(text(" 100% "), Ok(Budget::Percent(100)));
        for bad in ["0%", "101%", "2.5%", "x", "", "%", "-1"] {
            assert!(text(bad).is_err(), "{bad}");
        }
        assert!(
            budget(&Scalar::Integer(0))
                .unwrap_err()
                .message
                .contains("at least 1")
        );
        assert!(budget(&Scalar::Float(0.5)).is_err());
    }

    #[test]
    fn percentages_round_down_with_a_floor_of_one() {
        assert_eq!(Budget::Percent(2).limit(50), 1);
        assert_eq!(Budget::Percent(2).limit(0), 1, "no approved node yet");
        assert_eq!(Budget::Percent(10).limit(55), 5);
        assert_eq!(Budget::Percent(100).limit(7), 7);
        assert_eq!(
            Budget::Count(3).limit(1),
            3,
            "a count does not depend on the fleet"
        );
    }

    #[test]
    fn lease_ttls_take_a_duration_between_a_second_and_an_hour() {
        assert_eq!(lease_ttl("120s"), Ok(Duration::from_secs(120)));
        // Issue 18, point 7: the one grammar, compound and fractional forms too.
        assert_eq!(lease_ttl("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(lease_ttl("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(lease_ttl("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(lease_ttl("1h"), Ok(MAX_LEASE_TTL));
        assert_eq!(lease_ttl("2s"), Ok(Duration::from_secs(2)));
        for bad in [
            "0s",
            "2h",
            "120",
            "1d",
            "1.5s",
            "s",
            "99999999999999999999s",
        ] {
            assert!(lease_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_lease_s_life_is_capped_between_its_ttl_and_a_day_and_defaults_to_ten_ttls() {
        let ttl = Duration::from_secs(120);
        assert_eq!(max_lease_life("20m", ttl), Ok(Duration::from_secs(1200)));
        assert_eq!(max_lease_life("120s", ttl), Ok(ttl));
        assert_eq!(max_lease_life("24h", ttl), Ok(MAX_LEASE_LIFE));
        assert_eq!(max_lease_life("1d", ttl), Ok(MAX_LEASE_LIFE));
        for bad in ["119s", "25h", "0s", "20", "1d1s"] {
            assert!(max_lease_life(bad, ttl).is_err(), "{bad}");
        }
        assert!(
            max_lease_life("1m", ttl)
                .unwrap_err()
                .message
                .contains("outside lease_ttl (120s) to 24h")
        );
        assert_eq!(default_max_lease_life(ttl), Duration::from_secs(1200));
        assert_eq!(
            default_max_lease_life(Duration::from_secs(3600)),
            Duration::from_secs(36_000)
        );
        let policy = crate::policy::parse(
            &format!("{HEAD}[rollout]\nlease_ttl = \"2s\"\nmax_lease_life = \"6s\"\n"),
            "policy.toml",
        )
        .unwrap();
        assert_eq!(policy.rollout.max_lease_life, Duration::from_secs(6));
        let policy = crate::policy::parse(HEAD, "policy.toml").unwrap();
        assert_eq!(policy.rollout.max_lease_life, Duration::from_secs(1200));
    }

    const HEAD: &str = "calico_version = \"3.29\"\n[etcd]\nendpoints = [\"https://10.0.0.1:2379\"]\n\
                        [components.c]\ngrants = \"calico-node\"\n[[hosts]]\nmatch = \"*\"\n\
                        components = [\"c\"]\n";

    fn errors(source: &str) -> Vec<crate::policy::Diagnostic> {
        match crate::policy::parse(source, "policy.toml") {
            Ok(_) => panic!("expected errors"),
            Err(crate::policy::PolicyErrors(errors)) => errors,
        }
    }

    #[test]
    fn absent_rollout_means_defaults_and_bad_values_are_located() {
        let policy = crate::policy::parse(HEAD, "policy.toml").unwrap();
        assert_eq!(policy.rollout.max_unavailable, DEFAULT_MAX_UNAVAILABLE);
        assert_eq!(policy.rollout.lease_ttl, DEFAULT_LEASE_TTL);
        assert_eq!(policy.hosts[0].max_unavailable, None);

        let src = format!(
            "{HEAD}max_unavailable = 0.5\n[rollout]\nmax_unavailable = \"0%\"\nlease_ttl = \"2h\"\n\
             canary = 0\nmax_unavailble = 3\n"
        );
        let errs = errors(&src);
        let shown: Vec<String> = errs
            .iter()
            .map(|d| format!("{}:{} {}", d.line, d.column, d.message))
            .collect();
        let has = |needle: &str, line: usize, column: usize| {
            assert!(
                errs.iter()
                    .any(|d| d.message.contains(needle) && (d.line, d.column) == (line, column)),
                "{needle} at {line}:{column} among {shown:#?}"
            );
        };
        has("max_unavailable 0.5 is not a whole number", 9, 19);
        has("max_unavailable \"0%\" is outside 1% to 100%", 11, 19);
        has("lease_ttl \"2h\" is outside 1s to 1h", 12, 13);
        has("canary 0 must be at least 1", 13, 10);
        has("unknown key `max_unavailble` in [rollout]", 14, 1);
        let typo = errs
            .iter()
            .find(|d| d.message.contains("max_unavailble"))
            .unwrap();
        assert!(
            typo.hint
                .as_deref()
                .unwrap_or_default()
                .contains("`max_unavailable`")
        );
    }

    /// Every commented rollout option of the example is valid when uncommented.
    #[test]
    fn the_example_rollout_options_parse_when_uncommented() {
        let example = include_str!("../../../server/policy.example.toml");
        let uncommented: String = example
            .lines()
            .map(|line| {
                let option = [
                    "# [rollout]",
                    "# max_unavailable",
                    "# lease_ttl",
                    "# max_lease_life",
                    "# canary",
                    "# wave",
                    "# bake",
                    "# max_failures",
                ]
                .iter()
                .any(|p| line.starts_with(p));
                if option { &line[2..] } else { line }
            })
            .flat_map(|line| [line, "\n"])
            .collect();
        assert!(uncommented.contains("\n[rollout]\n"));
        let policy = crate::policy::parse(&uncommented, "policy.example.toml").unwrap();
        assert!(policy.warnings.is_empty(), "{:?}", policy.warnings);
        assert_eq!(policy.rollout.max_unavailable, Budget::Percent(10));
        assert_eq!(policy.rollout.lease_ttl, Duration::from_secs(120));
        assert_eq!(policy.rollout.max_lease_life, Duration::from_secs(1200));
        let waves = policy.rollout.waves.as_ref().unwrap();
        assert_eq!(waves.canary, Some(crate::policy::Canary::Count(1)));
        assert_eq!(waves.wave, Some(Budget::Percent(10)));
        assert_eq!(waves.bake, Duration::from_secs(30));
        assert_eq!(waves.max_failures, 1);
        assert_eq!(policy.hosts[1].max_unavailable, Some(Budget::Count(1)));
        assert_eq!(policy.lease_group("admin1").map(|(i, _, _)| i), Some(1));
        assert_eq!(policy.lease_group("worker-1").map(|(i, _, _)| i), None);
    }
}
