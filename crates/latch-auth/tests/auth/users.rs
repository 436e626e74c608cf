//! Users: owner, admin, system and local-only rules; updates and removal (reference §2.5,
//! §3.7, §9; HA `test_init.py`).

use latch_auth::{AuthError, AuthEvent, UserUpdate};
use latch_models::{GROUP_ID_ADMIN, GROUP_ID_READ_ONLY, GROUP_ID_USER, GroupId, TokenType};
use latch_provider::{ErrorKey, ProviderError};
use latch_token::{NewRefreshToken, TokenError};

use crate::common::{CLIENT_ID, Harness, OWNER_PASSWORD, drain, expect_form, lan};

fn groups(ids: &[&str]) -> Vec<GroupId> {
    ids.iter().map(|g| GroupId::from(*g)).collect()
}

#[tokio::test]
async fn new_user_from_a_login_flow_is_not_owner_and_is_named_after_the_username() {
    let h = Harness::new();
    h.bare_password_entry("newbie", "pw-of-newbie").await;
    let mut rx = h.subscribe();

    let tokens = h.login_tokens("NewBie ", "pw-of-newbie", lan()).await;

    let user = h.manager.user(tokens.user_id.as_str()).unwrap();
    assert!(!user.is_owner, "users from credentials are never owners");
    assert!(user.is_active);
    assert_eq!(
        user.name.as_deref(),
        Some("newbie"),
        "the normalised username"
    );
    let events = drain(&mut rx);
    assert!(events.contains(&AuthEvent::UserAdded {
        user_id: user.id.clone()
    }));
    let creds = h.manager.store().credentials_of(user.id.as_str());
    assert_eq!(creds.len(), 1);
    assert_eq!(creds[0].data_str("username"), Some("newbie"));
}

#[tokio::test]
async fn user_created_from_credentials_goes_into_system_admin() {
    let h = Harness::new();
    h.onboard().await;
    h.bare_password_entry("newbie", "pw-of-newbie").await;

    let tokens = h.login_tokens("newbie", "pw-of-newbie", lan()).await;

    let user = h.manager.user(tokens.user_id.as_str()).unwrap();
    assert_eq!(user.group_ids, groups(&[GROUP_ID_ADMIN]));
    assert!(user.is_admin());
}

#[tokio::test]
async fn login_as_an_existing_user_reuses_their_credential() {
    let h = Harness::new();
    let owner = h.onboard().await;
    let credential = h.manager.password_credential_of(owner.id.as_str()).unwrap();

    let first = h.login_tokens("paulus", OWNER_PASSWORD, lan()).await;
    let second = h.login_tokens(" PAULUS", OWNER_PASSWORD, lan()).await;

    assert_eq!(first.user_id, owner.id);
    assert_eq!(second.user_id, owner.id);
    assert_eq!(h.manager.users().len(), 1);
    assert_eq!(h.manager.store().credentials_of(owner.id.as_str()).len(), 1);
    for t in [first, second] {
        let rt = h
            .manager
            .refresh_token(t.refresh_token_id.as_str())
            .unwrap();
        assert_eq!(rt.credential_id.as_ref(), Some(&credential.id));
    }
}

#[tokio::test]
async fn first_user_created_is_owner_and_admin_without_groups() {
    let h = Harness::new();
    let user = h
        .manager
        .create_user(Some("First".into()), None, false)
        .await
        .unwrap();
    assert!(user.is_owner);
    assert!(user.is_active);
    assert!(user.is_admin());
    assert!(user.group_ids.is_empty());
}

#[tokio::test]
async fn second_user_created_is_not_owner_or_admin() {
    let h = Harness::new();
    h.manager
        .create_user(Some("First".into()), None, false)
        .await
        .unwrap();
    let second = h
        .manager
        .create_user(Some("Second".into()), None, false)
        .await
        .unwrap();
    assert!(!second.is_owner);
    assert!(!second.is_admin());
    assert!(second.group_ids.is_empty());
}

#[tokio::test]
async fn user_in_system_admin_is_admin() {
    let h = Harness::new();
    h.onboard().await;
    let admin = h
        .manager
        .create_user(Some("Admin".into()), Some(groups(&[GROUP_ID_ADMIN])), false)
        .await
        .unwrap();
    let plain = h
        .manager
        .create_user(Some("Plain".into()), Some(groups(&[GROUP_ID_USER])), false)
        .await
        .unwrap();
    assert!(admin.is_admin());
    assert!(!plain.is_admin());
}

#[tokio::test]
async fn system_user_has_no_groups_by_default_and_fires_user_added() {
    let h = Harness::new();
    let mut rx = h.subscribe();
    let user = h
        .manager
        .create_system_user(Some("Supervisor".into()), vec![], false)
        .await
        .unwrap();
    assert!(user.system_generated);
    assert!(user.is_active);
    assert!(!user.is_owner);
    assert!(user.group_ids.is_empty());
    assert!(!user.local_only);
    assert_eq!(
        drain(&mut rx),
        [AuthEvent::UserAdded {
            user_id: user.id.clone()
        }]
    );
}

#[tokio::test]
async fn system_user_keeps_its_groups_and_local_only() {
    let h = Harness::new();
    let user = h
        .manager
        .create_system_user(
            Some("Home Assistant Cloud".into()),
            groups(&[GROUP_ID_ADMIN]),
            true,
        )
        .await
        .unwrap();
    assert_eq!(user.group_ids, groups(&[GROUP_ID_ADMIN]));
    assert!(user.local_only);
    assert!(user.is_admin());
    let stored = h.manager.user(user.id.as_str()).unwrap();
    assert_eq!(stored, user);
}

#[tokio::test]
async fn system_user_does_not_count_for_the_owner_rule() {
    let h = Harness::new();
    h.manager
        .create_system_user(Some("Supervisor".into()), vec![], false)
        .await
        .unwrap();
    let person = h
        .manager
        .create_user(Some("Person".into()), None, false)
        .await
        .unwrap();
    assert!(person.is_owner);
}

#[tokio::test]
async fn system_user_tokens_are_system_and_never_expire() {
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
    assert_eq!(token.token_type, TokenType::System);
    assert_eq!(token.expire_at, None);
    assert_eq!(token.client_id, None);
}

#[tokio::test]
async fn system_user_cannot_have_a_token_with_a_client_id() {
    let h = Harness::new();
    let user = h
        .manager
        .create_system_user(Some("Supervisor".into()), vec![], false)
        .await
        .unwrap();
    let params = NewRefreshToken {
        client_id: Some(CLIENT_ID.into()),
        ..NewRefreshToken::default()
    };
    let result = h
        .manager
        .create_refresh_token(user.id.as_str(), params)
        .await;
    assert!(matches!(
        result,
        Err(AuthError::Token(TokenError::SystemUserWithClient))
    ));
    assert!(h.manager.refresh_tokens_of(user.id.as_str()).is_empty());
}

#[tokio::test]
async fn system_users_cannot_be_updated() {
    let h = Harness::new();
    let user = h
        .manager
        .create_system_user(Some("Supervisor".into()), vec![], false)
        .await
        .unwrap();
    let result = h
        .manager
        .update_user(
            user.id.as_str(),
            UserUpdate {
                name: Some(Some("Renamed".into())),
                ..UserUpdate::default()
            },
        )
        .await;
    assert!(matches!(result, Err(AuthError::SystemUser(_))));
    assert_eq!(
        h.manager.user(user.id.as_str()).unwrap().name.as_deref(),
        Some("Supervisor")
    );
}

#[tokio::test]
async fn owner_cannot_be_deactivated() {
    let h = Harness::new();
    let owner = h.onboard().await;
    let result = h.manager.deactivate_user(owner.id.as_str()).await;
    assert!(matches!(result, Err(AuthError::OwnerProtected(_))));
    assert!(h.manager.user(owner.id.as_str()).unwrap().is_active);
}

#[tokio::test]
async fn owner_cannot_be_removed() {
    let h = Harness::new();
    let owner = h.onboard().await;
    let result = h.manager.remove_user(owner.id.as_str()).await;
    assert!(matches!(result, Err(AuthError::OwnerProtected(_))));
    assert!(h.manager.user(owner.id.as_str()).is_some());
    assert!(h.has_password_entry("paulus"));
}

#[tokio::test]
async fn update_user_fires_user_updated_every_time() {
    let h = Harness::new();
    let owner = h.onboard().await;
    let mut rx = h.subscribe();
    let renamed = h
        .manager
        .update_user(
            owner.id.as_str(),
            UserUpdate {
                name: Some(Some("Paulus S.".into())),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name.as_deref(), Some("Paulus S."));
    h.manager
        .update_user(owner.id.as_str(), UserUpdate::default())
        .await
        .unwrap();
    let updated = AuthEvent::UserUpdated {
        user_id: owner.id.clone(),
    };
    assert_eq!(drain(&mut rx), [updated.clone(), updated]);
}

#[tokio::test]
async fn deactivating_a_user_revokes_their_tokens() {
    let h = Harness::new();
    h.onboard().await;
    let anne = h.user_with_password("Anne", "anne", "anne-pw").await;
    let tokens = h.login_tokens("anne", "anne-pw", lan()).await;
    let mut rx = h.subscribe();

    let user = h.manager.deactivate_user(anne.id.as_str()).await.unwrap();

    assert!(!user.is_active);
    assert!(h.manager.refresh_tokens_of(anne.id.as_str()).is_empty());
    assert!(
        h.manager
            .validate_access_token(&tokens.access_token.token)
            .is_none()
    );
    assert!(drain(&mut rx).contains(&AuthEvent::RefreshTokenRevoked {
        user_id: anne.id.clone(),
        refresh_token_id: tokens.refresh_token_id.clone(),
    }));
}

#[tokio::test]
async fn remove_user_removes_credentials_password_entry_and_tokens() {
    let h = Harness::new();
    h.onboard().await;
    let anne = h.user_with_password("Anne", "anne", "anne-pw").await;
    let tokens = h.login_tokens("anne", "anne-pw", lan()).await;
    assert!(h.has_password_entry("anne"));
    let mut rx = h.subscribe();

    h.manager.remove_user(anne.id.as_str()).await.unwrap();

    assert!(h.manager.user(anne.id.as_str()).is_none());
    assert!(
        h.manager
            .store()
            .credentials_of(anne.id.as_str())
            .is_empty()
    );
    assert!(
        h.manager
            .refresh_token(tokens.refresh_token_id.as_str())
            .is_none()
    );
    assert!(!h.has_password_entry("anne"));
    assert!(
        h.manager
            .validate_access_token(&tokens.access_token.token)
            .is_none()
    );
    let events = drain(&mut rx);
    assert_eq!(
        events.last(),
        Some(&AuthEvent::UserRemoved {
            user_id: anne.id.clone()
        })
    );
    // The name no longer logs in.
    let (_, form) = expect_form(h.login("anne", "anne-pw", lan()).await);
    assert_eq!(form.base_error(), Some(ErrorKey::InvalidAuth.as_str()));
}

#[tokio::test]
async fn remove_user_deposes_their_mfa() {
    let h = Harness::new();
    h.onboard().await;
    let anne = h.user_with_password("Anne", "anne", "anne-pw").await;
    h.enrol_totp(&anne.id, "totp").await;
    assert!(h.manager.store().totp_secret(anne.id.as_str()).is_some());

    h.manager.remove_user(anne.id.as_str()).await.unwrap();

    assert!(h.manager.store().totp_secret(anne.id.as_str()).is_none());
}

#[tokio::test]
async fn creating_a_user_with_an_invalid_group_is_refused() {
    let h = Harness::new();
    let result = h
        .manager
        .create_user(Some("X".into()), Some(groups(&["no-such-group"])), false)
        .await;
    assert!(matches!(result, Err(AuthError::InvalidGroup(g)) if g == "no-such-group"));
    assert!(h.manager.users().is_empty());
}

#[tokio::test]
async fn updating_a_user_with_an_invalid_group_is_refused() {
    let h = Harness::new();
    h.onboard().await;
    let anne = h
        .manager
        .create_user(
            Some("Anne".into()),
            Some(groups(&[GROUP_ID_READ_ONLY])),
            false,
        )
        .await
        .unwrap();
    let result = h
        .manager
        .set_groups(anne.id.as_str(), groups(&[GROUP_ID_ADMIN, "no-such-group"]))
        .await;
    assert!(matches!(result, Err(AuthError::InvalidGroup(_))));
    assert_eq!(
        h.manager.user(anne.id.as_str()).unwrap().group_ids,
        groups(&[GROUP_ID_READ_ONLY])
    );
}

#[tokio::test]
async fn onboarding_twice_is_refused() {
    let h = Harness::new();
    h.onboard().await;
    let result = h
        .manager
        .onboard(Some("Intruder".into()), "intruder", "intruder-pw")
        .await;
    assert!(matches!(result, Err(AuthError::AlreadyOnboarded)));
    assert_eq!(h.manager.users().len(), 1);
    assert!(!h.has_password_entry("intruder"));
}

#[tokio::test]
async fn onboarding_puts_the_owner_in_system_admin_with_a_password_login() {
    let h = Harness::new();
    let owner = h.onboard().await;
    assert!(owner.is_owner && owner.is_active);
    assert_eq!(owner.group_ids, groups(&[GROUP_ID_ADMIN]));
    assert_eq!(
        h.manager.username_of(owner.id.as_str()).as_deref(),
        Some("paulus")
    );
    let tokens = h.login_tokens("paulus", OWNER_PASSWORD, lan()).await;
    assert_eq!(tokens.user_id, owner.id);
}

#[tokio::test]
async fn remove_user_completes_when_a_revoke_callback_fails() {
    let h = Harness::new();
    h.onboard().await;
    let anne = h.user_with_password("Anne", "anne", "anne-pw").await;
    let tokens = h.login_tokens("anne", "anne-pw", lan()).await;
    h.manager.register_revoke_callback(
        &tokens.refresh_token_id,
        Box::new(|| Err("connection already gone".into())),
    );
    let mut rx = h.subscribe();

    // The failing callback is logged; the removal goes through.
    h.manager.remove_user(anne.id.as_str()).await.unwrap();

    assert!(h.manager.user(anne.id.as_str()).is_none());
    assert!(
        h.manager
            .store()
            .credentials_of(anne.id.as_str())
            .is_empty()
    );
    assert!(!h.has_password_entry("anne"));
    assert!(drain(&mut rx).contains(&AuthEvent::UserRemoved {
        user_id: anne.id.clone()
    }));
}

#[tokio::test]
async fn deactivation_completes_when_a_revoke_callback_fails() {
    let h = Harness::new();
    h.onboard().await;
    let anne = h.user_with_password("Anne", "anne", "anne-pw").await;
    let first = h.login_tokens("anne", "anne-pw", lan()).await;
    let second = h.login_tokens("anne", "anne-pw", lan()).await;
    h.manager.register_revoke_callback(
        &first.refresh_token_id,
        Box::new(|| Err("connection already gone".into())),
    );
    let mut rx = h.subscribe();

    let user = h.manager.deactivate_user(anne.id.as_str()).await.unwrap();

    assert!(!user.is_active);
    assert!(h.manager.refresh_tokens_of(anne.id.as_str()).is_empty());
    assert!(
        h.manager
            .validate_access_token(&second.access_token.token)
            .is_none()
    );
    assert!(drain(&mut rx).contains(&AuthEvent::UserUpdated {
        user_id: anne.id.clone()
    }));
}

#[tokio::test]
async fn add_password_login_twice_is_credentials_exist() {
    let h = Harness::new();
    h.onboard().await;
    let anne = h.user_with_password("Anne", "anne", "anne-pw").await;
    let result = h
        .manager
        .add_password_login(anne.id.as_str(), "anne2", "other-pw")
        .await;
    assert!(matches!(result, Err(AuthError::CredentialsExist)));
    assert!(!h.has_password_entry("anne2"));
}

#[tokio::test]
async fn add_password_login_refuses_an_unnormalised_or_taken_username() {
    let h = Harness::new();
    h.onboard().await;
    let anne = h
        .manager
        .create_user(Some("Anne".into()), None, false)
        .await
        .unwrap();
    for (username, key) in [
        ("Anne", "username_not_normalized"),
        ("paulus", "username_already_exists"),
    ] {
        let result = h
            .manager
            .add_password_login(anne.id.as_str(), username, "anne-pw")
            .await;
        assert!(
            matches!(
                &result,
                Err(AuthError::Provider(latch_provider::ProviderError::InvalidUsername { key: k, .. })) if *k == key
            ),
            "{username}: {result:?}"
        );
    }
    assert!(h.manager.password_credential_of(anne.id.as_str()).is_none());
}

#[tokio::test]
async fn system_user_cannot_get_a_password_login() {
    let h = Harness::new();
    let user = h
        .manager
        .create_system_user(Some("Supervisor".into()), vec![], false)
        .await
        .unwrap();
    let result = h
        .manager
        .add_password_login(user.id.as_str(), "supervisor", "pw")
        .await;
    assert!(matches!(result, Err(AuthError::SystemUser(_))));
    assert!(!h.has_password_entry("supervisor"));
}

#[tokio::test]
async fn set_password_replaces_the_password() {
    let h = Harness::new();
    h.onboard().await;
    let anne = h.user_with_password("Anne", "anne", "anne-pw").await;

    h.manager
        .set_password(anne.id.as_str(), "new-anne-pw")
        .await
        .unwrap();

    let (_, form) = expect_form(h.login("anne", "anne-pw", lan()).await);
    assert_eq!(form.base_error(), Some("invalid_auth"));
    assert_eq!(
        h.login_tokens("anne", "new-anne-pw", lan()).await.user_id,
        anne.id
    );
}

#[tokio::test]
async fn change_own_password_needs_the_current_password() {
    let h = Harness::new();
    h.onboard().await;
    let anne = h.user_with_password("Anne", "anne", "anne-pw").await;

    let result = h
        .manager
        .change_own_password(anne.id.as_str(), "guess", "new-anne-pw", lan())
        .await;
    assert!(
        matches!(
            result,
            Err(AuthError::Provider(ProviderError::InvalidAuth(_)))
        ),
        "{result:?}"
    );
    h.login_tokens("anne", "anne-pw", lan()).await;

    h.manager
        .change_own_password(anne.id.as_str(), "anne-pw", "new-anne-pw", lan())
        .await
        .unwrap();
    h.login_tokens("anne", "new-anne-pw", lan()).await;
}

#[tokio::test]
async fn change_username_keeps_the_user_and_their_credential() {
    let h = Harness::new();
    h.onboard().await;
    let anne = h.user_with_password("Anne", "anne", "anne-pw").await;
    let credential = h.manager.password_credential_of(anne.id.as_str()).unwrap();

    h.manager
        .change_username(anne.id.as_str(), "annie")
        .await
        .unwrap();

    assert_eq!(
        h.manager.username_of(anne.id.as_str()).as_deref(),
        Some("annie")
    );
    assert_eq!(
        h.manager
            .password_credential_of(anne.id.as_str())
            .unwrap()
            .id,
        credential.id
    );
    assert_eq!(
        h.login_tokens("annie", "anne-pw", lan()).await.user_id,
        anne.id
    );
    let (_, form) = expect_form(h.login("anne", "anne-pw", lan()).await);
    assert_eq!(form.base_error(), Some("invalid_auth"));
    assert_eq!(h.manager.users().len(), 2);
}

#[tokio::test]
async fn remove_credential_revokes_the_tokens_issued_through_it() {
    let h = Harness::new();
    h.onboard().await;
    let anne = h.user_with_password("Anne", "anne", "anne-pw").await;
    let tokens = h.login_tokens("anne", "anne-pw", lan()).await;
    let (llat, _) = h
        .manager
        .create_long_lived_token(anne.id.as_str(), "Car", None, 10)
        .await
        .unwrap();
    let credential = h.manager.password_credential_of(anne.id.as_str()).unwrap();

    h.manager
        .remove_credential(credential.id.as_str())
        .await
        .unwrap();

    assert!(h.manager.password_credential_of(anne.id.as_str()).is_none());
    assert!(!h.has_password_entry("anne"));
    assert!(
        h.manager
            .refresh_token(tokens.refresh_token_id.as_str())
            .is_none()
    );
    assert!(
        h.manager.refresh_token(llat.id.as_str()).is_some(),
        "a token not issued through the credential stays"
    );
    assert!(h.manager.user(anne.id.as_str()).is_some());
}

#[tokio::test]
async fn the_owners_credentials_cannot_be_removed() {
    let h = Harness::new();
    let owner = h.onboard().await;
    let credential = h.manager.password_credential_of(owner.id.as_str()).unwrap();
    let result = h.manager.remove_credential(credential.id.as_str()).await;
    assert!(
        matches!(result, Err(AuthError::OwnerProtected(_))),
        "{result:?}"
    );
    assert!(
        h.manager
            .password_credential_of(owner.id.as_str())
            .is_some()
    );
    assert!(h.has_password_entry("paulus"));
}

#[tokio::test]
async fn only_one_of_two_concurrent_first_users_becomes_owner() {
    let h = Harness::new();
    let (a, b) = tokio::join!(
        h.manager.create_user(Some("A".into()), None, false),
        h.manager.create_user(Some("B".into()), None, false),
    );
    let owners = [a.unwrap(), b.unwrap()]
        .iter()
        .filter(|u| u.is_owner)
        .count();
    assert_eq!(owners, 1);
}

#[tokio::test]
async fn concurrent_onboarding_makes_one_owner() {
    let h = Harness::new();
    let (a, b) = tokio::join!(
        h.manager.onboard(Some("A".into()), "a", "pw-a"),
        h.manager.onboard(Some("B".into()), "b", "pw-b"),
    );
    assert_eq!(
        [&a, &b].iter().filter(|r| r.is_ok()).count(),
        1,
        "{a:?} {b:?}"
    );
    assert!(
        [&a, &b]
            .iter()
            .any(|r| matches!(r, Err(AuthError::AlreadyOnboarded)))
    );
    assert_eq!(h.manager.users().len(), 1);
}

#[tokio::test]
async fn onboarding_with_an_unnormalised_username_creates_nothing() {
    let h = Harness::new();
    let result = h
        .manager
        .onboard(Some("Paulus".into()), "Paulus", OWNER_PASSWORD)
        .await;
    assert!(matches!(
        result,
        Err(AuthError::Provider(
            latch_provider::ProviderError::InvalidUsername { .. }
        ))
    ));
    assert!(h.manager.users().is_empty());
    assert!(!h.has_password_entry("Paulus"));
    h.onboard().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_logins_of_one_name_create_one_user() {
    let h = Harness::new();
    h.onboard().await;
    // Real parallelism and several rounds, so the two logins overlap in every way.
    for round in 0..20 {
        let name = format!("newbie{round}");
        h.bare_password_entry(&name, "pw-of-newbie").await;
        let input = crate::common::form_input(&[("username", &name), ("password", "pw-of-newbie")]);
        let mut tasks = Vec::new();
        for _ in 0..2 {
            let flow = h.start(lan()).await;
            let manager = h.manager.clone();
            let input = input.clone();
            tasks.push(tokio::spawn(async move {
                manager.continue_login_flow(&flow, input, lan()).await
            }));
        }
        for task in tasks {
            let result = task.await.unwrap();
            assert!(
                matches!(
                    result,
                    Ok(latch_auth::FlowOutcome::Done { .. }) | Err(AuthError::DuplicateCredentials)
                ),
                "{result:?}"
            );
        }
        let users = h
            .manager
            .users()
            .into_iter()
            .filter(|u| u.name.as_deref() == Some(name.as_str()))
            .count();
        assert_eq!(users, 1, "round {round}");
        // Signing in again works, as that one user.
        let again = h.login_tokens(&name, "pw-of-newbie", lan()).await;
        assert_eq!(
            h.manager.user(again.user_id.as_str()).unwrap().name,
            Some(name)
        );
    }
}
