//! Timestamps: stored as unix microseconds, shown as RFC 3339 UTC with six fractional
//! digits and `Z`, so one stored instant always serialises to the same string.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Microseconds since the unix epoch, now.
pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// `2026-02-16T14:30:00.123456Z` for a stored instant.
pub fn format_micros(micros: i64) -> String {
    match Utc.timestamp_micros(micros).single() {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        None => "1970-01-01T00:00:00.000000Z".to_string(),
    }
}

/// Parses a time query parameter (`from`, `to`): RFC 3339 with `Z` or an offset, an
/// ISO 8601 date-time without zone (UTC), or a bare `YYYY-MM-DD` (midnight UTC).
/// A space stands for `T` and also for a `+` that URL decoding turned into a space.
pub fn parse_instant(raw: &str) -> Option<i64> {
    let s = raw.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc).timestamp_micros());
    }
    // "2026-02-16T14:30:00 01:00": a '+' offset decoded to a space.
    if s.len() > 19 {
        let (head, tail) = s.split_at(19);
        if let Some(offset) = tail.strip_prefix(' ') {
            let fixed = format!("{head}+{offset}");
            if let Ok(t) = DateTime::parse_from_rfc3339(&fixed) {
                return Some(t.with_timezone(&Utc).timestamp_micros());
            }
        }
    }
    let with_t = s.replacen(' ', "T", 1);
    if let Ok(t) = DateTime::parse_from_rfc3339(&with_t) {
        return Some(t.with_timezone(&Utc).timestamp_micros());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(&with_t, fmt) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_micros());
    }
    None
}

/// `3h24m10s` / `2m3s` / `45s` for a duration in whole seconds.
pub fn format_uptime(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_microseconds_and_z() {
        assert_eq!(format_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_micros(1_771_252_200_123_456),
            "2026-02-16T14:30:00.123456Z"
        );
    }

    #[test]
    fn parses_every_documented_form_as_the_same_instant() {
        let want = 1_771_252_200_000_000;
        for s in [
            "2026-02-16T14:30:00Z",
            "2026-02-16T14:30:00.000Z",
            "2026-02-16T15:30:00+01:00",
            "2026-02-16T15:30:00 01:00",
            "2026-02-16T14:30:00",
            "2026-02-16 14:30:00",
        ] {
            assert_eq!(parse_instant(s), Some(want), "{s}");
        }
        assert_eq!(parse_instant("2026-02-16"), Some(1_771_200_000_000_000));
        assert_eq!(parse_instant("yesterday"), None);
        assert_eq!(parse_instant(""), None);
    }

    #[test]
    fn uptime_is_hours_minutes_seconds() {
        assert_eq!(format_uptime(45), "45s");
        assert_eq!(format_uptime(123), "2m3s");
        assert_eq!(format_uptime(3 * 3600 + 24 * 60 + 10), "3h24m10s");
    }
}
