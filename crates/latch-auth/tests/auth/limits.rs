//! Every string the manager takes from a caller has a documented cap (and names have a
//! content rule): one byte over is refused with a clear error naming the field and the
//! limit, the cap itself is accepted, and nothing refused changes anything. Text echoed
//! from input (a failed login's username) is escaped and cut wherever it is kept.
//! Names in an existing Home Assistant directory are not subject to the caps.

use latch_auth::{AuthError, AuthEvent, FlowOutcome, UserUpdate};
use latch_models::limits::{LimitError, MAX_ECHO_BYTES};
use latch_models::permissions::NoRegistry;
use latch_models::{GroupId, PermissionKey};
use latch_provider::ProviderError;
use latch_provider_homeassistant::password;
use latch_store::{Store, StoreOptions};
use serde_json::json;

use crate::common::{
    CLIENT_ID, Harness, OWNER_PASSWORD, ctx, drain, expect_done, expect_form, form_input, lan,
};

fn too_long(r: &Result<impl std::fmt::Debug, AuthError>, field: &str, max: usize) {
    match r {
        Err(AuthError::Limit(LimitError::TooLong {
            field: f, max: m, ..
        })) => {
            assert_eq!((*f, *m), (field, max), "{r:?}");
            let message = r.as_ref().unwrap_err().to_string();
            assert!(
                message.contains(field) && message.contains(&max.to_string()),
                "{message}"
            );
        }
        other => panic!("expected {field} to be too long, got {other:?}"),
    }
}

fn control_character(r: &Result<impl std::fmt::Debug, AuthError>, field: &str) {
    assert!(
        matches!(r, Err(AuthError::Limit(LimitError::ControlCharacter { field: f, .. })) if *f == field),
        "expected a control character in {field}, got {r:?}"
    );
}

#[tokio::test]
async fn display_names_are_capped_and_free_of_control_characters() {
    let h = Harness::new();
    let at_cap = "n".repeat(255);
    let over = "n".repeat(256);
    let user = h
        .manager
        .create_user(Some(at_cap), None, false)
        .await
        .unwrap();
    too_long(
        &h.manager.create_user(Some(over.clone()), None, false).await,
        "name",
        255,
    );
    too_long(
        &h.manager
            .create_system_user(Some(over.clone()), Vec::new(), false)
            .await,
        "name",
        255,
    );
    control_character(
        &h.manager
            .create_user(Some("Eve\u{1b}]0;owned\u{7}".into()), None, false)
            .await,
        "name",
    );
    let rename = |name: String| UserUpdate {
        name: Some(Some(name)),
        ..UserUpdate::default()
    };
    too_long(
        &h.manager
            .update_user(user.id.as_str(), rename(over.clone()))
            .await,
        "name",
        255,
    );
    control_character(
        &h.manager
            .update_user(user.id.as_str(), rename("two\nlines".into()))
            .await,
        "name",
    );
    assert_eq!(h.manager.users().len(), 1, "nothing refused was created");
    too_long(
        &h.manager
            .onboard(Some(over), "paulus", OWNER_PASSWORD)
            .await,
        "name",
        255,
    );
}

#[tokio::test]
async fn usernames_are_capped_at_255_bytes_without_control_characters() {
    let h = Harness::new();
    let long = "u".repeat(256);
    let r = h
        .manager
        .onboard(Some("P".into()), &long, OWNER_PASSWORD)
        .await;
    assert!(
        matches!(
            &r,
            Err(AuthError::Provider(ProviderError::InvalidUsername {
                key: "username_too_long",
                ..
            }))
        ),
        "{r:?}"
    );
    assert!(h.manager.users().is_empty(), "no half onboarding");
    let owner = h
        .manager
        .onboard(Some("P".into()), &"u".repeat(255), OWNER_PASSWORD)
        .await
        .unwrap();
    let anne = h
        .manager
        .create_user(Some("Anne".into()), None, false)
        .await
        .unwrap();
    for bad in ["anne\u{1b}[2j", "an\nne", "anne\u{202e}"] {
        let r = h
            .manager
            .add_password_login(anne.id.as_str(), bad, "pw")
            .await;
        assert!(
            matches!(
                &r,
                Err(AuthError::Provider(ProviderError::InvalidUsername {
                    key: "username_invalid_character",
                    ..
                }))
            ),
            "{bad:?}: {r:?}"
        );
    }
    assert!(h.manager.password_credential_of(anne.id.as_str()).is_none());
    h.manager
        .add_password_login(anne.id.as_str(), "anne", "pw")
        .await
        .unwrap();
    let r = h.manager.change_username(owner.id.as_str(), &long).await;
    assert!(matches!(
        r,
        Err(AuthError::Provider(ProviderError::InvalidUsername {
            key: "username_too_long",
            ..
        }))
    ));
}

#[tokio::test]
async fn group_ids_client_names_icons_and_ids_are_capped() {
    let h = Harness::new();
    let owner = h.onboard().await;
    too_long(
        &h.manager
            .create_user(None, Some(vec![GroupId::from("g".repeat(256))]), false)
            .await,
        "group id",
        255,
    );
    // An unknown group id is named in the error, echoed within bounds.
    let r = h
        .manager
        .create_user(None, Some(vec![GroupId::from("nope\u{1b}[2J")]), false)
        .await;
    match r {
        Err(AuthError::InvalidGroup(g)) => assert_eq!(g, "nope\\u{1b}[2J"),
        other => panic!("{other:?}"),
    }
    let uid = owner.id.as_str();
    too_long(
        &h.manager
            .create_long_lived_token(uid, &"c".repeat(256), None, 1)
            .await,
        "client name",
        255,
    );
    control_character(
        &h.manager
            .create_long_lived_token(uid, "car\u{9b}2J", None, 1)
            .await,
        "client name",
    );
    too_long(
        &h.manager
            .create_long_lived_token(uid, "car", Some("i".repeat(256)), 1)
            .await,
        "client icon",
        255,
    );
    h.manager
        .create_long_lived_token(uid, &"c".repeat(255), Some("i".repeat(255)), 1)
        .await
        .unwrap();
    let long_url = format!("https://{}", "x".repeat(2_041));
    assert_eq!(long_url.len(), 2_049);
    too_long(
        &h.manager
            .create_refresh_token(
                uid,
                latch_token::NewRefreshToken::normal(long_url.clone(), None),
            )
            .await,
        "client id",
        2_048,
    );
    let mut c = ctx(lan());
    c.client_id = Some(long_url.clone());
    too_long(
        &h.manager.start_login_flow("homeassistant", None, c).await,
        "client id",
        2_048,
    );
    let mut c = ctx(lan());
    c.redirect_uri = Some(long_url.clone());
    too_long(
        &h.manager.start_login_flow("homeassistant", None, c).await,
        "redirect uri",
        2_048,
    );
    assert_eq!(h.manager.login_flows_in_progress(), 0);
    let tokens = h.login_tokens("paulus", OWNER_PASSWORD, lan()).await;
    too_long(
        &h.manager
            .refresh(tokens.refresh_token.expose(), Some(&long_url), lan()),
        "client id",
        2_048,
    );
    // Entity ids: Home Assistant's own 255.
    let lookup: latch_auth::SharedLookup = std::sync::Arc::new(NoRegistry);
    too_long(
        &h.manager.check_permission(
            uid,
            &format!("light.{}", "k".repeat(250)),
            PermissionKey::Read,
            lookup.clone(),
        ),
        "entity id",
        255,
    );
    assert!(
        h.manager
            .check_permission(
                uid,
                &format!("light.{}", "k".repeat(249)),
                PermissionKey::Read,
                lookup
            )
            .is_ok()
    );
}

#[tokio::test]
async fn tokens_past_8_kib_are_refused_without_work() {
    let h = Harness::new();
    let owner = h.onboard().await;
    let tokens = h.login_tokens("paulus", OWNER_PASSWORD, lan()).await;
    let padded = format!("{}{}", tokens.access_token.token, " ".repeat(8_192));
    assert!(h.manager.validate_access_token(&padded).is_none());
    assert!(
        h.manager
            .validate_access_token(&tokens.access_token.token)
            .is_some()
    );
    let huge = "r".repeat(8_193);
    assert!(matches!(
        h.manager.refresh(&huge, Some(CLIENT_ID), lan()),
        Err(AuthError::InvalidGrant)
    ));
    h.manager.revoke_by_value(&huge).await.unwrap();
    assert_eq!(h.manager.refresh_tokens_of(owner.id.as_str()).len(), 1);
}

#[tokio::test]
async fn form_values_and_flow_ids_are_capped_and_the_flow_survives() {
    let h = Harness::new();
    h.onboard().await;
    let mut rx = h.subscribe();
    let flow = h.start(lan()).await;
    let long = "p".repeat(1_025);
    let r = h
        .manager
        .continue_login_flow(
            &flow,
            form_input(&[("username", "paulus"), ("password", &long)]),
            lan(),
        )
        .await;
    too_long(&r, "form value", 1_024);
    let r = h
        .manager
        .continue_login_flow(
            &flow,
            form_input(&[("username", &long), ("password", "x")]),
            lan(),
        )
        .await;
    too_long(&r, "form value", 1_024);
    assert!(drain(&mut rx).is_empty(), "nothing was checked or counted");
    assert!(h.manager.lockouts().is_empty());
    too_long(
        &h.manager
            .continue_login_flow(&"f".repeat(256), form_input(&[]), lan())
            .await,
        "flow id",
        255,
    );
    // The flow is still there and logs in.
    expect_done(
        h.post(
            &flow,
            &[("username", "paulus"), ("password", OWNER_PASSWORD)],
            lan(),
        )
        .await,
    );
}

#[tokio::test]
async fn mfa_setup_values_and_module_ids_are_capped() {
    let h = Harness::new();
    let owner = h.onboard().await;
    let r = h
        .manager
        .start_mfa_setup(owner.id.as_str(), &"m".repeat(5_000))
        .await;
    match r {
        Err(AuthError::MfaModuleNotFound(echoed)) => assert!(echoed.len() <= MAX_ECHO_BYTES),
        other => panic!("{other:?}"),
    }
    let latch_auth::SetupOutcome::Form { flow_id, .. } = h
        .manager
        .start_mfa_setup(owner.id.as_str(), "totp")
        .await
        .unwrap()
    else {
        panic!("expected the setup form")
    };
    too_long(
        &h.manager
            .continue_mfa_setup(
                flow_id.as_str(),
                None,
                form_input(&[("code", &"1".repeat(1_025))]),
            )
            .await,
        "form value",
        1_024,
    );
    too_long(
        &h.manager
            .continue_mfa_setup(&"f".repeat(256), None, form_input(&[]))
            .await,
        "flow id",
        255,
    );
}

#[tokio::test]
async fn passwords_are_capped_at_1024_bytes() {
    let h = Harness::new();
    let owner = h.onboard().await;
    let r = h
        .manager
        .set_password(owner.id.as_str(), &"p".repeat(1_025))
        .await;
    assert!(
        matches!(r, Err(AuthError::Provider(ProviderError::Limit(_)))),
        "{r:?}"
    );
    h.manager
        .set_password(owner.id.as_str(), &"p".repeat(1_024))
        .await
        .unwrap();
    // bcrypt reads 72 bytes: the first 72 log in.
    h.login_tokens("paulus", &"p".repeat(72), lan()).await;
}

/// A failed login with a long username full of escape sequences: the event, the
/// throttle key and the lockout list hold at most 255 bytes of it, with every control
/// character escaped (events) or replaced (keys).
#[tokio::test]
async fn a_long_hostile_username_is_echoed_escaped_and_cut() {
    let h = Harness::new();
    h.onboard().await;
    let mut rx = h.subscribe();
    let hostile = format!("evil\u{1b}[2J\u{1b}[31m{}", "\u{1b}x".repeat(300));
    assert!(hostile.len() <= 1_024);
    let (_, form) = expect_form(h.login(&hostile, "whatever", lan()).await);
    assert_eq!(form.base_error(), Some("invalid_auth"));
    let events = drain(&mut rx);
    let [
        AuthEvent::LoginFailed {
            username: Some(username),
            ..
        },
    ] = events.as_slice()
    else {
        panic!("{events:?}")
    };
    assert!(username.len() <= MAX_ECHO_BYTES, "{}", username.len());
    assert!(
        username.starts_with("evil\\u{1b}[2J\\u{1b}[31m"),
        "{username}"
    );
    assert!(username.ends_with('…'));
    assert!(!username.chars().any(char::is_control));
    let text = serde_json::to_string(&events[0]).unwrap();
    assert!(!text.contains('\u{1b}'));
    let lockouts = h.manager.lockouts();
    assert_eq!(lockouts.len(), 2);
    for l in &lockouts {
        let shown = l.key.to_string();
        assert!(shown.len() <= MAX_ECHO_BYTES + "username:".len(), "{shown}");
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
    }
}

/// Home Assistant caps nothing: a directory with a 2,000-character username and a
/// 131 KB display name loads, its users validate and can be updated, and a stored
/// username over latch's 255-byte cap (but within a form value) logs in.
#[tokio::test]
async fn a_home_assistant_directory_with_names_over_the_caps_loads_and_works() {
    let home = tempfile::tempdir().unwrap();
    let storage = home.path().join(".storage");
    std::fs::create_dir(&storage).unwrap();
    let hash = password::hash(&password::CutPassword::new("pw"), 4).unwrap();
    let stored = password::encode_for_storage(&hash).expose().to_owned();
    let huge_name = "N".repeat(131 * 1024);
    let long_username = "l".repeat(300);
    let giant_username = "g".repeat(2_000);
    let auth = json!({
        "version": 1, "minor_version": 1, "key": "auth",
        "data": {
            "users": [
                {"id": "u1", "group_ids": ["system-admin"], "is_owner": true, "is_active": true,
                 "name": huge_name, "system_generated": false, "local_only": false},
                {"id": "u2", "group_ids": ["system-users"], "is_owner": false, "is_active": true,
                 "name": "Giant", "system_generated": false, "local_only": false},
            ],
            "groups": [],
            "credentials": [
                {"id": "c1", "user_id": "u1", "auth_provider_type": "homeassistant",
                 "auth_provider_id": null, "data": {"username": long_username}},
                {"id": "c2", "user_id": "u2", "auth_provider_type": "homeassistant",
                 "auth_provider_id": null, "data": {"username": giant_username}},
            ],
            "refresh_tokens": [],
        }
    });
    let provider = json!({
        "version": 1, "minor_version": 1, "key": "auth_provider.homeassistant",
        "data": {"users": [
            {"username": long_username, "password": stored},
            {"username": giant_username, "password": stored},
        ]}
    });
    std::fs::write(storage.join("auth"), auth.to_string()).unwrap();
    std::fs::write(
        storage.join("auth_provider.homeassistant"),
        provider.to_string(),
    )
    .unwrap();

    let store = Store::open(home.path(), StoreOptions::default()).unwrap();
    let manager = latch_auth::AuthManager::from_config(
        store,
        &crate::common::default_config(),
        latch_auth::ManagerOptions::default(),
    )
    .unwrap();
    let owner = manager.user("u1").unwrap();
    assert_eq!(owner.name.as_deref().map(str::len), Some(131 * 1024));
    assert_eq!(
        manager.username_of("u2").as_deref(),
        Some(giant_username.as_str())
    );
    // Updating other fields leaves the stored name alone and is not refused for it.
    let updated = manager
        .update_user(
            "u1",
            UserUpdate {
                local_only: Some(true),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.name, owner.name);
    // The 300-byte username logs in.
    let outcome = manager
        .start_login_flow("homeassistant", None, ctx(lan()))
        .await
        .unwrap();
    let FlowOutcome::Form { flow_id, .. } = outcome else {
        panic!("{outcome:?}")
    };
    let outcome = manager
        .continue_login_flow(
            flow_id.as_str(),
            form_input(&[("username", &long_username), ("password", "pw")]),
            lan(),
        )
        .await
        .unwrap();
    let tokens = expect_done(outcome);
    assert_eq!(tokens.user_id.as_str(), "u1");
    assert!(
        manager
            .validate_access_token(&tokens.access_token.token)
            .is_some()
    );
    // The giant one can be renamed by an operator to a name that fits.
    manager.change_username("u2", "giant").await.unwrap();
}
