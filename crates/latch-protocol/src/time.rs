//! Points in time on the wire.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// A point in time: whole **microseconds since the Unix epoch, UTC**, as an `i64`.
///
/// Microseconds are Home Assistant's resolution (its stored ISO-8601 times carry six
/// fractional digits), so a time read from `.storage/auth` crosses the socket exactly.
/// A number is smaller on the wire than an ISO string and cannot fail to parse; convert
/// with [`Timestamp::from_datetime`] and [`Timestamp::to_datetime`]. `Display` prints
/// ISO 8601 (`2024-05-01T12:00:00.000000+00:00`).
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use latch_protocol::Timestamp;
///
/// let t = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
/// let ts = Timestamp::from_datetime(t);
/// assert_eq!(ts.to_datetime(), Some(t));
/// assert_eq!(ts.to_string(), "2024-05-01T12:00:00.000000+00:00");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The time `micros` microseconds after the Unix epoch.
    #[must_use]
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    #[must_use]
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// The time as a timestamp; sub-microsecond precision is dropped.
    #[must_use]
    pub fn from_datetime(t: DateTime<Utc>) -> Self {
        Self(t.timestamp_micros())
    }

    /// The time as a `chrono` value; `None` if it is outside chrono's range (a peer can
    /// send any `i64`).
    #[must_use]
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.0)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Self::from_datetime(t)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime() {
            Some(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::Micros, false)),
            None => write!(f, "<{} µs since the epoch, out of range>", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn keeps_microseconds() {
        let t = Utc.timestamp_opt(1_700_000_000, 123_456_000).unwrap();
        let ts = Timestamp::from(t);
        assert_eq!(ts.as_micros(), 1_700_000_000_123_456);
        assert_eq!(ts.to_datetime(), Some(t));
        assert_eq!(ts.to_string(), "2023-11-14T22:13:20.123456+00:00");
        assert_eq!(Timestamp::from_micros(ts.as_micros()), ts);
    }

    #[test]
    fn out_of_range_value_does_not_panic() {
        let ts = Timestamp(i64::MAX);
        assert_eq!(ts.to_datetime(), None);
        assert!(ts.to_string().contains("out of range"));
    }
}
