//! Helpers: hosts on a fresh database of the test cluster.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::time::{Duration, Instant};

use latch_models::{GROUP_ID_ADMIN, GroupId, RefreshToken, Secret, TokenType, User, UserId};
use latch_store_postgres::{PgBackend, PgConfig};
use latch_test_postgres::{Database, PASSWORD};

/// A fresh database; panics (fails the test) with the reason if PostgreSQL cannot start.
pub(crate) fn database(name: &str) -> Database {
    let cluster = latch_test_postgres::cluster().unwrap_or_else(|e| panic!("{e}"));
    cluster.database(name).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn config(db: &Database, host: &str) -> PgConfig {
    let mut c = PgConfig::new(&db.url(), Some(PASSWORD.to_owned()), host);
    c.poll_interval = Duration::from_millis(200);
    c.write_timeout = Duration::from_secs(2);
    c
}

pub(crate) async fn host(db: &Database, name: &str) -> PgBackend {
    PgBackend::open(config(db, name)).await.unwrap()
}

pub(crate) fn user(id: &str) -> User {
    let mut u = User::new(Some(format!("user {id}")));
    u.id = UserId::from(id);
    u.is_active = true;
    u.group_ids.push(GroupId::from(GROUP_ID_ADMIN));
    u
}

pub(crate) fn token(id: &str, user: &str) -> RefreshToken {
    RefreshToken {
        id: id.into(),
        user_id: user.into(),
        client_id: Some("http://localhost:8123/".into()),
        client_name: None,
        client_icon: None,
        token_type: TokenType::Normal,
        created_at: latch_models::now_micros(),
        access_token_expiration: 1800.0,
        token: Secret::new(format!("token-{id}-{}", "a".repeat(100))),
        jwt_key: Secret::new(format!("jwt-{id}")),
        last_used_at: None,
        last_used_ip: None,
        expire_at: None,
        credential_id: None,
        version: Some("2026.11.0".into()),
    }
}

/// Polls `done` until it holds or `limit` passes (then fails with `what`).
pub(crate) async fn until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < end, "{what}: not reached in {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
