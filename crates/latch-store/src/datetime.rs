//! Home Assistant's datetime strings.
//!
//! Writing: Python's `datetime.isoformat()` of an aware UTC datetime,
//! `2018-10-03T13:43:19.774637+00:00`, with the fraction left out when the microseconds
//! are zero (`2018-10-03T13:43:19+00:00`).
//!
//! Reading: what Home Assistant's `dt_util.parse_datetime` fallback regex accepts:
//! `YYYY-M[M]-D[D]` then `T` or a space, `H[H]:M[M]`, optional `:S[S]`, an optional
//! fraction of 1–6 digits (padded to microseconds; up to 6 more digits are ignored) and
//! an optional `Z` or `±HH[[:]MM]` offset. The result is converted to UTC. A string without
//! an offset is taken as UTC (Home Assistant would keep it naive).

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Timelike, Utc};

/// Formats `t` as Home Assistant writes it (`isoformat()` of an aware UTC datetime).
///
/// ```
/// use chrono::DateTime;
/// let t = DateTime::from_timestamp(1_538_574_199, 774_637_000).unwrap();
/// assert_eq!(latch_store::format_datetime(&t), "2018-10-03T13:43:19.774637+00:00");
/// let t = DateTime::from_timestamp(1_538_574_199, 0).unwrap();
/// assert_eq!(latch_store::format_datetime(&t), "2018-10-03T13:43:19+00:00");
/// ```
#[must_use]
pub fn format_datetime(t: &DateTime<Utc>) -> String {
    let micros = (t.nanosecond() % 1_000_000_000) / 1_000;
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if micros != 0 {
        s.push_str(&format!(".{micros:06}"));
    }
    s.push_str("+00:00");
    s
}

/// Parses a datetime as Home Assistant's `parse_datetime` does and converts it to UTC;
/// `None` if it does not parse.
///
/// ```
/// let t = latch_store::parse_datetime("2018-10-03T15:43:19.5+02:00").unwrap();
/// assert_eq!(latch_store::format_datetime(&t), "2018-10-03T13:43:19.500000+00:00");
/// assert!(latch_store::parse_datetime("yesterday").is_none());
/// ```
#[must_use]
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let mut p = Cursor {
        b: s.as_bytes(),
        i: 0,
    };
    let year = p.digits(4, 4)?;
    p.byte(b'-')?;
    let month = p.digits(1, 2)?;
    p.byte(b'-')?;
    let day = p.digits(1, 2)?;
    match p.next()? {
        b'T' | b' ' => {}
        _ => return None,
    }
    let hour = p.digits(1, 2)?;
    p.byte(b':')?;
    let minute = p.digits(1, 2)?;
    let mut second = 0;
    let mut micros = 0;
    if p.peek() == Some(b':') {
        p.i += 1;
        second = p.digits(1, 2)?;
        if p.peek() == Some(b'.') {
            p.i += 1;
            let start = p.i;
            let frac = p.digits(1, 12)?;
            let n = p.i - start;
            micros = if n <= 6 {
                frac * 10u32.pow(u32::try_from(6 - n).ok()?)
            } else {
                // Only the first six digits count; the rest are dropped.
                let text = s.get(start..start + 6)?;
                text.parse().ok()?
            };
        }
    }
    let offset_minutes: i64 = match p.peek() {
        None => 0,
        Some(b'Z') => {
            p.i += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            p.i += 1;
            let hh = i64::from(p.digits(2, 2)?);
            let mm = if p.peek() == Some(b':') {
                p.i += 1;
                i64::from(p.digits(2, 2)?)
            } else if p.peek().is_some() {
                i64::from(p.digits(2, 2)?)
            } else {
                0
            };
            // Python's timezone() refuses offsets of a day or more.
            if hh * 60 + mm >= 24 * 60 {
                return None;
            }
            let total = hh * 60 + mm;
            if sign == b'-' { -total } else { total }
        }
        Some(_) => return None,
    };
    if p.peek().is_some() {
        return None;
    }
    let naive = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?
        .and_hms_micro_opt(hour, minute, second, micros)?;
    if year == 0 {
        return None;
    }
    let utc = naive.checked_sub_signed(TimeDelta::minutes(offset_minutes))?;
    Some(utc.and_utc())
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// Between `min` and `max` ASCII digits (greedy).
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.i;
        let mut value: u64 = 0;
        while self.i - start < max {
            match self.peek() {
                Some(c @ b'0'..=b'9') => {
                    value = value * 10 + u64::from(c - b'0');
                    self.i += 1;
                }
                _ => break,
            }
        }
        if self.i - start < min {
            return None;
        }
        // Twelve digits may exceed u32; callers that accept that many only use the count.
        Some(u32::try_from(value).unwrap_or(u32::MAX))
    }
}

/// `serde(with)` helpers for a `DateTime<Utc>` in Home Assistant's format.
pub(crate) mod serde_iso {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_datetime(t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_datetime(&s).ok_or_else(|| D::Error::custom(format!("invalid datetime {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn formats_like_python_isoformat() {
        assert_eq!(
            format_datetime(&utc("2018-10-03T13:43:19.774637Z")),
            "2018-10-03T13:43:19.774637+00:00"
        );
        assert_eq!(
            format_datetime(&utc("2018-10-03T13:43:19Z")),
            "2018-10-03T13:43:19+00:00"
        );
        assert_eq!(
            format_datetime(&utc("2024-05-02T11:00:00.000001Z")),
            "2024-05-02T11:00:00.000001+00:00"
        );
        // Sub-microsecond precision is dropped, as Python has none.
        assert_eq!(
            format_datetime(&utc("2024-05-02T11:00:00.000000999Z")),
            "2024-05-02T11:00:00+00:00"
        );
        let early = NaiveDate::from_ymd_opt(33, 1, 2)
            .unwrap()
            .and_hms_opt(3, 4, 5)
            .unwrap()
            .and_utc();
        assert_eq!(format_datetime(&early), "0033-01-02T03:04:05+00:00");
    }

    #[test]
    fn parses_offsets_and_fractions() {
        let base = utc("2018-10-03T13:43:19.774637Z");
        for s in [
            "2018-10-03T13:43:19.774637+00:00",
            "2018-10-03T13:43:19.774637Z",
            "2018-10-03T13:43:19.774637+0000",
            "2018-10-03T15:43:19.774637+02:00",
            "2018-10-03T15:43:19.774637+0200",
            "2018-10-03T15:43:19.774637+02",
            "2018-10-03T08:13:19.774637-05:30",
            "2018-10-03 13:43:19.774637+00:00",
            "2018-10-03T13:43:19.774637123+00:00",
            "2018-10-03T13:43:19.774637",
        ] {
            assert_eq!(parse_datetime(s), Some(base), "{s}");
        }
        assert_eq!(
            parse_datetime("2018-10-03T13:43:19.774+00:00"),
            Some(utc("2018-10-03T13:43:19.774Z"))
        );
        assert_eq!(
            parse_datetime("2018-10-03T13:43:19.7Z"),
            Some(utc("2018-10-03T13:43:19.7Z"))
        );
        assert_eq!(
            parse_datetime("2018-1-3T3:4+00:00"),
            Some(utc("2018-01-03T03:04:00Z"))
        );
        assert_eq!(
            parse_datetime("2018-10-03T00:30:00+01:00"),
            Some(utc("2018-10-02T23:30:00Z")),
            "offsets can move the date"
        );
    }

    #[test]
    fn rejects_what_home_assistant_rejects() {
        for s in [
            "",
            "not a date",
            "2018-10-03",
            "2018-10-03T13",
            "2018-13-03T13:43:19+00:00",
            "2018-02-30T13:43:19+00:00",
            "2018-10-03T24:00:00+00:00",
            "2018-10-03T13:43:60+00:00",
            "2018-10-03T13:43:19.+00:00",
            "2018-10-03T13:43:19.1234567890123+00:00",
            "2018-10-03T13:43:19+24:00",
            "2018-10-03T13:43:19+2:00",
            "2018-10-03T13:43:19 +00:00",
            "2018-10-03T13:43:19+00:00 ",
            "18-10-03T13:43:19+00:00",
            "0000-10-03T13:43:19+00:00",
            "2018-10-03X13:43:19+00:00",
        ] {
            assert_eq!(parse_datetime(s), None, "{s:?}");
        }
    }

    fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
        // Years 1..=9999 as Python's datetime allows, at microsecond resolution.
        (-62_135_596_800_i64..253_402_300_799, 0u32..1_000_000)
            .prop_map(|(s, us)| DateTime::from_timestamp(s, us * 1_000).unwrap())
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(t in any_time()) {
            prop_assert_eq!(parse_datetime(&format_datetime(&t)), Some(t));
        }

        #[test]
        fn any_offset_converts_to_the_same_instant(
            t in any_time().prop_filter("room for the offset", |t| t.year() > 1 && t.year() < 9999),
            minutes in -(23 * 60 + 59)..=(23 * 60 + 59_i64),
            colon in any::<bool>(),
        ) {
            let local = t.naive_utc() + TimeDelta::minutes(minutes);
            let sign = if minutes < 0 { '-' } else { '+' };
            let (h, m) = (minutes.abs() / 60, minutes.abs() % 60);
            let sep = if colon { ":" } else { "" };
            let s = format!(
                "{}.{:06}{sign}{h:02}{sep}{m:02}",
                local.format("%Y-%m-%dT%H:%M:%S"),
                local.nanosecond() / 1_000
            );
            prop_assert_eq!(parse_datetime(&s), Some(t), "{}", s);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = parse_datetime(&s);
        }
    }
}
