//! Start, graceful shutdown and restart of the daemon in-process, in a temp home.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Client, OWNER_PASSWORD, config, home, local, start, within};
use latch_daemon::{DaemonError, DaemonFrame, DaemonOptions};
use latch_protocol::{ErrorCode, FlowState, Request, Response};

fn journal_len(home: &std::path::Path) -> u64 {
    std::fs::metadata(home.join(".storage").join(latch_store::JOURNAL_FILE))
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_removes_the_socket_and_token_and_compacts_the_store() {
    let home = home();
    let daemon = start(home.path(), config(4, "")).await;
    let socket = daemon.socket_path();
    let token = daemon.token_path();
    assert!(socket.exists() && token.exists());

    let mut client = Client::to(&daemon).await;
    client.onboard("owner", OWNER_PASSWORD).await;
    client.login("owner", OWNER_PASSWORD).await;
    assert!(journal_len(home.path()) > 0, "changes are journaled first");

    daemon.shutdown().await.unwrap();
    assert!(!socket.exists(), "the socket is removed");
    assert!(!token.exists(), "the session token is removed");
    assert_eq!(journal_len(home.path()), 0, "the journal is compacted away");
    let auth = std::fs::read_to_string(home.path().join(".storage/auth")).unwrap();
    assert!(auth.contains("\"key\": \"auth\""), "{auth}");
    assert!(
        home.path()
            .join(".storage/auth_provider.homeassistant")
            .exists()
    );
    // The client sees the connection end.
    assert_eq!(client.frame().await, None::<DaemonFrame>);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_running_at_shutdown_are_answered() {
    let home = home();
    // Cost 10: the login is still running when the shutdown starts.
    let daemon = start(home.path(), config(10, "")).await;
    let mut client = Client::to(&daemon).await;
    client.onboard("owner", OWNER_PASSWORD).await;
    let flow_id = client.login_start().await;
    client
        .send(
            90,
            Client::login_continue(&flow_id, "owner", OWNER_PASSWORD),
        )
        .await;
    // The ping is read after the login was, and answered at once.
    client.send(91, Request::Ping).await;
    let pong = client.answer().await;
    assert_eq!((pong.id, pong.result), (91, Ok(Response::Pong)));

    let stopping = tokio::spawn(daemon.shutdown());
    let login = client.answer().await;
    assert_eq!(login.id, 90);
    assert!(
        matches!(login.result, Ok(Response::Flow(FlowState::Done { .. }))),
        "{login:?}"
    );
    within("shutdown", stopping).await.unwrap().unwrap();
    assert_eq!(client.frame().await, None::<DaemonFrame>);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_the_data_and_rotates_the_token() {
    let home = home();
    let daemon = start(home.path(), config(4, "")).await;
    let first_token = std::fs::read_to_string(daemon.token_path()).unwrap();
    let mut client = Client::to(&daemon).await;
    let owner = client.onboard("owner", OWNER_PASSWORD).await;
    let tokens = client.login("owner", OWNER_PASSWORD).await;
    daemon.shutdown().await.unwrap();

    let daemon = start(home.path(), config(4, "")).await;
    let second_token = std::fs::read_to_string(daemon.token_path()).unwrap();
    assert_eq!(second_token.trim().len(), 64);
    assert_ne!(first_token, second_token, "the session token rotates");

    let mut client = Client::to(&daemon).await;
    // The same user, the same password, the same session.
    let Response::Users(users) = client.ok(Request::ListUsers).await else {
        panic!("no users")
    };
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].id, owner.id);
    assert!(users[0].is_owner);
    let Response::Validated(v) = client.ok(Client::validate(&tokens.access_token)).await else {
        panic!("the old access token no longer validates")
    };
    assert_eq!(v.user.id, owner.id);
    assert!(matches!(
        client
            .ok(Request::RefreshToken {
                refresh_token: tokens.refresh_token.clone(),
                client_id: Some(common::CLIENT_ID.into()),
                remote_ip: local(),
            })
            .await,
        Response::AccessToken(_)
    ));
    client.login("owner", OWNER_PASSWORD).await;
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_home_is_refused() {
    let home = home();
    let daemon = start(home.path(), config(4, "")).await;
    let token = std::fs::read(daemon.token_path()).unwrap();
    let second = latch_daemon::start(DaemonOptions::new(home.path(), config(4, ""))).await;
    let err = second.unwrap_err();
    assert!(matches!(err, DaemonError::Server(_)), "{err:?}");
    assert!(err.to_string().contains("already running"), "{err}");
    // Permanent: a restart would meet the same running daemon.
    assert_eq!(err.exit_code(), 2);
    // The running daemon is untouched.
    assert_eq!(std::fs::read(daemon.token_path()).unwrap(), token);
    let mut client = Client::to(&daemon).await;
    assert_eq!(client.ok(Request::Ping).await, Response::Pong);
    daemon.shutdown().await.unwrap();
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_home_is_a_permanent_error() {
    use std::os::unix::fs::PermissionsExt as _;
    let home = home();
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = latch_daemon::start(DaemonOptions::new(home.path(), config(4, "")))
        .await
        .unwrap_err();
    assert!(matches!(err, DaemonError::Home(_)), "{err:?}");
    assert!(err.is_permanent());
    assert_eq!(err.exit_code(), 2);
    assert!(!home.path().join("latch.sock").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_provider_configuration_exits_with_status_2() {
    let home = home();
    let mut config = config(4, "");
    config.auth_providers.extend(config.auth_providers.clone());
    let err = latch_daemon::start(DaemonOptions::new(home.path(), config))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("duplicate auth provider"), "{err}");
    assert_eq!(err.exit_code(), 2);
    // Nothing is left listening.
    assert!(!home.path().join("latch.sock").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_assistant_directory_is_served() {
    let home = home();
    std::fs::write(home.path().join(".HA_VERSION"), "2026.1.0").unwrap();
    let daemon = start(home.path(), config(4, "")).await;
    let mut client = Client::to(&daemon).await;
    client.onboard("owner", OWNER_PASSWORD).await;
    daemon.shutdown().await.unwrap();
    let auth = std::fs::read_to_string(home.path().join(".storage/auth")).unwrap();
    assert!(auth.starts_with("{\n  \"version\": 1,"), "{auth}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_handle_stops_the_daemon() {
    let home = home();
    let daemon = start(home.path(), config(4, "")).await;
    let mut client = Client::to(&daemon).await;
    client.onboard("owner", OWNER_PASSWORD).await;
    drop(daemon);
    // The connection closes once the daemon is gone…
    assert_eq!(client.frame().await, None::<DaemonFrame>);
    // …and the home can be served again once the store is closed.
    let daemon = within("restart", async {
        loop {
            match latch_daemon::start(DaemonOptions::new(home.path(), config(4, ""))).await {
                Ok(d) => break d,
                // Polled: the old daemon releases its locks as it finishes stopping.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            }
        }
    })
    .await;
    let mut client = Client::to(&daemon).await;
    let err = client
        .call(Request::Onboard {
            name: "x".into(),
            username: "x".into(),
            password: "y".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::AlreadyOnboarded);
    daemon.shutdown().await.unwrap();
}
