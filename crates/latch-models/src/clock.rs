//! Injected time. Everything that depends on "now" takes a [`Clock`] or a `now` argument
//! so expiry, sliding windows and TOTP steps are tested without sleeping.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Timelike, Utc};

/// A source of the current UTC time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time, truncated to microseconds (Home Assistant's resolution).
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        now_micros()
    }
}

/// `Utc::now()` truncated to whole microseconds, so a time survives a round trip
/// through Home Assistant's ISO-8601 encoding unchanged.
#[must_use]
pub fn now_micros() -> DateTime<Utc> {
    truncate_to_micros(Utc::now())
}

/// Drops sub-microsecond precision.
#[must_use]
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = t.nanosecond() % 1_000_000_000;
    let micros = nanos / 1_000;
    t.with_nanosecond(micros * 1_000).unwrap_or(t)
}

/// A clock that stands still until moved; for tests and simulations.
#[derive(Debug)]
pub struct FixedClock {
    micros: AtomicI64,
}

impl FixedClock {
    /// A clock stopped at `t` (truncated to microseconds).
    #[must_use]
    pub fn new(t: DateTime<Utc>) -> Self {
        Self {
            micros: AtomicI64::new(t.timestamp_micros()),
        }
    }

    /// Sets the time.
    pub fn set(&self, t: DateTime<Utc>) {
        self.micros.store(t.timestamp_micros(), Ordering::SeqCst);
    }

    /// Moves the time forward (or backward for a negative delta).
    pub fn advance(&self, by: TimeDelta) {
        let by = by.num_microseconds().unwrap_or(i64::MAX);
        self.micros.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.micros.load(Ordering::SeqCst)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        let c = FixedClock::new(t0);
        assert_eq!(c.now().timestamp_subsec_micros(), 123_456);
        assert_eq!(c.now(), c.now());
        c.advance(TimeDelta::seconds(30));
        assert_eq!(c.now().timestamp(), 1_700_000_030);
    }

    #[test]
    fn truncation_keeps_micros() {
        let t = DateTime::from_timestamp(5, 987_654_321).unwrap();
        assert_eq!(truncate_to_micros(t).timestamp_subsec_nanos(), 987_654_000);
    }
}
