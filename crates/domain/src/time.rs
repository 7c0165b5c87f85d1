//! Time helpers: epoch millis as Redis stores them, ISO-8601 as the api shows them.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// Epoch milliseconds to a UTC time; `None` when out of chrono's range.
pub fn from_millis(millis: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(millis).single()
}

/// ISO-8601 in UTC with milliseconds, as JavaScript's `toISOString()` writes it
/// (`2026-03-01T10:00:00.000Z`), so the seed's clients compare dates verbatim.
pub fn iso_millis(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_millis_matches_javascript_to_iso_string() {
        let at = from_millis(1_772_359_200_000).expect("in range");
        assert_eq!(iso_millis(at), "2026-03-01T10:00:00.000Z");
    }
}
