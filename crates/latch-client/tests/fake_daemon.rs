//! The errors a real daemon does not produce on purpose, from small fake daemons built
//! on latch-ipc: a refused proof, another protocol version, silence, a wrong answer,
//! a dropped connection.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use latch_client::protocol::{Event, PROTOCOL_VERSION, Request, RequestFrame, Response};
use latch_client::{Client, ClientError, ClientOptions, ReconnectPolicy, exit};
use latch_daemon::ResponsePayload;
use latch_ipc::frame::{FrameReader, FrameWriter, PRE_AUTH_MAX_FRAME};
use latch_ipc::handshake::{
    AuthFailure, AuthResult, Challenge, ClientHandshake, RejectCode, ServerHandshake, ServerParams,
    same_version, server_handshake, server_proof,
};
use latch_ipc::server::{Server, ServerConfig};
use latch_ipc::token::{SessionToken, write_token_file};
use tokio::net::UnixListener;

type FakeServer = Server<RequestFrame, ResponsePayload, Event>;

fn options(home: &Path) -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_millis(500),
        ..ClientOptions::for_home(home)
    }
}

/// A listener at the home's socket path, and a token file the client will read.
fn raw_listener(home: &Path) -> (UnixListener, SessionToken) {
    let token = SessionToken::generate().unwrap();
    write_token_file(&home.join("session-token"), &token).unwrap();
    let listener = UnixListener::bind(home.join("latch.sock")).unwrap();
    (listener, token)
}

/// A daemon that proves it holds the token, then refuses the client's proof: what a
/// client sees when the daemon decides its token is stale.
#[tokio::test]
async fn a_refused_proof_is_auth_refused() {
    let home = tempfile::tempdir().unwrap();
    let (listener, token) = raw_listener(home.path());
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, write) = stream.into_split();
        let mut reader = FrameReader::new(read, PRE_AUTH_MAX_FRAME);
        let mut writer = FrameWriter::new(write, PRE_AUTH_MAX_FRAME);
        let Some(ClientHandshake::Hello(hello)) = reader.next_message().await.unwrap() else {
            panic!("expected Hello");
        };
        let server_nonce = [7u8; 32];
        let challenge = ServerHandshake::Challenge(Challenge {
            version: PROTOCOL_VERSION,
            server_nonce,
            server_proof: server_proof(&token, &hello.client_nonce, &server_nonce),
        });
        writer.send_message(&challenge).await.unwrap();
        let _auth: Option<ClientHandshake> = reader.next_message().await.unwrap();
        let verdict = ServerHandshake::AuthResult(AuthResult::Err(AuthFailure {
            code: RejectCode::BadProof,
            message: "wrong proof".to_owned(),
        }));
        writer.send_message(&verdict).await.unwrap();
    });
    let err = Client::connect_with(options(home.path()))
        .await
        .unwrap_err();
    let ClientError::AuthRefused { reason } = &err else {
        panic!("expected AuthRefused, got {err:?}");
    };
    assert!(reason.contains("wrong proof"), "{reason}");
    assert!(reason.contains("LATCH_TOKEN_FILE"), "{reason}");
    assert_eq!(err.exit_code(), exit::AUTH);
}

/// A daemon of another protocol version refuses the Hello.
#[tokio::test]
async fn another_protocol_version_is_named() {
    let home = tempfile::tempdir().unwrap();
    let (listener, token) = raw_listener(home.path());
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, write) = stream.into_split();
        let mut reader = FrameReader::new(read, PRE_AUTH_MAX_FRAME);
        let mut writer = FrameWriter::new(write, PRE_AUTH_MAX_FRAME);
        let params = ServerParams {
            token: &token,
            version: PROTOCOL_VERSION + 98,
            version_rule: same_version,
        };
        let _ = server_handshake(&mut reader, &mut writer, &params).await;
    });
    let err = Client::connect_with(options(home.path()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::ProtocolVersion { client: PROTOCOL_VERSION, daemon: Some(d) }
                if d == PROTOCOL_VERSION + 98
        ),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), exit::USAGE);
}

/// Something accepts on the socket but never speaks.
#[tokio::test]
async fn a_silent_socket_times_out() {
    let home = tempfile::tempdir().unwrap();
    let (listener, _token) = raw_listener(home.path());
    let (held_tx, mut held_rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        // Hold the connection open without a word.
        let _ = held_tx.send(stream).await;
    });
    let err = Client::connect_with(ClientOptions {
        connect_timeout: Duration::from_millis(200),
        ..ClientOptions::for_home(home.path())
    })
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
    assert_eq!(err.exit_code(), exit::UNREACHABLE);
    drop(held_rx.recv().await);
}

/// A daemon that answers every request with `Done`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_answer_is_unexpected_response() {
    let home = tempfile::tempdir().unwrap();
    let mut server = FakeServer::bind(ServerConfig::new(home.path(), PROTOCOL_VERSION))
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Some(conn) = server.accept().await {
            tokio::spawn(async move {
                let (mut requests, replies) = conn.into_split();
                while let Ok(Some(frame)) = requests.recv().await {
                    let payload = ResponsePayload {
                        id: frame.id,
                        result: Ok(Response::Done),
                    };
                    if replies.send(&payload).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let client = Client::connect_with(options(home.path())).await.unwrap();
    let err = client.ping().await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::UnexpectedResponse {
                request: "ping",
                got: "done"
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), exit::OTHER);
    // Calls that expect `Done` are fine, and the connection is still usable.
    client.revoke_by_id("x").await.unwrap();
    assert!(matches!(
        client.status().await,
        Err(ClientError::UnexpectedResponse {
            request: "status",
            ..
        })
    ));
}

/// A daemon that reads a request and hangs up: the call in flight fails with
/// `Disconnected`; under `ReconnectPolicy::Never` so does every later call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_fails_the_call_in_flight() {
    let home = tempfile::tempdir().unwrap();
    let mut server = FakeServer::bind(ServerConfig::new(home.path(), PROTOCOL_VERSION))
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Some(conn) = server.accept().await {
            tokio::spawn(async move {
                let (mut requests, replies) = conn.into_split();
                if let Ok(Some(frame)) = requests.recv().await {
                    assert_eq!(frame.request, Request::Ping);
                }
                replies.close();
            });
        }
    });
    let client = Client::connect_with(ClientOptions {
        reconnect: ReconnectPolicy::Never,
        ..options(home.path())
    })
    .await
    .unwrap();
    let err = client.ping().await.unwrap_err();
    assert!(matches!(err, ClientError::Disconnected), "{err:?}");
    assert_eq!(err.exit_code(), exit::UNREACHABLE);
    let err = client.ping().await.unwrap_err();
    assert!(matches!(err, ClientError::Disconnected), "{err:?}");
    assert_eq!(client.connection_count(), 1);

    // With the default policy the next call reconnects (and meets the same fate).
    let client = Client::connect_with(options(home.path())).await.unwrap();
    assert!(matches!(
        client.ping().await,
        Err(ClientError::Disconnected)
    ));
    assert!(matches!(
        client.ping().await,
        Err(ClientError::Disconnected)
    ));
    assert_eq!(client.connection_count(), 2);
}
