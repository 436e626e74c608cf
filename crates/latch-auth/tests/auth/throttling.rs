//! Brute-force throttling (latch, beyond Home Assistant): delays, lockouts, their expiry,
//! the allow-list, and the operator's view.
//!
//! Delays are real `tokio::time::sleep`s; these tests run on paused time, where a sleep
//! completes by moving the runtime's clock, so `Instant::elapsed` measures it exactly.
//! Lockouts are measured on the manager's fixed clock.

use std::time::Duration;

use chrono::TimeDelta;
use latch_auth::{AuthEvent, FlowOutcome, ThrottleConfig, ThrottleKey};
use latch_provider::AbortReason;
use tokio::time::Instant;

use crate::common::{Harness, LAN, drain, expect_abort, expect_done, expect_form, ip, lan};

const PW: &str = "anne-pw";

/// Two free failures, then 1 s, 2 s, …; the fourth failure locks out for 10 minutes.
fn tight() -> ThrottleConfig {
    ThrottleConfig {
        delay_after: 2,
        base_delay_ms: 1_000,
        max_delay_ms: 10_000,
        lockout_after: 4,
        lockout_secs: 600,
        window_secs: 900,
        ..ThrottleConfig::default()
    }
}

async fn harness(throttle: ThrottleConfig) -> Harness {
    let h = Harness::with_throttle(throttle);
    h.user_with_password("Anne", "anne", PW).await;
    h
}

/// Posts a wrong password to `flow` and returns how long the call took on the runtime's
/// clock.
async fn wrong_attempt(h: &Harness, flow: &str) -> Duration {
    let started = Instant::now();
    let outcome = h
        .post(flow, &[("username", "anne"), ("password", "wrong")], lan())
        .await;
    let (_, form) = expect_form(outcome);
    assert_eq!(form.base_error(), Some("invalid_auth"));
    started.elapsed()
}

/// Fails `tight().lockout_after` times from [`LAN`], locking `anne` and the source out.
async fn lock_out(h: &Harness) {
    let flow = h.start(lan()).await;
    for _ in 0..4 {
        wrong_attempt(h, &flow).await;
    }
}

#[tokio::test(start_paused = true)]
async fn wrong_passwords_past_the_threshold_delay_the_next_attempt() {
    let h = harness(tight()).await;
    let flow = h.start(lan()).await;

    assert!(wrong_attempt(&h, &flow).await < Duration::from_secs(1));
    assert!(wrong_attempt(&h, &flow).await < Duration::from_secs(1));
    let third = wrong_attempt(&h, &flow).await;
    assert!(
        third >= Duration::from_secs(1) && third < Duration::from_secs(2),
        "{third:?}"
    );

    let started = Instant::now();
    expect_done(
        h.post(&flow, &[("username", "anne"), ("password", PW)], lan())
            .await,
    );
    let fourth = started.elapsed();
    assert!(fourth >= Duration::from_secs(2), "{fourth:?}");
}

#[tokio::test(start_paused = true)]
async fn lockout_aborts_with_too_many_attempts_even_for_the_right_password() {
    let h = harness(tight()).await;
    lock_out(&h).await;

    let outcome = h.login("anne", PW, lan()).await;

    assert_eq!(expect_abort(outcome), AbortReason::TooManyAttempts);
}

#[tokio::test(start_paused = true)]
async fn lockout_fires_lockout_started_and_login_failed() {
    let h = harness(tight()).await;
    let mut rx = h.subscribe();
    lock_out(&h).await;
    let until = h.now() + TimeDelta::seconds(600);

    let events = drain(&mut rx);
    assert!(events.contains(&AuthEvent::LockoutStarted {
        key: ThrottleKey::username("anne"),
        until,
    }));
    assert!(events.contains(&AuthEvent::LockoutStarted {
        key: ThrottleKey::Source(ip(LAN)),
        until,
    }));

    h.login("anne", PW, lan()).await;
    let events = drain(&mut rx);
    assert!(events.contains(&AuthEvent::LoginFailed {
        username: Some("anne".into()),
        provider_type: "homeassistant".into(),
        source: lan(),
        reason: "too_many_attempts".into(),
    }));
}

#[tokio::test(start_paused = true)]
async fn locked_out_username_is_refused_from_any_source() {
    let h = harness(tight()).await;
    lock_out(&h).await;
    let elsewhere = Some(ip("10.9.9.9"));
    let flow = h.start(elsewhere).await;
    let outcome = h
        .post(&flow, &[("username", "Anne "), ("password", PW)], elsewhere)
        .await;
    assert_eq!(expect_abort(outcome), AbortReason::TooManyAttempts);
}

#[tokio::test(start_paused = true)]
async fn lockout_expires() {
    let h = harness(tight()).await;
    lock_out(&h).await;
    h.advance(TimeDelta::seconds(601));

    let outcome = h.login("anne", PW, lan()).await;

    assert!(matches!(outcome, FlowOutcome::Done { .. }), "{outcome:?}");
}

#[tokio::test(start_paused = true)]
async fn lockout_is_still_on_just_before_it_ends() {
    let h = harness(tight()).await;
    lock_out(&h).await;
    h.advance(TimeDelta::seconds(599));

    let outcome = h.login("anne", PW, lan()).await;

    assert_eq!(expect_abort(outcome), AbortReason::TooManyAttempts);
}

#[tokio::test(start_paused = true)]
async fn allow_listed_source_is_never_throttled() {
    let h = harness(ThrottleConfig {
        allow: vec!["192.168.0.0/16".parse().unwrap()],
        ..tight()
    })
    .await;
    let flow = h.start(lan()).await;
    let started = Instant::now();
    for _ in 0..8 {
        wrong_attempt(&h, &flow).await;
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(h.manager.lockouts().is_empty());

    expect_done(
        h.post(&flow, &[("username", "anne"), ("password", PW)], lan())
            .await,
    );
}

#[tokio::test(start_paused = true)]
async fn lockouts_lists_the_locked_username_and_source() {
    let h = harness(tight()).await;
    lock_out(&h).await;
    let until = Some(h.now() + TimeDelta::seconds(600));

    let lockouts = h.manager.lockouts();

    let keys: Vec<_> = lockouts.iter().map(|l| l.key.clone()).collect();
    assert_eq!(
        keys,
        [ThrottleKey::username("anne"), ThrottleKey::Source(ip(LAN))]
    );
    assert!(lockouts.iter().all(|l| l.locked_until == until));
}

#[tokio::test(start_paused = true)]
async fn clear_lockout_unlocks_only_that_key() {
    let h = harness(tight()).await;
    lock_out(&h).await;

    assert!(h.manager.clear_lockout(&ThrottleKey::username("anne")));
    assert!(!h.manager.clear_lockout(&ThrottleKey::username("anne")));

    // The source is still locked …
    assert_eq!(
        expect_abort(h.login("anne", PW, lan()).await),
        AbortReason::TooManyAttempts
    );
    // … but the username works from elsewhere.
    expect_done(h.login("anne", PW, Some(ip("10.9.9.9"))).await);

    assert!(h.manager.clear_lockout(&ThrottleKey::Source(ip(LAN))));
    expect_done(h.login("anne", PW, lan()).await);
    assert!(h.manager.lockouts().is_empty());
}

#[tokio::test(start_paused = true)]
async fn wrong_mfa_codes_count_towards_the_lockout() {
    let h = Harness::with_throttle(tight());
    let anne = h.user_with_password("Anne", "anne", PW).await;
    let enrolment = h.enrol_totp(&anne.id, "totp").await;
    let wrong = crate::common::wrong_code(&enrolment.secret, h.now());
    let flow = h.start(lan()).await;
    let (_, form) = expect_form(
        h.post(&flow, &[("username", "anne"), ("password", PW)], lan())
            .await,
    );
    assert_eq!(form.step_id, "mfa");
    for _ in 0..4 {
        let (_, form) = expect_form(h.post(&flow, &[("code", &wrong)], lan()).await);
        assert_eq!(form.base_error(), Some("invalid_code"));
    }

    let code = crate::common::totp_code(&enrolment.secret, h.now());
    let outcome = h.post(&flow, &[("code", &code)], lan()).await;

    assert_eq!(expect_abort(outcome), AbortReason::TooManyAttempts);
}

/// A refused attempt names the username as it was typed, not the throttle's key form.
#[tokio::test(start_paused = true)]
async fn a_refused_attempt_reports_the_username_as_typed() {
    let h = harness(tight()).await;
    lock_out(&h).await;
    let mut rx = h.subscribe();
    let elsewhere = Some(ip("10.9.9.9"));
    let flow = h.start(elsewhere).await;
    let outcome = h
        .post(
            &flow,
            &[("username", " ANNE "), ("password", PW)],
            elsewhere,
        )
        .await;
    assert_eq!(expect_abort(outcome), AbortReason::TooManyAttempts);
    assert_eq!(
        drain(&mut rx),
        [AuthEvent::LoginFailed {
            username: Some(" ANNE ".into()),
            provider_type: "homeassistant".into(),
            source: elsewhere,
            reason: "too_many_attempts".into(),
        }]
    );
}
