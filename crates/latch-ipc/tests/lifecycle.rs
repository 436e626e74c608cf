//! Start, single instance, stale and live sockets, shutdown, restart.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::time::Duration;

use common::*;
use interprocess::local_socket::traits::tokio::Listener as _;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName as _};
use latch_ipc::ServerFrame;
use latch_ipc::client::connect;
use latch_ipc::home::HomeError;
use latch_ipc::server::ServerError;
use latch_ipc::token::read_token_file;

#[tokio::test]
async fn files_are_private_and_removed_on_shutdown() {
    let home = home();
    let server = TestServer::bind(server_config(home.path())).await.unwrap();
    let socket = home.path().join("latch.sock");
    let token = home.path().join("session-token");
    assert_eq!(server.socket_path(), socket);
    assert_eq!(server.token_path(), token);

    let socket_meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(socket_meta.file_type().is_socket());
    assert_eq!(socket_meta.mode() & 0o777, 0o600);
    let token_meta = std::fs::symlink_metadata(&token).unwrap();
    assert!(token_meta.file_type().is_file());
    assert_eq!(token_meta.mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&token).unwrap();
    assert_eq!(text.len(), 64);
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    let lock = home.path().join("latchd.lock");
    assert_eq!(std::fs::metadata(&lock).unwrap().mode() & 0o777, 0o600);

    server.shutdown().await;
    assert!(!socket.exists(), "socket left behind");
    assert!(!token.exists(), "token left behind");
}

#[tokio::test]
async fn dropping_the_server_removes_its_files_too() {
    let home = home();
    let server = TestServer::bind(server_config(home.path())).await.unwrap();
    drop(server);
    assert!(!home.path().join("latch.sock").exists());
    assert!(!home.path().join("session-token").exists());
}

#[tokio::test]
async fn the_lock_prevents_a_second_instance() {
    let home = home();
    let (_first, _events) = start_echo(server_config(home.path())).await;
    let token_before = std::fs::read(home.path().join("session-token")).unwrap();

    let err = TestServer::bind(server_config(home.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, ServerError::AlreadyRunning { .. }), "{err}");
    let lock = home.path().join("latchd.lock");
    assert!(err.to_string().contains(lock.to_str().unwrap()), "{err}");

    // The refused instance changed nothing: same token, and the first still serves.
    assert_eq!(
        std::fs::read(home.path().join("session-token")).unwrap(),
        token_before
    );
    let mut client: TestClient = connect(&client_config(home.path())).await.unwrap();
    client.send(&req(1, "still here")).await.unwrap();
    assert!(matches!(
        client.recv().await.unwrap(),
        Some(ServerFrame::Response(_))
    ));
}

#[tokio::test]
async fn a_live_socket_is_refused_and_left_alone() {
    let home = home();
    let socket = home.path().join("latch.sock");
    // A listener that does not hold the lock (e.g. a daemon from an older build).
    let other = ListenerOptions::new()
        .name(socket.as_path().to_fs_name::<GenericFilePath>().unwrap())
        .create_tokio()
        .unwrap();
    let accepting = tokio::spawn(async move {
        let _stream = other.accept().await.unwrap();
        other
    });

    let err = TestServer::bind(server_config(home.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, ServerError::AlreadyListening { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("another latchd is listening on {}", socket.display())
    );
    assert!(
        std::fs::symlink_metadata(&socket)
            .unwrap()
            .file_type()
            .is_socket()
    );
    // The probe reached the other listener; no token was written for the refused start.
    tokio::time::timeout(Duration::from_secs(5), accepting)
        .await
        .unwrap()
        .unwrap();
    assert!(!home.path().join("session-token").exists());
}

#[tokio::test]
async fn a_stale_socket_is_reclaimed() {
    let home = home();
    let socket = home.path().join("latch.sock");
    // A socket file with nobody behind it, as a crashed daemon leaves.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(
        std::fs::symlink_metadata(&socket)
            .unwrap()
            .file_type()
            .is_socket()
    );

    let (_server, _events) = start_echo(server_config(home.path())).await;
    let mut client: TestClient = connect(&client_config(home.path())).await.unwrap();
    client.send(&req(1, "reclaimed")).await.unwrap();
    assert!(matches!(
        client.recv().await.unwrap(),
        Some(ServerFrame::Response(_))
    ));
}

#[tokio::test]
async fn something_other_than_a_socket_is_never_removed() {
    let home = home();
    let socket = home.path().join("latch.sock");
    std::fs::write(&socket, b"precious").unwrap();
    let err = TestServer::bind(server_config(home.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, ServerError::NotASocket { .. }), "{err}");
    assert!(err.to_string().contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read(&socket).unwrap(), b"precious");
    std::fs::remove_file(&socket).unwrap();

    let target = home.path().join("elsewhere");
    std::os::unix::fs::symlink(&target, &socket).unwrap();
    let err = TestServer::bind(server_config(home.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, ServerError::NotASocket { .. }), "{err}");
    assert!(
        std::fs::symlink_metadata(&socket)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(!target.exists());
}

#[tokio::test]
async fn a_restart_rotates_the_token_and_clients_reread_it() {
    let home = home();
    let config = client_config(home.path());

    let server = TestServer::bind(server_config(home.path())).await.unwrap();
    let first = read_token_file(&home.path().join("session-token")).unwrap();
    server.shutdown().await;

    let (_server, _events) = start_echo(server_config(home.path())).await;
    let second = read_token_file(&home.path().join("session-token")).unwrap();
    assert_ne!(first, second, "the token did not change across a restart");

    // The same client config works: the token is read at every connect.
    let mut client: TestClient = connect(&config).await.unwrap();
    client.send(&req(1, "after restart")).await.unwrap();
    assert!(matches!(
        client.recv().await.unwrap(),
        Some(ServerFrame::Response(_))
    ));
}

#[tokio::test]
async fn shutdown_closes_authenticated_connections() {
    let home = home();
    let mut server = TestServer::bind(server_config(home.path())).await.unwrap();
    let config = client_config(home.path());
    let (conn, client) = tokio::join!(server.accept(), connect::<Req, Resp, Ev>(&config));
    let _conn = conn.unwrap();
    let mut client = client.unwrap();
    server.shutdown().await;
    let closed = tokio::time::timeout(Duration::from_secs(5), client.recv())
        .await
        .unwrap();
    assert!(matches!(closed, Ok(None) | Err(_)), "{closed:?}");
}

#[tokio::test]
async fn an_unsafe_home_stops_the_start() {
    let home = home();
    let dir = home.path().join("loose");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let err = TestServer::bind(server_config(&dir)).await.unwrap_err();
    assert!(
        matches!(
            err,
            ServerError::Home(HomeError::TooPermissive { mode: 0o777, .. })
        ),
        "{err}"
    );
    assert!(!dir.join("session-token").exists());

    let mut config = server_config(home.path());
    config.home_owner = latch_ipc::home::current_uid().wrapping_add(1);
    let err = TestServer::bind(config).await.unwrap_err();
    assert!(
        matches!(err, ServerError::Home(HomeError::WrongOwner { .. })),
        "{err}"
    );
}
