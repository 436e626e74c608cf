//! Refresh and access tokens: creation rules, JWTs, expiry, cleanup, revocation and the
//! refresh grant (reference §3; HA `tests/auth/test_init.py`,
//! `tests/components/auth/test_init.py`).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::TimeDelta;
use latch_auth::{AccessToken, AuthError, UserUpdate};
use latch_models::{GROUP_ID_READ_ONLY, GROUP_ID_USER, GroupId, RefreshToken, TokenType, User};
use latch_provider::ProviderError;
use latch_store::Change;
use latch_token::{NewRefreshToken, TokenError};

use crate::common::{CLIENT_ID, Harness, T0, default_config, ip, jwt_claims, lan, open_manager};

const DAY: i64 = 86_400;

/// The owner, then a second, ordinary person (active, in `system-users`).
async fn person(h: &Harness) -> User {
    h.manager
        .create_user(Some("Owner".into()), None, false)
        .await
        .unwrap();
    h.manager
        .create_user(
            Some("Person".into()),
            Some(vec![GroupId::from(GROUP_ID_USER)]),
            false,
        )
        .await
        .unwrap()
}

async fn normal_token(h: &Harness, user: &User) -> RefreshToken {
    h.manager
        .create_refresh_token(user.id.as_str(), NewRefreshToken::normal(CLIENT_ID, None))
        .await
        .unwrap()
}

/// [`person`], a [`normal_token`] of theirs, and an access token minted from it.
async fn person_with_access_token(h: &Harness) -> (User, RefreshToken, AccessToken) {
    let user = person(h).await;
    let token = normal_token(h, &user).await;
    let access = h
        .manager
        .create_access_token(token.id.as_str(), None)
        .unwrap();
    (user, token, access)
}

/// Stores `user` with `is_active` set as given, straight into the store (as Home
/// Assistant 2025 leaves a deactivated user: tokens kept).
async fn store_active(h: &Harness, user: &User, active: bool) {
    let mut changed = user.clone();
    changed.is_active = active;
    h.manager
        .store()
        .commit(vec![Change::PutUser(changed)])
        .await
        .unwrap();
}

fn at_day(days: i64) -> Option<f64> {
    #[allow(clippy::cast_precision_loss)]
    Some((T0 + days * DAY) as f64)
}

fn remote() -> Option<IpAddr> {
    Some(ip("8.8.8.8"))
}

// ----- creation rules (reference §3.2) -----

#[tokio::test]
async fn normal_token_expires_in_90_days_and_mints_30_minute_access_tokens() {
    let h = Harness::new();
    let user = person(&h).await;
    let token = h
        .manager
        .create_refresh_token(
            user.id.as_str(),
            NewRefreshToken {
                client_id: Some(CLIENT_ID.into()),
                ..NewRefreshToken::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(token.token_type, TokenType::Normal, "the default type");
    assert_eq!(token.client_id.as_deref(), Some(CLIENT_ID));
    assert_eq!(token.expire_at, at_day(90));
    assert!((token.access_token_expiration - 1800.0).abs() < f64::EPSILON);
    assert_eq!(token.token.expose().len(), 128);
    assert_eq!(token.jwt_key.expose().len(), 128);
    assert_eq!(
        h.manager.refresh_token(token.id.as_str()).unwrap(),
        token,
        "stored as returned"
    );
}

#[tokio::test]
async fn normal_token_without_a_client_id_is_refused() {
    let h = Harness::new();
    let user = person(&h).await;
    let result = h
        .manager
        .create_refresh_token(user.id.as_str(), NewRefreshToken::default())
        .await;
    assert!(matches!(
        result,
        Err(AuthError::Token(TokenError::ClientRequired))
    ));
}

#[tokio::test]
async fn normal_user_cannot_have_a_system_token() {
    let h = Harness::new();
    let user = person(&h).await;
    let result = h
        .manager
        .create_refresh_token(
            user.id.as_str(),
            NewRefreshToken {
                token_type: Some(TokenType::System),
                ..NewRefreshToken::default()
            },
        )
        .await;
    assert!(matches!(
        result,
        Err(AuthError::Token(TokenError::SystemTypeMismatch))
    ));
}

#[tokio::test]
async fn system_user_can_only_have_system_tokens() {
    let h = Harness::new();
    let user = h
        .manager
        .create_system_user(Some("Supervisor".into()), vec![], false)
        .await
        .unwrap();
    for params in [
        NewRefreshToken {
            token_type: Some(TokenType::Normal),
            ..NewRefreshToken::default()
        },
        NewRefreshToken::long_lived("Car", None, 10),
    ] {
        let result = h
            .manager
            .create_refresh_token(user.id.as_str(), params)
            .await;
        assert!(matches!(
            result,
            Err(AuthError::Token(TokenError::SystemTypeMismatch))
        ));
    }
    assert!(h.manager.refresh_tokens_of(user.id.as_str()).is_empty());
}

#[tokio::test]
async fn long_lived_token_without_a_client_name_is_refused() {
    let h = Harness::new();
    let user = person(&h).await;
    let result = h
        .manager
        .create_refresh_token(
            user.id.as_str(),
            NewRefreshToken {
                token_type: Some(TokenType::LongLivedAccessToken),
                ..NewRefreshToken::default()
            },
        )
        .await;
    assert!(matches!(
        result,
        Err(AuthError::Token(TokenError::ClientNameRequired))
    ));
}

#[tokio::test]
async fn inactive_user_cannot_get_a_token() {
    let h = Harness::new();
    let user = person(&h).await;
    h.manager.deactivate_user(user.id.as_str()).await.unwrap();
    let result = h
        .manager
        .create_refresh_token(user.id.as_str(), NewRefreshToken::normal(CLIENT_ID, None))
        .await;
    assert!(matches!(
        result,
        Err(AuthError::Token(TokenError::UserNotActive))
    ));
}

#[tokio::test]
async fn custom_access_token_expiration_is_kept_and_used() {
    let h = Harness::new();
    let user = person(&h).await;
    let token = h
        .manager
        .create_refresh_token(
            user.id.as_str(),
            NewRefreshToken {
                access_token_expiration: 100.0 * 86_400.0,
                ..NewRefreshToken::normal(CLIENT_ID, None)
            },
        )
        .await
        .unwrap();
    assert!((token.access_token_expiration - 8_640_000.0).abs() < f64::EPSILON);
    assert_eq!(token.expire_at, at_day(90), "a normal token still expires");

    let access = h
        .manager
        .create_access_token(token.id.as_str(), None)
        .unwrap();
    assert_eq!(access.expires_in, 8_640_000);
    let claims = jwt_claims(&access.token);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        8_640_000
    );
}

// ----- access tokens (reference §3.4, §3.5) -----

#[tokio::test]
async fn access_token_lives_1800_seconds_and_is_issued_by_the_refresh_token() {
    let h = Harness::new();
    let user = person(&h).await;
    let token = normal_token(&h, &user).await;
    let access = h
        .manager
        .create_access_token(token.id.as_str(), lan())
        .unwrap();
    assert_eq!(access.expires_in, 1800);
    let claims = jwt_claims(&access.token);
    assert_eq!(claims["iss"], token.id.as_str());
    assert_eq!(claims["iat"], T0);
    assert_eq!(claims["exp"], T0 + 1800);
    let valid = h.manager.validate_access_token(&access.token).unwrap();
    assert_eq!(valid.user_id, user.id);
    assert_eq!(valid.refresh_token_id, token.id);
    assert_eq!(valid.name.as_deref(), Some("Person"));
    assert!(!valid.is_owner && !valid.is_admin);
}

#[tokio::test]
async fn removing_a_refresh_token_invalidates_its_access_tokens() {
    let h = Harness::new();
    let (_, token, access) = person_with_access_token(&h).await;
    assert!(h.manager.validate_access_token(&access.token).is_some());

    h.manager
        .remove_refresh_token(token.id.as_str())
        .await
        .unwrap();

    assert!(h.manager.validate_access_token(&access.token).is_none());
    assert!(h.manager.refresh_token(token.id.as_str()).is_none());
}

#[tokio::test]
async fn expired_access_token_is_rejected() {
    let h = Harness::new();
    let (_, _, access) = person_with_access_token(&h).await;
    h.advance(TimeDelta::minutes(30) + TimeDelta::seconds(11));
    assert!(h.manager.validate_access_token(&access.token).is_none());
}

#[tokio::test]
async fn access_token_is_accepted_within_the_ten_second_leeway() {
    let h = Harness::new();
    let (_, _, access) = person_with_access_token(&h).await;
    h.advance(TimeDelta::minutes(30) + TimeDelta::seconds(9));
    assert!(h.manager.validate_access_token(&access.token).is_some());
}

#[tokio::test]
async fn a_token_validated_before_stops_validating_at_the_same_expiry() {
    // The second and later validations are answered from the verified-token cache; it
    // must end them exactly where a full verification would.
    let h = Harness::new();
    let (_, _, access) = person_with_access_token(&h).await;
    assert!(h.manager.validate_access_token(&access.token).is_some());
    h.advance(TimeDelta::minutes(30) + TimeDelta::seconds(9));
    assert!(h.manager.validate_access_token(&access.token).is_some());
    h.advance(TimeDelta::seconds(2));
    assert!(h.manager.validate_access_token(&access.token).is_none());
    assert!(h.manager.validate_access_token(&access.token).is_none());
}

#[tokio::test]
async fn a_validated_token_is_refused_once_its_user_is_deactivated() {
    let h = Harness::new();
    let (user, _, access) = person_with_access_token(&h).await;
    assert!(h.manager.validate_access_token(&access.token).is_some());
    store_active(&h, &user, false).await;
    assert!(h.manager.validate_access_token(&access.token).is_none());
    store_active(&h, &user, true).await;
    assert!(h.manager.validate_access_token(&access.token).is_some());
}

#[tokio::test]
async fn a_validated_token_does_not_vouch_for_a_tampered_copy() {
    let h = Harness::new();
    let (_, _, access) = person_with_access_token(&h).await;
    for _ in 0..3 {
        assert!(h.manager.validate_access_token(&access.token).is_some());
    }
    let (signed, signature) = access.token.rsplit_once('.').unwrap();
    let mut flipped = signature.to_owned();
    let first = if flipped.starts_with('A') { "B" } else { "A" };
    flipped.replace_range(..1, first);
    assert!(
        h.manager
            .validate_access_token(&format!("{signed}.{flipped}"))
            .is_none()
    );
    assert!(
        h.manager
            .validate_access_token(&format!("{}x", access.token))
            .is_none()
    );
    assert!(h.manager.validate_access_token(&access.token).is_some());
}

#[tokio::test]
async fn tampered_or_garbage_access_tokens_are_rejected() {
    let h = Harness::new();
    let (_, _, access) = person_with_access_token(&h).await;
    let (signed, signature) = access.token.rsplit_once('.').unwrap();
    let mut flipped = signature.to_owned();
    let first = if flipped.starts_with('A') { "B" } else { "A" };
    flipped.replace_range(..1, first);
    for bad in [
        format!("{signed}.{flipped}"),
        format!("{signed}."),
        String::new(),
        "not.a.jwt".to_owned(),
        "a".repeat(10_000),
    ] {
        assert!(
            h.manager.validate_access_token(&bad).is_none(),
            "accepted {bad:.40}"
        );
    }
}

#[tokio::test]
async fn access_tokens_of_an_inactive_user_do_not_validate() {
    let h = Harness::new();
    let (user, _, access) = person_with_access_token(&h).await;
    // A store as Home Assistant 2025 leaves it: an inactive user who kept their tokens.
    store_active(&h, &user, false).await;
    assert!(h.manager.validate_access_token(&access.token).is_none());
}

#[tokio::test]
async fn minting_records_the_use_on_that_token_only() {
    let h = Harness::new();
    let user = person(&h).await;
    let used = normal_token(&h, &user).await;
    let unused = normal_token(&h, &user).await;
    h.advance(TimeDelta::minutes(5));

    h.manager
        .create_access_token(used.id.as_str(), lan())
        .unwrap();

    let used = h.manager.refresh_token(used.id.as_str()).unwrap();
    let unused = h.manager.refresh_token(unused.id.as_str()).unwrap();
    assert_eq!(used.last_used_at, Some(h.now()));
    assert_eq!(used.last_used_ip.as_deref(), Some(crate::common::LAN));
    assert_eq!(unused.last_used_at, None);
    assert_eq!(unused.last_used_ip, None);
}

#[tokio::test]
async fn renaming_a_user_keeps_their_token() {
    let h = Harness::new();
    let (user, token, access) = person_with_access_token(&h).await;
    h.manager
        .update_user(
            user.id.as_str(),
            UserUpdate {
                name: Some(Some("Renamed".into())),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    let kept: Vec<_> = h
        .manager
        .refresh_tokens_of(user.id.as_str())
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(kept, [token.id]);
    let valid = h.manager.validate_access_token(&access.token).unwrap();
    assert_eq!(valid.name.as_deref(), Some("Renamed"));
}

#[tokio::test]
async fn token_usage_survives_a_reload() {
    let h = Harness::new();
    let user = person(&h).await;
    let used = normal_token(&h, &user).await;
    let unused = normal_token(&h, &user).await;
    h.advance(TimeDelta::minutes(5));
    h.manager
        .create_access_token(used.id.as_str(), lan())
        .unwrap();
    let expected = h.manager.refresh_token(used.id.as_str()).unwrap();
    h.manager.store().close().await.unwrap();

    let reopened = open_manager(
        &h.home,
        &default_config(),
        &h.clock,
        latch_auth::ThrottleConfig::default(),
    );
    let used = reopened.refresh_token(used.id.as_str()).unwrap();
    let unused = reopened.refresh_token(unused.id.as_str()).unwrap();
    assert_eq!(used, expected);
    assert_eq!(used.last_used_at, Some(h.now()));
    assert_eq!(used.last_used_ip.as_deref(), Some(crate::common::LAN));
    assert_eq!(unused.last_used_at, None);
}

// ----- long-lived tokens (reference §3.3) -----

#[tokio::test]
async fn long_lived_token_has_no_client_id_keeps_name_and_icon_and_never_expires() {
    let h = Harness::new();
    let user = person(&h).await;
    let (token, access) = h
        .manager
        .create_long_lived_token(user.id.as_str(), "Car", Some("mdi:car".into()), 365)
        .await
        .unwrap();
    assert_eq!(token.token_type, TokenType::LongLivedAccessToken);
    assert_eq!(token.client_id, None);
    assert_eq!(token.client_name.as_deref(), Some("Car"));
    assert_eq!(token.client_icon.as_deref(), Some("mdi:car"));
    assert_eq!(token.expire_at, None);
    let stored = h.manager.refresh_token(token.id.as_str()).unwrap();
    assert_eq!(stored.expire_at, None, "minting does not add an expiry");
    assert_eq!(access.expires_in, 365 * DAY);
    let claims = jwt_claims(&access.token);
    assert_eq!(claims["iss"], token.id.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        365 * DAY
    );
    assert!(h.manager.validate_access_token(&access.token).is_some());
}

#[tokio::test]
async fn long_lived_token_name_is_unique_per_user() {
    let h = Harness::new();
    let user = person(&h).await;
    h.manager
        .create_long_lived_token(user.id.as_str(), "Car", None, 10)
        .await
        .unwrap();
    let result = h
        .manager
        .create_long_lived_token(user.id.as_str(), "Car", None, 10)
        .await;
    assert!(matches!(
        result,
        Err(AuthError::Token(TokenError::DuplicateClientName { client_name })) if client_name == "Car"
    ));
    assert_eq!(h.manager.refresh_tokens_of(user.id.as_str()).len(), 1);

    let other = h
        .manager
        .create_user(Some("Other".into()), None, false)
        .await
        .unwrap();
    h.manager
        .create_long_lived_token(other.id.as_str(), "Car", None, 10)
        .await
        .unwrap();
}

#[tokio::test]
async fn long_lived_token_name_is_reusable_after_removal_with_a_new_key() {
    let h = Harness::new();
    let user = person(&h).await;
    let (first, first_access) = h
        .manager
        .create_long_lived_token(user.id.as_str(), "Car", None, 10)
        .await
        .unwrap();
    h.manager
        .remove_refresh_token(first.id.as_str())
        .await
        .unwrap();

    let (second, second_access) = h
        .manager
        .create_long_lived_token(user.id.as_str(), "Car", None, 10)
        .await
        .unwrap();

    assert_ne!(second.id, first.id);
    assert_ne!(second.jwt_key, first.jwt_key);
    assert!(
        h.manager
            .validate_access_token(&first_access.token)
            .is_none()
    );
    assert!(
        h.manager
            .validate_access_token(&second_access.token)
            .is_some()
    );
}

// ----- expiry and cleanup (reference §3.6) -----

#[tokio::test]
async fn next_cleanup_is_due_at_the_earliest_expiry() {
    let h = Harness::new();
    let user = person(&h).await;
    assert_eq!(h.manager.next_cleanup_at(), h.now() + TimeDelta::days(90));
    h.advance(TimeDelta::days(1));
    normal_token(&h, &user).await;
    h.advance(TimeDelta::days(1));
    assert_eq!(
        h.manager.next_cleanup_at(),
        crate::common::t0() + TimeDelta::days(91)
    );
}

#[tokio::test]
async fn expired_token_is_removed_5_seconds_after_day_90() {
    let h = Harness::new();
    let user = person(&h).await;
    let token = normal_token(&h, &user).await;
    h.advance(TimeDelta::days(90) + TimeDelta::seconds(5));
    assert_eq!(h.manager.cleanup_expired_tokens().await.unwrap(), 1);
    assert!(h.manager.refresh_token(token.id.as_str()).is_none());
}

#[tokio::test]
async fn token_is_kept_at_day_89_23h() {
    let h = Harness::new();
    let user = person(&h).await;
    let token = normal_token(&h, &user).await;
    h.advance(TimeDelta::days(89) + TimeDelta::hours(23));
    assert_eq!(h.manager.cleanup_expired_tokens().await.unwrap(), 0);
    assert!(h.manager.refresh_token(token.id.as_str()).is_some());
}

#[tokio::test]
async fn cleanup_runs_revoke_callbacks_and_fires_revoked() {
    let h = Harness::new();
    let user = person(&h).await;
    let token = normal_token(&h, &user).await;
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ran);
    h.manager.register_revoke_callback(
        &token.id,
        Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }),
    );
    let mut rx = h.subscribe();
    h.advance(TimeDelta::days(90) + TimeDelta::seconds(5));
    h.manager.cleanup_expired_tokens().await.unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert!(
        crate::common::drain(&mut rx).contains(&latch_auth::AuthEvent::RefreshTokenRevoked {
            user_id: user.id.clone(),
            refresh_token_id: token.id.clone(),
        })
    );
}

#[tokio::test]
async fn token_created_at_day_30_expires_at_day_120() {
    let h = Harness::new();
    let user = person(&h).await;
    let early = normal_token(&h, &user).await;
    h.advance(TimeDelta::days(30));
    let late = normal_token(&h, &user).await;
    assert_eq!(late.expire_at, at_day(120));

    h.advance(TimeDelta::days(60) + TimeDelta::seconds(5)); // day 90 + 5 s
    h.manager.cleanup_expired_tokens().await.unwrap();
    assert!(h.manager.refresh_token(early.id.as_str()).is_none());
    assert!(h.manager.refresh_token(late.id.as_str()).is_some());

    h.advance(TimeDelta::days(30)); // day 120 + 5 s
    h.manager.cleanup_expired_tokens().await.unwrap();
    assert!(h.manager.refresh_token(late.id.as_str()).is_none());
}

#[tokio::test]
async fn using_a_token_at_day_30_moves_its_expiry_to_day_120() {
    let h = Harness::new();
    let user = person(&h).await;
    let token = normal_token(&h, &user).await;
    h.advance(TimeDelta::days(30));

    h.manager
        .create_access_token(token.id.as_str(), None)
        .unwrap();

    assert_eq!(
        h.manager
            .refresh_token(token.id.as_str())
            .unwrap()
            .expire_at,
        at_day(120)
    );
    h.advance(TimeDelta::days(60) + TimeDelta::seconds(5)); // day 90 + 5 s
    h.manager.cleanup_expired_tokens().await.unwrap();
    assert!(h.manager.refresh_token(token.id.as_str()).is_some());
    h.advance(TimeDelta::days(30)); // day 120 + 5 s
    h.manager.cleanup_expired_tokens().await.unwrap();
    assert!(h.manager.refresh_token(token.id.as_str()).is_none());
}

#[tokio::test]
async fn disabling_expiry_keeps_the_token_past_90_days() {
    let h = Harness::new();
    let user = person(&h).await;
    let token = normal_token(&h, &user).await;

    h.manager
        .set_token_expiry(token.id.as_str(), false)
        .await
        .unwrap();

    assert_eq!(
        h.manager
            .refresh_token(token.id.as_str())
            .unwrap()
            .expire_at,
        None
    );
    h.advance(TimeDelta::days(91));
    assert_eq!(h.manager.cleanup_expired_tokens().await.unwrap(), 0);
    assert!(h.manager.refresh_token(token.id.as_str()).is_some());
}

#[tokio::test]
async fn enabling_expiry_again_sets_it_from_now_or_the_last_use() {
    let h = Harness::new();
    let user = person(&h).await;
    let token = normal_token(&h, &user).await;
    h.manager
        .set_token_expiry(token.id.as_str(), false)
        .await
        .unwrap();
    h.advance(TimeDelta::days(10));

    h.manager
        .set_token_expiry(token.id.as_str(), true)
        .await
        .unwrap();
    assert_eq!(
        h.manager
            .refresh_token(token.id.as_str())
            .unwrap()
            .expire_at,
        at_day(100),
        "never used: now + 90 days"
    );

    // Enabling again leaves a set expiry alone.
    h.advance(TimeDelta::days(5));
    h.manager
        .set_token_expiry(token.id.as_str(), true)
        .await
        .unwrap();
    assert_eq!(
        h.manager
            .refresh_token(token.id.as_str())
            .unwrap()
            .expire_at,
        at_day(100)
    );
}

#[tokio::test]
async fn set_expiry_reaches_the_store_file() {
    let h = Harness::new();
    let user = person(&h).await;
    let token = normal_token(&h, &user).await;
    h.manager
        .set_token_expiry(token.id.as_str(), false)
        .await
        .unwrap();
    h.manager.store().close().await.unwrap();
    let reopened = open_manager(
        &h.home,
        &default_config(),
        &h.clock,
        latch_auth::ThrottleConfig::default(),
    );
    assert_eq!(
        reopened.refresh_token(token.id.as_str()).unwrap().expire_at,
        None
    );
}

#[tokio::test]
async fn set_expiry_of_an_unknown_token_is_token_not_found() {
    let h = Harness::new();
    let result = h.manager.set_token_expiry("0123456789abcdef", true).await;
    assert!(matches!(result, Err(AuthError::TokenNotFound)));
}

// ----- revocation (reference §3.7) -----

#[tokio::test]
async fn revoke_callback_runs_when_its_token_is_removed() {
    let h = Harness::new();
    let user = person(&h).await;
    let token = normal_token(&h, &user).await;
    let other = normal_token(&h, &user).await;
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ran);
    h.manager.register_revoke_callback(
        &token.id,
        Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }),
    );

    h.manager
        .remove_refresh_token(other.id.as_str())
        .await
        .unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0, "another token's removal");
    h.manager
        .remove_refresh_token(token.id.as_str())
        .await
        .unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unregistered_revoke_callback_does_not_run() {
    let h = Harness::new();
    let user = person(&h).await;
    let token = normal_token(&h, &user).await;
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ran);
    let handle = h.manager.register_revoke_callback(
        &token.id,
        Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }),
    );

    assert!(h.manager.unregister_revoke_callback(&token.id, handle));
    assert!(!h.manager.unregister_revoke_callback(&token.id, handle));
    h.manager
        .remove_refresh_token(token.id.as_str())
        .await
        .unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn failing_revoke_callback_is_reported_but_the_token_is_removed() {
    let h = Harness::new();
    let user = person(&h).await;
    let token = normal_token(&h, &user).await;
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ran);
    h.manager
        .register_revoke_callback(&token.id, Box::new(|| Err("socket already closed".into())));
    h.manager.register_revoke_callback(
        &token.id,
        Box::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }),
    );

    let result = h.manager.remove_refresh_token(token.id.as_str()).await;

    assert!(
        matches!(&result, Err(AuthError::Provider(ProviderError::Internal(m))) if m == "socket already closed"),
        "{result:?}"
    );
    assert!(h.manager.refresh_token(token.id.as_str()).is_none());
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "the other callback still ran"
    );
}

#[tokio::test]
async fn revoke_all_removes_every_token_even_when_a_callback_fails() {
    let h = Harness::new();
    let user = person(&h).await;
    let first = normal_token(&h, &user).await;
    normal_token(&h, &user).await;
    h.manager
        .create_long_lived_token(user.id.as_str(), "Car", None, 10)
        .await
        .unwrap();
    h.manager
        .register_revoke_callback(&first.id, Box::new(|| Err("boom".into())));

    let result = h.manager.revoke_all_tokens(user.id.as_str(), None).await;

    assert!(matches!(result, Err(AuthError::Provider(_))));
    assert!(h.manager.refresh_tokens_of(user.id.as_str()).is_empty());
}

#[tokio::test]
async fn revoke_all_of_one_type_keeps_the_others() {
    let h = Harness::new();
    let user = person(&h).await;
    let normal = normal_token(&h, &user).await;
    h.manager
        .create_long_lived_token(user.id.as_str(), "Car", None, 10)
        .await
        .unwrap();

    let removed = h
        .manager
        .revoke_all_tokens(user.id.as_str(), Some(TokenType::LongLivedAccessToken))
        .await
        .unwrap();

    assert_eq!(removed, 1);
    assert_eq!(h.manager.refresh_tokens_of(user.id.as_str()), [normal]);
}

#[tokio::test]
async fn revoking_an_unknown_token_value_succeeds() {
    let h = Harness::new();
    let user = person(&h).await;
    let token = normal_token(&h, &user).await;
    h.manager.revoke_by_value(&"0".repeat(128)).await.unwrap();
    assert!(h.manager.refresh_token(token.id.as_str()).is_some());
}

#[tokio::test]
async fn removing_an_unknown_token_id_is_token_not_found() {
    let h = Harness::new();
    let result = h.manager.remove_refresh_token("0123456789abcdef").await;
    assert!(matches!(result, Err(AuthError::TokenNotFound)));
}

// ----- the refresh grant (reference §3.8) -----

#[tokio::test]
async fn refresh_with_an_unknown_token_is_invalid_grant() {
    let h = Harness::new();
    person(&h).await;
    let result = h.manager.refresh(&"f".repeat(128), Some(CLIENT_ID), lan());
    assert!(matches!(result, Err(AuthError::InvalidGrant)));
}

#[tokio::test]
async fn refresh_with_another_client_id_is_invalid_request() {
    let h = Harness::new();
    let user = person(&h).await;
    let token = normal_token(&h, &user).await;
    for client in [Some("https://other.example.com/"), None] {
        let result = h.manager.refresh(token.token.expose(), client, lan());
        assert!(
            matches!(result, Err(AuthError::InvalidRequest(_))),
            "client {client:?}: {result:?}"
        );
    }
    assert_eq!(
        h.manager
            .refresh_token(token.id.as_str())
            .unwrap()
            .last_used_at,
        None,
        "a refused refresh is not a use"
    );
}

#[tokio::test]
async fn refresh_with_the_right_client_id_mints_a_valid_access_token() {
    let h = Harness::new();
    let user = person(&h).await;
    let token = normal_token(&h, &user).await;
    let access = h
        .manager
        .refresh(token.token.expose(), Some(CLIENT_ID), lan())
        .unwrap();
    assert_eq!(access.expires_in, 1800);
    assert_eq!(
        h.manager
            .validate_access_token(&access.token)
            .unwrap()
            .refresh_token_id,
        token.id
    );
}

#[tokio::test]
async fn system_token_is_refreshed_without_a_client_id() {
    let h = Harness::new();
    let user = h
        .manager
        .create_system_user(Some("Supervisor".into()), vec![], false)
        .await
        .unwrap();
    let token = h
        .manager
        .create_refresh_token(user.id.as_str(), NewRefreshToken::default())
        .await
        .unwrap();
    let access = h.manager.refresh(token.token.expose(), None, None).unwrap();
    assert_eq!(
        h.manager
            .validate_access_token(&access.token)
            .unwrap()
            .token_type,
        TokenType::System
    );
    assert!(matches!(
        h.manager
            .refresh(token.token.expose(), Some(CLIENT_ID), None),
        Err(AuthError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn long_lived_token_is_refreshed_without_a_client_id() {
    let h = Harness::new();
    let user = person(&h).await;
    let (token, _) = h
        .manager
        .create_long_lived_token(user.id.as_str(), "Car", None, 10)
        .await
        .unwrap();
    let access = h
        .manager
        .refresh(token.token.expose(), None, remote())
        .unwrap();
    assert_eq!(access.expires_in, 10 * DAY);
    assert!(matches!(
        h.manager
            .refresh(token.token.expose(), Some(CLIENT_ID), remote()),
        Err(AuthError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn refresh_for_a_local_only_user_from_a_remote_address_is_access_denied() {
    let h = Harness::new();
    h.manager
        .create_user(Some("Owner".into()), None, false)
        .await
        .unwrap();
    let user = h
        .manager
        .create_user(
            Some("Kiosk".into()),
            Some(vec![GroupId::from(GROUP_ID_READ_ONLY)]),
            true,
        )
        .await
        .unwrap();
    let token = normal_token(&h, &user).await;

    let result = h
        .manager
        .refresh(token.token.expose(), Some(CLIENT_ID), remote());
    assert!(
        matches!(&result, Err(AuthError::AccessDenied(m)) if m == "User cannot authenticate remotely"),
        "{result:?}"
    );
    let result = h
        .manager
        .refresh(token.token.expose(), Some(CLIENT_ID), None);
    assert!(matches!(result, Err(AuthError::AccessDenied(_))));
    for far in ["::ffff:8.8.8.8", "172.32.0.1", "2001:db8::1"] {
        assert!(
            matches!(
                h.manager
                    .refresh(token.token.expose(), Some(CLIENT_ID), Some(ip(far))),
                Err(AuthError::AccessDenied(_))
            ),
            "{far} is not local"
        );
    }
    for local in [
        "192.168.1.5",
        "10.1.2.3",
        "172.16.0.1",
        "127.0.0.1",
        "169.254.1.1",
        "::1",
        "fd00::5",
        "fe80::1",
        "::ffff:192.168.1.5",
    ] {
        assert!(
            h.manager
                .refresh(token.token.expose(), Some(CLIENT_ID), Some(ip(local)))
                .is_ok(),
            "{local} is local"
        );
    }
}

#[tokio::test]
async fn refresh_for_an_inactive_user_is_access_denied() {
    let h = Harness::new();
    let user = person(&h).await;
    let token = normal_token(&h, &user).await;
    // A store as Home Assistant 2025 leaves it: an inactive user who kept their tokens.
    store_active(&h, &user, false).await;

    let result = h
        .manager
        .refresh(token.token.expose(), Some(CLIENT_ID), lan());

    assert!(
        matches!(&result, Err(AuthError::AccessDenied(m)) if m == "User is not active"),
        "{result:?}"
    );
}
