//! The client against the real daemon (latch-daemon's library, in-process, in a temp
//! home, over the real socket): connection errors, pipelining, events, reconnect.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt as _;
use latch_client::protocol::{ErrorCode, Event, EventKind};
use latch_client::{Client, ClientError, ClientEvent, ClientOptions, NewUser, exit};

use common::{TestDaemon, eventually, token_path};

const WITHIN: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connects_pings_and_reads_the_status() {
    let daemon = TestDaemon::start().await;
    let client = daemon.client().await;
    client.ping().await.unwrap();
    assert!(client.is_connected());
    assert_eq!(
        client.daemon_version(),
        latch_client::protocol::PROTOCOL_VERSION
    );
    let status = client.status().await.unwrap();
    assert!(!status.onboarded);
    assert_eq!(status.user_count, 0);
    assert_eq!(status.pid, std::process::id());
    assert_eq!(client.socket_path(), daemon.home().join("latch.sock"));
}

#[tokio::test]
async fn no_daemon_is_not_running_with_a_hint() {
    let home = tempfile::tempdir().unwrap();
    let err = Client::connect_with(ClientOptions::for_home(home.path()))
        .await
        .unwrap_err();
    let ClientError::NotRunning { socket, hint } = &err else {
        panic!("expected NotRunning, got {err:?}");
    };
    assert_eq!(socket, &home.path().join("latch.sock"));
    assert!(hint.contains("latchd"), "{hint}");
    assert!(hint.contains("cargo run --release --bin latchd"), "{hint}");
    assert!(hint.contains("LATCH_HOME"), "{hint}");
    assert_eq!(err.exit_code(), exit::UNREACHABLE);
    assert!(err.is_unreachable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_token_file_is_named_with_its_variable() {
    let daemon = TestDaemon::start().await;
    let missing = daemon.home().join("nowhere").join("session-token");
    let options = ClientOptions {
        token_file: Some(missing.clone()),
        ..daemon.options()
    };
    let err = Client::connect_with(options).await.unwrap_err();
    let ClientError::TokenMissing { path, hint } = &err else {
        panic!("expected TokenMissing, got {err:?}");
    };
    assert_eq!(path, &missing);
    assert!(hint.contains("LATCH_TOKEN_FILE"), "{hint}");
    let message = err.to_string();
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    assert_eq!(err.exit_code(), exit::AUTH);
    assert!(err.is_auth_failure());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_token_file_is_caught_before_anything_is_sent() {
    let daemon = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();

    // A well-formed token that is not the daemon's: the daemon cannot prove it holds
    // it, so the client stops at the daemon's proof.
    let stale = dir.path().join("stale-token");
    write_private(&stale, &format!("{}\n", "ab".repeat(32)));
    let err = Client::connect_with(ClientOptions {
        token_file: Some(stale.clone()),
        ..daemon.options()
    })
    .await
    .unwrap_err();
    let ClientError::ServerImpostor { socket, token_file } = &err else {
        panic!("expected ServerImpostor, got {err:?}");
    };
    assert_eq!(socket, &daemon.home().join("latch.sock"));
    assert_eq!(token_file, &stale);
    assert!(err.to_string().contains("LATCH_TOKEN_FILE"));
    assert_eq!(err.exit_code(), exit::AUTH);

    // Not a token at all.
    let garbage = dir.path().join("garbage");
    write_private(&garbage, "not a token");
    let err = Client::connect_with(ClientOptions {
        token_file: Some(garbage.clone()),
        ..daemon.options()
    })
    .await
    .unwrap_err();
    let ClientError::TokenUnreadable { path, .. } = &err else {
        panic!("expected TokenUnreadable, got {err:?}");
    };
    assert_eq!(path, &garbage);
    assert_eq!(err.exit_code(), exit::AUTH);

    // The right file still works.
    daemon.client().await.ping().await.unwrap();
}

/// Writes `text` to `path`, mode 0600.
fn write_private(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)]
async fn a_token_file_others_could_read_or_plant_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let daemon = TestDaemon::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A copy of the daemon's own, valid token: only where it lies is wrong.
    let copy = dir.path().join("session-token");
    write_private(
        &copy,
        &std::fs::read_to_string(token_path(daemon.home())).unwrap(),
    );
    let options = || ClientOptions {
        token_file: Some(copy.clone()),
        reconnect: latch_client::ReconnectPolicy::Never,
        ..daemon.options()
    };
    Client::connect_with(options())
        .await
        .unwrap()
        .ping()
        .await
        .unwrap();

    for mode in [0o640, 0o604] {
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = Client::connect_with(options()).await.unwrap_err();
        let ClientError::UntrustedTokenFile { path, detail } = &err else {
            panic!("expected UntrustedTokenFile, got {err:?}");
        };
        assert_eq!(path, &copy);
        assert!(detail.contains(&format!("mode {mode:04o}")), "{detail}");
        assert!(detail.contains(&copy.display().to_string()), "{detail}");
        assert_eq!(err.exit_code(), exit::AUTH);
        assert!(err.is_auth_failure());
    }
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).unwrap();

    if latch_ipc::home::current_uid() == 0 {
        std::os::unix::fs::chown(&copy, Some(65_534), Some(65_534)).unwrap();
        let err = Client::connect_with(options()).await.unwrap_err();
        let ClientError::UntrustedTokenFile { detail, .. } = &err else {
            panic!("expected UntrustedTokenFile, got {err:?}");
        };
        assert!(detail.contains("owned by uid 65534"), "{detail}");
        assert!(detail.contains("owned by you (uid 0) or root"), "{detail}");
    } else {
        eprintln!(
            "not root: a file cannot be given to another user here; latch-ipc's \
             token::tests::a_token_file_of_another_owner_is_refused checks the rule"
        );
    }
    // The daemon's own file still serves.
    daemon.client().await.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn answers_and_errors_are_typed() {
    let daemon = TestDaemon::start().await;
    let client = daemon.client().await;
    let err = client.get_user("no-such-user").await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Api {
                code: ErrorCode::UserNotFound,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), exit::NOT_FOUND);
    let err = client.validate_token("not.a.jwt").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidToken));
    assert_eq!(err.exit_code(), exit::DENIED);
}

/// 100 validations from 10 tasks on one connection, for two users' tokens interleaved:
/// every answer reaches its own caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_requests_from_many_tasks_share_one_connection() {
    let daemon = TestDaemon::start().await;
    let client = daemon.client().await;
    let owner = client
        .onboard("Paulus", "paulus", "correct horse battery")
        .await
        .unwrap();
    let other = client.create_user(NewUser::new("Anne")).await.unwrap();
    let mut tokens = HashMap::new();
    for user in [&owner, &other] {
        let token = client
            .create_long_lived_token(&user.id, "pipelining", None, 1)
            .await
            .unwrap();
        tokens.insert(user.id.clone(), token.access_token.expose().to_owned());
    }
    let tokens = std::sync::Arc::new(tokens);
    let connections_before = client.connection_count();

    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..10 {
        let client = client.clone();
        let tokens = std::sync::Arc::clone(&tokens);
        let owner_id = owner.id.clone();
        let other_id = other.id.clone();
        tasks.spawn(async move {
            let mut calls = futures::stream::FuturesUnordered::new();
            for i in 0..10 {
                let user_id = if (task + i) % 2 == 0 {
                    owner_id.clone()
                } else {
                    other_id.clone()
                };
                let client = client.clone();
                let token = tokens[&user_id].clone();
                calls.push(async move {
                    let valid = client.validate_token(&token).await;
                    (user_id, valid)
                });
            }
            let mut answered = 0;
            while let Some((user_id, valid)) = calls.next().await {
                assert_eq!(valid.unwrap().user.id, user_id);
                answered += 1;
            }
            answered
        });
    }
    let mut total = 0;
    while let Some(answered) = tasks.join_next().await {
        total += answered.unwrap();
    }
    assert_eq!(total, 100);
    assert_eq!(client.connection_count(), connections_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_receives_the_kinds_it_named() {
    let daemon = TestDaemon::start().await;
    let client = daemon.client().await;
    // The first user becomes the owner, which cannot be removed.
    client.create_user(NewUser::new("Owner")).await.unwrap();
    let mut events = client
        .subscribe([EventKind::UserAdded, EventKind::UserRemoved])
        .await
        .unwrap();
    assert_eq!(
        events.kinds(),
        [EventKind::UserAdded, EventKind::UserRemoved]
    );

    let user = client.create_user(NewUser::new("Anne")).await.unwrap();
    // UserUpdated is not subscribed: renaming must not show up.
    client
        .update_user(
            &user.id,
            latch_client::UserUpdate {
                name: Some("Anne B".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    client.remove_user(&user.id).await.unwrap();

    let first = tokio::time::timeout(WITHIN, events.next()).await.unwrap();
    assert_eq!(
        first,
        Some(ClientEvent::Event(Event::UserAdded {
            user_id: user.id.clone()
        }))
    );
    let second = tokio::time::timeout(WITHIN, events.next_event())
        .await
        .unwrap();
    assert_eq!(
        second,
        Some(ClientEvent::Event(Event::UserRemoved {
            user_id: user.id.clone()
        }))
    );

    // Unsubscribing ends the stream.
    client.unsubscribe().await.unwrap();
    assert_eq!(
        tokio::time::timeout(WITHIN, events.next()).await.unwrap(),
        None
    );
}

/// The daemon restarts in the same home with a new token: the client reconnects (reading
/// the new token), re-sends its subscription, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconnects_after_a_restart_with_the_rotated_token_and_resubscribes() {
    let mut daemon = TestDaemon::start().await;
    let client = daemon.client().await;
    let mut events = client.subscribe([EventKind::UserAdded]).await.unwrap();
    let old_token = std::fs::read_to_string(token_path(daemon.home())).unwrap();
    assert_eq!(client.connection_count(), 1);

    daemon.restart().await;
    let new_token = std::fs::read_to_string(token_path(daemon.home())).unwrap();
    assert_ne!(
        old_token, new_token,
        "the daemon rotates its token at start"
    );

    // The subscription brings the connection back in the background.
    let reconnected = tokio::time::timeout(WITHIN, events.next()).await.unwrap();
    assert_eq!(reconnected, Some(ClientEvent::Reconnected));
    assert_eq!(client.connection_count(), 2);

    // Events flow again on the new connection without subscribing anew.
    let user = client.create_user(NewUser::new("Anne")).await.unwrap();
    let event = tokio::time::timeout(WITHIN, events.next()).await.unwrap();
    assert_eq!(
        event,
        Some(ClientEvent::Event(Event::UserAdded {
            user_id: user.id.clone()
        }))
    );
}

/// Without a subscription the next call reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_next_call_after_a_restart_reconnects() {
    let mut daemon = TestDaemon::start().await;
    let client = daemon.client().await;
    client.ping().await.unwrap();

    daemon.stop().await;
    let err = eventually(WITHIN, "the client to see the daemon gone", || {
        let client = client.clone();
        async move { client.ping().await.err() }
    })
    .await;
    assert!(
        matches!(
            err,
            ClientError::NotRunning { .. } | ClientError::Disconnected
        ),
        "{err:?}"
    );

    daemon.restart().await;
    client.ping().await.unwrap();
    assert!(client.connection_count() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_client_connects_on_its_first_call() {
    let daemon = TestDaemon::start().await;
    let client = Client::new_lazy(daemon.options()).unwrap();
    assert_eq!(client.connection_count(), 0);
    client.ping().await.unwrap();
    assert_eq!(client.connection_count(), 1);
}

/// Dropping every clone of a client closes its connection and ends its event stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_client_ends_the_subscription() {
    let daemon = TestDaemon::start().await;
    let client = daemon.client().await;
    let mut events = client.subscribe_all().await.unwrap();
    assert_eq!(events.kinds().len(), EventKind::ALL.len());
    let clone = client.clone();
    drop(client);
    clone.ping().await.unwrap();
    drop(clone);
    let end = tokio::time::timeout(WITHIN, events.next()).await.unwrap();
    assert_eq!(end, None);
}
