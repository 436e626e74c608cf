//! The setup flow (Home Assistant's `TotpSetupFlow`, websocket `auth/setup_mfa`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use common::{env, env_with};
use latch_mfa_totp::{
    TotpConfig, TotpError, code_at, decode_secret, provisioning_uri, qr_png, qr_terminal,
};
use latch_models::User;
use latch_provider::{ErrorKey, Form, MfaModule, ProviderError, SetupStep};
use serde_json::{Map, Value, json};

fn input(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn form(step: SetupStep) -> Form {
    match step {
        SetupStep::Form(f) => f,
        other => panic!("expected a form, got {other:?}"),
    }
}

fn placeholder<'a>(f: &'a Form, name: &str) -> &'a str {
    f.description_placeholders
        .get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no placeholder {name}"))
}

#[tokio::test]
async fn first_step_shows_secret_uri_and_qr_codes_and_stores_nothing() {
    let env = env();
    let user = env.add_user(Some("Paulus")).await;
    let mut flow = env.totp.setup_flow(&user).unwrap();
    let f = form(flow.step(None).await.unwrap());

    assert_eq!(f.step_id, "init");
    assert_eq!(f.fields.len(), 1);
    assert_eq!(f.fields[0].name, "code");
    assert!(f.errors.is_empty());

    let secret = placeholder(&f, "code");
    assert_eq!(secret.len(), 32);
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
    );
    assert_eq!(decode_secret(secret).unwrap().len(), 20);
    assert_eq!(
        placeholder(&f, "url"),
        format!("otpauth://totp/Home%20Assistant:Paulus?secret={secret}&issuer=Home%20Assistant")
    );
    let svg = placeholder(&f, "qr_code");
    assert!(svg.starts_with("<svg height=\""), "{svg}");
    assert!(svg.ends_with("\"/></svg>"));
    assert!(!svg.contains('\n') && !svg.contains("<?xml"));
    let terminal = placeholder(&f, "qr_terminal");
    assert!(terminal.contains('█') && terminal.lines().count() > 10);
    assert_eq!(terminal, qr_terminal(placeholder(&f, "url")).unwrap());
    let png = base64::engine::general_purpose::STANDARD
        .decode(placeholder(&f, "qr_png"))
        .unwrap();
    assert_eq!(png, qr_png(placeholder(&f, "url")).unwrap());

    // Not stored until confirmed.
    assert!(!env.totp.is_user_setup(&user.id));
    assert_eq!(env.store.totp_secret(user.id.as_str()), None);
}

#[tokio::test]
async fn a_wrong_code_keeps_the_secret_and_says_invalid_code() {
    let env = env();
    let user = env.add_user(Some("Paulus")).await;
    let mut flow = env.totp.setup(&user).unwrap();
    let first = form(flow.step_input(None).await.unwrap());
    let secret = placeholder(&first, "code").to_owned();

    let right = code_at(&secret, env.now()).unwrap();
    for wrong in [
        "000000".to_owned(),
        String::new(),
        format!("{right}0"),
        "abc".to_owned(),
    ] {
        if wrong == right {
            continue;
        }
        let again = form(
            flow.step_input(Some(&input(json!({"code": wrong}))))
                .await
                .unwrap(),
        );
        assert_eq!(again.base_error(), Some(ErrorKey::InvalidCode.as_str()));
        assert_eq!(again.step_id, "init");
        assert_eq!(
            placeholder(&again, "code"),
            secret,
            "the secret is not regenerated"
        );
        assert_eq!(placeholder(&again, "url"), placeholder(&first, "url"));
        assert_eq!(
            placeholder(&again, "qr_code"),
            placeholder(&first, "qr_code")
        );
    }
    assert!(!env.totp.is_user_setup(&user.id));

    // The right code still finishes afterwards.
    let done = flow
        .step_input(Some(&input(json!({"code": right}))))
        .await
        .unwrap();
    assert!(matches!(done, SetupStep::Done { .. }));
}

#[tokio::test]
async fn the_right_code_stores_the_secret_and_cannot_be_replayed_at_login() {
    let env = env();
    let user = env.add_user(Some("Paulus")).await;
    let mut flow = env.totp.setup_flow(&user).unwrap();
    let f = form(flow.step(None).await.unwrap());
    let secret = placeholder(&f, "code").to_owned();
    let code = code_at(&secret, env.now()).unwrap();

    let SetupStep::Done { recovery_codes } = flow
        .step(Some(&input(json!({"code": code.clone()}))))
        .await
        .unwrap()
    else {
        panic!("expected done");
    };
    assert_eq!(recovery_codes.len(), 10);
    for c in &recovery_codes {
        assert_eq!(c.len(), 11);
        assert_eq!(c.as_bytes()[5], b'-');
    }
    assert!(env.totp.is_user_setup(&user.id));
    assert_eq!(
        env.store.totp_secret(user.id.as_str()).unwrap().expose(),
        secret
    );
    let step = u64::try_from(env.now() / 30).unwrap();
    assert_eq!(
        env.store.totp_state(user.id.as_str()).unwrap().last_step,
        Some(step)
    );

    // The code typed during setup does not log in.
    assert!(!env.totp.validate_code(&user.id, &code).await.unwrap());
    // The next step's code does.
    env.advance(30);
    let next = code_at(&secret, env.now()).unwrap();
    assert!(env.totp.validate_code(&user.id, &next).await.unwrap());

    // The flow is over.
    assert!(matches!(
        flow.step(Some(&input(json!({"code": next})))).await,
        Err(ProviderError::Internal(_))
    ));
}

#[tokio::test]
async fn setup_accepts_the_current_step_only() {
    let env = env();
    let user = env.add_user(Some("Paulus")).await;
    let mut flow = env.totp.setup(&user).unwrap();
    flow.step_input(None).await.unwrap();
    let secret = flow.secret().unwrap().expose().to_owned();
    let now = env.now();
    let current = code_at(&secret, now).unwrap();
    for other in [now - 30, now + 30] {
        let code = code_at(&secret, other).unwrap();
        if code == current {
            continue;
        }
        let f = form(
            flow.step_input(Some(&input(json!({"code": code}))))
                .await
                .unwrap(),
        );
        assert_eq!(f.base_error(), Some("invalid_code"));
    }
}

#[tokio::test]
async fn no_input_or_empty_input_regenerates_the_secret() {
    let env = env();
    let user = env.add_user(Some("Paulus")).await;
    let mut flow = env.totp.setup(&user).unwrap();
    let a = form(flow.step_input(None).await.unwrap());
    let b = form(flow.step_input(Some(&Map::new())).await.unwrap());
    assert_ne!(placeholder(&a, "code"), placeholder(&b, "code"));
    assert!(b.errors.is_empty());
    assert_eq!(flow.secret().unwrap().expose(), placeholder(&b, "code"));
}

#[tokio::test]
async fn a_code_before_any_secret_gets_a_fresh_secret() {
    let env = env();
    let user = env.add_user(Some("Paulus")).await;
    let mut flow = env.totp.setup(&user).unwrap();
    let f = form(
        flow.step_input(Some(&input(json!({"code": "123456"}))))
            .await
            .unwrap(),
    );
    assert_eq!(f.base_error(), Some("invalid_code"));
    assert_eq!(placeholder(&f, "code").len(), 32);
    assert!(!env.totp.is_user_setup(&user.id));
}

#[tokio::test]
async fn system_users_are_refused() {
    let env = env();
    let mut user = User::new(Some("Supervisor".into()));
    user.system_generated = true;
    assert!(matches!(
        env.totp.setup_flow(&user).unwrap_err(),
        ProviderError::NotSupported(_)
    ));
    assert!(matches!(
        env.totp.setup(&user),
        Err(TotpError::SystemUser(_))
    ));
}

#[tokio::test]
async fn enrolling_again_replaces_secret_and_recovery_codes() {
    let env = env();
    let user = env.add_user(Some("Paulus")).await;
    let mut codes = Vec::new();
    let mut secrets = Vec::new();
    for _ in 0..2 {
        let mut flow = env.totp.setup(&user).unwrap();
        flow.step_input(None).await.unwrap();
        let secret = flow.secret().unwrap().expose().to_owned();
        let code = code_at(&secret, env.now()).unwrap();
        let SetupStep::Done { recovery_codes } = flow
            .step_input(Some(&input(json!({"code": code}))))
            .await
            .unwrap()
        else {
            panic!("expected done");
        };
        codes.push(recovery_codes);
        secrets.push(secret);
        env.advance(30);
    }
    assert_ne!(secrets[0], secrets[1]);
    assert_eq!(
        env.store.totp_secret(user.id.as_str()).unwrap().expose(),
        secrets[1]
    );
    assert!(
        !env.totp
            .validate_code(&user.id, &codes[0][0])
            .await
            .unwrap()
    );
    assert!(
        env.totp
            .validate_code(&user.id, &codes[1][0])
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn the_flow_for_a_user_missing_from_the_store_fails_cleanly() {
    let env = env();
    let user = User::new(Some("Ghost".into()));
    let mut flow = env.totp.setup(&user).unwrap();
    flow.step_input(None).await.unwrap();
    let secret = flow.secret().unwrap().expose().to_owned();
    let code = code_at(&secret, env.now()).unwrap();
    let err = flow
        .step_input(Some(&input(json!({"code": code}))))
        .await
        .unwrap_err();
    assert!(matches!(err, TotpError::UnknownUser(_)), "{err}");
    assert!(!env.totp.is_user_setup(&user.id));
}

// ----- the provisioning URI -----

#[tokio::test]
async fn uri_label_uses_the_display_name() {
    let cases: [(Option<&str>, &str); 7] = [
        (Some("Paulus"), "Paulus"),
        (Some("Test Name"), "Test%20Name"),
        (Some("a/b c"), "a/b%20c"),
        (Some("Zoë 家"), "Zo%C3%AB%20%E5%AE%B6"),
        (None, "None"),
        (Some("x:y?z&w#v%u+t=s"), "x%3Ay%3Fz%26w%23v%25u%2Bt%3Ds"),
        (Some("a_b.c-d~e"), "a_b.c-d~e"),
    ];
    let env = env();
    for (name, label) in cases {
        let user = env.add_user(name).await;
        let mut flow = env.totp.setup_flow(&user).unwrap();
        let f = form(flow.step(None).await.unwrap());
        let secret = placeholder(&f, "code");
        assert_eq!(
            placeholder(&f, "url"),
            format!(
                "otpauth://totp/Home%20Assistant:{label}?secret={secret}&issuer=Home%20Assistant"
            ),
            "{name:?}"
        );
        assert_eq!(
            provisioning_uri(secret, name, "Home Assistant"),
            placeholder(&f, "url")
        );
    }
}

#[tokio::test]
async fn a_configured_issuer_is_encoded_like_pyotp() {
    let env = env_with(TotpConfig {
        issuer: "My Home/Lab".into(),
        ..TotpConfig::default()
    });
    let user = env.add_user(Some("Paulus")).await;
    let mut flow = env.totp.setup(&user).unwrap();
    let f = form(flow.step_input(None).await.unwrap());
    let secret = placeholder(&f, "code");
    // The label keeps '/', the query parameter (urlencode) escapes it.
    assert_eq!(
        placeholder(&f, "url"),
        format!("otpauth://totp/My%20Home/Lab:Paulus?secret={secret}&issuer=My%20Home%2FLab")
    );
}
