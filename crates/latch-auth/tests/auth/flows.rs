//! Login flows (reference §4, §6, §7; HA `test_init.py` MFA tests, `mfa_modules/test_totp.py`,
//! `providers/test_trusted_networks.py`, `components/auth/test_login_flow.py`).

use chrono::TimeDelta;
use latch_auth::{AuthConfig, AuthError, FlowOutcome, ProviderConfig, UserUpdate};
use latch_models::User;
use latch_provider::{AbortReason, ErrorKey, FieldType, FlowContext, Form};
use latch_provider_trusted_networks::TrustedNetworksConfig;

use crate::common::{
    CLIENT_ID, Enrolment, Harness, OWNER_PASSWORD, ctx, expect_abort, expect_done, expect_form,
    form_input, ha_config, ip, lan, totp_code, trusted_networks_config, wrong_code,
};
use crate::pin::{PIN_MODULE_ID, PIN_MODULE_NAME, PinModule};

const ANNE_PW: &str = "anne-pw";

/// The owner and Anne, a user with a password.
async fn with_anne(h: &Harness) -> User {
    h.onboard().await;
    h.user_with_password("Anne", "anne", ANNE_PW).await
}

/// Anne with TOTP enrolled.
async fn with_anne_totp(h: &Harness) -> (User, Enrolment) {
    let anne = with_anne(h).await;
    let enrolment = h.enrol_totp(&anne.id, "totp").await;
    (anne, enrolment)
}

/// Starts a flow and posts Anne's password; returns the flow id and the next form.
async fn past_password(h: &Harness) -> (String, Form) {
    let flow = h.start(lan()).await;
    let (same, form) = expect_form(
        h.post(&flow, &[("username", "anne"), ("password", ANNE_PW)], lan())
            .await,
    );
    assert_eq!(same, flow);
    (flow, form)
}

fn select_options(form: &Form) -> Vec<(String, String)> {
    match &form.fields[..] {
        [field] => match &field.field_type {
            FieldType::Select { options } => options.clone(),
            other => panic!("expected a select field, got {other:?}"),
        },
        other => panic!("expected one field, got {other:?}"),
    }
}

// ----- starting and continuing -----

#[tokio::test]
async fn unknown_handler_is_invalid_handler() {
    let h = Harness::new();
    for (t, id) in [
        ("insecure_example", None),
        ("homeassistant", Some("other")),
        ("trusted_networks", None),
    ] {
        let result = h.manager.start_login_flow(t, id, ctx(lan())).await;
        assert!(
            matches!(result, Err(AuthError::InvalidHandler)),
            "{t} {id:?}: {result:?}"
        );
    }
    assert_eq!(h.manager.login_flows_in_progress(), 0);
}

#[tokio::test]
async fn login_flow_needs_a_client_id() {
    let h = Harness::new();
    let context = FlowContext {
        ip_address: lan(),
        ..FlowContext::default()
    };
    let result = h
        .manager
        .start_login_flow("homeassistant", None, context)
        .await;
    assert!(matches!(result, Err(AuthError::InvalidRequest(_))));
}

#[tokio::test]
async fn first_step_asks_for_username_and_password() {
    let h = Harness::new();
    let outcome = h
        .manager
        .start_login_flow("homeassistant", None, ctx(lan()))
        .await
        .unwrap();
    let FlowOutcome::Form { handler, form, .. } = outcome else {
        panic!("expected a form");
    };
    assert_eq!(handler.provider_type, "homeassistant");
    assert_eq!(handler.provider_id, None);
    assert_eq!(form.step_id, "init");
    let names: Vec<_> = form.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["username", "password"]);
    assert!(form.errors.is_empty());
}

#[tokio::test]
async fn wrong_password_shows_invalid_auth_and_the_flow_can_retry() {
    let h = Harness::new();
    let anne = with_anne(&h).await;
    let flow = h.start(lan()).await;

    let (same, form) = expect_form(
        h.post(
            &flow,
            &[("username", "anne"), ("password", "ANNE-PW")],
            lan(),
        )
        .await,
    );
    assert_eq!(same, flow);
    assert_eq!(form.step_id, "init");
    assert_eq!(form.base_error(), Some(ErrorKey::InvalidAuth.as_str()));

    let tokens = expect_done(
        h.post(&flow, &[("username", "anne"), ("password", ANNE_PW)], lan())
            .await,
    );
    assert_eq!(tokens.user_id, anne.id);
}

#[tokio::test]
async fn unknown_username_shows_invalid_auth() {
    let h = Harness::new();
    with_anne(&h).await;
    let (_, form) = expect_form(h.login("nobody", ANNE_PW, lan()).await);
    assert_eq!(form.base_error(), Some("invalid_auth"));
}

#[tokio::test]
async fn malformed_input_is_refused_and_the_flow_stays() {
    let h = Harness::new();
    let anne = with_anne(&h).await;
    let flow = h.start(lan()).await;

    let missing = h
        .manager
        .continue_login_flow(&flow, form_input(&[("username", "anne")]), lan())
        .await;
    assert!(matches!(missing, Err(AuthError::InputMalformed)));
    let mut not_a_string = form_input(&[("username", "anne")]);
    not_a_string.insert("password".into(), serde_json::json!(12345));
    let wrong_type = h
        .manager
        .continue_login_flow(&flow, not_a_string, lan())
        .await;
    assert!(matches!(wrong_type, Err(AuthError::InputMalformed)));

    let tokens = expect_done(
        h.post(&flow, &[("username", "anne"), ("password", ANNE_PW)], lan())
            .await,
    );
    assert_eq!(tokens.user_id, anne.id);
}

#[tokio::test]
async fn continuing_from_another_address_is_ip_changed() {
    let h = Harness::new();
    with_anne(&h).await;
    let flow = h.start(lan()).await;

    let result = h
        .manager
        .continue_login_flow(
            &flow,
            form_input(&[("username", "anne"), ("password", ANNE_PW)]),
            Some(ip("192.168.1.99")),
        )
        .await;
    assert!(matches!(result, Err(AuthError::IpChanged)));

    expect_done(
        h.post(&flow, &[("username", "anne"), ("password", ANNE_PW)], lan())
            .await,
    );
}

#[tokio::test]
async fn finished_flow_cannot_be_continued() {
    let h = Harness::new();
    with_anne(&h).await;
    let flow = h.start(lan()).await;
    expect_done(
        h.post(&flow, &[("username", "anne"), ("password", ANNE_PW)], lan())
            .await,
    );
    let result = h
        .manager
        .continue_login_flow(
            &flow,
            form_input(&[("username", "anne"), ("password", ANNE_PW)]),
            lan(),
        )
        .await;
    assert!(matches!(result, Err(AuthError::FlowNotFound)));
    assert_eq!(h.manager.login_flows_in_progress(), 0);
}

#[tokio::test]
async fn aborted_flow_cannot_be_continued() {
    let h = Harness::new();
    with_anne(&h).await;
    let flow = h.start(lan()).await;
    h.manager.abort_login_flow(&flow).unwrap();
    assert!(matches!(
        h.manager.abort_login_flow(&flow),
        Err(AuthError::FlowNotFound)
    ));
    let result = h
        .manager
        .continue_login_flow(
            &flow,
            form_input(&[("username", "anne"), ("password", ANNE_PW)]),
            lan(),
        )
        .await;
    assert!(matches!(result, Err(AuthError::FlowNotFound)));
}

#[tokio::test]
async fn login_issues_a_normal_token_for_the_flows_client() {
    let h = Harness::new();
    let anne = with_anne(&h).await;
    let tokens = h.login_tokens("anne", ANNE_PW, lan()).await;
    let rt = h
        .manager
        .refresh_token(tokens.refresh_token_id.as_str())
        .unwrap();
    assert_eq!(rt.user_id, anne.id);
    assert_eq!(rt.client_id.as_deref(), Some(CLIENT_ID));
    assert_eq!(rt.token, tokens.refresh_token);
    assert_eq!(rt.last_used_ip.as_deref(), Some(crate::common::LAN));
    assert_eq!(
        rt.credential_id,
        h.manager
            .password_credential_of(anne.id.as_str())
            .map(|c| c.id)
    );
}

// ----- blocked users -----

#[tokio::test]
async fn local_only_user_from_a_remote_address_is_blocked() {
    let h = Harness::new();
    let anne = with_anne(&h).await;
    h.manager
        .update_user(
            anne.id.as_str(),
            UserUpdate {
                local_only: Some(true),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();

    let reason = expect_abort(h.login("anne", ANNE_PW, Some(ip("8.8.8.8"))).await);
    assert_eq!(reason, AbortReason::LoginBlocked);
    assert!(h.manager.refresh_tokens_of(anne.id.as_str()).is_empty());

    expect_done(h.login("anne", ANNE_PW, lan()).await);
}

#[tokio::test]
async fn inactive_user_is_blocked() {
    let h = Harness::new();
    let anne = with_anne(&h).await;
    h.manager.deactivate_user(anne.id.as_str()).await.unwrap();

    let reason = expect_abort(h.login("anne", ANNE_PW, lan()).await);

    assert_eq!(reason, AbortReason::LoginBlocked);
    assert!(h.manager.refresh_tokens_of(anne.id.as_str()).is_empty());
}

// ----- MFA (reference §4.3, §7) -----

#[tokio::test]
async fn single_mfa_module_goes_straight_to_the_mfa_step() {
    let h = Harness::new();
    with_anne_totp(&h).await;
    let (_, form) = past_password(&h).await;
    assert_eq!(form.step_id, "mfa");
    let names: Vec<_> = form.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["code"]);
    assert_eq!(form.description_placeholders["mfa_module_id"], "totp");
    assert_eq!(
        form.description_placeholders["mfa_module_name"],
        "Authenticator app"
    );
}

#[tokio::test]
async fn right_totp_code_finishes_the_login() {
    let h = Harness::new();
    let (anne, enrolment) = with_anne_totp(&h).await;
    let (flow, _) = past_password(&h).await;
    let code = totp_code(&enrolment.secret, h.now());
    let tokens = expect_done(h.post(&flow, &[("code", &code)], lan()).await);
    assert_eq!(tokens.user_id, anne.id);
}

#[tokio::test]
async fn code_of_the_previous_or_next_step_is_accepted() {
    let h = Harness::new();
    let (_, enrolment) = with_anne_totp(&h).await;
    h.advance(TimeDelta::seconds(60));
    for delta in [-30, 30] {
        let (flow, _) = past_password(&h).await;
        let code = totp_code(&enrolment.secret, h.now() + TimeDelta::seconds(delta));
        expect_done(h.post(&flow, &[("code", &code)], lan()).await);
    }
}

#[tokio::test]
async fn wrong_totp_code_shows_invalid_code() {
    let h = Harness::new();
    let (_, enrolment) = with_anne_totp(&h).await;
    let (flow, _) = past_password(&h).await;
    let wrong = wrong_code(&enrolment.secret, h.now());

    let (same, form) = expect_form(h.post(&flow, &[("code", &wrong)], lan()).await);

    assert_eq!(same, flow);
    assert_eq!(form.step_id, "mfa");
    assert_eq!(form.base_error(), Some(ErrorKey::InvalidCode.as_str()));
    let code = totp_code(&enrolment.secret, h.now());
    expect_done(h.post(&flow, &[("code", &code)], lan()).await);
}

#[tokio::test]
async fn five_wrong_totp_codes_abort_with_too_many_retry() {
    let h = Harness::new();
    let (_, enrolment) = with_anne_totp(&h).await;
    let (flow, _) = past_password(&h).await;
    let wrong = wrong_code(&enrolment.secret, h.now());
    for _ in 0..4 {
        let (_, form) = expect_form(h.post(&flow, &[("code", &wrong)], lan()).await);
        assert_eq!(form.base_error(), Some("invalid_code"));
    }

    let reason = expect_abort(h.post(&flow, &[("code", &wrong)], lan()).await);

    assert_eq!(reason, AbortReason::TooManyRetry);
    let code = totp_code(&enrolment.secret, h.now());
    let result = h
        .manager
        .continue_login_flow(&flow, form_input(&[("code", &code)]), lan())
        .await;
    assert!(matches!(result, Err(AuthError::FlowNotFound)));
}

#[tokio::test]
async fn mfa_more_than_5_minutes_after_the_flow_started_is_login_expired() {
    let h = Harness::new();
    let (anne, enrolment) = with_anne_totp(&h).await;
    let flow = h.start(lan()).await;
    // The password comes 4 minutes in: the 5 minutes count from the flow's creation.
    h.advance(TimeDelta::minutes(4));
    let (_, form) = expect_form(
        h.post(&flow, &[("username", "anne"), ("password", ANNE_PW)], lan())
            .await,
    );
    assert_eq!(form.step_id, "mfa");
    h.advance(TimeDelta::minutes(1) + TimeDelta::seconds(1));
    let code = totp_code(&enrolment.secret, h.now());

    let reason = expect_abort(h.post(&flow, &[("code", &code)], lan()).await);

    assert_eq!(reason, AbortReason::LoginExpired);
    assert!(h.manager.refresh_tokens_of(anne.id.as_str()).is_empty());
}

#[tokio::test]
async fn totp_code_used_in_one_login_is_refused_in_the_next() {
    let h = Harness::new();
    let (_, enrolment) = with_anne_totp(&h).await;
    let code = totp_code(&enrolment.secret, h.now());
    let (first, _) = past_password(&h).await;
    expect_done(h.post(&first, &[("code", &code)], lan()).await);

    let (second, _) = past_password(&h).await;
    let (_, form) = expect_form(h.post(&second, &[("code", &code)], lan()).await);

    assert_eq!(form.base_error(), Some("code_already_used"));
}

#[tokio::test]
async fn setup_code_cannot_be_replayed_at_login() {
    let h = Harness::new();
    let anne = with_anne(&h).await;
    let secret = {
        let outcome = h
            .manager
            .start_mfa_setup(anne.id.as_str(), "totp")
            .await
            .unwrap();
        let latch_auth::SetupOutcome::Form { flow_id, form } = outcome else {
            panic!("expected a form");
        };
        let secret = form.description_placeholders["code"].clone();
        let code = totp_code(&secret, h.now());
        h.manager
            .continue_mfa_setup(flow_id.as_str(), None, form_input(&[("code", &code)]))
            .await
            .unwrap();
        secret
    };
    let (flow, _) = past_password(&h).await;
    let setup_code = totp_code(&secret, h.now());
    let (_, form) = expect_form(h.post(&flow, &[("code", &setup_code)], lan()).await);
    assert_eq!(form.base_error(), Some("code_already_used"));
}

#[tokio::test]
async fn recovery_code_works_once() {
    let h = Harness::new();
    let (anne, enrolment) = with_anne_totp(&h).await;
    let recovery = enrolment.recovery_codes[0].clone();

    let (first, _) = past_password(&h).await;
    let tokens = expect_done(h.post(&first, &[("code", &recovery)], lan()).await);
    assert_eq!(tokens.user_id, anne.id);

    let (second, _) = past_password(&h).await;
    let (_, form) = expect_form(h.post(&second, &[("code", &recovery)], lan()).await);
    assert_eq!(form.base_error(), Some("invalid_code"));
    let other = enrolment.recovery_codes[1].clone();
    expect_done(h.post(&second, &[("code", &other)], lan()).await);
}

#[tokio::test]
async fn setup_flow_of_another_user_is_not_found() {
    let h = Harness::new();
    let anne = with_anne(&h).await;
    let owner = h.manager.users()[0].clone();
    let outcome = h
        .manager
        .start_mfa_setup(anne.id.as_str(), "totp")
        .await
        .unwrap();
    let latch_auth::SetupOutcome::Form { flow_id, form } = outcome else {
        panic!("expected a form");
    };
    let code = totp_code(&form.description_placeholders["code"], h.now());
    let result = h
        .manager
        .continue_mfa_setup(
            flow_id.as_str(),
            Some(owner.id.as_str()),
            form_input(&[("code", &code)]),
        )
        .await;
    assert!(matches!(result, Err(AuthError::FlowNotFound)));
    assert!(h.manager.enabled_mfa(&anne.id).is_empty());
    assert!(h.manager.enabled_mfa(&owner.id).is_empty());
}

#[tokio::test]
async fn system_user_cannot_set_up_mfa() {
    let h = Harness::new();
    let user = h
        .manager
        .create_system_user(Some("Supervisor".into()), vec![], false)
        .await
        .unwrap();
    assert!(matches!(
        h.manager.start_mfa_setup(user.id.as_str(), "totp").await,
        Err(AuthError::SystemUser(_))
    ));
    assert!(matches!(
        h.manager.disable_mfa(user.id.as_str(), "totp").await,
        Err(AuthError::SystemUser(_))
    ));
}

#[tokio::test]
async fn unknown_mfa_module_is_refused() {
    let h = Harness::new();
    let anne = with_anne(&h).await;
    assert!(matches!(
        h.manager.start_mfa_setup(anne.id.as_str(), "sms").await,
        Err(AuthError::MfaModuleNotFound(m)) if m == "sms"
    ));
}

#[tokio::test]
async fn disabled_mfa_is_no_longer_asked_for() {
    let h = Harness::new();
    let (anne, _) = with_anne_totp(&h).await;
    h.manager
        .disable_mfa(anne.id.as_str(), "totp")
        .await
        .unwrap();
    // Disabling something not enabled is fine.
    h.manager
        .disable_mfa(anne.id.as_str(), "totp")
        .await
        .unwrap();
    expect_done(h.login("anne", ANNE_PW, lan()).await);
}

// ----- two modules -----

/// Anne with TOTP and a PIN.
async fn with_two_modules(h: &Harness, pin: &PinModule) -> (User, Enrolment) {
    let (anne, enrolment) = with_anne_totp(h).await;
    pin.set_pin(&anne.id, "4242");
    (anne, enrolment)
}

#[tokio::test]
async fn two_mfa_modules_ask_which_one_to_use() {
    let (h, pin) = Harness::with_pin_module();
    let (anne, _) = with_two_modules(&h, &pin).await;
    let (flow, form) = past_password(&h).await;
    assert_eq!(form.step_id, "select_mfa_module");
    assert_eq!(form.fields[0].name, "multi_factor_auth_module");
    assert_eq!(
        select_options(&form),
        [
            ("totp".to_owned(), "Authenticator app".to_owned()),
            (PIN_MODULE_ID.to_owned(), PIN_MODULE_NAME.to_owned()),
        ],
        "in configuration order"
    );

    let (_, form) = expect_form(
        h.post(&flow, &[("multi_factor_auth_module", PIN_MODULE_ID)], lan())
            .await,
    );
    assert_eq!(form.step_id, "mfa");
    assert_eq!(form.fields[0].name, "pin");
    assert_eq!(
        form.description_placeholders["mfa_module_id"],
        PIN_MODULE_ID
    );
    let tokens = expect_done(h.post(&flow, &[("pin", "4242")], lan()).await);
    assert_eq!(tokens.user_id, anne.id);
}

#[tokio::test]
async fn only_the_modules_the_user_set_up_are_asked_for() {
    let (h, pin) = Harness::with_pin_module();
    let anne = with_anne(&h).await;
    pin.set_pin(&anne.id, "4242");
    let (flow, form) = past_password(&h).await;
    assert_eq!(form.step_id, "mfa");
    assert_eq!(
        form.description_placeholders["mfa_module_id"],
        PIN_MODULE_ID
    );
    expect_done(h.post(&flow, &[("pin", "4242")], lan()).await);
}

#[tokio::test]
async fn choosing_a_module_that_is_not_offered_is_malformed_input() {
    let (h, pin) = Harness::with_pin_module();
    with_two_modules(&h, &pin).await;
    let (flow, _) = past_password(&h).await;

    let result = h
        .manager
        .continue_login_flow(
            &flow,
            form_input(&[("multi_factor_auth_module", "sms")]),
            lan(),
        )
        .await;

    assert!(matches!(result, Err(AuthError::InputMalformed)));
    // No choice at all: the form again, with invalid_auth_module (Home Assistant's plain
    // key is optional).
    let (_, form) = expect_form(h.post(&flow, &[], lan()).await);
    assert_eq!(form.step_id, "select_mfa_module");
    assert_eq!(form.base_error(), Some("invalid_auth_module"));
    assert!(!form.fields[0].required);
    let (_, form) = expect_form(
        h.post(&flow, &[("multi_factor_auth_module", "totp")], lan())
            .await,
    );
    assert_eq!(form.step_id, "mfa");
}

#[tokio::test]
async fn choosing_a_module_disabled_meanwhile_is_invalid_auth_module() {
    let (h, pin) = Harness::with_pin_module();
    let (anne, _) = with_two_modules(&h, &pin).await;
    let (flow, _) = past_password(&h).await;
    h.manager
        .disable_mfa(anne.id.as_str(), PIN_MODULE_ID)
        .await
        .unwrap();

    let (_, form) = expect_form(
        h.post(&flow, &[("multi_factor_auth_module", PIN_MODULE_ID)], lan())
            .await,
    );

    assert_eq!(form.step_id, "select_mfa_module");
    assert_eq!(
        form.base_error(),
        Some(ErrorKey::InvalidAuthModule.as_str())
    );
    assert_eq!(
        select_options(&form),
        [("totp".to_owned(), "Authenticator app".to_owned())]
    );
}

#[tokio::test]
async fn module_disabled_during_the_mfa_step_goes_back_to_select() {
    let (h, pin) = Harness::with_pin_module();
    let (anne, enrolment) = with_two_modules(&h, &pin).await;
    let (flow, _) = past_password(&h).await;
    expect_form(
        h.post(&flow, &[("multi_factor_auth_module", PIN_MODULE_ID)], lan())
            .await,
    );
    h.manager
        .disable_mfa(anne.id.as_str(), PIN_MODULE_ID)
        .await
        .unwrap();

    let (_, form) = expect_form(h.post(&flow, &[("pin", "4242")], lan()).await);

    assert_eq!(form.step_id, "select_mfa_module");
    assert_eq!(form.base_error(), Some("invalid_auth_module"));
    expect_form(
        h.post(&flow, &[("multi_factor_auth_module", "totp")], lan())
            .await,
    );
    let code = totp_code(&enrolment.secret, h.now());
    expect_done(h.post(&flow, &[("code", &code)], lan()).await);
}

#[tokio::test]
async fn module_default_retry_limit_is_three() {
    let (h, pin) = Harness::with_pin_module();
    let anne = with_anne(&h).await;
    pin.set_pin(&anne.id, "4242");
    let (flow, _) = past_password(&h).await;
    for _ in 0..2 {
        let (_, form) = expect_form(h.post(&flow, &[("pin", "0000")], lan()).await);
        assert_eq!(form.base_error(), Some("invalid_code"));
    }
    let reason = expect_abort(h.post(&flow, &[("pin", "0000")], lan()).await);
    assert_eq!(reason, AbortReason::TooManyRetry);
}

#[tokio::test]
async fn mfa_setup_flow_of_another_module_enables_it() {
    let (h, _pin) = Harness::with_pin_module();
    let anne = with_anne(&h).await;
    let outcome = h
        .manager
        .start_mfa_setup(anne.id.as_str(), PIN_MODULE_ID)
        .await
        .unwrap();
    let latch_auth::SetupOutcome::Form { flow_id, form } = outcome else {
        panic!("expected a form, got {outcome:?}");
    };
    assert_eq!(form.fields[0].name, "pin");
    let outcome = h
        .manager
        .continue_mfa_setup(
            flow_id.as_str(),
            Some(anne.id.as_str()),
            form_input(&[("pin", "9876")]),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, latch_auth::SetupOutcome::Done { .. }));
    let (flow, form) = past_password(&h).await;
    assert_eq!(
        form.description_placeholders["mfa_module_id"],
        PIN_MODULE_ID
    );
    expect_done(h.post(&flow, &[("pin", "9876")], lan()).await);
}

// ----- trusted networks (reference §6) -----

fn inside() -> Option<std::net::IpAddr> {
    Some(ip("192.168.0.10"))
}

fn outside() -> Option<std::net::IpAddr> {
    Some(ip("10.0.0.5"))
}

#[tokio::test]
async fn trusted_network_login_lists_users_and_skips_mfa() {
    let h = Harness::with_config(&trusted_networks_config());
    let owner = h.onboard().await;
    h.enrol_totp(&owner.id, "totp").await;
    h.manager
        .create_system_user(Some("Supervisor".into()), vec![], false)
        .await
        .unwrap();

    let outcome = h
        .manager
        .start_login_flow("trusted_networks", None, ctx(inside()))
        .await
        .unwrap();
    let (flow, form) = expect_form(outcome);
    assert_eq!(form.step_id, "init");
    assert_eq!(
        select_options(&form),
        [(owner.id.to_string(), "Paulus".to_owned())],
        "system users are not offered"
    );

    let tokens = expect_done(
        h.post(&flow, &[("user", owner.id.as_str())], inside())
            .await,
    );

    assert_eq!(tokens.user_id, owner.id);
    assert!(
        h.manager
            .validate_access_token(&tokens.access_token.token)
            .is_some()
    );
    let creds = h.manager.store().credentials_of(owner.id.as_str());
    assert!(
        creds
            .iter()
            .any(|c| c.auth_provider_type == "trusted_networks"
                && c.data_str("user_id") == Some(owner.id.as_str()))
    );
}

#[tokio::test]
async fn second_trusted_network_login_reuses_the_credential() {
    let h = Harness::with_config(&trusted_networks_config());
    let owner = h.onboard().await;
    for _ in 0..2 {
        let (flow, _) = expect_form(
            h.manager
                .start_login_flow("trusted_networks", None, ctx(inside()))
                .await
                .unwrap(),
        );
        expect_done(
            h.post(&flow, &[("user", owner.id.as_str())], inside())
                .await,
        );
    }
    let creds = h.manager.store().credentials_of(owner.id.as_str());
    assert_eq!(
        creds
            .iter()
            .filter(|c| c.auth_provider_type == "trusted_networks")
            .count(),
        1
    );
}

#[tokio::test]
async fn trusted_network_login_from_an_untrusted_address_is_invalid_handler() {
    let h = Harness::with_config(&trusted_networks_config());
    h.onboard().await;
    let result = h
        .manager
        .start_login_flow("trusted_networks", None, ctx(outside()))
        .await;
    assert!(matches!(result, Err(AuthError::InvalidHandler)));
    let result = h
        .manager
        .start_login_flow("trusted_networks", None, ctx(None))
        .await;
    assert!(matches!(result, Err(AuthError::InvalidHandler)));
    let offered: Vec<_> = h
        .manager
        .login_providers(outside())
        .iter()
        .map(|p| p.provider_type().to_owned())
        .collect();
    assert_eq!(offered, ["homeassistant"]);
}

#[tokio::test]
async fn trusted_network_token_cannot_be_refreshed_from_outside() {
    let h = Harness::with_config(&trusted_networks_config());
    let owner = h.onboard().await;
    let (flow, _) = expect_form(
        h.manager
            .start_login_flow("trusted_networks", None, ctx(inside()))
            .await
            .unwrap(),
    );
    let tokens = expect_done(
        h.post(&flow, &[("user", owner.id.as_str())], inside())
            .await,
    );
    let value = tokens.refresh_token.expose();

    let result = h.manager.refresh(value, Some(CLIENT_ID), outside());
    assert!(
        matches!(&result, Err(AuthError::AccessDenied(m)) if m == "Not in trusted_networks"),
        "{result:?}"
    );
    let result = h.manager.refresh(value, Some(CLIENT_ID), None);
    assert!(matches!(result, Err(AuthError::AccessDenied(_))));
    assert!(
        h.manager
            .refresh(value, Some(CLIENT_ID), Some(ip("192.168.0.77")))
            .is_ok()
    );
}

#[tokio::test]
async fn trusted_network_minting_from_outside_is_refused_by_the_provider() {
    let h = Harness::with_config(&trusted_networks_config());
    let owner = h.onboard().await;
    let (flow, _) = expect_form(
        h.manager
            .start_login_flow("trusted_networks", None, ctx(inside()))
            .await
            .unwrap(),
    );
    let tokens = expect_done(
        h.post(&flow, &[("user", owner.id.as_str())], inside())
            .await,
    );
    let result = h
        .manager
        .create_access_token(tokens.refresh_token_id.as_str(), outside());
    assert!(matches!(
        result,
        Err(AuthError::Provider(
            latch_provider::ProviderError::InvalidAuth(_)
        ))
    ));
}

#[tokio::test]
async fn trusted_network_bypass_logs_the_only_user_in_at_once() {
    let tn: TrustedNetworksConfig = serde_json::from_value(serde_json::json!({
        "trusted_networks": ["192.168.0.0/24"],
        "allow_bypass_login": true,
    }))
    .unwrap();
    let h = Harness::with_config(&AuthConfig {
        auth_providers: vec![
            ProviderConfig::Homeassistant(ha_config()),
            ProviderConfig::TrustedNetworks(tn),
        ],
        mfa_modules: vec![],
    });
    let owner = h.onboard().await;

    let outcome = h
        .manager
        .start_login_flow("trusted_networks", None, ctx(inside()))
        .await
        .unwrap();

    assert_eq!(expect_done(outcome).user_id, owner.id);
}

#[tokio::test]
async fn password_login_still_asks_for_mfa_with_trusted_networks_configured() {
    let h = Harness::with_config(&trusted_networks_config());
    let owner = h.onboard().await;
    h.enrol_totp(&owner.id, "totp").await;
    let flow = h.start(inside()).await;
    let (_, form) = expect_form(
        h.post(
            &flow,
            &[("username", "paulus"), ("password", OWNER_PASSWORD)],
            inside(),
        )
        .await,
    );
    assert_eq!(form.step_id, "mfa");
}

// ----- flow bounds (latch) -----

#[tokio::test]
async fn abandoned_flow_expires_after_the_flow_ttl() {
    let h = Harness::with_options(|o| o.flow_ttl_secs = 600);
    with_anne(&h).await;
    let flow = h.start(lan()).await;
    h.advance(TimeDelta::seconds(600));

    let result = h
        .manager
        .continue_login_flow(
            &flow,
            form_input(&[("username", "anne"), ("password", ANNE_PW)]),
            lan(),
        )
        .await;

    assert!(matches!(result, Err(AuthError::FlowNotFound)));
}

#[tokio::test]
async fn flow_is_kept_until_the_flow_ttl() {
    let h = Harness::with_options(|o| o.flow_ttl_secs = 600);
    with_anne(&h).await;
    let flow = h.start(lan()).await;
    h.advance(TimeDelta::seconds(599));
    expect_done(
        h.post(&flow, &[("username", "anne"), ("password", ANNE_PW)], lan())
            .await,
    );
}

#[tokio::test]
async fn oldest_flow_is_dropped_past_max_flows() {
    let h = Harness::with_options(|o| o.max_flows = 2);
    with_anne(&h).await;
    let oldest = h.start(lan()).await;
    h.advance(TimeDelta::seconds(1));
    let middle = h.start(lan()).await;
    h.advance(TimeDelta::seconds(1));
    let newest = h.start(lan()).await;

    assert_eq!(h.manager.login_flows_in_progress(), 2);
    let input = form_input(&[("username", "anne"), ("password", ANNE_PW)]);
    let result = h.manager.continue_login_flow(&oldest, input, lan()).await;
    assert!(matches!(result, Err(AuthError::FlowNotFound)));
    for flow in [middle, newest] {
        expect_done(
            h.post(&flow, &[("username", "anne"), ("password", ANNE_PW)], lan())
                .await,
        );
    }
}

// ----- recovery codes -----

#[tokio::test]
async fn regenerated_recovery_codes_replace_the_old_set() {
    let h = Harness::new();
    let (anne, enrolment) = with_anne_totp(&h).await;

    let fresh = h
        .manager
        .regenerate_recovery_codes(anne.id.as_str(), "totp")
        .await
        .unwrap();

    assert_eq!(fresh.len(), 10);
    let (flow, _) = past_password(&h).await;
    let (_, form) = expect_form(
        h.post(&flow, &[("code", &enrolment.recovery_codes[0])], lan())
            .await,
    );
    assert_eq!(form.base_error(), Some("invalid_code"));
    expect_done(h.post(&flow, &[("code", &fresh[0])], lan()).await);
}

#[tokio::test]
async fn recovery_codes_need_the_module_set_up() {
    let h = Harness::new();
    let anne = with_anne(&h).await;
    let result = h
        .manager
        .regenerate_recovery_codes(anne.id.as_str(), "totp")
        .await;
    assert!(matches!(result, Err(AuthError::InvalidRequest(_))));
}

#[tokio::test]
async fn mfa_at_exactly_5_minutes_is_still_accepted() {
    let h = Harness::new();
    let (_, enrolment) = with_anne_totp(&h).await;
    let flow = h.start(lan()).await;
    expect_form(
        h.post(&flow, &[("username", "anne"), ("password", ANNE_PW)], lan())
            .await,
    );
    h.advance(TimeDelta::minutes(5));
    let code = totp_code(&enrolment.secret, h.now());
    expect_done(h.post(&flow, &[("code", &code)], lan()).await);
}

#[tokio::test(start_paused = true)]
async fn concurrent_request_for_the_same_flow_is_flow_busy() {
    // Two failures make the next attempt wait a second (on paused time): the first
    // request holds the flow while it waits.
    let h = Harness::with_throttle(latch_auth::ThrottleConfig {
        delay_after: 2,
        ..latch_auth::ThrottleConfig::default()
    });
    with_anne(&h).await;
    let flow = h.start(lan()).await;
    for _ in 0..2 {
        expect_form(
            h.post(&flow, &[("username", "anne"), ("password", "wrong")], lan())
                .await,
        );
    }
    let input = || form_input(&[("username", "anne"), ("password", ANNE_PW)]);

    let (first, second) = tokio::join!(
        h.manager.continue_login_flow(&flow, input(), lan()),
        h.manager.continue_login_flow(&flow, input(), lan()),
    );

    assert!(matches!(first, Ok(FlowOutcome::Done { .. })), "{first:?}");
    assert!(matches!(second, Err(AuthError::FlowBusy)), "{second:?}");
}

#[tokio::test]
async fn local_only_user_from_a_mapped_lan_address_logs_in() {
    let h = Harness::new();
    let anne = with_anne(&h).await;
    h.manager
        .update_user(
            anne.id.as_str(),
            UserUpdate {
                local_only: Some(true),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    let mapped = Some(ip("::ffff:192.168.1.20"));
    expect_done(h.login("anne", ANNE_PW, mapped).await);
    let reason = expect_abort(h.login("anne", ANNE_PW, Some(ip("::ffff:8.8.8.8"))).await);
    assert_eq!(reason, AbortReason::LoginBlocked);
}

#[tokio::test]
async fn token_of_a_provider_no_longer_configured_cannot_be_refreshed() {
    let h = Harness::with_config(&trusted_networks_config());
    let owner = h.onboard().await;
    let (flow, _) = expect_form(
        h.manager
            .start_login_flow("trusted_networks", None, ctx(inside()))
            .await
            .unwrap(),
    );
    let tokens = expect_done(
        h.post(&flow, &[("user", owner.id.as_str())], inside())
            .await,
    );
    h.manager.store().close().await.unwrap();

    let reopened = crate::common::open_manager(
        &h.home,
        &crate::common::default_config(),
        &h.clock,
        latch_auth::ThrottleConfig::default(),
    );
    let result = reopened.refresh(tokens.refresh_token.expose(), Some(CLIENT_ID), inside());

    assert!(
        matches!(&result, Err(AuthError::InvalidProvider(p)) if p == "trusted_networks"),
        "{result:?}"
    );
}

#[tokio::test]
async fn finished_setup_flow_is_gone() {
    let h = Harness::new();
    let anne = with_anne(&h).await;
    let outcome = h
        .manager
        .start_mfa_setup(anne.id.as_str(), "totp")
        .await
        .unwrap();
    let latch_auth::SetupOutcome::Form { flow_id, form } = outcome else {
        panic!("expected a form, got {outcome:?}");
    };
    let code = totp_code(&form.description_placeholders["code"], h.now());
    let input = form_input(&[("code", &code)]);
    h.manager
        .continue_mfa_setup(flow_id.as_str(), None, input.clone())
        .await
        .unwrap();
    let again = h
        .manager
        .continue_mfa_setup(flow_id.as_str(), None, input)
        .await;
    assert!(matches!(again, Err(AuthError::FlowNotFound)));
}

#[tokio::test]
async fn aborted_setup_flow_sets_nothing_up() {
    let h = Harness::new();
    let anne = with_anne(&h).await;
    let outcome = h
        .manager
        .start_mfa_setup(anne.id.as_str(), "totp")
        .await
        .unwrap();
    let latch_auth::SetupOutcome::Form { flow_id, form } = outcome else {
        panic!("expected a form, got {outcome:?}");
    };
    h.manager.abort_mfa_setup(flow_id.as_str()).unwrap();
    let code = totp_code(&form.description_placeholders["code"], h.now());
    let result = h
        .manager
        .continue_mfa_setup(flow_id.as_str(), None, form_input(&[("code", &code)]))
        .await;
    assert!(matches!(result, Err(AuthError::FlowNotFound)));
    assert!(h.manager.enabled_mfa(&anne.id).is_empty());
}

#[tokio::test]
async fn login_tokens_use_the_configured_access_token_lifetime() {
    let h = Harness::with_options(|o| o.access_token_lifetime_secs = 600);
    with_anne(&h).await;
    let tokens = h.login_tokens("anne", ANNE_PW, lan()).await;
    assert_eq!(tokens.access_token.expires_in, 600);
    let claims = crate::common::jwt_claims(&tokens.access_token.token);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    let fresh = h
        .manager
        .refresh(tokens.refresh_token.expose(), Some(CLIENT_ID), lan())
        .unwrap();
    assert_eq!(fresh.expires_in, 600, "refreshes keep the token's lifetime");
}
