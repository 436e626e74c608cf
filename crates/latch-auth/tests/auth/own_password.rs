//! A person's own password change is a login in all but name: it goes through the same
//! throttle (by username and by source), a wrong current password fires `login_failed`
//! and counts towards the lockout, a lockout answers `too_many_attempts`, and a
//! local-only user is refused from a non-local (or unknown) address before any password
//! is checked.
//!
//! Delays are real `tokio::time::sleep`s on paused time; lockouts are measured on the
//! manager's fixed clock.

use std::time::Duration;

use chrono::TimeDelta;
use latch_auth::{AuthError, AuthEvent, ThrottleConfig, ThrottleKey, UserUpdate};
use latch_models::UserId;
use latch_provider::{AbortReason, ProviderError};
use tokio::time::Instant;

use crate::common::{Harness, LAN, drain, expect_abort, expect_done, ip, lan};

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

async fn harness() -> (Harness, UserId) {
    let h = Harness::with_throttle(tight());
    let anne = h.user_with_password("Anne", "anne", PW).await;
    (h, anne.id)
}

async fn change(
    h: &Harness,
    user: &UserId,
    current: &str,
    source: Option<std::net::IpAddr>,
) -> Result<(), AuthError> {
    h.manager
        .change_own_password(user.as_str(), current, "a new password", source)
        .await
}

fn is_wrong_password(r: &Result<(), AuthError>) -> bool {
    matches!(r, Err(AuthError::Provider(ProviderError::InvalidAuth(_))))
}

#[tokio::test(start_paused = true)]
async fn a_wrong_current_password_fires_login_failed_and_is_throttled_like_a_login() {
    let (h, anne) = harness().await;
    let mut rx = h.subscribe();

    let started = Instant::now();
    assert!(is_wrong_password(
        &change(&h, &anne, "guess 1", lan()).await
    ));
    assert!(is_wrong_password(
        &change(&h, &anne, "guess 2", lan()).await
    ));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "two free mistakes"
    );
    let failed = AuthEvent::LoginFailed {
        username: Some("anne".into()),
        provider_type: "homeassistant".into(),
        source: lan(),
        reason: "invalid_auth".into(),
    };
    assert_eq!(drain(&mut rx), [failed.clone(), failed]);

    // The third attempt waits the first delay, the fourth the doubled one.
    let started = Instant::now();
    assert!(is_wrong_password(
        &change(&h, &anne, "guess 3", lan()).await
    ));
    let third = started.elapsed();
    assert!(
        third >= Duration::from_secs(1) && third < Duration::from_secs(2),
        "{third:?}"
    );
    let started = Instant::now();
    assert!(is_wrong_password(
        &change(&h, &anne, "guess 4", lan()).await
    ));
    assert!(started.elapsed() >= Duration::from_secs(2));

    // Four failures: the username and the source are locked out, and even the right
    // password is refused with the lockout's end.
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
    let refused = change(&h, &anne, PW, lan()).await;
    assert!(
        matches!(refused, Err(AuthError::TooManyAttempts { until: u }) if u == until),
        "{refused:?}"
    );
    assert!(drain(&mut rx).contains(&AuthEvent::LoginFailed {
        username: Some("anne".into()),
        provider_type: "homeassistant".into(),
        source: lan(),
        reason: "too_many_attempts".into(),
    }));
    // The password did not change, and the lockout holds for logins too.
    assert_eq!(
        expect_abort(h.login("anne", PW, Some(ip("10.9.9.9"))).await),
        AbortReason::TooManyAttempts
    );

    // After the lockout the right password works, fires password_changed, and clears
    // the username's history.
    h.advance(TimeDelta::seconds(601));
    change(&h, &anne, PW, lan()).await.unwrap();
    assert!(drain(&mut rx).iter().any(|e| matches!(
        e,
        AuthEvent::PasswordChanged { user_id, source, .. } if *user_id == anne && *source == lan()
    )));
    assert!(
        !h.manager
            .lockouts()
            .iter()
            .any(|l| l.key == ThrottleKey::username("anne"))
    );
    expect_done(
        h.login("anne", "a new password", Some(ip("10.9.9.9")))
            .await,
    );
}

#[tokio::test(start_paused = true)]
async fn failed_logins_lock_out_the_own_password_change_too() {
    let (h, anne) = harness().await;
    let elsewhere = Some(ip("10.1.1.1"));
    for _ in 0..4 {
        let flow = h.start(elsewhere).await;
        h.post(
            &flow,
            &[("username", "ANNE"), ("password", "wrong")],
            elsewhere,
        )
        .await;
    }
    // Locked by username, from any source.
    assert!(matches!(
        change(&h, &anne, PW, lan()).await,
        Err(AuthError::TooManyAttempts { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_locked_out_source_cannot_change_anyones_password() {
    let h = Harness::with_throttle(tight());
    let anne = h.user_with_password("Anne", "anne", PW).await.id;
    let bob = h.user_with_password("Bob", "bob", "bob-pw").await.id;
    for _ in 0..4 {
        assert!(is_wrong_password(&change(&h, &anne, "wrong", lan()).await));
    }
    assert!(matches!(
        change(&h, &bob, "bob-pw", lan()).await,
        Err(AuthError::TooManyAttempts { .. })
    ));
    // From another address Bob still can.
    change(&h, &bob, "bob-pw", Some(ip("10.2.2.2")))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_local_only_user_is_refused_from_a_remote_or_unknown_address_before_any_check() {
    let (h, anne) = harness().await;
    h.manager
        .update_user(
            anne.as_str(),
            UserUpdate {
                local_only: Some(true),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    let mut rx = h.subscribe();
    for source in [Some(ip("8.8.8.8")), None] {
        for current in [PW, "wrong"] {
            let r = change(&h, &anne, current, source).await;
            assert!(matches!(r, Err(AuthError::AccessDenied(_))), "{r:?}");
        }
    }
    assert!(drain(&mut rx).is_empty(), "nothing was checked or counted");
    assert!(h.manager.lockouts().is_empty());
    // From the LAN (a local address) it works.
    change(&h, &anne, PW, lan()).await.unwrap();
}

#[tokio::test]
async fn over_long_passwords_are_refused_before_any_check() {
    let (h, anne) = harness().await;
    let long = "p".repeat(1_025);
    assert!(matches!(
        change(&h, &anne, &long, lan()).await,
        Err(AuthError::Limit(_))
    ));
    let r = h
        .manager
        .change_own_password(anne.as_str(), PW, &long, lan())
        .await;
    assert!(matches!(r, Err(AuthError::Limit(_))), "{r:?}");
    assert!(h.manager.lockouts().is_empty());
    expect_done(h.login("anne", PW, lan()).await);
}
