//! How both binaries show a point in time to a person: RFC 3339 in UTC, to the second
//! (`2027-03-03T14:22:59Z`), never `time`'s Display (`2027-03-03 14:22:59.0 +00:00:00`), nor
//! nanoseconds, nor bare Unix seconds.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// `t` as RFC 3339 in UTC, to the second.
pub fn rfc3339(t: &OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    let whole = utc.replace_nanosecond(0).unwrap_or(utc);
    whole.format(&Rfc3339).unwrap_or_else(|_| whole.to_string())
}

/// Unix seconds (as the store and some JSON answers keep them) as [`rfc3339`]; `None` when
/// out of range.
pub fn unix(secs: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .map(|t| rfc3339(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18, point 7: one time format, to the second, in UTC.
    #[test]
    fn issue_18_times_are_rfc3339_to_the_second_in_utc() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_803_997_379_123_456_789).unwrap();
        assert_eq!(rfc3339(&t), "2027-03-02T14:22:59Z");
        let east = t.to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
        assert_eq!(rfc3339(&east), "2027-03-02T14:22:59Z");
        assert_eq!(unix(1_803_997_379).as_deref(), Some("2027-03-02T14:22:59Z"));
        assert_eq!(unix(i64::MAX), None);
    }
}
