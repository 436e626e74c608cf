//! Refresh-token creation: every rule of reference §3.2, in Home Assistant's order.

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, TimeDelta, Utc};
use latch_models::{
    ACCESS_TOKEN_EXPIRATION, CredentialId, REFRESH_TOKEN_EXPIRATION, RefreshToken, TokenType, User,
};
use latch_token::{
    NewRefreshToken, TokenError, create_refresh_token, long_lived_expiration, mint_access_token,
};

const VERSION: &str = "2025.4.4";

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 250_000_000).unwrap()
}

fn person() -> User {
    let mut u = User::new(Some("Paulus".into()));
    u.is_active = true;
    u
}

fn system_user() -> User {
    let mut u = User::new(Some("Supervisor".into()));
    u.is_active = true;
    u.system_generated = true;
    u
}

fn create(user: &User, params: NewRefreshToken) -> Result<RefreshToken, TokenError> {
    create_refresh_token(user, [], params, t0(), VERSION)
}

fn with_client(token_type: Option<TokenType>) -> NewRefreshToken {
    NewRefreshToken {
        client_id: Some("https://example.com/".into()),
        token_type,
        ..NewRefreshToken::default()
    }
}

#[test]
fn normal_token_has_every_field_as_home_assistant_sets_it() {
    let user = person();
    let cred = CredentialId::random();
    let t = create(
        &user,
        NewRefreshToken::normal("https://example.com/", Some(cred.clone())),
    )
    .unwrap();
    assert_eq!(t.id.as_str().len(), 32);
    assert_eq!(t.user_id, user.id);
    assert_eq!(t.client_id.as_deref(), Some("https://example.com/"));
    assert_eq!(t.client_name, None);
    assert_eq!(t.client_icon, None);
    assert_eq!(t.token_type, TokenType::Normal);
    assert_eq!(t.created_at, t0());
    assert!((t.access_token_expiration - ACCESS_TOKEN_EXPIRATION).abs() < f64::EPSILON);
    for secret in [&t.token, &t.jwt_key] {
        assert_eq!(secret.expose().len(), 128);
        assert!(secret.expose().bytes().all(|c| c.is_ascii_hexdigit()));
    }
    assert_ne!(t.token, t.jwt_key);
    assert_eq!(t.last_used_at, None);
    assert_eq!(t.last_used_ip, None);
    assert_eq!(
        t.expire_at,
        Some(1_700_000_000.25 + REFRESH_TOKEN_EXPIRATION)
    );
    assert_eq!(t.credential_id, Some(cred));
    assert_eq!(t.version.as_deref(), Some(VERSION));
}

#[test]
fn tokens_are_unique() {
    let user = person();
    let a = create(&user, with_client(None)).unwrap();
    let b = create(&user, with_client(None)).unwrap();
    assert_ne!(a.id, b.id);
    assert_ne!(a.token, b.token);
    assert_ne!(a.jwt_key, b.jwt_key);
}

#[test]
fn inactive_user_is_refused_first() {
    let mut user = system_user();
    user.is_active = false;
    // Also breaks rule 2; rule 1 wins.
    let err = create(&user, with_client(None)).unwrap_err();
    assert_eq!(err, TokenError::UserNotActive);
    assert_eq!(err.home_assistant_message(), "User is not active");
    assert_eq!(err.to_string(), "user is not active");
}

#[test]
fn system_user_with_client_id_is_refused_before_type_checks() {
    // Asking for a normal token with a client: rule 2 fires before rule 5.
    let err = create(&system_user(), with_client(Some(TokenType::Normal))).unwrap_err();
    assert_eq!(err, TokenError::SystemUserWithClient);
    // Even an empty client id counts: Home Assistant tests `is not None`.
    let params = NewRefreshToken {
        client_id: Some(String::new()),
        ..NewRefreshToken::default()
    };
    assert_eq!(
        create(&system_user(), params).unwrap_err(),
        TokenError::SystemUserWithClient
    );
}

#[test]
fn default_token_types() {
    let t = create(&system_user(), NewRefreshToken::default()).unwrap();
    assert_eq!(t.token_type, TokenType::System);
    assert_eq!(t.expire_at, None, "system tokens never expire");
    assert_eq!(t.client_id, None);

    let t = create(&person(), with_client(None)).unwrap();
    assert_eq!(t.token_type, TokenType::Normal);
    assert!(t.expire_at.is_some());
}

#[test]
fn system_type_must_match_system_user() {
    let msg = "System generated users can only have system type refresh tokens";
    let err = create(&person(), with_client(Some(TokenType::System))).unwrap_err();
    assert_eq!(err, TokenError::SystemTypeMismatch);
    assert_eq!(err.home_assistant_message(), msg);

    for tt in [TokenType::Normal, TokenType::LongLivedAccessToken] {
        let params = NewRefreshToken {
            token_type: Some(tt),
            client_name: Some("x".into()),
            ..NewRefreshToken::default()
        };
        assert_eq!(
            create(&system_user(), params).unwrap_err(),
            TokenError::SystemTypeMismatch
        );
    }
}

#[test]
fn type_mismatch_is_checked_before_client_requirements() {
    // A person asking for a system token without a client id: rule 5, not rule 6.
    let params = NewRefreshToken {
        token_type: Some(TokenType::System),
        ..NewRefreshToken::default()
    };
    assert_eq!(
        create(&person(), params).unwrap_err(),
        TokenError::SystemTypeMismatch
    );
}

#[test]
fn normal_token_requires_client_id() {
    let err = create(&person(), NewRefreshToken::default()).unwrap_err();
    assert_eq!(err, TokenError::ClientRequired);
    assert_eq!(
        err.home_assistant_message(),
        "Client is required to generate a refresh token."
    );
}

#[test]
fn long_lived_token_requires_client_name() {
    let params = NewRefreshToken {
        token_type: Some(TokenType::LongLivedAccessToken),
        ..NewRefreshToken::default()
    };
    let err = create(&person(), params).unwrap_err();
    assert_eq!(err, TokenError::ClientNameRequired);
    assert_eq!(
        err.home_assistant_message(),
        "Client_name is required for long-lived access token"
    );
}

#[test]
fn long_lived_token_fields() {
    let t = create(
        &person(),
        NewRefreshToken::long_lived("GPS Logger", Some("mdi:home".into()), 3650),
    )
    .unwrap();
    assert_eq!(t.token_type, TokenType::LongLivedAccessToken);
    assert_eq!(t.client_id, None);
    assert_eq!(t.client_name.as_deref(), Some("GPS Logger"));
    assert_eq!(t.client_icon.as_deref(), Some("mdi:home"));
    assert_eq!(t.expire_at, None, "long-lived tokens never expire");
    assert!((t.access_token_expiration - 3650.0 * 86_400.0).abs() < f64::EPSILON);
    assert!((long_lived_expiration(-2) + 172_800.0).abs() < f64::EPSILON);
}

#[test]
fn long_lived_token_may_carry_a_client_id() {
    let params = NewRefreshToken {
        client_id: Some("https://example.com/".into()),
        ..NewRefreshToken::long_lived("with client", None, 1)
    };
    let t = create(&person(), params).unwrap();
    assert_eq!(t.client_id.as_deref(), Some("https://example.com/"));
}

#[test]
fn empty_name_and_icon_are_stored_as_none() {
    // `client_name=""` passes the `is None` check but is only stored when truthy.
    let t = create(
        &person(),
        NewRefreshToken::long_lived("", Some(String::new()), 1),
    )
    .unwrap();
    assert_eq!(t.client_name, None);
    assert_eq!(t.client_icon, None);

    let params = NewRefreshToken {
        client_name: Some(String::new()),
        client_icon: Some(String::new()),
        ..with_client(None)
    };
    let t = create(&person(), params).unwrap();
    assert_eq!((t.client_name, t.client_icon), (None, None));
}

#[test]
fn long_lived_names_are_unique_per_user_and_reusable_after_removal() {
    let user = person();
    let mut tokens: Vec<RefreshToken> = Vec::new();
    let first = create_refresh_token(
        &user,
        &tokens,
        NewRefreshToken::long_lived("GPS Logger", None, 30),
        t0(),
        VERSION,
    )
    .unwrap();
    tokens.push(first.clone());

    let err = create_refresh_token(
        &user,
        &tokens,
        NewRefreshToken::long_lived("GPS Logger", None, 30),
        t0(),
        VERSION,
    )
    .unwrap_err();
    assert_eq!(
        err,
        TokenError::DuplicateClientName {
            client_name: "GPS Logger".into()
        }
    );
    assert_eq!(err.home_assistant_message(), "GPS Logger already exists");
    assert_eq!(err.to_string(), "GPS Logger already exists");

    // Exact string: another case is another name.
    create_refresh_token(
        &user,
        &tokens,
        NewRefreshToken::long_lived("gps logger", None, 30),
        t0(),
        VERSION,
    )
    .unwrap();

    // Another user may use the same name, even if their tokens are passed in.
    let other = person();
    create_refresh_token(
        &other,
        &tokens,
        NewRefreshToken::long_lived("GPS Logger", None, 30),
        t0(),
        VERSION,
    )
    .unwrap();

    // A normal token carrying that client_name does not block the name.
    let mut normal = create(&user, with_client(None)).unwrap();
    normal.client_name = Some("Other".into());
    create_refresh_token(
        &user,
        [&normal],
        NewRefreshToken::long_lived("Other", None, 30),
        t0(),
        VERSION,
    )
    .unwrap();

    // After removal the name is free again, with a new jwt_key.
    tokens.clear();
    let again = create_refresh_token(
        &user,
        &tokens,
        NewRefreshToken::long_lived("GPS Logger", None, 30),
        t0(),
        VERSION,
    )
    .unwrap();
    assert_ne!(again.jwt_key, first.jwt_key);
    assert_ne!(
        mint_access_token(&again, t0()),
        mint_access_token(&first, t0())
    );
}

#[test]
fn custom_access_token_expiration_is_kept() {
    let params = NewRefreshToken {
        access_token_expiration: 300.0,
        ..with_client(None)
    };
    let t = create(&person(), params).unwrap();
    assert!((t.access_token_expiration - 300.0).abs() < f64::EPSILON);
    assert_eq!(
        t.expire_at,
        Some(1_700_000_000.25 + 90.0 * 86_400.0),
        "expiry does not depend on the access-token lifetime"
    );
}

#[test]
fn created_at_is_truncated_to_microseconds() {
    let now = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
    let t = create_refresh_token(&person(), [], with_client(None), now, VERSION).unwrap();
    assert_eq!(t.created_at.timestamp_subsec_nanos(), 123_456_000);
    assert_eq!(t.created_at + TimeDelta::nanoseconds(789), now);
}
