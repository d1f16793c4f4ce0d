//! The one duration grammar of every flag and configuration key of both binaries (`--ttl`,
//! `--lifetime`, `--wait`, `--timeout`, `--since`, server.toml, policy.toml, agent.toml):
//! humantime's, e.g. `90s`, `15m`, `1h30m`, `1h 30m`, `2d`, `1w`, `1.5h`, and a bare `0`.
//! Whole seconds only; months and years are refused (`1M` would read as a month, not a
//! minute, and a month has no fixed length).

use std::time::Duration;

/// How to write a duration, for error messages.
pub const HINT: &str =
    "write a number and a unit s, m, h, d or w, e.g. \"90s\", \"30m\", \"1h30m\", \"7d\"";

/// Parses `text`; the error is a sentence naming the value, what is wrong and how to write it
/// (callers put the flag or key in front).
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let refuse = |what: &str| format!("{text:?} {what}; {HINT}");
    if let Some(unit) = text.split(|c: char| !c.is_alphabetic()).find(|unit| {
        matches!(
            *unit,
            "M" | "month" | "months" | "y" | "yr" | "yrs" | "year" | "years"
        )
    }) {
        return Err(refuse(&format!(
            "uses `{unit}`: months and years have no fixed length (`M` is not minutes), use days"
        )));
    }
    let duration = humantime::parse_duration(text).map_err(|error| match error {
        humantime::DurationError::Empty => refuse("is empty"),
        humantime::DurationError::NumberOverflow => refuse("is too long"),
        humantime::DurationError::UnknownUnit { unit, value, .. } if unit.is_empty() => refuse(
            &format!("has a number without a unit (`{value}s`? `{value}m`?)"),
        ),
        humantime::DurationError::UnknownUnit { unit, .. } => {
            refuse(&format!("has an unknown unit `{unit}`"))
        }
        humantime::DurationError::NumberExpected(at) => {
            refuse(&format!("needs a number at byte {at}"))
        }
        humantime::DurationError::InvalidCharacter(at) => refuse(&format!(
            "has a character that is not part of a duration at byte {at}"
        )),
    })?;
    if duration.subsec_nanos() != 0 {
        return Err(refuse("is not a whole number of seconds"));
    }
    Ok(duration)
}

/// Formats a duration so that [`parse`] reads it back: `1h30m`, `2d`, `0s`.
pub fn format(duration: Duration) -> String {
    let mut secs = duration.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18, point 7: one grammar; `1h30m` is read everywhere, the old forms still are.
    #[test]
    fn issue_18_one_grammar_reads_compound_and_old_forms() {
        let cases = [
            ("0", 0),
            ("90s", 90),
            ("5m", 300),
            ("1h30m", 5400),
            ("1h 30m", 5400),
            ("1.5h", 5400),
            ("2d", 172_800),
            ("1w", 604_800),
            ("30 minutes", 1800),
            (" 12h ", 43_200),
        ];
        for (text, secs) in cases {
            assert_eq!(parse(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        for secs in [0, 59, 3600, 5400, 90_061] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse(&format(d)), Ok(d), "{secs}");
        }
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn refuses_with_the_value_and_how_to_write_it() {
        for (bad, says) in [
            ("", "is empty"),
            ("5", "without a unit"),
            ("m", "needs a number at byte 0"),
            ("5x", "unknown unit `x`"),
            ("1M", "months and years"),
            ("2 years", "months and years"),
            ("1.5s", "whole number of seconds"),
            ("250ms", "whole number of seconds"),
            ("-5m", "needs a number at byte 0"),
            ("5m!", "not part of a duration"),
            // Issue 10's catalogue: a number too big for u64 is "too long", not "missing".
            ("99999999999999999999d", "too long"),
        ] {
            let error = parse(bad).expect_err(bad);
            assert!(error.contains(says), "{bad:?}: {error}");
            assert!(
                error.contains(&format!("{:?}", bad.trim())),
                "{bad:?}: {error}"
            );
            assert!(error.contains("e.g. \"90s\""), "{bad:?}: {error}");
        }
    }
}
