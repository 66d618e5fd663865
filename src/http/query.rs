//! Query-string helpers.

/// Largest list limit served; larger requests are clamped.
pub const MAX_LIMIT: u64 = 10_000;

/// A list limit: missing, non-numeric or <= 0 means `default`; large values are clamped.
pub fn parse_limit(raw: Option<&str>, default: u64) -> u64 {
    match raw.and_then(|v| v.trim().parse::<i64>().ok()) {
        Some(n) if n > 0 => (n as u64).min(MAX_LIMIT),
        _ => default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_falls_back_and_clamps() {
        let cases = [
            (None, 50),
            (Some("abc"), 50),
            (Some("0"), 50),
            (Some("-3"), 50),
            (Some("7"), 7),
            (Some("999999"), MAX_LIMIT),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_limit(raw, 50), want, "{raw:?}");
        }
    }
}
