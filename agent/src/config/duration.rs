//! Human durations in config files and flags: `90s`, `5m`, `1h30m`, `2d`.

use std::time::Duration;

/// Parses a duration made of one or more `<number><unit>` parts, units `s`, `m`, `h`, `d`.
/// A bare `0` means zero. Returns a sentence saying what is wrong otherwise.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("empty duration; write e.g. \"30s\", \"5m\", \"1h30m\"".into());
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            other => {
                return Err(format!(
                    "`{text}`: unknown unit `{other}`; use s, m, h or d (e.g. \"5m\")"
                ));
            }
        };
        let value: u64 = match number.parse() {
            Ok(value) => value,
            // Digits that do not fit in a u64: too long, not missing.
            Err(_) if !number.is_empty() => return Err(format!("`{text}` is too long")),
            Err(_) => return Err(format!("`{text}`: a number must come before `{c}`")),
        };
        number.clear();
        total = value
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("`{text}` is too long"))?;
    }
    if !number.is_empty() {
        return Err(format!(
            "`{text}`: `{number}` has no unit; write e.g. \"{number}s\" or \"{number}m\""
        ));
    }
    Ok(Duration::from_secs(total))
}

/// Formats a duration the way [`parse_duration`] reads it (`1h5m`, `30s`, `0s`).
pub fn format_duration(duration: Duration) -> String {
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
        for bad in ["", "5", "m", "5x", "1.5m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        // Issue 10's catalogue: a number too big for u64 is "too long", not "missing".
        assert_eq!(
            parse_duration("99999999999999999999d"),
            Err("`99999999999999999999d` is too long".to_owned())
        );
    }
}
