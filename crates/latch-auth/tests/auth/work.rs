//! Work that must not grow with the store under a lock: a login looks its username up
//! (it does not fold every stored name), removing a refresh token drops its own
//! verified-cache entries (it does not scan the cache), and the expired-token cleanup
//! removes every expired token in one commit (one fsync), firing every event.

use chrono::TimeDelta;
use latch_auth::AuthEvent;
use latch_models::{GROUP_ID_USER, GroupId, User, username_folds_on_this_thread};
use latch_provider_homeassistant::password::{self, CutPassword};
use latch_store::Change;
use latch_token::NewRefreshToken;

use crate::common::{CLIENT_ID, Harness, OWNER_PASSWORD, drain, lan};

/// A login over 2,000 stored usernames (and credentials) folds a handful of names: the
/// one typed, not every stored one.
#[tokio::test(flavor = "current_thread")]
async fn a_login_folds_the_name_it_is_given_not_every_stored_one() {
    let h = Harness::new();
    h.onboard().await;
    let stored = password::encode_for_storage(&password::hash(&CutPassword::new("pw"), 4).unwrap());
    let mut changes = Vec::new();
    for i in 0..2_000 {
        let mut user = User::new(Some(format!("User {i}")));
        user.is_active = true;
        user.group_ids = vec![GroupId::from(GROUP_ID_USER)];
        let mut data = serde_json::Map::new();
        data.insert("username".into(), format!("user{i}").into());
        let mut credential = latch_models::Credentials::new("homeassistant", None, data);
        credential.user_id = Some(user.id.clone());
        changes.push(Change::PutHaUser {
            username: format!("user{i}"),
            password: stored.clone(),
        });
        changes.push(Change::PutUser(user));
        changes.push(Change::PutCredential(credential));
    }
    h.manager.store().commit(changes).await.unwrap();

    let before = username_folds_on_this_thread();
    let tokens = h.login_tokens("User1234", "pw", lan()).await;
    let folds = username_folds_on_this_thread() - before;
    assert!(
        folds <= 5,
        "{folds} folds for one login over 2,001 stored names"
    );
    assert_eq!(
        h.manager.username_of(tokens.user_id.as_str()).as_deref(),
        Some("user1234")
    );
}

/// Removing a refresh token drops exactly its entries from the verified-token cache;
/// the other token's entries stay (and still validate from the cache).
#[tokio::test]
async fn removing_a_refresh_token_drops_only_its_verified_entries() {
    let h = Harness::new();
    let owner = h.onboard().await;
    let a = h.login_tokens("paulus", OWNER_PASSWORD, lan()).await;
    let b = h.login_tokens("paulus", OWNER_PASSWORD, lan()).await;
    let mut a_tokens = vec![a.access_token.token.clone()];
    let mut b_tokens = vec![b.access_token.token.clone()];
    for _ in 0..2 {
        h.advance(TimeDelta::seconds(1));
        a_tokens.push(
            h.manager
                .create_access_token(a.refresh_token_id.as_str(), lan())
                .unwrap()
                .token,
        );
        b_tokens.push(
            h.manager
                .create_access_token(b.refresh_token_id.as_str(), lan())
                .unwrap()
                .token,
        );
    }
    for t in a_tokens.iter().chain(&b_tokens) {
        assert!(h.manager.validate_access_token(t).is_some());
    }
    assert_eq!(h.manager.verified_cache_len(), 6);

    h.manager
        .remove_refresh_token(a.refresh_token_id.as_str())
        .await
        .unwrap();
    assert_eq!(
        h.manager.verified_cache_len(),
        3,
        "only a's three entries went"
    );
    for t in &a_tokens {
        assert!(h.manager.validate_access_token(t).is_none());
    }
    for t in &b_tokens {
        assert_eq!(
            h.manager.validate_access_token(t).map(|v| v.user_id),
            Some(owner.id.clone())
        );
    }
    assert_eq!(
        h.manager.verified_cache_len(),
        3,
        "b's hits came from the cache"
    );
}

/// Twenty expired tokens go in one commit and one fsync, each with its event; tokens
/// that have not expired stay.
#[tokio::test]
async fn cleanup_removes_every_expired_token_in_one_commit() {
    let h = Harness::new();
    let owner = h.onboard().await;
    let mut expiring = Vec::new();
    for i in 0..20 {
        let t = h
            .manager
            .create_refresh_token(
                owner.id.as_str(),
                NewRefreshToken::normal(format!("{CLIENT_ID}/{i}"), None),
            )
            .await
            .unwrap();
        expiring.push(t.id);
    }
    // Long-lived tokens never expire. (No access token is minted anywhere here, so no
    // usage flush can add an fsync of its own.)
    h.manager
        .create_refresh_token(
            owner.id.as_str(),
            NewRefreshToken::long_lived("forever", None, 3_650),
        )
        .await
        .unwrap();
    h.advance(TimeDelta::days(91));
    let mut rx = h.subscribe();
    let before = h.manager.store().stats();

    assert_eq!(h.manager.cleanup_expired_tokens().await.unwrap(), 20);

    let after = h.manager.store().stats();
    assert_eq!(after.commits - before.commits, 1, "one commit");
    assert_eq!(after.fsyncs - before.fsyncs, 1, "one fsync");
    let revoked: Vec<_> = drain(&mut rx)
        .into_iter()
        .filter_map(|e| match e {
            AuthEvent::RefreshTokenRevoked {
                refresh_token_id, ..
            } => Some(refresh_token_id),
            _ => None,
        })
        .collect();
    assert_eq!(revoked, expiring, "every removal fired its event, in order");
    let left = h.manager.refresh_tokens_of(owner.id.as_str());
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].client_name.as_deref(), Some("forever"));
    assert_eq!(h.manager.cleanup_expired_tokens().await.unwrap(), 0);
}

/// Deactivating a user revokes all their tokens in one commit too.
#[tokio::test]
async fn deactivation_revokes_every_token_in_one_commit() {
    let h = Harness::new();
    h.onboard().await;
    let anne = h.user_with_password("Anne", "anne", "anne-pw").await;
    for _ in 0..5 {
        h.login_tokens("anne", "anne-pw", lan()).await;
    }
    let before = h.manager.store().stats();
    h.manager.deactivate_user(anne.id.as_str()).await.unwrap();
    let after = h.manager.store().stats();
    assert_eq!(
        after.commits - before.commits,
        2,
        "the user, then the tokens"
    );
    assert!(h.manager.refresh_tokens_of(anne.id.as_str()).is_empty());
}
