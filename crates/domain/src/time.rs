//! Time helpers: epoch millis as Redis stores them, ISO-8601 as the api shows them.

use chrono::{DateTime, Datelike, SecondsFormat, TimeZone, Timelike, Utc};

/// Epoch milliseconds to a UTC time; `None` when out of chrono's range.
pub fn from_millis(millis: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(millis).single()
}

/// ISO-8601 in UTC with milliseconds, as JavaScript's `toISOString()` writes it
/// (`2026-03-01T10:00:00.000Z`), so the seed's clients compare dates verbatim.
pub fn iso_millis(at: DateTime<Utc>) -> String {
    let mut buf = [0; 32];
    match write_utc(&at, Fraction::Millis, &mut buf) {
        Some(text) => text.to_owned(),
        None => at.to_rfc3339_opts(SecondsFormat::Millis, true),
    }
}

/// [`iso_millis`] appended to `out`. Every error answer carries one, and
/// chrono's formatter took a quarter of writing a sold-out answer's body.
pub fn push_iso_millis(out: &mut Vec<u8>, at: DateTime<Utc>) {
    let mut buf = [0; 32];
    match write_utc(&at, Fraction::Millis, &mut buf) {
        Some(text) => out.extend_from_slice(text.as_bytes()),
        None => out.extend_from_slice(at.to_rfc3339_opts(SecondsFormat::Millis, true).as_bytes()),
    }
}

/// `f` of `at` as chrono's `Serialize` writes it (RFC 3339, `Z`, as many
/// fraction digits as needed: `SecondsFormat::AutoSi`), formatted on the
/// stack: a job in the object form carries one per order.
pub fn with_rfc3339<R>(at: &DateTime<Utc>, f: impl FnOnce(&str) -> R) -> R {
    let mut buf = [0; 32];
    match write_utc(at, Fraction::AutoSi, &mut buf) {
        Some(text) => f(text),
        None => f(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
    }
}

/// How many fraction digits [`write_utc`] writes.
#[derive(Clone, Copy)]
enum Fraction {
    /// Always three (JavaScript's `toISOString()`).
    Millis,
    /// None, 3, 6 or 9: the fewest that hold the time exactly.
    AutoSi,
}

/// `at` as RFC 3339 in UTC with `Z`, the bytes chrono writes (the tests
/// hold them equal), digit by digit into `buf`. `None` for what is left to
/// chrono: years past 9999 or before 0, and leap seconds.
fn write_utc<'b>(at: &DateTime<Utc>, fraction: Fraction, buf: &'b mut [u8; 32]) -> Option<&'b str> {
    let year = at.year();
    let nanos = at.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return None;
    }
    let mut len = 0;
    let mut put = |value: u32, width: u32, after: Option<u8>| {
        for place in (0..width).rev() {
            buf[len] = b'0' + (value / 10u32.pow(place) % 10) as u8;
            len += 1;
        }
        if let Some(byte) = after {
            buf[len] = byte;
            len += 1;
        }
    };
    put(year.unsigned_abs(), 4, Some(b'-'));
    put(at.month(), 2, Some(b'-'));
    put(at.day(), 2, Some(b'T'));
    put(at.hour(), 2, Some(b':'));
    put(at.minute(), 2, Some(b':'));
    let (value, width) = match fraction {
        Fraction::Millis => (nanos / 1_000_000, 3),
        Fraction::AutoSi if nanos == 0 => (0, 0),
        Fraction::AutoSi if nanos.is_multiple_of(1_000_000) => (nanos / 1_000_000, 3),
        Fraction::AutoSi if nanos.is_multiple_of(1_000) => (nanos / 1_000, 6),
        Fraction::AutoSi => (nanos, 9),
    };
    if width == 0 {
        put(at.second(), 2, Some(b'Z'));
    } else {
        put(at.second(), 2, Some(b'.'));
        put(value, width, Some(b'Z'));
    }
    std::str::from_utf8(&buf[..len]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_millis_writes_what_chrono_writes() {
        let chrono = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Millis, true);
        // Every field's edges, then a walk over four centuries in odd steps.
        let mut times: Vec<DateTime<Utc>> = [
            "0000-01-01T00:00:00.000Z",
            "0999-12-31T23:59:59.999Z",
            "1970-01-01T00:00:00.000Z",
            "2000-02-29T12:34:56.007Z",
            "2026-03-01T10:00:00.120Z",
            "9999-12-31T23:59:59.999Z",
        ]
        .iter()
        .map(|s| s.parse().expect("valid"))
        .collect();
        let mut millis: i64 = -2_208_988_800_000; // 1900
        while millis < 10_413_792_000_000 {
            // 2300
            times.extend(from_millis(millis));
            millis += 86_399_999 * 7 + 123_457;
        }
        // Outside the four-digit years, and within a leap second: chrono's.
        for year in [10_000, -1] {
            times.extend(
                chrono::NaiveDate::from_ymd_opt(year, 6, 1)
                    .and_then(|d| d.and_hms_milli_opt(1, 2, 3, 4))
                    .map(|t| t.and_utc()),
            );
        }
        times.extend(
            chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
                .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
                .map(|t| t.and_utc()),
        );
        assert!(times.len() > 20_000);
        for at in times {
            assert_eq!(iso_millis(at), chrono(at), "{at:?}");
            let mut pushed = b"x".to_vec();
            push_iso_millis(&mut pushed, at);
            assert_eq!(pushed, format!("x{}", chrono(at)).into_bytes());
            // Every fraction AutoSi tells apart: none, ms, us, ns.
            for nanos in [0, 120_000_000, 123_000, 5, 999_999_999] {
                let at = at.with_nanosecond(nanos).unwrap_or(at);
                assert_eq!(
                    with_rfc3339(&at, str::to_owned),
                    at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                    "{at:?}"
                );
            }
        }
    }

    #[test]
    fn iso_millis_matches_javascript_to_iso_string() {
        let at = from_millis(1_772_359_200_000).expect("in range");
        assert_eq!(iso_millis(at), "2026-03-01T10:00:00.000Z");
    }
}
