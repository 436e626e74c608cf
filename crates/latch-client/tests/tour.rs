//! Every typed method against the real daemon, in the order an operator and a service
//! would use them: each answer arrives as its own payload type.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use latch_client::protocol::{
    ErrorCode, FieldKind, FlowForm, FlowState, Handler, LockoutKey, PermissionKey, Sensitive,
    SetupFlowState, Subject, TokenType,
};
use latch_client::{ClientError, NewUser, UserUpdate};

use common::TestDaemon;

const CLIENT_ID: &str = "https://service.example/";

fn totp_at(secret: &str, unix: u64) -> String {
    let key = totp_rs::Secret::try_from_base32(secret).unwrap();
    let totp = totp_rs::Builder::new().with_secret(key).build().unwrap();
    totp.generate(unix).to_string()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn form(state: FlowState) -> FlowForm {
    match state {
        FlowState::Form(form) => form,
        other => panic!("expected a form, got {other:?}"),
    }
}

fn login_input(username: &str, password: &str) -> Vec<(String, Sensitive)> {
    vec![
        ("username".to_owned(), Sensitive::from(username)),
        ("password".to_owned(), Sensitive::from(password)),
    ]
}

fn api_code<T: std::fmt::Debug>(result: Result<T, ClientError>) -> ErrorCode {
    match result {
        Err(ClientError::Api { code, .. }) => code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_request_has_a_typed_method() {
    let daemon = TestDaemon::start().await;
    let client = daemon.client().await;
    client.ping().await.unwrap();

    // ---- users and groups -----------------------------------------------------------
    let owner = client
        .onboard("Paulus", "paulus", "correct horse battery")
        .await
        .unwrap();
    assert!(owner.is_owner && owner.is_admin);
    assert_eq!(owner.username.as_deref(), Some("paulus"));
    assert!(client.status().await.unwrap().onboarded);
    assert_eq!(
        api_code(client.onboard("Again", "again", "another password").await),
        ErrorCode::AlreadyOnboarded
    );

    let groups = client.list_groups().await.unwrap();
    assert!(groups.iter().any(|g| g.id == "system-read-only"));

    let anne = client
        .create_user(NewUser {
            group_ids: Some(vec!["system-users".into()]),
            ..NewUser::new("Anne")
        })
        .await
        .unwrap();
    assert!(!anne.is_owner);
    let anne = client
        .add_password(&anne.id, "anne", "anne's first password")
        .await
        .unwrap();
    assert_eq!(anne.username.as_deref(), Some("anne"));
    let anne = client.change_username(&anne.id, "annie").await.unwrap();
    assert_eq!(anne.username.as_deref(), Some("annie"));
    let anne = client
        .update_user(
            &anne.id,
            UserUpdate {
                name: Some("Anne B".into()),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(anne.name.as_deref(), Some("Anne B"));
    let anne = client
        .set_user_groups(&anne.id, vec!["system-read-only".into()])
        .await
        .unwrap();
    assert_eq!(anne.group_ids, ["system-read-only"]);
    assert_eq!(client.get_user(&anne.id).await.unwrap(), anne);
    assert_eq!(client.list_users().await.unwrap().len(), 2);
    client.deactivate_user(&anne.id).await.unwrap();
    assert!(!client.get_user(&anne.id).await.unwrap().is_active);
    client.activate_user(&anne.id).await.unwrap();
    assert!(client.get_user(&anne.id).await.unwrap().is_active);
    client
        .change_password(&anne.id, "anne's second password")
        .await
        .unwrap();

    // ---- permissions ----------------------------------------------------------------
    let edit = client
        .check_permission(
            Subject::User(owner.id.clone()),
            "light.kitchen",
            PermissionKey::Edit,
        )
        .await
        .unwrap();
    assert!(edit);
    let read = client
        .check_permission(
            Subject::User(anne.id.clone()),
            "light.kitchen",
            PermissionKey::Read,
        )
        .await
        .unwrap();
    let control = client
        .check_permission(
            Subject::User(anne.id.clone()),
            "light.kitchen",
            PermissionKey::Control,
        )
        .await
        .unwrap();
    assert!(
        read && !control,
        "read-only: read {read}, control {control}"
    );

    // ---- a password login -----------------------------------------------------------
    let providers = client.providers(None).await.unwrap();
    assert!(
        providers
            .iter()
            .any(|p| p.handler.provider_type == "homeassistant")
    );
    let start = form(
        client
            .login_start(Handler::new("homeassistant"), CLIENT_ID, None, None)
            .await
            .unwrap(),
    );
    assert_eq!(start.step_id, "init");
    assert!(
        start
            .fields
            .iter()
            .any(|f| f.name == "password" && f.kind == FieldKind::Secret)
    );
    let done = client
        .login_continue(
            &start.flow_id,
            login_input("annie", "anne's second password"),
            None,
        )
        .await
        .unwrap();
    let FlowState::Done { tokens, .. } = done else {
        panic!("expected the login to finish, got {done:?}");
    };
    assert_eq!(tokens.user_id, anne.id);
    let valid = client
        .validate_token(tokens.access_token.expose())
        .await
        .unwrap();
    assert_eq!(valid.user.id, anne.id);
    assert_eq!(valid.refresh_token_id, tokens.refresh_token_id);
    assert_eq!(valid.token_type, TokenType::Normal);
    let by_token = client
        .check_permission(
            Subject::AccessToken(tokens.access_token.clone()),
            "light.kitchen",
            PermissionKey::Read,
        )
        .await
        .unwrap();
    assert!(by_token);

    let fresh = client
        .refresh(tokens.refresh_token.expose(), Some(CLIENT_ID), None)
        .await
        .unwrap();
    assert_eq!(
        client
            .validate_token_from(
                fresh.access_token.expose(),
                Some("127.0.0.1".parse().unwrap())
            )
            .await
            .unwrap()
            .user
            .id,
        anne.id
    );
    client
        .change_own_password(
            tokens.access_token.expose(),
            "anne's second password",
            "anne's third password",
        )
        .await
        .unwrap();

    // ---- tokens ---------------------------------------------------------------------
    let listed = client.list_tokens(&anne.id).await.unwrap();
    assert!(listed.iter().any(|t| t.id == tokens.refresh_token_id));
    client
        .set_token_expiry(&tokens.refresh_token_id, false)
        .await
        .unwrap();
    let listed = client.list_tokens(&anne.id).await.unwrap();
    let session = listed
        .iter()
        .find(|t| t.id == tokens.refresh_token_id)
        .unwrap();
    assert_eq!(session.expire_at, None);
    client.revoke_by_id(&tokens.refresh_token_id).await.unwrap();
    assert_eq!(
        api_code(client.validate_token(fresh.access_token.expose()).await),
        ErrorCode::InvalidToken
    );
    assert_eq!(
        api_code(client.revoke_by_id(&tokens.refresh_token_id).await),
        ErrorCode::TokenNotFound
    );
    client.revoke("no such refresh token").await.unwrap();

    let lltoken = client
        .create_long_lived_token(&owner.id, "dashboard", Some("mdi:tablet"), 30)
        .await
        .unwrap();
    assert_eq!(
        client
            .validate_token(lltoken.access_token.expose())
            .await
            .unwrap()
            .token_type,
        TokenType::LongLivedAccessToken
    );
    let revoked = client
        .revoke_all(&owner.id, Some(TokenType::LongLivedAccessToken))
        .await
        .unwrap();
    assert_eq!(revoked, 1);

    // ---- flows that are abandoned ---------------------------------------------------
    let abandoned = form(
        client
            .login_start(Handler::new("homeassistant"), CLIENT_ID, None, None)
            .await
            .unwrap(),
    );
    client.login_abort(&abandoned.flow_id).await.unwrap();
    assert_eq!(
        api_code(
            client
                .login_continue(&abandoned.flow_id, login_input("paulus", "x"), None)
                .await
        ),
        ErrorCode::FlowNotFound
    );
    let SetupFlowState::Form(setup) = client.mfa_setup_start(&owner.id, "totp").await.unwrap()
    else {
        panic!("expected the setup form");
    };
    client.mfa_setup_abort(&setup.flow_id).await.unwrap();

    // ---- TOTP: enrol, log in with a code, recovery codes, disable --------------------
    let mut state = client.mfa_setup_start(&owner.id, "totp").await.unwrap();
    let mut secret = String::new();
    let mut attempts = 0;
    let recovery_codes = loop {
        match state {
            SetupFlowState::Form(form) => {
                attempts += 1;
                assert!(attempts <= 3, "the setup code was refused: {form:?}");
                assert!(form.placeholder("url").is_some());
                assert!(form.placeholder("qr_terminal").is_some());
                // A wrong code shows the same form with the same secret (and at a step
                // boundary the code may be refused once).
                secret = form.placeholder("code").unwrap().expose().to_owned();
                let code = totp_at(&secret, now());
                state = client
                    .mfa_setup_continue(&form.flow_id, vec![("code".into(), code.into())])
                    .await
                    .unwrap();
            }
            SetupFlowState::Done { recovery_codes, .. } => break recovery_codes,
            SetupFlowState::Abort { reason, .. } => panic!("setup aborted: {reason}"),
        }
    };
    assert!(!recovery_codes.is_empty());
    let modules = client.list_mfa_modules(&owner.id).await.unwrap();
    assert!(modules.iter().any(|m| m.id == "totp" && m.enabled));

    let start = form(
        client
            .login_start(Handler::new("homeassistant"), CLIENT_ID, None, None)
            .await
            .unwrap(),
    );
    let mfa = form(
        client
            .login_continue(
                &start.flow_id,
                login_input("paulus", "correct horse battery"),
                None,
            )
            .await
            .unwrap(),
    );
    assert_eq!(mfa.step_id, "mfa");
    // The code of the next step: the current one was used by the setup.
    let code = totp_at(&secret, now() + 30);
    let done = client
        .login_continue(&mfa.flow_id, vec![("code".into(), code.into())], None)
        .await
        .unwrap();
    assert!(
        matches!(&done, FlowState::Done { tokens, .. } if tokens.user_id == owner.id),
        "{done:?}"
    );

    let new_codes = client
        .regenerate_recovery_codes(&owner.id, "totp")
        .await
        .unwrap();
    assert_eq!(new_codes.len(), recovery_codes.len());
    assert_ne!(new_codes, recovery_codes);
    client.mfa_disable(&owner.id, "totp").await.unwrap();
    assert!(
        client
            .get_user(&owner.id)
            .await
            .unwrap()
            .mfa_modules
            .is_empty()
    );

    // ---- lockouts -------------------------------------------------------------------
    let start = form(
        client
            .login_start(Handler::new("homeassistant"), CLIENT_ID, None, None)
            .await
            .unwrap(),
    );
    let retry = form(
        client
            .login_continue(&start.flow_id, login_input("annie", "wrong password"), None)
            .await
            .unwrap(),
    );
    assert_eq!(retry.error("base"), Some("invalid_auth"));
    let lockouts = client.list_lockouts().await.unwrap();
    let annie = LockoutKey::Username("annie".into());
    assert!(
        lockouts.iter().any(|l| l.key == annie && l.failures >= 1),
        "{lockouts:?}"
    );
    client.clear_lockout(annie.clone()).await.unwrap();
    assert!(
        !client
            .list_lockouts()
            .await
            .unwrap()
            .iter()
            .any(|l| l.key == annie)
    );

    // ---- removing -------------------------------------------------------------------
    let credential = anne.credentials.first().unwrap().id.clone();
    client.remove_credential(&credential).await.unwrap();
    assert_eq!(client.get_user(&anne.id).await.unwrap().username, None);
    client.remove_user(&anne.id).await.unwrap();
    assert_eq!(
        api_code(client.get_user(&anne.id).await),
        ErrorCode::UserNotFound
    );
    assert_eq!(
        api_code(client.remove_user(&owner.id).await),
        ErrorCode::OwnerProtected
    );
}
