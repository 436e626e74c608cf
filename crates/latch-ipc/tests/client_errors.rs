//! A client's errors say which file it looked for and which variable to set.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use interprocess::local_socket::traits::tokio::Listener as _;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName as _};
use latch_ipc::client::{ClientError, connect};
use latch_ipc::token::{SessionToken, TokenError, write_token_file};

#[tokio::test]
async fn no_socket_says_so_and_names_latch_socket() {
    let home = home();
    let err = connect::<Req, Resp, Ev>(&client_config(home.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::NoSocket { .. }), "{err}");
    let text = err.to_string();
    let socket = home.path().join("latch.sock");
    assert!(
        text.contains(&format!("cannot connect to {}", socket.display())),
        "{text}"
    );
    assert!(text.contains("is latchd running?"), "{text}");
    assert!(text.contains("LATCH_SOCKET"), "{text}");
}

#[tokio::test]
async fn a_dead_daemon_is_a_connect_error_not_a_token_error() {
    let home = home();
    let socket = home.path().join("latch.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    // No token file either: the connect error must win, since it is the real cause.
    let err = connect::<Req, Resp, Ev>(&client_config(home.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Refused { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to {}: connection refused (is latchd running? start it with `latchd`, or set LATCH_SOCKET)",
            socket.display()
        )
    );
}

#[tokio::test]
async fn a_missing_token_names_the_file_and_latch_token_file() {
    let home = home();
    let (_server, _events) = start_echo(server_config(home.path())).await;
    let mut config = client_config(home.path());
    config.token_path = home.path().join("nope");
    let err = connect::<Req, Resp, Ev>(&config).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Token(TokenError::Missing { .. })),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "no session token at {}: is latchd running with this home? set LATCH_TOKEN_FILE to use another file",
            config.token_path.display()
        )
    );
}

#[tokio::test]
async fn a_malformed_token_is_refused_clearly() {
    let home = home();
    let (_server, _events) = start_echo(server_config(home.path())).await;
    let mut config = client_config(home.path());
    config.token_path = home.path().join("junk");
    std::fs::write(&config.token_path, "hello").unwrap();
    let err = connect::<Req, Resp, Ev>(&config).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Token(TokenError::Malformed { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains("is not 64 hex characters"),
        "{err}"
    );
}

#[tokio::test]
async fn a_daemon_that_never_answers_times_out() {
    let home = home();
    let socket = home.path().join("latch.sock");
    write_token_file(
        &home.path().join("session-token"),
        &SessionToken::generate().unwrap(),
    )
    .unwrap();
    let listener = ListenerOptions::new()
        .name(socket.as_path().to_fs_name::<GenericFilePath>().unwrap())
        .create_tokio()
        .unwrap();
    let mut config = client_config(home.path());
    config.handshake_timeout = Duration::from_millis(200);
    let mute = async {
        let stream = listener.accept().await.unwrap();
        // Hold the connection open, say nothing, until the client gives up.
        let mut reader = latch_ipc::frame::FrameReader::new(&stream, 256);
        while let Ok(Some(_)) = reader.next_frame().await {}
    };
    let (_, result) = tokio::join!(mute, connect::<Req, Resp, Ev>(&config));
    let err = result.unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
}
