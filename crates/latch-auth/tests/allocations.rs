//! What the README claims about allocation on the validation path, proved with a counting
//! global allocator (`allocation-counter`, which counts the calling thread's allocations
//! only, so the test harness and other tests cannot disturb a measurement). Its own test
//! binary: the counting allocator is installed only here.
//!
//! Claimed and proved: validating a token again (the verified-token cache answers, the
//! refresh token and the user are looked up in place) allocates nothing. Not claimed: a
//! token's first validation allocates (two buffers: the decoded payload and the issuer, pinned
//! by latch-token's own `tests/allocations.rs`), and so
//! does copying an answer out (`validate_access_token` returns owned strings).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use chrono::DateTime;
use latch_auth::{AuthConfig, AuthManager, ManagerOptions};
use latch_models::{FixedClock, TokenType};
use latch_store::{Store, StoreOptions};
use latch_token::NewRefreshToken;

const VALIDATIONS: usize = 1_000;

/// A manager on a temporary store with one user, a refresh token and an access token
/// validated once (so its key and its verification are cached).
fn setup(rt: &tokio::runtime::Runtime) -> (tempfile::TempDir, AuthManager, String) {
    let home = tempfile::tempdir().unwrap();
    let store = Store::open(home.path(), StoreOptions::default()).unwrap();
    let clock = Arc::new(FixedClock::new(
        DateTime::from_timestamp(1_735_689_600, 0).unwrap(),
    ));
    let manager = AuthManager::from_config(
        store,
        &AuthConfig::default(),
        ManagerOptions {
            clock,
            ..ManagerOptions::default()
        },
    )
    .unwrap();
    let jwt = rt.block_on(async {
        let user = manager
            .create_user(Some("Alloc".into()), None, false)
            .await
            .unwrap();
        let refresh = manager
            .create_refresh_token(
                user.id.as_str(),
                NewRefreshToken::normal("https://example.com/app", None),
            )
            .await
            .unwrap();
        manager
            .create_access_token(refresh.id.as_str(), None)
            .unwrap()
            .token
    });
    assert!(manager.validate_access_token(&jwt).is_some());
    (home, manager, jwt)
}

#[test]
fn the_counting_allocator_is_installed() {
    // Without it every count below would be zero and prove nothing.
    let info = allocation_counter::measure(|| {
        black_box(Box::new(black_box(7_u64)));
    });
    assert_eq!(info.count_total, 1);
}

#[test]
fn repeat_validations_through_the_auth_manager_do_not_allocate() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_home, manager, jwt) = setup(&rt);

    let info = allocation_counter::measure(|| {
        for _ in 0..VALIDATIONS {
            let answer = manager.validate_access_token_with(black_box(&jwt), |rt, user| {
                (rt.token_type, user.is_owner, user.is_active)
            });
            assert_eq!(answer, Some((TokenType::Normal, true, true)));
        }
    });
    assert_eq!(
        info.count_total, 0,
        "{VALIDATIONS} repeat validations allocated {} times ({} bytes)",
        info.count_total, info.bytes_total
    );

    rt.block_on(async {
        manager.store().close().await.unwrap();
    });
}
