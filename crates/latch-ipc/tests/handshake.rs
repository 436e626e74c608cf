//! The handshake over a real socket: success and pipelining, and every way to fail it.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use interprocess::local_socket::traits::tokio::Listener as _;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName as _};
use latch_ipc::ServerFrame;
use latch_ipc::client::{ClientError, connect};
use latch_ipc::frame::{FrameReader, FrameWriter, PRE_AUTH_MAX_FRAME, decode};
use latch_ipc::handshake::{
    Auth, AuthResult, Challenge, ClientHandshake, RejectCode, ServerHandshake,
};
use latch_ipc::peer::PeerPolicy;
use latch_ipc::token::{SessionToken, write_token_file};

#[tokio::test]
async fn good_handshake_then_pipelined_requests() {
    let home = home();
    let (_server, _events) = start_echo(server_config(home.path())).await;
    let mut client: TestClient = connect(&client_config(home.path())).await.unwrap();
    assert_eq!(client.daemon_version(), VERSION);

    // 200 requests in flight before the first response is read.
    for id in 0..200 {
        client.send(&req(id, &format!("body {id}"))).await.unwrap();
    }
    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        match client.recv().await.unwrap().unwrap() {
            ServerFrame::Response(resp) => {
                assert_eq!(resp.body, format!("body {}", resp.id));
                assert_eq!(resp.peer_pid, Some(std::process::id()));
                assert!(seen.insert(resp.id), "duplicate response {}", resp.id);
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert_eq!(seen, (0..200).collect::<BTreeSet<_>>());
}

#[tokio::test]
async fn split_halves_work_from_separate_tasks() {
    let home = home();
    let (_server, _events) = start_echo(server_config(home.path())).await;
    let client: TestClient = connect(&client_config(home.path())).await.unwrap();
    let (sender, mut receiver) = client.into_split();
    let writers: Vec<_> = (0..4u64)
        .map(|task| {
            let sender = sender.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    sender.send(&req(task * 1000 + i, "x")).await.unwrap();
                }
            })
        })
        .collect();
    let mut count = 0;
    while count < 200 {
        match receiver.recv().await.unwrap().unwrap() {
            ServerFrame::Response(_) => count += 1,
            other => panic!("unexpected frame {other:?}"),
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
}

#[tokio::test]
async fn a_wrong_client_proof_gets_bad_proof_and_is_closed() {
    let home = home();
    let (_server, _events) = start_echo(server_config(home.path())).await;
    let stream = raw_connect(&home.path().join("latch.sock")).await;
    let mut reader = FrameReader::new(&stream, PRE_AUTH_MAX_FRAME);
    let mut writer = FrameWriter::new(&stream, PRE_AUTH_MAX_FRAME);
    writer.send_message(&hello(VERSION)).await.unwrap();
    let challenge: ServerHandshake = reader.next_message().await.unwrap().unwrap();
    assert!(matches!(challenge, ServerHandshake::Challenge(_)));
    let auth = ClientHandshake::Auth(Auth {
        client_proof: [0x42; 32],
    });
    writer.send_message(&auth).await.unwrap();
    let verdict: ServerHandshake = reader.next_message().await.unwrap().unwrap();
    match verdict {
        ServerHandshake::AuthResult(AuthResult::Err(failure)) => {
            assert_eq!(failure.code, RejectCode::BadProof);
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let (after, _) = read_until_closed(&stream, Duration::from_secs(5)).await;
    assert!(after.is_empty());
}

#[tokio::test]
async fn a_client_holding_another_token_cannot_authenticate() {
    let home = home();
    let (_server, _events) = start_echo(server_config(home.path())).await;
    let other = home.path().join("other-token");
    write_token_file(&other, &SessionToken::generate().unwrap()).unwrap();
    let mut config = client_config(home.path());
    config.token_path.clone_from(&other);
    let err = connect::<Req, Resp, Ev>(&config).await.unwrap_err();
    // The client notices first: the daemon's proof does not match its token.
    assert!(matches!(err, ClientError::ServerImpostor { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("impostor or stale daemon"), "{text}");
    assert!(text.contains(other.to_str().unwrap()), "{text}");
}

#[tokio::test]
async fn an_impostor_daemon_is_detected_before_the_client_sends_auth() {
    let home = home();
    let socket = home.path().join("latch.sock");
    let token_path = home.path().join("session-token");
    write_token_file(&token_path, &SessionToken::generate().unwrap()).unwrap();
    // An impostor listening on the socket, without the token.
    let listener = ListenerOptions::new()
        .name(socket.as_path().to_fs_name::<GenericFilePath>().unwrap())
        .create_tokio()
        .unwrap();
    let impostor = async {
        let stream = listener.accept().await.unwrap();
        let mut reader = FrameReader::new(&stream, PRE_AUTH_MAX_FRAME);
        let mut writer = FrameWriter::new(&stream, PRE_AUTH_MAX_FRAME);
        let first: ClientHandshake = reader.next_message().await.unwrap().unwrap();
        assert!(matches!(first, ClientHandshake::Hello(_)));
        let challenge = ServerHandshake::Challenge(Challenge {
            version: VERSION,
            server_nonce: [1; 32],
            server_proof: [2; 32],
        });
        writer.send_message(&challenge).await.unwrap();
        // Whatever the client sends next is what an impostor would harvest.
        reader.next_frame().await
    };
    let config = client_config(home.path());
    let (harvest, client) = tokio::join!(impostor, connect::<Req, Resp, Ev>(&config));
    let err = client.unwrap_err();
    assert!(matches!(err, ClientError::ServerImpostor { .. }), "{err}");
    assert!(
        matches!(harvest, Ok(None) | Err(_)),
        "the client sent a frame to the impostor: {harvest:?}"
    );
}

#[tokio::test]
async fn a_first_frame_other_than_hello_is_closed() {
    let home = home();
    let (_server, _events) = start_echo(server_config(home.path())).await;
    let socket = home.path().join("latch.sock");

    let stream = raw_connect(&socket).await;
    let auth_first = postcard::to_stdvec(&ClientHandshake::Auth(Auth {
        client_proof: [0; 32],
    }))
    .unwrap();
    send_frame(&stream, &auth_first).await;
    let (frames, _) = read_until_closed(&stream, Duration::from_secs(4)).await;
    assert!(frames.is_empty());

    let stream = raw_connect(&socket).await;
    send_frame(&stream, &[9, 9, 9]).await;
    let (frames, _) = read_until_closed(&stream, Duration::from_secs(4)).await;
    assert!(frames.is_empty());

    let stream = raw_connect(&socket).await;
    let mut bad_magic = postcard::to_stdvec(&hello(VERSION)).unwrap();
    bad_magic[1] = b'X';
    send_frame(&stream, &bad_magic).await;
    let (frames, _) = read_until_closed(&stream, Duration::from_secs(4)).await;
    assert!(frames.is_empty());
}

#[tokio::test]
async fn a_4_gib_length_prefix_is_closed_at_once() {
    let home = home();
    let mut config = server_config(home.path());
    config.handshake_timeout = Duration::from_secs(30);
    let (_server, _events) = start_echo(config).await;
    let stream = raw_connect(&home.path().join("latch.sock")).await;
    write_raw(&stream, &[0xff, 0xff, 0xff, 0xff]).await;
    // Closed on the header alone, long before the handshake deadline.
    let (frames, elapsed) = read_until_closed(&stream, Duration::from_secs(10)).await;
    assert!(frames.is_empty());
    assert!(elapsed < Duration::from_secs(10));

    // A length just over the pre-auth limit is refused the same way.
    let stream = raw_connect(&home.path().join("latch.sock")).await;
    write_raw(&stream, &257u32.to_be_bytes()).await;
    let (frames, _) = read_until_closed(&stream, Duration::from_secs(10)).await;
    assert!(frames.is_empty());
}

#[tokio::test]
async fn a_silent_client_is_closed_at_the_deadline() {
    let home = home();
    let mut config = server_config(home.path());
    config.handshake_timeout = Duration::from_millis(300);
    let (_server, _events) = start_echo(config).await;
    let stream = raw_connect(&home.path().join("latch.sock")).await;
    let (frames, elapsed) = read_until_closed(&stream, Duration::from_secs(5)).await;
    assert!(frames.is_empty());
    assert!(
        elapsed >= Duration::from_millis(250),
        "closed after {elapsed:?}"
    );
}

#[tokio::test]
async fn a_slow_client_is_closed_at_the_deadline_even_mid_handshake() {
    let home = home();
    let mut config = server_config(home.path());
    config.handshake_timeout = Duration::from_millis(300);
    let (_server, _events) = start_echo(config).await;
    let stream = raw_connect(&home.path().join("latch.sock")).await;
    send_frame(&stream, &postcard::to_stdvec(&hello(VERSION)).unwrap()).await;
    // The challenge comes, then nothing more, then the close: one deadline for it all.
    let (frames, elapsed) = read_until_closed(&stream, Duration::from_secs(5)).await;
    assert_eq!(frames.len(), 1);
    assert!(matches!(
        decode::<ServerHandshake>(&frames[0]).unwrap(),
        ServerHandshake::Challenge(_)
    ));
    assert!(
        elapsed >= Duration::from_millis(250),
        "closed after {elapsed:?}"
    );
}

#[tokio::test]
async fn trailing_bytes_after_a_valid_hello_are_refused() {
    let home = home();
    let (_server, _events) = start_echo(server_config(home.path())).await;
    let stream = raw_connect(&home.path().join("latch.sock")).await;
    let mut payload = postcard::to_stdvec(&hello(VERSION)).unwrap();
    payload.push(0);
    send_frame(&stream, &payload).await;
    let (frames, _) = read_until_closed(&stream, Duration::from_secs(4)).await;
    assert!(
        frames.is_empty(),
        "the daemon answered a Hello with trailing bytes"
    );
}

fn another_uid() -> u32 {
    latch_ipc::home::current_uid().wrapping_add(4242)
}

#[tokio::test]
async fn a_peer_with_another_uid_is_closed_before_a_byte_is_read() {
    let home = home();
    let mut config = server_config(home.path());
    // Pretend the daemon runs as someone else, and does not admit root.
    config.peer_policy = PeerPolicy {
        daemon_uid: another_uid(),
        allow_root: false,
        allowed_uids: Vec::new(),
    };
    config.handshake_timeout = Duration::from_secs(30);
    let (_server, _events) = start_echo(config).await;

    let stream = raw_connect(&home.path().join("latch.sock")).await;
    let (frames, elapsed) = read_until_closed(&stream, Duration::from_secs(10)).await;
    assert!(frames.is_empty());
    assert!(elapsed < Duration::from_secs(10));

    let err = connect::<Req, Resp, Ev>(&client_config(home.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Closed { .. }), "{err}");
}

#[tokio::test]
async fn a_listed_uid_is_admitted() {
    let home = home();
    let mut config = server_config(home.path());
    config.peer_policy = PeerPolicy {
        daemon_uid: another_uid(),
        allow_root: false,
        allowed_uids: vec![latch_ipc::home::current_uid()],
    };
    let (_server, _events) = start_echo(config).await;
    let mut client: TestClient = connect(&client_config(home.path())).await.unwrap();
    client.send(&req(1, "hi")).await.unwrap();
    assert!(matches!(
        client.recv().await.unwrap(),
        Some(ServerFrame::Response(Resp { id: 1, .. }))
    ));
}

#[tokio::test]
async fn a_version_mismatch_names_both_versions() {
    let home = home();
    let (_server, _events) = start_echo(server_config(home.path())).await;
    let mut config = client_config(home.path());
    config.protocol_version = 3;
    let err = connect::<Req, Resp, Ev>(&config).await.unwrap_err();
    match &err {
        ClientError::Rejected { code, message, .. } => {
            assert_eq!(*code, RejectCode::IncompatibleVersion);
            assert_eq!(message, "client speaks protocol 3, daemon speaks 1");
        }
        other => panic!("expected a rejection, got {other}"),
    }
    assert!(
        err.to_string()
            .contains("client speaks protocol 3, daemon speaks 1")
    );
}

#[tokio::test]
async fn version_rules_are_the_callers() {
    let home = home();
    let mut config = server_config(home.path());
    config.version_rule = |client, daemon| client >= daemon;
    let (_server, _events) = start_echo(config).await;

    // The daemon accepts a newer client...
    let mut newer = client_config(home.path());
    newer.protocol_version = 2;
    newer.version_rule = |_, _| true;
    let client: TestClient = connect(&newer).await.unwrap();
    assert_eq!(client.daemon_version(), VERSION);

    // ...but a client with the default rule refuses the older daemon itself.
    let mut strict = client_config(home.path());
    strict.protocol_version = 2;
    let err = connect::<Req, Resp, Ev>(&strict).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::IncompatibleVersion {
                client: 2,
                daemon: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("client speaks protocol 2, daemon speaks 1")
    );
}

#[tokio::test]
async fn a_full_authenticated_cap_answers_busy() {
    let home = home();
    let mut config = server_config(home.path());
    config.max_authenticated = 1;
    let (_server, _events) = start_echo(config).await;
    let first: TestClient = connect(&client_config(home.path())).await.unwrap();
    let err = connect::<Req, Resp, Ev>(&client_config(home.path()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Rejected {
                code: RejectCode::Busy,
                ..
            }
        ),
        "{err}"
    );
    // The slot comes back when the first client leaves.
    first.close();
    drop(first);
    let config = client_config(home.path());
    let _second: TestClient = retry("a free slot", Duration::from_secs(10), || {
        connect::<Req, Resp, Ev>(&config)
    })
    .await;
}

#[tokio::test]
async fn a_request_that_does_not_decode_closes_the_connection() {
    let home = home();
    let (_server, _events) = start_echo(server_config(home.path())).await;
    let client: latch_ipc::client::ClientConnection<u8, Resp, Ev> =
        connect(&client_config(home.path())).await.unwrap();
    let (sender, mut receiver) = client.into_split();
    // A lone byte is not a `Req`: the daemon drops the connection.
    sender.send(&200u8).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), receiver.recv())
        .await
        .unwrap();
    assert!(matches!(closed, Ok(None) | Err(_)), "{closed:?}");
}

#[tokio::test]
async fn raw_receiving_hands_out_payloads_and_keeps_the_frame_limit() {
    let home = home();
    let mut config = server_config(home.path());
    config.max_frame_length = 64;
    let mut server = latch_ipc::server::Server::<latch_ipc::Raw, Resp, Ev>::bind(config)
        .await
        .unwrap();
    let client: latch_ipc::client::ClientConnection<Vec<u8>, Resp, Ev> =
        connect(&client_config(home.path())).await.unwrap();
    let mut conn = server.accept().await.unwrap();
    let (sender, _receiver) = client.into_split();

    // Payloads come out byte for byte, undecoded, even ones that are no `Req`.
    sender.send(&vec![200u8, 1, 2]).await.unwrap();
    sender.send(&Vec::new()).await.unwrap();
    let payload = conn.recv_raw().await.unwrap().unwrap();
    assert_eq!(&payload[..], &[3u8, 200, 1, 2][..]);
    let payload = conn.recv_raw().await.unwrap().unwrap();
    assert_eq!(&payload[..], &[0u8][..]);

    // A frame over the server's limit ends the connection.
    sender.send(&vec![b'x'; 100]).await.unwrap();
    let too_large = conn.recv_raw().await;
    assert!(
        matches!(
            too_large,
            Err(latch_ipc::frame::FrameError::TooLarge { max: 64 })
        ),
        "{too_large:?}"
    );
    assert!(matches!(conn.recv_raw().await, Ok(None)));
}
