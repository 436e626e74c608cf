//! `send_now` (straight into the socket when the writer task is idle) mixed with `send`
//! (through the writer task), on both sides, from concurrent tasks, with frames large
//! enough that the socket takes only part of one: every frame arrives whole.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::*;
use latch_ipc::ServerFrame;
use latch_ipc::client::connect;

/// A body of `len` bytes that says which request it belongs to.
fn body(id: u64, len: usize) -> String {
    let stamp = format!("<{id}>");
    stamp.repeat(len / stamp.len() + 1)[..len].to_owned()
}

/// Sizes from a few bytes to far more than a Unix socket's buffer.
fn len_of(id: u64) -> usize {
    match id % 5 {
        0 => 3,
        1 => 200,
        2 => 9_000,
        3 => 150_000,
        _ => 600_000,
    }
}

/// Echoes each request, alternating `send_now` and `send`, from a task per request.
async fn serve_mixed(conn: TestConnection) {
    let (mut requests, sender) = conn.into_split();
    while let Ok(Some(req)) = requests.recv().await {
        let sender = sender.clone();
        tokio::spawn(async move {
            let resp = Resp {
                id: req.id,
                body: req.body,
                peer_pid: None,
            };
            if resp.id.is_multiple_of(2) {
                sender.send_now(&resp).await
            } else {
                sender.send(&resp).await
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_now_and_send_never_interleave_frames() {
    let home = home();
    let mut server = TestServer::bind(server_config(home.path())).await.unwrap();
    tokio::spawn(async move {
        while let Some(conn) = server.accept().await {
            tokio::spawn(serve_mixed(conn));
        }
    });
    let client: TestClient = connect(&client_config(home.path())).await.unwrap();
    let (sender, mut receiver) = client.into_split();
    let writers: Vec<_> = (0..4u64)
        .map(|task| {
            let sender = sender.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    let id = task * 1000 + i;
                    let request = req(id, &body(id, len_of(id)));
                    if (task + i).is_multiple_of(2) {
                        sender.send_now(&request).await.unwrap();
                    } else {
                        sender.send(&request).await.unwrap();
                    }
                }
            })
        })
        .collect();
    let mut seen = BTreeSet::new();
    while seen.len() < 100 {
        match receiver.recv().await.unwrap().unwrap() {
            ServerFrame::Response(resp) => {
                assert_eq!(resp.body.len(), len_of(resp.id), "response {}", resp.id);
                assert!(
                    resp.body == body(resp.id, len_of(resp.id)),
                    "response {} came back mixed with another frame",
                    resp.id
                );
                assert!(seen.insert(resp.id), "duplicate response {}", resp.id);
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
}

#[tokio::test]
async fn a_frame_sent_now_to_a_peer_that_does_not_read_is_finished_later() {
    // The socket's buffer fills; the rest of the frame waits in the writer task until
    // the peer reads, and a frame queued behind it comes after it, whole.
    let home = home();
    let mut server = TestServer::bind(server_config(home.path())).await.unwrap();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let conn = server.accept().await.unwrap();
        let (mut requests, sender) = conn.into_split();
        let first = requests.recv().await.unwrap().unwrap();
        let big = Resp {
            id: first.id,
            body: body(first.id, 900_000),
            peer_pid: None,
        };
        sender.send_now(&big).await.unwrap();
        let small = Resp {
            id: first.id + 1,
            body: body(first.id + 1, 10),
            peer_pid: None,
        };
        sender.send_now(&small).await.unwrap();
        let _ = done_tx.send(());
        // Keep the connection until the client has read everything.
        let _ = requests.recv().await;
    });
    let mut client: TestClient = connect(&client_config(home.path())).await.unwrap();
    client.send(&req(7, "go")).await.unwrap();
    // Both sends return before the client reads a byte: the socket holds a fraction of
    // 900 kB, so the first was finished by the writer task.
    done_rx.await.unwrap();
    for (id, len) in [(7, 900_000), (8, 10)] {
        match client.recv().await.unwrap().unwrap() {
            ServerFrame::Response(resp) => {
                assert_eq!(resp.id, id);
                assert!(resp.body == body(id, len), "frame {id} is not whole");
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
}
