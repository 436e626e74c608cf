//! Login flows that end in an authorization code, and the `authorization_code` grant
//! (reference §3.8, §4.2, §4.5; HA `components/auth/test_init.py` code-store tests and
//! `test_login_flow.py`; PKCE as Home Assistant 2026 checks it).

use std::net::IpAddr;

use chrono::TimeDelta;
use latch_auth::{AUTH_CODE_LIFETIME, AuthError, CodeRefusal, FlowOutcome, UserUpdate};
use latch_provider::{AbortReason, FlowContext};

use crate::common::{
    CLIENT_ID, Harness, OWNER_PASSWORD, ctx, expect_abort, expect_form, form_input, ip, lan,
    totp_code, trusted_networks_config,
};

/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

const REMOTE: &str = "203.0.113.9";

fn check_redirect(outcome: FlowOutcome) -> (String, String, String) {
    match outcome {
        FlowOutcome::CheckRedirect {
            flow_id,
            client_id,
            redirect_uri,
            ..
        } => (flow_id.as_str().to_owned(), client_id, redirect_uri),
        other => panic!("expected the redirect check, got {other:?}"),
    }
}

fn code(outcome: FlowOutcome) -> String {
    match outcome {
        FlowOutcome::Code { code, .. } => code.expose().to_owned(),
        other => panic!("expected a code, got {other:?}"),
    }
}

fn refusal(outcome: FlowOutcome) -> CodeRefusal {
    match outcome {
        FlowOutcome::Refused { refusal, .. } => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Runs a `homeassistant` code flow for `username` from `source` up to its redirect
/// check; returns the flow id.
async fn authenticated(
    h: &Harness,
    username: &str,
    password: &str,
    source: Option<IpAddr>,
    challenge: Option<&str>,
) -> String {
    let outcome = h
        .manager
        .start_code_flow(
            "homeassistant",
            None,
            ctx(source),
            challenge.map(str::to_owned),
        )
        .await
        .unwrap();
    let (flow_id, form) = expect_form(outcome);
    assert_eq!(form.step_id, "init");
    let outcome = h
        .manager
        .continue_code_flow(
            &flow_id,
            form_input(&[("username", username), ("password", password)]),
            source,
        )
        .await
        .unwrap();
    let (same, client_id, redirect_uri) = check_redirect(outcome);
    assert_eq!(same, flow_id);
    assert_eq!(client_id, CLIENT_ID);
    assert_eq!(redirect_uri, format!("{CLIENT_ID}/callback"));
    flow_id
}

/// A code for the owner, issued from `source`.
async fn owner_code(h: &Harness, source: Option<IpAddr>, challenge: Option<&str>) -> String {
    let flow_id = authenticated(h, "paulus", OWNER_PASSWORD, source, challenge).await;
    code(h.manager.authorize_code_flow(&flow_id, true).await.unwrap())
}

#[tokio::test]
async fn a_code_flow_ends_in_a_code_that_is_exchanged_once_for_tokens() {
    let h = Harness::new();
    let owner = h.onboard().await;
    let code = owner_code(&h, lan(), None).await;
    assert_eq!(code.len(), 32);
    assert!(code.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(h.manager.pending_codes(), 1);
    assert_eq!(h.manager.login_flows_in_progress(), 0, "the flow is gone");

    let issued = h
        .manager
        .exchange_code(CLIENT_ID, &code, None, lan())
        .await
        .unwrap();
    assert_eq!(issued.provider_type, "homeassistant");
    assert_eq!(issued.tokens.user_id, owner.id);
    let token = h
        .manager
        .refresh_token(issued.tokens.refresh_token_id.as_str())
        .unwrap();
    assert_eq!(token.client_id.as_deref(), Some(CLIENT_ID));
    assert_eq!(token.last_used_ip.as_deref(), Some("192.168.1.20"));
    assert!(
        h.manager
            .validate_access_token(&issued.tokens.access_token.token)
            .is_some()
    );

    let again = h.manager.exchange_code(CLIENT_ID, &code, None, lan()).await;
    assert!(matches!(again, Err(AuthError::InvalidCode)), "{again:?}");
    assert_eq!(h.manager.pending_codes(), 0);
}

#[tokio::test]
async fn a_code_is_bound_to_its_client_and_a_wrong_client_does_not_use_it_up() {
    let h = Harness::new();
    h.onboard().await;
    let code = owner_code(&h, lan(), None).await;
    let other = h
        .manager
        .exchange_code("https://other.example/app", &code, None, lan())
        .await;
    assert!(matches!(other, Err(AuthError::InvalidCode)), "{other:?}");
    // Home Assistant keys codes by (client_id, code): the right client still can.
    h.manager
        .exchange_code(CLIENT_ID, &code, None, lan())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_code_expires_after_ten_minutes() {
    let h = Harness::new();
    h.onboard().await;
    let code = owner_code(&h, lan(), None).await;
    h.advance(AUTH_CODE_LIFETIME - TimeDelta::seconds(1));
    h.manager
        .exchange_code(CLIENT_ID, &code, None, lan())
        .await
        .unwrap();

    let code = owner_code(&h, lan(), None).await;
    h.advance(AUTH_CODE_LIFETIME);
    let late = h.manager.exchange_code(CLIENT_ID, &code, None, lan()).await;
    assert!(matches!(late, Err(AuthError::InvalidCode)), "{late:?}");
    assert_eq!(
        h.manager.pending_codes(),
        0,
        "an expired code is removed too"
    );
}

#[tokio::test]
async fn issuing_a_code_drops_expired_ones() {
    let h = Harness::new();
    h.onboard().await;
    owner_code(&h, lan(), None).await;
    owner_code(&h, lan(), None).await;
    assert_eq!(h.manager.pending_codes(), 2);
    h.advance(AUTH_CODE_LIFETIME);
    owner_code(&h, lan(), None).await;
    assert_eq!(h.manager.pending_codes(), 1);
}

#[tokio::test]
async fn pkce_binds_the_code_to_its_verifier() {
    let h = Harness::new();
    h.onboard().await;

    let code = owner_code(&h, lan(), Some(CHALLENGE)).await;
    let missing = h.manager.exchange_code(CLIENT_ID, &code, None, lan()).await;
    assert!(
        matches!(missing, Err(AuthError::CodeVerifierRequired)),
        "{missing:?}"
    );

    let code = owner_code(&h, lan(), Some(CHALLENGE)).await;
    let wrong = format!("{}x", &VERIFIER[..VERIFIER.len() - 1]);
    let bad = h
        .manager
        .exchange_code(CLIENT_ID, &code, Some(&wrong), lan())
        .await;
    assert!(
        matches!(bad, Err(AuthError::InvalidCodeVerifier)),
        "{bad:?}"
    );

    let code = owner_code(&h, lan(), Some(CHALLENGE)).await;
    let short = h
        .manager
        .exchange_code(CLIENT_ID, &code, Some("short"), lan())
        .await;
    assert!(
        matches!(short, Err(AuthError::InvalidCodeVerifier)),
        "{short:?}"
    );

    let code = owner_code(&h, lan(), None).await;
    let unexpected = h
        .manager
        .exchange_code(CLIENT_ID, &code, Some(VERIFIER), lan())
        .await;
    assert!(
        matches!(unexpected, Err(AuthError::UnexpectedCodeVerifier)),
        "{unexpected:?}"
    );

    let code = owner_code(&h, lan(), Some(CHALLENGE)).await;
    h.manager
        .exchange_code(CLIENT_ID, &code, Some(VERIFIER), lan())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_refused_redirect_uri_ends_the_flow_without_a_code_and_counts_as_a_failure() {
    let h = Harness::new();
    h.onboard().await;
    let mut events = h.subscribe();
    let flow_id = authenticated(&h, "paulus", OWNER_PASSWORD, lan(), None).await;
    let outcome = h
        .manager
        .authorize_code_flow(&flow_id, false)
        .await
        .unwrap();
    assert_eq!(refusal(outcome), CodeRefusal::InvalidRedirectUri);
    assert_eq!(h.manager.pending_codes(), 0);
    assert_eq!(h.manager.login_flows_in_progress(), 0);
    let failed = crate::common::drain(&mut events).into_iter().any(|e| {
        matches!(e, latch_auth::AuthEvent::LoginFailed { ref reason, .. } if reason == "invalid_redirect_uri")
    });
    assert!(failed, "login_failed fired");
    let gone = h.manager.authorize_code_flow(&flow_id, true).await;
    assert!(matches!(gone, Err(AuthError::FlowNotFound)), "{gone:?}");
}

#[tokio::test]
async fn a_local_only_user_from_a_remote_address_is_blocked_before_a_code() {
    let h = Harness::new();
    h.onboard().await;
    let lou = h.user_with_password("Lou", "lou", "lou-pw").await;
    h.manager
        .update_user(
            lou.id.as_str(),
            UserUpdate {
                local_only: Some(true),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    let remote = Some(ip(REMOTE));
    let flow_id = authenticated(&h, "lou", "lou-pw", remote, None).await;
    let outcome = h.manager.authorize_code_flow(&flow_id, true).await.unwrap();
    assert_eq!(
        refusal(outcome),
        CodeRefusal::LoginBlocked("User cannot authenticate remotely")
    );
    // From the LAN the same user gets a code.
    let flow_id = authenticated(&h, "lou", "lou-pw", lan(), None).await;
    code(h.manager.authorize_code_flow(&flow_id, true).await.unwrap());
}

#[tokio::test]
async fn a_user_deactivated_after_the_code_is_refused_at_the_exchange() {
    let h = Harness::new();
    h.onboard().await;
    let anne = h.user_with_password("Anne", "anne", "anne-pw").await;
    let flow_id = authenticated(&h, "anne", "anne-pw", lan(), None).await;
    let code = code(h.manager.authorize_code_flow(&flow_id, true).await.unwrap());
    h.manager.deactivate_user(anne.id.as_str()).await.unwrap();
    let denied = h.manager.exchange_code(CLIENT_ID, &code, None, lan()).await;
    match denied {
        Err(AuthError::AccessDenied(reason)) => assert_eq!(reason, "User is not active"),
        other => panic!("expected access denied, got {other:?}"),
    }
    assert!(h.manager.refresh_tokens_of(anne.id.as_str()).is_empty());
}

#[tokio::test]
async fn the_code_flow_runs_the_mfa_step_before_the_redirect_check() {
    let h = Harness::new();
    h.onboard().await;
    let anne = h.user_with_password("Anne", "anne", "anne-pw").await;
    let enrolment = h.enrol_totp(&anne.id, "totp").await;
    let outcome = h
        .manager
        .start_code_flow("homeassistant", None, ctx(lan()), None)
        .await
        .unwrap();
    let (flow_id, _) = expect_form(outcome);
    let outcome = h
        .manager
        .continue_code_flow(
            &flow_id,
            form_input(&[("username", "anne"), ("password", "anne-pw")]),
            lan(),
        )
        .await
        .unwrap();
    let (_, form) = expect_form(outcome);
    assert_eq!(form.step_id, "mfa");
    let totp = totp_code(&enrolment.secret, h.now());
    let outcome = h
        .manager
        .continue_code_flow(&flow_id, form_input(&[("code", &totp)]), lan())
        .await
        .unwrap();
    check_redirect(outcome);
    // Waiting for the check, the flow takes no more input.
    let busy = h
        .manager
        .continue_code_flow(&flow_id, form_input(&[("code", &totp)]), lan())
        .await;
    assert!(
        matches!(busy, Err(AuthError::InvalidRequest(_))),
        "{busy:?}"
    );
    code(h.manager.authorize_code_flow(&flow_id, true).await.unwrap());
}

#[tokio::test]
async fn token_and_code_flows_do_not_continue_each_other() {
    let h = Harness::new();
    h.onboard().await;
    let code_flow = {
        let outcome = h
            .manager
            .start_code_flow("homeassistant", None, ctx(lan()), None)
            .await
            .unwrap();
        expect_form(outcome).0
    };
    let input = form_input(&[("username", "paulus"), ("password", OWNER_PASSWORD)]);
    let r = h
        .manager
        .continue_login_flow(&code_flow, input.clone(), lan())
        .await;
    assert!(matches!(r, Err(AuthError::FlowNotFound)), "{r:?}");

    let token_flow = h.start(lan()).await;
    let r = h
        .manager
        .continue_code_flow(&token_flow, input, lan())
        .await;
    assert!(matches!(r, Err(AuthError::FlowNotFound)), "{r:?}");
    let r = h.manager.authorize_code_flow(&token_flow, true).await;
    assert!(matches!(r, Err(AuthError::FlowNotFound)), "{r:?}");
    // A code flow still at its form is not waiting for a redirect check.
    let r = h.manager.authorize_code_flow(&code_flow, true).await;
    assert!(matches!(r, Err(AuthError::InvalidRequest(_))), "{r:?}");
}

#[tokio::test]
async fn trusted_networks_code_flows_start_anywhere_and_refuse_outsiders() {
    let h = Harness::with_config(&trusted_networks_config());
    let owner = h.onboard().await;
    let outside = FlowContext {
        ip_address: Some(ip(REMOTE)),
        ..ctx(None)
    };
    // Home Assistant 2024.3 starts the flow and aborts it; a token flow is not found.
    let outcome = h
        .manager
        .start_code_flow("trusted_networks", None, outside.clone(), None)
        .await
        .unwrap();
    assert_eq!(expect_abort(outcome), AbortReason::NotAllowed);
    let r = h
        .manager
        .start_login_flow("trusted_networks", None, outside)
        .await;
    assert!(matches!(r, Err(AuthError::InvalidHandler)), "{r:?}");

    // From the trusted network: pick the owner, get a code; exchanging it from outside
    // the network is refused by the provider when the access token is minted.
    let inside = Some(ip("192.168.0.5"));
    let outcome = h
        .manager
        .start_code_flow("trusted_networks", None, ctx(inside), None)
        .await
        .unwrap();
    let (flow_id, _) = expect_form(outcome);
    let outcome = h
        .manager
        .continue_code_flow(&flow_id, form_input(&[("user", owner.id.as_str())]), inside)
        .await
        .unwrap();
    check_redirect(outcome);
    let code = code(h.manager.authorize_code_flow(&flow_id, true).await.unwrap());
    let denied = h
        .manager
        .exchange_code(CLIENT_ID, &code, None, Some(ip(REMOTE)))
        .await;
    match denied {
        Err(AuthError::AccessDenied(reason)) => assert_eq!(reason, "Not in trusted_networks"),
        other => panic!("expected access denied, got {other:?}"),
    }
    assert!(
        h.manager.refresh_tokens_of(owner.id.as_str()).is_empty(),
        "no refresh token is left behind"
    );
}

#[tokio::test]
async fn a_new_credential_gets_its_user_at_the_exchange() {
    let h = Harness::new();
    h.onboard().await;
    h.bare_password_entry("newcomer", "newcomer-pw").await;
    let before = h.manager.users().len();
    let flow_id = authenticated(&h, "newcomer", "newcomer-pw", lan(), None).await;
    let code = code(h.manager.authorize_code_flow(&flow_id, true).await.unwrap());
    assert_eq!(
        h.manager.users().len(),
        before,
        "no user before the exchange"
    );
    let issued = h
        .manager
        .exchange_code(CLIENT_ID, &code, None, lan())
        .await
        .unwrap();
    let user = h.manager.user(issued.tokens.user_id.as_str()).unwrap();
    assert_eq!(user.name.as_deref(), Some("newcomer"));
    assert_eq!(h.manager.users().len(), before + 1);
}
