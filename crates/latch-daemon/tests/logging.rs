//! What the daemon logs: a start line, and never a password, token or code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use common::{Client, OWNER_PASSWORD, config, home};
use latch_protocol::{Request, Sensitive};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_the_start_and_never_a_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let home = home();
    let daemon = common::start(home.path(), config(4, "")).await;
    let mut client = Client::to(&daemon).await;
    let owner = client.onboard("owner", OWNER_PASSWORD).await;
    let alice = client.create_user("Alice").await;
    client
        .add_password(&alice.id, "alice", "alice-password-1")
        .await;
    let flow = client.login_start().await;
    client
        .ok(Client::login_continue(&flow, "alice", "wrong-password-2"))
        .await;
    let tokens = client.login("alice", "alice-password-1").await;
    client.ok(Client::validate(&tokens.access_token)).await;
    client
        .ok(Request::ChangePassword {
            user_id: owner.id.clone(),
            new_password: Sensitive::from("new-owner-password-3"),
        })
        .await;
    client
        .ok(Request::RevokeToken {
            refresh_token: tokens.refresh_token.clone(),
        })
        .await;
    daemon.shutdown().await.unwrap();

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("latchd started"), "{log}");
    assert!(log.contains(&home.path().display().to_string()));
    assert!(log.contains("providers=homeassistant"), "{log}");
    assert!(
        log.contains("login failed"),
        "the manager logs failed logins"
    );
    for secret in [
        OWNER_PASSWORD,
        "alice-password-1",
        "wrong-password-2",
        "new-owner-password-3",
        tokens.access_token.expose(),
        tokens.refresh_token.expose(),
    ] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
    // The session token never appears either.
    assert!(!log.contains("session-token\":"));
}
