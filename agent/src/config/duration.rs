//! Human durations in config files and flags: the one grammar of both binaries
//! ([`calseg_api::duration`]): `90s`, `5m`, `1h30m`, `2d`.

use std::time::Duration;

/// Parses a duration; returns a sentence naming the value, what is wrong and how to write it.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    calseg_api::duration::parse(text)
}

/// Formats a duration the way [`parse_duration`] reads it (`1h5m`, `30s`, `0s`).
pub fn format_duration(duration: Duration) -> String {
    calseg_api::duration::format(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let cases = [
            ("90s", 90),
            ("5m", 300),
            ("1h30m", 5400),
            ("2d", 172_800),
            ("0", 0),
        ];
        for (text, secs) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        for bad in ["", "5", "m", "5x", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        // Issue 10's catalogue: a number too big for u64 is "too long", not "missing".
        let long = parse_duration("99999999999999999999d").unwrap_err();
        assert!(
            long.contains("\"99999999999999999999d\" is too long"),
            "{long}"
        );
    }
}
