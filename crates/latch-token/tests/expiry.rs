//! Usage logging, sliding expiry, `set_expiry` and the cleanup schedule (reference §3.4
//! step 2 and §3.6), on a fixed clock.

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, TimeDelta, Utc};
use latch_models::{Clock, FixedClock, RefreshToken, User};
use latch_token::{
    NewRefreshToken, create_refresh_token, expired_token_ids, is_expired, next_cleanup_at,
    record_use, set_expiry,
};

fn day0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

fn at_day(days: i64) -> DateTime<Utc> {
    day0() + TimeDelta::days(days)
}

fn secs(t: DateTime<Utc>) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let s = t.timestamp_micros() as f64 / 1e6;
    s
}

fn user() -> User {
    let mut u = User::new(None);
    u.is_active = true;
    u
}

fn normal(now: DateTime<Utc>) -> RefreshToken {
    create_refresh_token(
        &user(),
        [],
        NewRefreshToken::normal("https://example.com/", None),
        now,
        "test",
    )
    .unwrap()
}

fn long_lived(now: DateTime<Utc>) -> RefreshToken {
    create_refresh_token(
        &user(),
        [],
        NewRefreshToken::long_lived("ll", None, 10),
        now,
        "test",
    )
    .unwrap()
}

#[test]
fn use_slides_expiry_from_day_90_to_day_120() {
    let clock = FixedClock::new(day0());
    let mut t = normal(clock.now());
    assert_eq!(t.expire_at, Some(secs(at_day(90))));

    clock.advance(TimeDelta::days(30));
    record_use(&mut t, clock.now(), Some("192.168.1.5".into()));
    assert_eq!(t.last_used_at, Some(at_day(30)));
    assert_eq!(t.last_used_ip.as_deref(), Some("192.168.1.5"));
    assert_eq!(t.expire_at, Some(secs(at_day(120))));

    assert!(!is_expired(&t, at_day(119)));
    assert!(is_expired(&t, at_day(120)));
}

#[test]
fn use_without_ip_overwrites_the_ip_with_none() {
    let mut t = normal(day0());
    record_use(&mut t, at_day(1), Some("10.0.0.1".into()));
    record_use(&mut t, at_day(2), None);
    assert_eq!(t.last_used_ip, None);
    assert_eq!(t.last_used_at, Some(at_day(2)));
}

#[test]
fn use_does_not_add_expiry_to_tokens_without_one() {
    let mut t = long_lived(day0());
    record_use(&mut t, at_day(5), None);
    assert_eq!(t.expire_at, None);
    assert_eq!(t.last_used_at, Some(at_day(5)));
}

#[test]
fn use_does_not_slide_a_zero_expiry() {
    // Home Assistant tests `if refresh_token.expire_at:`, and 0.0 is falsy.
    let mut t = normal(day0());
    t.expire_at = Some(0.0);
    record_use(&mut t, at_day(1), None);
    assert_eq!(t.expire_at, Some(0.0));
}

#[test]
fn use_time_is_truncated_to_microseconds() {
    let mut t = normal(day0());
    let now = day0() + TimeDelta::nanoseconds(1_500);
    record_use(&mut t, now, None);
    assert_eq!(t.last_used_at, Some(day0() + TimeDelta::microseconds(1)));
}

#[test]
fn set_expiry_off_then_on() {
    let mut t = normal(day0());
    assert!(set_expiry(&mut t, false, at_day(1)));
    assert_eq!(t.expire_at, None);
    assert!(
        set_expiry(&mut t, false, at_day(1)),
        "disabling always saves"
    );

    // Never used: counted from now.
    assert!(set_expiry(&mut t, true, at_day(2)));
    assert_eq!(t.expire_at, Some(secs(at_day(92))));

    // Already set: unchanged, no save.
    assert!(!set_expiry(&mut t, true, at_day(50)));
    assert_eq!(t.expire_at, Some(secs(at_day(92))));
}

#[test]
fn set_expiry_on_counts_from_last_use() {
    let mut t = long_lived(day0());
    record_use(&mut t, at_day(10), None);
    assert!(set_expiry(&mut t, true, at_day(40)));
    assert_eq!(t.expire_at, Some(secs(at_day(100))));
    // From now on it slides like a normal token.
    record_use(&mut t, at_day(60), None);
    assert_eq!(t.expire_at, Some(secs(at_day(150))));
}

#[test]
fn cleanup_removes_exactly_at_the_deadline() {
    let a = normal(day0()); // expires day 90
    let b = normal(at_day(30)); // expires day 120
    let c = long_lived(day0()); // never
    let tokens = [a.clone(), b.clone(), c];

    let just_before = at_day(90) - TimeDelta::microseconds(1);
    assert!(expired_token_ids(&tokens, just_before).is_empty());
    assert_eq!(expired_token_ids(&tokens, at_day(90)), vec![a.id.clone()]);
    assert_eq!(
        expired_token_ids(&tokens, at_day(90) + TimeDelta::seconds(5)),
        vec![a.id.clone()]
    );
    // Home Assistant's tests: still present at day 89h23, gone 5 s after day 90.
    let day89h23 = at_day(89) + TimeDelta::hours(23);
    assert!(expired_token_ids(&tokens, day89h23).is_empty());
    assert_eq!(
        expired_token_ids(&tokens, at_day(120) + TimeDelta::seconds(5)),
        vec![a.id, b.id]
    );
}

#[test]
fn next_cleanup_is_the_earliest_deadline_capped_at_90_days() {
    let now = at_day(10);
    assert_eq!(next_cleanup_at([], now), at_day(100));

    let c = long_lived(day0());
    assert_eq!(next_cleanup_at([&c], now), at_day(100));

    let a = normal(day0()); // day 90
    let b = normal(at_day(5)); // day 95
    assert_eq!(next_cleanup_at([&c, &b, &a], now), at_day(90));

    // A token already past its deadline makes the timer fire at that (past) time.
    let mut late = normal(day0());
    late.expire_at = Some(secs(at_day(3)));
    assert_eq!(next_cleanup_at([&a, &late], now), at_day(3));

    // A fractional deadline is kept to the microsecond.
    let mut frac = normal(day0());
    frac.expire_at = Some(secs(at_day(20)) + 0.25);
    assert_eq!(
        next_cleanup_at([&frac], now),
        at_day(20) + TimeDelta::milliseconds(250)
    );

    // A deadline that is no date at all counts as due now.
    let mut absurd = normal(day0());
    absurd.expire_at = Some(-1e300);
    assert_eq!(next_cleanup_at([&absurd], now), now);
}

#[test]
fn validation_ignores_refresh_expiry_but_is_expired_reports_it() {
    let t = normal(day0());
    let late = at_day(91);
    assert!(is_expired(&t, late));
    let jwt = latch_token::mint_access_token(&t, late);
    let u = latch_token::decode(&jwt).unwrap();
    assert!(
        u.verify(t.jwt_key.expose().as_bytes(), t.id.as_str(), late)
            .is_ok()
    );
}
