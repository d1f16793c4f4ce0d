//! `identity.lifetime` ("12h", "30d", "1h30m": the one grammar, calseg_api::duration) and
//! `identity.renew_after` ("2/3" or 0.66).

use std::time::Duration;

use super::location::Problem;
use super::raw::Scalar;

/// Certificates shorter-lived than this would keep the fleet in constant renewal.
pub(super) const MIN_LIFETIME: Duration = Duration::from_secs(3600);

/// Parses a duration for the policy key `key` in the one grammar of both binaries
/// ([`calseg_api::duration`]: `90s`, `1h30m`, `30d`); `hint` says how to write it. The one
/// parser behind every duration key; each key checks its own range.
pub(super) fn parse(key: &str, text: &str, hint: &str) -> Result<Duration, Problem> {
    calseg_api::duration::parse(text)
        .map_err(|why| Problem::new(format!("{key} {text:?} is not a duration: {why}"), hint))
}

/// Parses a lifetime: a whole number and one unit of s, m, h or d; at least one hour.
pub(super) fn lifetime(text: &str) -> Result<Duration, Problem> {
    let duration = parse(
        "lifetime",
        text,
        "write a number and a unit s, m, h, d or w, e.g. lifetime = \"30d\" or \"1h30m\"",
    )?;
    if duration < MIN_LIFETIME {
        return Err(Problem::new(
            format!("lifetime {:?} is shorter than one hour", text.trim()),
            "use at least \"1h\"; days (\"30d\") suit most fleets",
        ));
    }
    Ok(duration)
}

/// Parses the renewal point as a fraction of the lifetime, strictly between 0 and 1.
pub(super) fn renew_after(value: &Scalar) -> Result<f64, Problem> {
    let shown = match value {
        Scalar::Text(text) => format!("{text:?}"),
        Scalar::Integer(n) => n.to_string(),
        Scalar::Float(f) => f.to_string(),
    };
    let hint = "write a fraction of the lifetime strictly between 0 and 1, e.g. renew_after = \"2/3\" or 0.66";
    let fraction = match value {
        Scalar::Float(f) => Some(*f),
        #[allow(clippy::cast_precision_loss)]
        Scalar::Integer(n) => Some(*n as f64),
        Scalar::Text(text) => match text.split_once('/') {
            Some((num, den)) => match (num.trim().parse::<u32>(), den.trim().parse::<u32>()) {
                (Ok(num), Ok(den)) if den > 0 => Some(f64::from(num) / f64::from(den)),
                _ => None,
            },
            None => text.trim().parse::<f64>().ok(),
        },
    }
    .ok_or_else(|| Problem::new(format!("renew_after {shown} is not a fraction"), hint))?;
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Problem::new(
            format!("renew_after {shown} is outside (0, 1)"),
            hint,
        ));
    }
    Ok(fraction)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_take_the_one_grammar_and_at_least_an_hour() {
        assert_eq!(lifetime("30d"), Ok(Duration::from_secs(30 * 86_400)));
        // Issue 18, point 7: the grammar of every flag and config key, compound forms too.
        assert_eq!(lifetime("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(lifetime("30 days"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(lifetime("1.5d"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(lifetime("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(lifetime("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(lifetime("3600s"), Ok(MIN_LIFETIME));
        assert!(
            lifetime("90s")
                .unwrap_err()
                .message
                .contains("shorter than one hour")
        );
        for bad in ["", "30", "d", "1M", "-1h", "99999999999999999999d"] {
            assert!(
                lifetime(bad)
                    .unwrap_err()
                    .message
                    .contains("not a duration"),
                "{bad}"
            );
        }
    }

    #[test]
    fn renew_after_accepts_fractions_and_decimals_inside_zero_one() {
        let ok = |s: Scalar| renew_after(&s).unwrap();
        assert!((ok(Scalar::Text("2/3".into())) - 2.0 / 3.0).abs() < 1e-9);
        assert!((ok(Scalar::Float(0.66)) - 0.66).abs() < 1e-9);
        assert!((ok(Scalar::Text("0.5".into())) - 0.5).abs() < 1e-9);
        for bad in [
            Scalar::Float(1.0),
            Scalar::Integer(0),
            Scalar::Text("3/2".into()),
            Scalar::Text("1/0".into()),
        ] {
            assert!(renew_after(&bad).is_err(), "{bad:?}");
        }
    }
}
