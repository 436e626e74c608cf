//! The "done when": the whole library story, end to end.

use chrono::TimeDelta;
use latch_auth::{AuthError, SetupOutcome};
use latch_models::{GROUP_ID_USER, GroupId, TokenType};

use crate::common::{
    CLIENT_ID, Harness, expect_done, expect_form, form_input, lan, totp_code, wrong_code,
};

#[tokio::test]
async fn library_story_from_onboarding_to_revocation() {
    let h = Harness::new();

    // Onboard the owner.
    let owner = h.onboard().await;
    assert!(owner.is_owner && owner.is_admin());

    // Add a user with a password.
    let anne = h
        .manager
        .create_user(
            Some("Anne".into()),
            Some(vec![GroupId::from(GROUP_ID_USER)]),
            false,
        )
        .await
        .unwrap();
    h.manager
        .add_password_login(anne.id.as_str(), "anne", "correct horse")
        .await
        .unwrap();

    // Enrol TOTP through the setup flow: the secret is the form's `code` placeholder.
    let SetupOutcome::Form { flow_id, form } = h
        .manager
        .start_mfa_setup(anne.id.as_str(), "totp")
        .await
        .unwrap()
    else {
        panic!("expected the setup form");
    };
    assert_eq!(form.step_id, "init");
    let secret = form.description_placeholders["code"].clone();
    assert_eq!(secret.len(), 32);
    assert!(form.description_placeholders["url"].starts_with("otpauth://totp/"));

    // A wrong code shows the form again with invalid_code and the same secret.
    let wrong = wrong_code(&secret, h.now());
    let outcome = h
        .manager
        .continue_mfa_setup(
            flow_id.as_str(),
            Some(anne.id.as_str()),
            form_input(&[("code", &wrong)]),
        )
        .await
        .unwrap();
    let SetupOutcome::Form { form: again, .. } = outcome else {
        panic!("expected the form again, got {outcome:?}");
    };
    assert_eq!(again.base_error(), Some("invalid_code"));
    assert_eq!(again.description_placeholders["code"], secret);
    assert!(h.manager.enabled_mfa(&anne.id).is_empty());

    // The right code finishes with recovery codes.
    let right = totp_code(&secret, h.now());
    let outcome = h
        .manager
        .continue_mfa_setup(
            flow_id.as_str(),
            Some(anne.id.as_str()),
            form_input(&[("code", &right)]),
        )
        .await
        .unwrap();
    let SetupOutcome::Done { recovery_codes, .. } = outcome else {
        panic!("expected the setup to finish, got {outcome:?}");
    };
    assert_eq!(recovery_codes.len(), 10);
    let enabled: Vec<_> = h
        .manager
        .enabled_mfa(&anne.id)
        .iter()
        .map(|m| m.id().to_owned())
        .collect();
    assert_eq!(enabled, ["totp"]);

    // Log in: username and password, then the `mfa` step with a fresh code.
    h.advance(TimeDelta::seconds(30));
    let flow = h.start(lan()).await;
    let (same_flow, form) = expect_form(
        h.post(
            &flow,
            &[("username", "anne"), ("password", "correct horse")],
            lan(),
        )
        .await,
    );
    assert_eq!(same_flow, flow);
    assert_eq!(form.step_id, "mfa");
    let code = totp_code(&secret, h.now());
    let tokens = expect_done(h.post(&flow, &[("code", &code)], lan()).await);
    assert_eq!(tokens.user_id, anne.id);

    // The access token validates.
    let valid = h
        .manager
        .validate_access_token(&tokens.access_token.token)
        .unwrap();
    assert_eq!(valid.user_id, anne.id);
    assert_eq!(valid.refresh_token_id, tokens.refresh_token_id);
    assert_eq!(valid.token_type, TokenType::Normal);
    assert_eq!(tokens.access_token.expires_in, 1800);

    // Refresh with the refresh-token value: a new access token that validates.
    h.advance(TimeDelta::minutes(10));
    let fresh = h
        .manager
        .refresh(tokens.refresh_token.expose(), Some(CLIENT_ID), lan())
        .unwrap();
    assert_ne!(fresh.token, tokens.access_token.token);
    assert_eq!(
        h.manager
            .validate_access_token(&fresh.token)
            .unwrap()
            .user_id,
        anne.id
    );

    // Revoke: the access tokens stop validating and refresh fails.
    h.manager
        .revoke_by_value(tokens.refresh_token.expose())
        .await
        .unwrap();
    assert!(
        h.manager
            .validate_access_token(&tokens.access_token.token)
            .is_none()
    );
    assert!(h.manager.validate_access_token(&fresh.token).is_none());
    assert!(matches!(
        h.manager
            .refresh(tokens.refresh_token.expose(), Some(CLIENT_ID), lan()),
        Err(AuthError::InvalidGrant)
    ));
}
