//! After the handshake: the outbound byte budget and the partial-frame deadline, over a
//! real socket.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use interprocess::local_socket::tokio::Stream;
use latch_ipc::broadcast::Broadcaster;
use latch_ipc::client::connect;
use latch_ipc::frame::{FrameError, FrameReader, FrameWriter, PRE_AUTH_MAX_FRAME};
use latch_ipc::handshake::{ClientParams, client_handshake, same_version};
use latch_ipc::server::ServerConfig;
use latch_ipc::token::read_token_file;
use latch_ipc::{SendError, ServerFrame, frame_cost};

const STALL: Duration = Duration::from_millis(300);
const BUDGET: usize = 64 * 1024;
const WITHIN: Duration = Duration::from_secs(20);

fn config(home: &Path) -> ServerConfig {
    let mut config = server_config(home);
    config.stall_timeout = STALL;
    config.outbound_budget = BUDGET;
    config
}

/// A raw stream that has passed the handshake, for writing bytes by hand.
async fn authenticated_raw(home: &Path) -> Stream {
    let stream = raw_connect(&home.join("latch.sock")).await;
    let token = read_token_file(&home.join("session-token")).unwrap();
    let params = ClientParams {
        token: &token,
        version: VERSION,
        version_rule: same_version,
    };
    let mut reader = FrameReader::new(&stream, PRE_AUTH_MAX_FRAME);
    let mut writer = FrameWriter::new(&stream, PRE_AUTH_MAX_FRAME);
    client_handshake(&mut reader, &mut writer, &params)
        .await
        .unwrap();
    assert!(reader.into_parts().1.is_empty());
    stream
}

fn answer(id: u64, len: usize) -> Resp {
    Resp {
        id,
        body: "a".repeat(len),
        peer_pid: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_frame_is_closed_at_the_stall_deadline_and_an_idle_one_is_not() {
    let home = home();
    let mut server = TestServer::bind(config(home.path())).await.unwrap();
    // An idle connection and a staller, both authenticated.
    let (idle_conn, idle) = tokio::join!(server.accept(), async {
        connect::<Req, Resp, Ev>(&client_config(home.path()))
            .await
            .unwrap()
    });
    let idle_conn = idle_conn.unwrap();
    let (stall_conn, staller) = tokio::join!(server.accept(), authenticated_raw(home.path()));
    let mut stall_conn = stall_conn.unwrap();

    // Half a frame: a header announcing 100 bytes, and 10 of them.
    write_raw(&staller, &[0, 0, 0, 100]).await;
    write_raw(&staller, &[0; 10]).await;
    let started = Instant::now();
    let seen = tokio::time::timeout(WITHIN, stall_conn.recv())
        .await
        .unwrap();
    assert!(
        matches!(seen, Err(FrameError::Stalled { buffered: 10, after }) if after == STALL),
        "{seen:?}"
    );
    let (frames, _) = read_until_closed(&staller, WITHIN).await;
    assert!(frames.is_empty());
    assert!(started.elapsed() >= STALL, "closed before the deadline");

    // The idle connection, as old as the staller, was given no deadline.
    let mut idle = idle;
    let (mut requests, replies) = idle_conn.into_split();
    idle.send(&req(1, "still here")).await.unwrap();
    let request = requests.recv().await.unwrap().unwrap();
    assert_eq!(request.body, "still here");
    replies.send(&answer(1, 1)).await.unwrap();
    assert!(matches!(
        idle.recv().await.unwrap(),
        Some(ServerFrame::Response(Resp { id: 1, .. }))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_its_answers_is_closed_within_its_budget_while_a_flooded_subscriber_only_lags()
 {
    let home = home();
    let mut server = TestServer::bind(config(home.path())).await.unwrap();
    let events = Broadcaster::<Ev>::new(4);

    // A subscriber that reads nothing for now.
    let (sub_conn, mut subscriber) = tokio::join!(server.accept(), async {
        connect::<Req, Resp, Ev>(&client_config(home.path()))
            .await
            .unwrap()
    });
    let sub_conn = sub_conn.unwrap();
    sub_conn.subscribe(&events).await.unwrap();
    sub_conn.send(&answer(0, 1)).await.unwrap();
    assert!(matches!(
        subscriber.recv().await.unwrap(),
        Some(ServerFrame::Response(_))
    ));

    // A client that asks and never reads: every request gets a 16 KiB answer.
    let (conn, mute) = tokio::join!(server.accept(), async {
        connect::<Req, Resp, Ev>(&client_config(home.path()))
            .await
            .unwrap()
    });
    let (mut requests, replies) = conn.unwrap().into_split();
    let answering = tokio::spawn(async move {
        let mut most_queued = 0;
        loop {
            let Ok(Some(request)) = requests.recv().await else {
                return (Err(()), most_queued);
            };
            let sent = replies.send(&answer(request.id, 16 * 1024)).await;
            most_queued = most_queued.max(replies.queued_bytes());
            if let Err(e) = sent {
                return (Ok(e), most_queued);
            }
        }
    });
    for id in 0..1000 {
        if mute.send(&req(id, "q")).await.is_err() {
            break;
        }
    }
    // Meanwhile the subscriber is flooded far past the ring (4) and the socket buffers.
    for seq in 0..200 {
        events
            .send(&Ev {
                seq,
                data: vec![0xee; 64 * 1024],
            })
            .unwrap();
    }

    let (outcome, most_queued) = tokio::time::timeout(WITHIN, answering)
        .await
        .expect("the mute client was never closed")
        .unwrap();
    let err = outcome.expect("the connection ended otherwise");
    assert!(
        matches!(err, SendError::Stalled { budget, after } if budget == BUDGET && after == STALL),
        "{err}"
    );
    assert!(
        most_queued <= BUDGET,
        "{most_queued} bytes queued, over the {BUDGET}-byte budget"
    );
    assert!(
        most_queued + frame_cost(16 * 1024 + 64) > BUDGET,
        "the budget never filled: {most_queued}"
    );

    // The subscriber, as stalled as the mute client and for as long, is still served:
    // it is told what it missed and gets the newest events.
    let mut lagged = 0;
    let mut received = Vec::new();
    let read_all = async {
        loop {
            match subscriber.recv().await.unwrap() {
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
    tokio::time::timeout(WITHIN, read_all)
        .await
        .expect("the last event never arrived");
    assert!(lagged > 0, "no Lagged notice");
    assert_eq!(received.len() as u64 + lagged, 200);
    drop(sub_conn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_gets_every_answer_through_a_small_budget() {
    let home = home();
    let mut config = config(home.path());
    config.stall_timeout = Duration::from_secs(10);
    let mut server = TestServer::bind(config).await.unwrap();
    let (conn, mut client) = tokio::join!(server.accept(), async {
        connect::<Req, Resp, Ev>(&client_config(home.path()))
            .await
            .unwrap()
    });
    let (mut requests, replies) = conn.unwrap().into_split();
    // 2 MiB of answers, 32 budgets' worth, all sent before the client reads one.
    let answering = tokio::spawn(async move {
        let mut most_queued = 0;
        while let Ok(Some(request)) = requests.recv().await {
            replies.send(&answer(request.id, 16 * 1024)).await.unwrap();
            most_queued = most_queued.max(replies.queued_bytes());
        }
        most_queued
    });
    for id in 0..128 {
        client.send(&req(id, "q")).await.unwrap();
    }
    for id in 0..128 {
        match tokio::time::timeout(WITHIN, client.recv()).await.unwrap() {
            Ok(Some(ServerFrame::Response(resp))) => {
                assert_eq!((resp.id, resp.body.len()), (id, 16 * 1024));
            }
            other => panic!("answer {id}: {other:?}"),
        }
    }
    drop(client);
    let most_queued = tokio::time::timeout(WITHIN, answering)
        .await
        .unwrap()
        .unwrap();
    assert!(most_queued <= BUDGET, "{most_queued}");
}
