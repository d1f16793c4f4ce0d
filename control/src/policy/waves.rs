//! `[rollout]` `canary`, `wave`, `bake` and `max_failures`: a policy change goes out in waves
//! (the canary first), each opened only when the previous one is healthy and has baked.
//!
//! Without `canary` and `wave` every node gets a new policy at once. `max_failures` failed
//! nodes among the opened waves pause the rollout.

use std::time::Duration;

use super::location::{Diagnostics, Problem};
use super::model::{Budget, Canary, WaveSettings};
use super::raw::{RawCanary, RawRollout, Scalar};

/// Default of `bake`: the next wave opens as soon as the last one is healthy.
pub const DEFAULT_BAKE: Duration = Duration::ZERO;
/// Default of `max_failures`: one failed node pauses the rollout.
pub const DEFAULT_MAX_FAILURES: u32 = 1;
/// Longer bakes would stall a rollout for longer than anyone watches it.
const MAX_BAKE: Duration = Duration::from_secs(7 * 86_400);

/// Validates the wave keys of `[rollout]`; `None` when neither `canary` nor `wave` is set.
pub(super) fn wave_settings(raw: &RawRollout, diags: &mut Diagnostics<'_>) -> Option<WaveSettings> {
    let canary = raw.canary.as_ref().and_then(|value| {
        canary(value.get_ref())
            .map_err(|problem| diags.problem(value.span(), problem))
            .ok()
    });
    let wave = raw.wave.as_ref().and_then(|value| {
        wave(value.get_ref())
            .map_err(|problem| diags.problem(value.span(), problem))
            .ok()
    });
    let bake = match &raw.bake {
        Some(text) => bake(text.get_ref())
            .map_err(|problem| diags.problem(text.span(), problem))
            .unwrap_or(DEFAULT_BAKE),
        None => DEFAULT_BAKE,
    };
    let max_failures = match &raw.max_failures {
        Some(value) => max_failures(value.get_ref())
            .map_err(|problem| diags.problem(value.span(), problem))
            .unwrap_or(DEFAULT_MAX_FAILURES),
        None => DEFAULT_MAX_FAILURES,
    };
    (raw.canary.is_some() || raw.wave.is_some()).then_some(WaveSettings {
        canary,
        wave,
        bake,
        max_failures,
    })
}

fn canary(value: &RawCanary) -> Result<Canary, Problem> {
    let hint = "write a count such as canary = 1 or node names such as canary = [\"node-a\"]";
    match value {
        RawCanary::Count(n) => match u32::try_from(*n) {
            Ok(n) if n >= 1 => Ok(Canary::Count(n)),
            _ => Err(Problem::new(
                format!("canary {n} must be at least 1 (leave canary out for no canary)"),
                hint,
            )),
        },
        RawCanary::Names(names) if names.is_empty() || names.iter().any(|n| n.is_empty()) => Err(
            Problem::new("canary lists no node (or an empty name)", hint),
        ),
        RawCanary::Names(names) => Ok(Canary::Nodes(names.clone())),
        RawCanary::Other(shown) => Err(Problem::new(
            format!("canary {shown} is neither a count nor a list of node names"),
            hint,
        )),
    }
}

fn wave(value: &Scalar) -> Result<Budget, Problem> {
    let hint = "write a count such as wave = 20 or a percentage such as wave = \"10%\" (of the \
                nodes rolled out to, at least 1)";
    super::budget::budget(value)
        .map_err(|problem| Problem::new(problem.message.replace("max_unavailable", "wave"), hint))
}

/// Parses `bake`: a duration (calseg_api::duration), from 0s to 7 days.
fn bake(text: &str) -> Result<Duration, Problem> {
    let hint = "write a duration up to 7d, e.g. bake = \"30s\" (0s: no bake)";
    let bake = super::duration::parse("bake", text, hint)?;
    if bake > MAX_BAKE {
        return Err(Problem::new(
            format!("bake {text:?} is longer than 7 days"),
            hint,
        ));
    }
    Ok(bake)
}

fn max_failures(value: &Scalar) -> Result<u32, Problem> {
    let hint = "write a whole number of failed nodes, at least 1, e.g. max_failures = 1";
    match value {
        Scalar::Integer(n) => match u32::try_from(*n) {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(Problem::new(
                format!("max_failures {n} must be at least 1"),
                hint,
            )),
        },
        Scalar::Float(f) => Err(Problem::new(
            format!("max_failures {f} is not a whole number"),
            hint,
        )),
        Scalar::Text(text) => Err(Problem::new(
            format!("max_failures {text:?} is text, not a number"),
            hint,
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const HEAD: &str = "calico_version = \"3.29\"\n[etcd]\nendpoints = [\"https://10.0.0.1:2379\"]\n\
                        [components.c]\ngrants = \"calico-node\"\n[[hosts]]\nmatch = \"*\"\n\
                        components = [\"c\"]\n[rollout]\n";

    #[test]
    fn waves_are_off_without_canary_and_wave() {
        let policy = crate::policy::parse(HEAD, "policy.toml").unwrap();
        assert_eq!(policy.rollout.waves, None);
        let src = format!("{HEAD}bake = \"30s\"\n");
        assert_eq!(crate::policy::parse(&src, "p").unwrap().rollout.waves, None);
    }

    #[test]
    fn canary_wave_bake_and_max_failures_parse() {
        let src = format!("{HEAD}canary = [\"a\", \"b\"]\nwave = \"25%\"\nbake = \"2m\"\n");
        let waves = crate::policy::parse(&src, "p")
            .unwrap()
            .rollout
            .waves
            .unwrap();
        assert_eq!(
            waves.canary,
            Some(Canary::Nodes(vec!["a".into(), "b".into()]))
        );
        assert_eq!(waves.wave, Some(Budget::Percent(25)));
        assert_eq!(waves.bake, Duration::from_secs(120));
        assert_eq!(waves.max_failures, DEFAULT_MAX_FAILURES);
        let src = format!("{HEAD}canary = 2\nmax_failures = 3\n");
        let waves = crate::policy::parse(&src, "p")
            .unwrap()
            .rollout
            .waves
            .unwrap();
        assert_eq!(waves.canary, Some(Canary::Count(2)));
        assert_eq!(
            (waves.wave, waves.bake, waves.max_failures),
            (None, DEFAULT_BAKE, 3)
        );
    }

    #[test]
    fn bad_values_are_located() {
        let src = format!("{HEAD}canary = 0\nwave = \"0%\"\nbake = \"8d\"\nmax_failures = 0\n");
        let Err(crate::policy::PolicyErrors(errs)) = crate::policy::parse(&src, "p") else {
            panic!("expected errors");
        };
        let has = |needle: &str, line: usize, column: usize| {
            assert!(
                errs.iter()
                    .any(|d| d.message.contains(needle) && (d.line, d.column) == (line, column)),
                "{needle} at {line}:{column} among {errs:#?}"
            );
        };
        has("canary 0 must be at least 1", 10, 10);
        has("wave \"0%\" is outside 1% to 100%", 11, 8);
        has("bake \"8d\" is longer than 7 days", 12, 8);
        has("max_failures 0 must be at least 1", 13, 16);
        let src = format!("{HEAD}canary = []\n");
        assert!(crate::policy::parse(&src, "p").is_err());
        let src = format!("{HEAD}canary = \"a\"\n");
        assert!(crate::policy::parse(&src, "p").is_err());
    }
}
