//! Conversions between `DateTime<Utc>` and the numbers Home Assistant computes with.

use chrono::{DateTime, Utc};

/// `datetime.timestamp()`: seconds since the epoch as a float, at microsecond resolution.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn unix_seconds(t: DateTime<Utc>) -> f64 {
    // Exact up to 2^53 µs (year 2255); the division is correctly rounded, as in Python.
    t.timestamp_micros() as f64 / 1e6
}

/// `int(time.time())`: whole seconds, truncated toward zero.
pub(crate) fn whole_seconds(t: DateTime<Utc>) -> i64 {
    let secs = t.timestamp();
    if secs < 0 && t.timestamp_subsec_nanos() > 0 {
        secs + 1
    } else {
        secs
    }
}

/// `datetime.fromtimestamp(ts, UTC)`: microseconds rounded half to even; `None` when
/// the value is not finite or out of range.
#[allow(clippy::cast_possible_truncation)]
pub(crate) fn from_unix_seconds(ts: f64) -> Option<DateTime<Utc>> {
    if !ts.is_finite() || ts.abs() > 1e15 {
        return None;
    }
    let whole = ts.trunc();
    let mut secs = whole as i64;
    let mut micros = ((ts - whole) * 1e6).round_ties_even() as i64;
    if micros >= 1_000_000 {
        secs += 1;
        micros -= 1_000_000;
    } else if micros < 0 {
        secs -= 1;
        micros += 1_000_000;
    }
    DateTime::from_timestamp_micros(secs.checked_mul(1_000_000)?.checked_add(micros)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_trip_at_microsecond_resolution() {
        let t = DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap();
        assert!((unix_seconds(t) - 1_700_000_000.123_456).abs() < 1e-6);
        assert_eq!(from_unix_seconds(unix_seconds(t)), Some(t));
        assert_eq!(whole_seconds(t), 1_700_000_000);
    }

    #[test]
    fn whole_seconds_truncates_toward_zero() {
        let t = DateTime::from_timestamp(-5, 500_000_000).unwrap(); // -4.5 s
        assert_eq!(whole_seconds(t), -4);
    }

    #[test]
    fn negative_fractions_and_bad_values() {
        let t = from_unix_seconds(-1.25).unwrap();
        assert_eq!(t.timestamp(), -2);
        assert_eq!(t.timestamp_subsec_micros(), 750_000);
        assert_eq!(from_unix_seconds(f64::NAN), None);
        assert_eq!(from_unix_seconds(f64::INFINITY), None);
        assert_eq!(from_unix_seconds(1e300), None);
    }
}
