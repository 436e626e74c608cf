//! Broadcasts reach authenticated subscribers only, and a slow subscriber is bounded.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use latch_ipc::ServerFrame;
use latch_ipc::broadcast::Broadcaster;
use latch_ipc::client::connect;
use latch_ipc::frame::{FrameReader, FrameWriter, PRE_AUTH_MAX_FRAME};
use latch_ipc::handshake::ServerHandshake;

async fn subscribe(client: &mut TestClient) {
    client.send(&req(0, "subscribe")).await.unwrap();
    match client.recv().await.unwrap() {
        Some(ServerFrame::Response(resp)) => assert_eq!(resp.body, "subscribe"),
        other => panic!("unexpected frame {other:?}"),
    }
}

#[tokio::test]
async fn broadcasts_reach_subscribers_and_never_an_unauthenticated_connection() {
    let home = home();
    let socket = home.path().join("latch.sock");
    let mut config = server_config(home.path());
    config.handshake_timeout = Duration::from_secs(1);
    let (_server, events) = start_echo(config).await;

    // A stranger that says nothing, and one that says Hello and stops at the challenge.
    let silent = raw_connect(&socket).await;
    let halfway = raw_connect(&socket).await;
    let mut reader = FrameReader::new(&halfway, PRE_AUTH_MAX_FRAME);
    FrameWriter::new(&halfway, PRE_AUTH_MAX_FRAME)
        .send_message(&hello(VERSION))
        .await
        .unwrap();
    let challenge: ServerHandshake = reader.next_message().await.unwrap().unwrap();
    assert!(matches!(challenge, ServerHandshake::Challenge(_)));

    // An authenticated subscriber, and an authenticated connection that did not subscribe.
    let mut subscriber: TestClient = connect(&client_config(home.path())).await.unwrap();
    subscribe(&mut subscriber).await;
    let mut bystander: TestClient = connect(&client_config(home.path())).await.unwrap();

    let event = Ev {
        seq: 1,
        data: b"user_added".to_vec(),
    };
    assert_eq!(events.send(&event).unwrap(), 1, "exactly one subscriber");

    match subscriber.recv().await.unwrap() {
        Some(ServerFrame::Event(got)) => assert_eq!(got, event),
        other => panic!("expected the event, got {other:?}"),
    }
    bystander.send(&req(9, "ping")).await.unwrap();
    match bystander.recv().await.unwrap() {
        Some(ServerFrame::Response(resp)) => assert_eq!(resp.id, 9),
        other => panic!("expected the ping's answer, got {other:?}"),
    }

    // The strangers get nothing but the close (and the challenge it asked for).
    let (frames, _) = read_until_closed(&silent, Duration::from_secs(5)).await;
    assert!(
        frames.is_empty(),
        "a silent stranger received {} frames",
        frames.len()
    );
    let (frames, _) = read_until_closed(&halfway, Duration::from_secs(5)).await;
    assert!(
        frames.is_empty(),
        "a half-authenticated stranger received {} frames",
        frames.len()
    );
    let (_, leftover) = reader.into_parts();
    assert!(leftover.is_empty());
}

#[tokio::test]
async fn a_slow_subscriber_gets_lagged_instead_of_unbounded_memory() {
    let home = home();
    let mut server = TestServer::bind(server_config(home.path())).await.unwrap();
    let events = Broadcaster::<Ev>::new(4);
    let config = client_config(home.path());
    let (conn, client) = tokio::join!(server.accept(), connect::<Req, Resp, Ev>(&config));
    let conn = conn.unwrap();
    let mut client = client.unwrap();
    conn.subscribe(&events).await.unwrap();
    // Let the subscription reach the writer before the flood.
    conn.send(&Resp {
        id: 0,
        body: "subscribed".to_owned(),
        peer_pid: None,
    })
    .await
    .unwrap();
    assert!(matches!(
        client.recv().await.unwrap(),
        Some(ServerFrame::Response(_))
    ));

    // 200 events of 64 KiB while the client reads nothing: far more than the ring (4) and
    // the socket buffers hold.
    for seq in 0..200 {
        events
            .send(&Ev {
                seq,
                data: vec![0xee; 64 * 1024],
            })
            .unwrap();
    }

    let mut lagged = 0;
    let mut received = Vec::new();
    let read_all = async {
        loop {
            match client.recv().await.unwrap() {
                Some(ServerFrame::Event(ev)) => {
                    received.push(ev.seq);
                    if ev.seq == 199 {
                        break;
                    }
                }
                Some(ServerFrame::Lagged(n)) => lagged += n,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read_all)
        .await
        .expect("the last event never arrived");
    assert!(lagged > 0, "no Lagged notice");
    assert!(received.windows(2).all(|w| w[0] < w[1]), "{received:?}");
    assert_eq!(
        received.len() as u64 + lagged,
        200,
        "{received:?} lagged {lagged}"
    );
    drop(conn);
}

#[test]
fn an_oversized_event_is_refused_at_send() {
    let events = Broadcaster::<Ev>::with_max_frame_length(4, 1024);
    let err = events
        .send(&Ev {
            seq: 0,
            data: vec![0; 2048],
        })
        .unwrap_err();
    assert!(err.to_string().contains("1024"), "{err}");
}
