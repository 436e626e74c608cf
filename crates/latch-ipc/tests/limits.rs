//! Idle strangers cannot lock out authenticated clients.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use latch_ipc::ServerFrame;
use latch_ipc::broadcast::Broadcaster;
use latch_ipc::client::connect;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Raises the soft open-file limit towards `wanted`; returns how many descriptors the
/// test may use.
fn raise_fd_limit(wanted: u64) -> u64 {
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(u64::MAX);
    if current >= wanted {
        return current;
    }
    let target = limit.maximum.map_or(wanted, |max| max.min(wanted));
    let raised = Rlimit {
        current: Some(target),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => target,
        Err(_) => current,
    }
}

async fn authenticate_and_ping(
    server: &mut TestServer,
    home: &std::path::Path,
    id: u64,
) -> TestClient {
    let config = client_config(home);
    let (conn, client) = tokio::join!(server.accept(), connect::<Req, Resp, Ev>(&config));
    tokio::spawn(serve(conn.unwrap(), Broadcaster::new(4)));
    let mut client = client.unwrap();
    client.send(&req(id, "ping")).await.unwrap();
    match client.recv().await.unwrap() {
        Some(ServerFrame::Response(resp)) => assert_eq!(resp.id, id),
        other => panic!("unexpected frame {other:?}"),
    }
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_idle_strangers_do_not_stop_an_authenticated_client() {
    // Each stranger costs two descriptors in this process (both ends), plus slack.
    let available = raise_fd_limit(2 * 500 + 200);
    let strangers = if available >= 1200 {
        500
    } else {
        let fewer = available.saturating_sub(200) / 2;
        eprintln!(
            "open-file limit is {available} and cannot be raised: using {fewer} idle strangers instead of 500"
        );
        usize::try_from(fewer).unwrap()
    };
    assert!(
        strangers >= 100,
        "too few descriptors ({available}) for a meaningful test"
    );

    let home = home();
    let mut config = server_config(home.path());
    config.max_pre_auth = 1024;
    config.max_authenticated = 2;
    config.handshake_timeout = Duration::from_secs(60);
    let mut server = TestServer::bind(config).await.unwrap();
    let socket = home.path().join("latch.sock");

    let mut idle = Vec::with_capacity(strangers);
    for _ in 0..strangers {
        idle.push(raw_connect(&socket).await);
    }
    wait_for(
        "every stranger to hold a pre-auth slot",
        Duration::from_secs(20),
        || server.stats().pre_auth == strangers,
    )
    .await;

    // Both authenticated slots are still free for real clients, and they get answers.
    let start = Instant::now();
    let _a = authenticate_and_ping(&mut server, home.path(), 1).await;
    let _b = authenticate_and_ping(&mut server, home.path(), 2).await;
    assert!(start.elapsed() < Duration::from_secs(10));
    let stats = server.stats();
    assert_eq!(stats.authenticated, 2);
    assert_eq!(
        stats.pre_auth, strangers,
        "the strangers were not all still waiting"
    );
    drop(idle);
}

#[tokio::test]
async fn a_full_pre_auth_cap_closes_the_oldest_stranger_and_lets_a_client_in() {
    let home = home();
    let mut config = server_config(home.path());
    config.max_pre_auth = 4;
    config.handshake_timeout = Duration::from_secs(30);
    let mut server = TestServer::bind(config).await.unwrap();
    let socket = home.path().join("latch.sock");

    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(raw_connect(&socket).await);
        // Accepted in this order: the first is the oldest.
        let taken = idle.len();
        wait_for("the stranger holds a slot", Duration::from_secs(5), || {
            server.stats().pre_auth == taken
        })
        .await;
    }

    // A fifth stranger is not refused: the oldest is closed at once to make room.
    let fifth = raw_connect(&socket).await;
    let (frames, elapsed) = read_until_closed(&idle[0], Duration::from_secs(5)).await;
    assert!(frames.is_empty());
    assert!(
        elapsed < Duration::from_secs(5),
        "the oldest stranger was kept {elapsed:?}"
    );
    assert_eq!(server.stats().pre_auth, 4);

    // With every slot held by a silent stranger, far inside the 30 s deadline, a real
    // client still gets in (pushing out the next oldest) and is served.
    let config = client_config(home.path());
    let accept = async {
        let conn = server.accept().await.unwrap();
        tokio::spawn(serve(conn, Broadcaster::new(4)));
    };
    let (_, connected) = tokio::join!(accept, connect::<Req, Resp, Ev>(&config));
    let mut client = connected.unwrap();
    client.send(&req(5, "ping")).await.unwrap();
    assert!(matches!(
        client.recv().await.unwrap(),
        Some(ServerFrame::Response(Resp { id: 5, .. }))
    ));
    let (frames, _) = read_until_closed(&idle[1], Duration::from_secs(5)).await;
    assert!(
        frames.is_empty(),
        "the next oldest made room for the client"
    );
    drop(fifth);
}
