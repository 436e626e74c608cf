//! A client's errors say which file it looked for and which variable to set.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use interprocess::local_socket::traits::tokio::Listener as _;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName as _};
use latch_ipc::client::{ClientConfig, ClientError, connect};
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
    std::fs::set_permissions(
        &config.token_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
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

/// What the listener in `dir` received once the client is done with it.
fn received(done: &std::sync::mpsc::Receiver<std::io::Result<usize>>) -> usize {
    done.recv_timeout(Duration::from_secs(10))
        .expect("the listener saw no connection")
        .unwrap()
}

#[tokio::test]
async fn a_token_file_open_to_group_or_others_is_refused_before_a_byte_is_sent() {
    for mode in [0o640, 0o604, 0o660, 0o606] {
        let home = home();
        let (socket, done) = listen_here(home.path());
        let token_path = home.path().join("session-token");
        write_token_with_mode(&token_path, &SessionToken::generate().unwrap(), mode);
        let err = connect::<Req, Resp, Ev>(&client_config(home.path()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::Token(TokenError::Untrusted { mode: m, .. }) if m == mode),
            "{mode:o}: {err}"
        );
        let text = err.to_string();
        assert!(text.contains(&token_path.display().to_string()), "{text}");
        assert!(text.contains(&format!("mode {mode:04o}")), "{text}");
        assert!(text.contains("mode 0600"), "{text}");
        assert_eq!(
            received(&done),
            0,
            "{mode:o}: a byte reached {}",
            socket.display()
        );
    }
}

#[tokio::test]
#[allow(clippy::print_stderr)]
async fn a_token_file_of_another_owner_is_refused_before_a_byte_is_sent() {
    let home = home();
    let (_socket, done) = listen_here(home.path());
    let token_path = home.path().join("session-token");
    write_token_with_mode(&token_path, &SessionToken::generate().unwrap(), 0o600);
    if latch_ipc::home::current_uid() == 0 {
        std::os::unix::fs::chown(&token_path, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
        let err = connect::<Req, Resp, Ev>(&client_config(home.path()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::Token(TokenError::Untrusted { owner, caller: 0, .. }) if owner == OTHER_UID),
            "{err}"
        );
        assert!(err.to_string().contains("owned by uid 65534"), "{err}");
    } else {
        // Not root: no file can be given away here. The refusal of another owner's file
        // is checked in latch-ipc's unit tests (token::tests); here a root-owned token
        // file, which is trusted, must be one we cannot read at all.
        eprintln!("not root: checking that an unreadable token file is refused");
        let err = connect::<Req, Resp, Ev>(&ClientConfig::new(
            home.path().join("latch.sock"),
            "/root/.latch/session-token",
            VERSION,
        ))
        .await
        .unwrap_err();
        assert!(matches!(err, ClientError::Token(_)), "{err}");
    }
    assert_eq!(received(&done), 0, "a byte reached the listener");
}

#[tokio::test]
#[allow(clippy::print_stderr)]
async fn a_daemon_of_another_uid_is_refused_before_a_byte_is_sent() {
    let home = home();
    let token_path = home.path().join("session-token");
    write_token_with_mode(&token_path, &SessionToken::generate().unwrap(), 0o600);
    #[cfg(target_os = "linux")]
    if latch_ipc::home::current_uid() == 0 {
        // The impostor's directory: a listener running as nobody.
        let impostor = tempfile::tempdir().unwrap();
        let (socket, done) = listen_as(OTHER_UID, impostor.path());
        let config = ClientConfig::new(&socket, &token_path, VERSION);
        let err = connect::<Req, Resp, Ev>(&config).await.unwrap_err();
        let ClientError::UntrustedDaemon { path, uid, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!((path, *uid), (&socket, Some(OTHER_UID)));
        let text = err.to_string();
        assert!(
            text.contains("it runs as uid 65534, not as you (uid 0), root"),
            "{text}"
        );
        assert!(text.contains("nothing was sent to it"), "{text}");
        assert_eq!(received(&done), 0, "a byte reached the impostor");
        return;
    }
    // Not root (or not Linux): no listener can run as another user here. The refusal
    // itself is checked in latch-ipc's unit tests (client::tests, with the caller's uid
    // changed); here a listener of our own uid must be let through to the handshake.
    eprintln!("not root on Linux: checking that a daemon of our own uid is admitted");
    let (socket, done) = listen_here(home.path());
    let mut config = ClientConfig::new(&socket, &token_path, VERSION);
    config.handshake_timeout = Duration::from_millis(100);
    let err = connect::<Req, Resp, Ev>(&config).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Timeout { .. } | ClientError::Closed { .. }
        ),
        "{err}"
    );
    assert!(
        received(&done) > 0,
        "the Hello was not sent to our own daemon"
    );
}
