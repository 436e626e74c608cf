//! Events (reference §9, plus latch's token and login events). They carry ids and
//! reasons, never a secret.

use latch_auth::AuthEvent;
use latch_models::TokenType;
use latch_token::NewRefreshToken;

use crate::common::{
    CLIENT_ID, Harness, OWNER_PASSWORD, drain, expect_done, expect_form, lan, totp_code, wrong_code,
};

#[tokio::test]
async fn user_lifecycle_fires_added_updated_and_removed() {
    let h = Harness::new();
    h.onboard().await;
    let mut rx = h.subscribe();

    let user = h
        .manager
        .create_user(Some("Anne".into()), None, false)
        .await
        .unwrap();
    h.manager
        .update_user(user.id.as_str(), latch_auth::UserUpdate::default())
        .await
        .unwrap();
    h.manager.remove_user(user.id.as_str()).await.unwrap();

    let id = user.id;
    assert_eq!(
        drain(&mut rx),
        [
            AuthEvent::UserAdded {
                user_id: id.clone()
            },
            AuthEvent::UserUpdated {
                user_id: id.clone()
            },
            AuthEvent::UserRemoved { user_id: id },
        ]
    );
}

#[tokio::test]
async fn token_lifecycle_fires_created_and_revoked() {
    let h = Harness::new();
    let owner = h.onboard().await;
    let mut rx = h.subscribe();

    let token = h
        .manager
        .create_refresh_token(owner.id.as_str(), NewRefreshToken::normal(CLIENT_ID, None))
        .await
        .unwrap();
    let (llat, _) = h
        .manager
        .create_long_lived_token(owner.id.as_str(), "Car", None, 10)
        .await
        .unwrap();
    h.manager
        .remove_refresh_token(token.id.as_str())
        .await
        .unwrap();

    assert_eq!(
        drain(&mut rx),
        [
            AuthEvent::RefreshTokenCreated {
                user_id: owner.id.clone(),
                refresh_token_id: token.id.clone(),
                token_type: TokenType::Normal,
                client_id: Some(CLIENT_ID.into()),
                client_name: None,
            },
            AuthEvent::RefreshTokenCreated {
                user_id: owner.id.clone(),
                refresh_token_id: llat.id.clone(),
                token_type: TokenType::LongLivedAccessToken,
                client_id: None,
                client_name: Some("Car".into()),
            },
            AuthEvent::RefreshTokenRevoked {
                user_id: owner.id.clone(),
                refresh_token_id: token.id,
            },
        ]
    );
}

#[tokio::test]
async fn wrong_password_fires_login_failed_with_the_username_and_reason() {
    let h = Harness::new();
    h.onboard().await;
    let mut rx = h.subscribe();

    expect_form(h.login("Paulus", "not-the-password", lan()).await);

    assert_eq!(
        drain(&mut rx),
        [AuthEvent::LoginFailed {
            username: Some("Paulus".into()),
            provider_type: "homeassistant".into(),
            source: lan(),
            reason: "invalid_auth".into(),
        }]
    );
}

#[tokio::test]
async fn wrong_mfa_code_fires_login_failed_with_reason_invalid_code() {
    let h = Harness::new();
    let owner = h.onboard().await;
    let enrolment = h.enrol_totp(&owner.id, "totp").await;
    let flow = h.start(lan()).await;
    expect_form(
        h.post(
            &flow,
            &[("username", "paulus"), ("password", OWNER_PASSWORD)],
            lan(),
        )
        .await,
    );
    let mut rx = h.subscribe();

    let wrong = wrong_code(&enrolment.secret, h.now());
    expect_form(h.post(&flow, &[("code", &wrong)], lan()).await);

    assert_eq!(
        drain(&mut rx),
        [AuthEvent::LoginFailed {
            username: Some("paulus".into()),
            provider_type: "homeassistant".into(),
            source: lan(),
            reason: "invalid_code".into(),
        }]
    );
}

#[tokio::test]
async fn successful_login_fires_login_succeeded() {
    let h = Harness::new();
    let owner = h.onboard().await;
    let mut rx = h.subscribe();

    let tokens = h.login_tokens("paulus", OWNER_PASSWORD, lan()).await;

    let events = drain(&mut rx);
    assert_eq!(
        events.last(),
        Some(&AuthEvent::LoginSucceeded {
            user_id: owner.id.clone(),
            provider_type: "homeassistant".into(),
            source: lan(),
        })
    );
    assert!(events.contains(&AuthEvent::RefreshTokenCreated {
        user_id: owner.id.clone(),
        refresh_token_id: tokens.refresh_token_id.clone(),
        token_type: TokenType::Normal,
        client_id: Some(CLIENT_ID.into()),
        client_name: None,
    }));
}

#[tokio::test]
async fn event_names_are_home_assistants() {
    let h = Harness::new();
    let mut rx = h.subscribe();
    let owner = h.onboard().await;
    h.manager
        .update_user(owner.id.as_str(), latch_auth::UserUpdate::default())
        .await
        .unwrap();
    let names: Vec<_> = drain(&mut rx).iter().map(AuthEvent::name).collect();
    assert_eq!(names, ["user_added", "credential_added", "user_updated"]);
}

#[tokio::test]
async fn no_event_or_outcome_shows_a_secret() {
    let h = Harness::new();
    let mut rx = h.subscribe();
    let owner = h.onboard().await;
    let enrolment = h.enrol_totp(&owner.id, "totp").await;

    // A wrong password, a wrong code, then a full login, a refresh, a long-lived token
    // and revocations.
    expect_form(h.login("paulus", "hunter2-wrong", lan()).await);
    let flow = h.start(lan()).await;
    expect_form(
        h.post(
            &flow,
            &[("username", "paulus"), ("password", OWNER_PASSWORD)],
            lan(),
        )
        .await,
    );
    let wrong = wrong_code(&enrolment.secret, h.now());
    expect_form(h.post(&flow, &[("code", &wrong)], lan()).await);
    let code = totp_code(&enrolment.secret, h.now());
    let outcome = h.post(&flow, &[("code", &code)], lan()).await;
    let outcome_debug = format!("{outcome:?}");
    let tokens = expect_done(outcome);
    let fresh = h
        .manager
        .refresh(tokens.refresh_token.expose(), Some(CLIENT_ID), lan())
        .unwrap();
    let (llat, llat_access) = h
        .manager
        .create_long_lived_token(owner.id.as_str(), "Car", None, 10)
        .await
        .unwrap();
    let refresh_token = h
        .manager
        .refresh_token(tokens.refresh_token_id.as_str())
        .unwrap();
    h.manager
        .revoke_by_value(tokens.refresh_token.expose())
        .await
        .unwrap();
    h.manager
        .remove_refresh_token(llat.id.as_str())
        .await
        .unwrap();

    let secrets = [
        OWNER_PASSWORD.to_owned(),
        "hunter2-wrong".to_owned(),
        enrolment.secret.clone(),
        enrolment.recovery_codes[0].clone(),
        tokens.refresh_token.expose().to_owned(),
        tokens.access_token.token.clone(),
        refresh_token.jwt_key.expose().to_owned(),
        fresh.token.clone(),
        llat.token.expose().to_owned(),
        llat.jwt_key.expose().to_owned(),
        llat_access.token.clone(),
    ];
    let events = drain(&mut rx);
    let names: Vec<&str> = events.iter().map(AuthEvent::name).collect();
    assert_eq!(
        names,
        [
            "user_added",
            "credential_added",
            "mfa_enabled",
            "login_failed",
            "login_failed",
            "refresh_token_created",
            "login_succeeded",
            "refresh_token_created",
            "refresh_token_revoked",
            "refresh_token_revoked",
        ]
    );
    let mut shown: Vec<String> = events.iter().map(|e| format!("{e:?}")).collect();
    // The serialised form (what the audit log writes) too.
    shown.extend(events.iter().map(|e| serde_json::to_string(e).unwrap()));
    shown.push(outcome_debug);
    shown.push(format!("{tokens:?}"));
    shown.push(format!("{fresh:?}"));
    shown.push(format!("{llat:?}"));
    for text in &shown {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{text} shows a secret");
        }
    }
}

#[tokio::test]
async fn blocked_login_fires_login_failed_with_the_reason() {
    let h = Harness::new();
    h.onboard().await;
    let anne = h.user_with_password("Anne", "anne", "anne-pw").await;
    h.manager.deactivate_user(anne.id.as_str()).await.unwrap();
    let mut rx = h.subscribe();

    crate::common::expect_abort(h.login("anne", "anne-pw", lan()).await);

    assert_eq!(
        drain(&mut rx),
        [AuthEvent::LoginFailed {
            username: Some("anne".into()),
            provider_type: "homeassistant".into(),
            source: lan(),
            reason: "login_blocked".into(),
        }]
    );
}

/// Every security-relevant change fires its event with its ids: a password set by an
/// operator and changed by its owner, a username changed, a credential added and
/// removed, MFA enabled and disabled, recovery codes regenerated.
#[tokio::test]
async fn account_changes_fire_their_events_with_their_fields() {
    let h = Harness::new();
    h.onboard().await;
    let mut rx = h.subscribe();
    let anne = h.user_with_password("Anne", "anne", "anne-pw").await;
    let credential = h.manager.password_credential_of(anne.id.as_str()).unwrap();
    h.manager
        .set_password(anne.id.as_str(), "set-by-operator")
        .await
        .unwrap();
    h.manager
        .change_own_password(anne.id.as_str(), "set-by-operator", "anne-own", lan())
        .await
        .unwrap();
    h.manager
        .change_username(anne.id.as_str(), "annie")
        .await
        .unwrap();
    h.enrol_totp(&anne.id, "totp").await;
    h.manager
        .regenerate_recovery_codes(anne.id.as_str(), "totp")
        .await
        .unwrap();
    h.manager
        .disable_mfa(anne.id.as_str(), "totp")
        .await
        .unwrap();
    // Disabling what is not set up changes nothing and fires nothing.
    h.manager
        .disable_mfa(anne.id.as_str(), "totp")
        .await
        .unwrap();
    h.manager
        .remove_credential(credential.id.as_str())
        .await
        .unwrap();

    let events = drain(&mut rx);
    let user_id = anne.id.clone();
    let credential_id = credential.id.clone();
    assert_eq!(
        events,
        [
            AuthEvent::UserAdded {
                user_id: user_id.clone()
            },
            AuthEvent::CredentialAdded {
                user_id: user_id.clone(),
                credential_id: credential_id.clone(),
                provider_type: "homeassistant".into(),
            },
            AuthEvent::PasswordSet {
                user_id: user_id.clone(),
                credential_id: credential_id.clone(),
            },
            AuthEvent::PasswordChanged {
                user_id: user_id.clone(),
                credential_id: credential_id.clone(),
                source: lan(),
            },
            AuthEvent::UsernameChanged {
                user_id: user_id.clone(),
                credential_id: credential_id.clone(),
                username: "annie".into(),
            },
            AuthEvent::MfaEnabled {
                user_id: user_id.clone(),
                module_id: "totp".into(),
            },
            AuthEvent::RecoveryCodesRegenerated {
                user_id: user_id.clone(),
                module_id: "totp".into(),
            },
            AuthEvent::MfaDisabled {
                user_id: user_id.clone(),
                module_id: "totp".into(),
            },
            AuthEvent::CredentialRemoved {
                user_id: Some(user_id),
                credential_id,
                provider_type: "homeassistant".into(),
            },
        ]
    );
}
