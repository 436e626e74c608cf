//! Permission checks through the manager (reference §8; HA `test_models.py`,
//! `permissions/test_init.py`).

use std::sync::Arc;

use latch_auth::{AuthError, SharedLookup, ThrottleConfig};
use latch_models::permissions::{NoRegistry, PermissionKey};
use latch_models::{GROUP_ID_ADMIN, GROUP_ID_READ_ONLY, GROUP_ID_USER, GroupId, User};
use latch_token::NewRefreshToken;

use crate::common::{CLIENT_ID, Harness, default_config, open_manager};

const ENTITY: &str = "light.kitchen";

fn lookup() -> SharedLookup {
    Arc::new(NoRegistry)
}

async fn user_in(h: &Harness, group: &str) -> User {
    h.manager
        .create_user(
            Some(group.to_owned()),
            Some(vec![GroupId::from(group)]),
            false,
        )
        .await
        .unwrap()
}

fn allowed(h: &Harness, user: &User, key: PermissionKey) -> bool {
    h.manager
        .check_permission(user.id.as_str(), ENTITY, key, lookup())
        .unwrap()
}

#[tokio::test]
async fn owner_is_allowed_everything_even_without_groups() {
    let h = Harness::new();
    let owner = h
        .manager
        .create_user(Some("Owner".into()), None, false)
        .await
        .unwrap();
    assert!(owner.group_ids.is_empty());
    assert!(
        h.manager
            .permissions_of(owner.id.as_str(), lookup())
            .unwrap()
            .is_owner()
    );
    for key in PermissionKey::ALL {
        assert!(allowed(&h, &owner, key), "{key}");
    }
}

#[tokio::test]
async fn read_only_user_can_read_but_not_control() {
    let h = Harness::new();
    h.onboard().await;
    let guest = user_in(&h, GROUP_ID_READ_ONLY).await;
    assert!(allowed(&h, &guest, PermissionKey::Read));
    assert!(!allowed(&h, &guest, PermissionKey::Control));
    assert!(!allowed(&h, &guest, PermissionKey::Edit));
}

#[tokio::test]
async fn users_and_admins_groups_may_do_everything() {
    let h = Harness::new();
    h.onboard().await;
    for group in [GROUP_ID_USER, GROUP_ID_ADMIN] {
        let user = user_in(&h, group).await;
        for key in PermissionKey::ALL {
            assert!(allowed(&h, &user, key), "{group} {key}");
        }
    }
}

#[tokio::test]
async fn user_without_groups_is_denied_everything() {
    let h = Harness::new();
    h.onboard().await;
    let nobody = h
        .manager
        .create_user(Some("Nobody".into()), None, false)
        .await
        .unwrap();
    for key in PermissionKey::ALL {
        assert!(!allowed(&h, &nobody, key), "{key}");
    }
}

#[tokio::test]
async fn changing_groups_changes_permissions() {
    let h = Harness::new();
    h.onboard().await;
    let user = user_in(&h, GROUP_ID_READ_ONLY).await;
    assert!(!allowed(&h, &user, PermissionKey::Control));
    h.manager
        .set_groups(user.id.as_str(), vec![GroupId::from(GROUP_ID_USER)])
        .await
        .unwrap();
    assert!(allowed(&h, &user, PermissionKey::Control));
}

#[tokio::test]
async fn permission_check_by_access_token_uses_the_tokens_user() {
    let h = Harness::new();
    h.onboard().await;
    let guest = user_in(&h, GROUP_ID_READ_ONLY).await;
    let token = h
        .manager
        .create_refresh_token(guest.id.as_str(), NewRefreshToken::normal(CLIENT_ID, None))
        .await
        .unwrap();
    let access = h
        .manager
        .create_access_token(token.id.as_str(), None)
        .unwrap();

    let check = |key| {
        h.manager
            .check_permission_by_token(&access.token, ENTITY, key, lookup())
            .unwrap()
    };
    assert!(check(PermissionKey::Read));
    assert!(!check(PermissionKey::Control));

    let garbage =
        h.manager
            .check_permission_by_token("not-a-token", ENTITY, PermissionKey::Read, lookup());
    assert!(matches!(garbage, Err(AuthError::InvalidAccessToken)));
}

#[tokio::test]
async fn permission_check_with_a_revoked_token_is_invalid_access_token() {
    let h = Harness::new();
    let owner = h.onboard().await;
    let (token, access) = h
        .manager
        .create_long_lived_token(owner.id.as_str(), "Car", None, 10)
        .await
        .unwrap();
    h.manager
        .remove_refresh_token(token.id.as_str())
        .await
        .unwrap();
    let result =
        h.manager
            .check_permission_by_token(&access.token, ENTITY, PermissionKey::Read, lookup());
    assert!(matches!(result, Err(AuthError::InvalidAccessToken)));
}

#[tokio::test]
async fn unknown_user_is_user_not_found() {
    let h = Harness::new();
    let result = h.manager.check_permission(
        "0123456789abcdef0123456789abcdef",
        ENTITY,
        PermissionKey::Read,
        lookup(),
    );
    assert!(matches!(result, Err(AuthError::UserNotFound)));
    assert!(matches!(
        h.manager
            .permissions_of("0123456789abcdef0123456789abcdef", lookup()),
        Err(AuthError::UserNotFound)
    ));
}

#[tokio::test]
async fn permissions_compare_equal_after_a_reload() {
    let h = Harness::new();
    let owner = h.onboard().await;
    let guest = user_in(&h, GROUP_ID_READ_ONLY).await;
    let both = h
        .manager
        .create_user(
            Some("Both".into()),
            Some(vec![
                GroupId::from(GROUP_ID_READ_ONLY),
                GroupId::from(GROUP_ID_USER),
            ]),
            false,
        )
        .await
        .unwrap();
    let before: Vec<_> = [&owner, &guest, &both]
        .iter()
        .map(|u| h.manager.permissions_of(u.id.as_str(), lookup()).unwrap())
        .collect();
    h.manager.store().close().await.unwrap();

    let reopened = open_manager(
        &h.home,
        &default_config(),
        &h.clock,
        ThrottleConfig::default(),
    );

    let after: Vec<_> = [&owner, &guest, &both]
        .iter()
        .map(|u| reopened.permissions_of(u.id.as_str(), lookup()).unwrap())
        .collect();
    assert_eq!(before, after);
    assert_eq!(reopened.user(guest.id.as_str()).unwrap(), guest);
    assert_ne!(
        before[1], before[2],
        "the comparison can tell policies apart"
    );
}
