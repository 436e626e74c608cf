//! The daemon in-process, in a temp home, over its real socket: requests, pipelining,
//! concurrency, events and undecodable requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::{Client, OWNER_PASSWORD, config, home, local, start};
use latch_daemon::DaemonFrame;
use latch_protocol::{
    ErrorCode, Event, EventKind, FieldKind, FlowState, PROTOCOL_VERSION, Request, RequestFrame,
    Response, Sensitive,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_status() {
    let home = home();
    let daemon = start(home.path(), config(4, "")).await;
    let mut client = Client::to(&daemon).await;
    assert_eq!(client.ok(Request::Ping).await, Response::Pong);
    let Response::Status(status) = client.ok(Request::Status).await else {
        panic!("not a status")
    };
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(status.protocol_version, PROTOCOL_VERSION);
    assert_eq!(status.pid, std::process::id());
    assert_eq!(status.home, home.path().display().to_string());
    assert!(!status.onboarded);
    assert_eq!((status.user_count, status.refresh_token_count), (0, 0));

    client.onboard("owner", OWNER_PASSWORD).await;
    client.login("owner", OWNER_PASSWORD).await;
    let Response::Status(status) = client.ok(Request::Status).await else {
        panic!("not a status")
    };
    assert!(status.onboarded);
    assert_eq!((status.user_count, status.refresh_token_count), (1, 1));
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboard_add_user_login_and_validate() {
    let home = home();
    // A non-default access-token lifetime reaches the tokens that logins mint.
    let daemon = start(
        home.path(),
        config(4, "[tokens]\naccess_token_lifetime_secs = 600\n"),
    )
    .await;
    let mut client = Client::to(&daemon).await;

    let owner = client.onboard("owner", OWNER_PASSWORD).await;
    assert!(owner.is_owner && owner.is_admin);
    assert_eq!(owner.username.as_deref(), Some("owner"));
    assert_eq!(
        client
            .call(Request::Onboard {
                name: "Again".into(),
                username: "again".into(),
                password: Sensitive::from("another password"),
            })
            .await
            .unwrap_err()
            .code,
        ErrorCode::AlreadyOnboarded
    );

    let alice = client.create_user("Alice").await;
    assert!(!alice.is_owner);
    client
        .add_password(&alice.id, "alice", "alice's secret")
        .await;
    let Response::User(alice) = client
        .ok(Request::GetUser {
            user_id: alice.id.clone(),
        })
        .await
    else {
        panic!("not a user")
    };
    assert_eq!(alice.username.as_deref(), Some("alice"));
    assert_eq!(alice.credentials.len(), 1);
    assert_eq!(alice.credentials[0].provider_type, "homeassistant");

    // The login form, then a wrong password, then the right one.
    let flow_id = client.login_start().await;
    let wrong = client
        .ok(Client::login_continue(&flow_id, "alice", "wrong"))
        .await;
    let Response::Flow(FlowState::Form(form)) = wrong else {
        panic!("{wrong:?}")
    };
    assert_eq!(form.error("base"), Some("invalid_auth"));
    let kinds: Vec<_> = form.fields.iter().map(|f| (&*f.name, &f.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("username", &FieldKind::Text),
            ("password", &FieldKind::Secret)
        ]
    );
    let done = client
        .ok(Client::login_continue(&flow_id, "alice", "alice's secret"))
        .await;
    let Response::Flow(FlowState::Done { tokens, .. }) = done else {
        panic!("{done:?}")
    };
    assert_eq!(tokens.user_id, alice.id);
    assert_eq!(tokens.provider_type, "homeassistant");
    assert_eq!(tokens.expires_in, 600);

    let Response::Validated(v) = client.ok(Client::validate(&tokens.access_token)).await else {
        panic!("not validated")
    };
    assert_eq!(v.user.id, alice.id);
    assert_eq!(v.refresh_token_id, tokens.refresh_token_id);
    assert!(v.user.is_active && !v.user.is_owner);

    // The refresh grant mints another token with the same lifetime.
    let Response::AccessToken(fresh) = client
        .ok(Request::RefreshToken {
            refresh_token: tokens.refresh_token.clone(),
            client_id: Some(common::CLIENT_ID.into()),
            remote_ip: local(),
        })
        .await
    else {
        panic!("no access token")
    };
    assert_eq!(fresh.expires_in, 600);
    assert!(matches!(
        client.ok(Client::validate(&fresh.access_token)).await,
        Response::Validated(_)
    ));

    // Errors come back with their codes.
    let garbage = client
        .call(Client::validate(&Sensitive::from("not.a.jwt")))
        .await
        .unwrap_err();
    assert_eq!(garbage.code, ErrorCode::InvalidToken);
    let missing = client
        .call(Request::GetUser {
            user_id: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code, ErrorCode::UserNotFound);
    let taken = client
        .call(Request::AddPassword {
            user_id: owner.id.clone(),
            username: "owner2".into(),
            password: Sensitive::from("x"),
        })
        .await
        .unwrap_err();
    assert_eq!(taken.code, ErrorCode::AlreadyExists);

    // Revoking the session stops its access tokens at once.
    client
        .ok(Request::RevokeToken {
            refresh_token: tokens.refresh_token.clone(),
        })
        .await;
    assert_eq!(
        client
            .call(Client::validate(&tokens.access_token))
            .await
            .unwrap_err()
            .code,
        ErrorCode::InvalidToken
    );
    daemon.shutdown().await.unwrap();
}

/// A long-lived access token for the owner, made without bcrypt.
async fn owner_token(client: &mut Client) -> Sensitive {
    let owner = client.onboard("owner", OWNER_PASSWORD).await;
    let Response::LongLivedToken(t) = client
        .ok(Request::CreateLongLivedToken {
            user_id: owner.id,
            client_name: "tests".into(),
            client_icon: None,
            lifespan_days: 1,
        })
        .await
    else {
        panic!("no long-lived token")
    };
    t.access_token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_pipelined_validations_are_all_answered_with_their_ids() {
    let home = home();
    let daemon = start(home.path(), config(4, "")).await;
    let mut client = Client::to(&daemon).await;
    let token = owner_token(&mut client).await;

    let ids: BTreeSet<u64> = (1_000..1_050).collect();
    for id in &ids {
        client.send(*id, Client::validate(&token)).await;
    }
    let mut answered = BTreeSet::new();
    for _ in 0..ids.len() {
        let payload = client.answer().await;
        assert!(
            matches!(payload.result, Ok(Response::Validated(_))),
            "{payload:?}"
        );
        assert!(
            answered.insert(payload.id),
            "id {} answered twice",
            payload.id
        );
    }
    assert_eq!(answered, ids);
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_login_does_not_delay_validations() {
    let home = home();
    // Cost 10: the login's bcrypt check takes tens of milliseconds.
    let daemon = start(home.path(), config(10, "")).await;
    let mut client = Client::to(&daemon).await;
    let token = owner_token(&mut client).await;
    let mut other = Client::to(&daemon).await;

    let flow_id = client.login_start().await;
    let login_id = 500;
    client
        .send(
            login_id,
            Client::login_continue(&flow_id, "owner", OWNER_PASSWORD),
        )
        .await;
    // Validations on the same connection, behind the login, and on another connection.
    let validations: BTreeSet<u64> = (501..521).collect();
    for id in &validations {
        client.send(*id, Client::validate(&token)).await;
    }
    for id in 1..=5 {
        other.send(id, Client::validate(&token)).await;
    }
    for _ in 1..=5 {
        let payload = other.answer().await;
        assert!(matches!(payload.result, Ok(Response::Validated(_))));
    }
    let mut order = Vec::new();
    for _ in 0..=validations.len() {
        let payload = client.answer().await;
        if payload.id == login_id {
            assert!(
                matches!(payload.result, Ok(Response::Flow(FlowState::Done { .. }))),
                "{payload:?}"
            );
        } else {
            assert!(matches!(payload.result, Ok(Response::Validated(_))));
        }
        order.push(payload.id);
    }
    assert_eq!(
        order.last(),
        Some(&login_id),
        "every validation is answered before the login: {order:?}"
    );
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_get_the_kinds_they_named() {
    let home = home();
    let daemon = start(home.path(), config(4, "")).await;
    let mut client = Client::to(&daemon).await;
    client.onboard("owner", OWNER_PASSWORD).await;

    assert_eq!(
        client
            .ok(Request::Subscribe {
                kinds: vec![EventKind::UserAdded],
            })
            .await,
        Response::Subscribed
    );
    let bob = client.create_user("Bob").await;
    assert_eq!(
        client.event().await,
        Event::UserAdded {
            user_id: bob.id.clone()
        }
    );

    // An update is not a kind it named; the next event is the next user added.
    client
        .ok(Request::UpdateUser {
            user_id: bob.id.clone(),
            name: Some("Robert".into()),
            is_active: None,
            group_ids: None,
            local_only: None,
        })
        .await;
    let carol = client.create_user("Carol").await;
    assert_eq!(
        client.event().await,
        Event::UserAdded {
            user_id: carol.id.clone()
        }
    );

    // Unsubscribed, then subscribed to removals only: the user added in between is not
    // delivered, the removal is.
    assert_eq!(
        client.ok(Request::Unsubscribe).await,
        Response::Unsubscribed
    );
    let dave = client.create_user("Dave").await;
    client
        .ok(Request::Subscribe {
            kinds: vec![EventKind::UserRemoved],
        })
        .await;
    client
        .ok(Request::RemoveUser {
            user_id: dave.id.clone(),
        })
        .await;
    assert_eq!(
        client.event().await,
        Event::UserRemoved { user_id: dave.id }
    );
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_only_subscribed_connections() {
    let home = home();
    let daemon = start(home.path(), config(4, "")).await;
    let mut quiet = Client::to(&daemon).await;
    let mut listening = Client::to(&daemon).await;
    listening.ok(Request::subscribe_all()).await;
    let owner = quiet.onboard("owner", OWNER_PASSWORD).await;
    assert_eq!(
        listening.event().await,
        Event::UserAdded { user_id: owner.id }
    );
    // The quiet connection's next frame is the answer to its next request, not an event.
    assert_eq!(quiet.ok(Request::Ping).await, Response::Pong);
    assert!(quiet.events.is_empty());
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_requests_are_answered_by_id() {
    let home = home();
    let daemon = start(home.path(), config(4, "")).await;
    let mut client = Client::to(&daemon).await;

    // A newer client's request kind: id 77, variant 200, some body.
    let mut future = postcard_varint(77);
    future.extend(postcard_varint(200));
    future.push(1);
    client.send_raw(future).await;
    let payload = client.answer().await;
    assert_eq!(payload.id, 77);
    let err = payload.result.unwrap_err();
    assert_eq!(err.code, ErrorCode::UnsupportedRequest);
    assert!(err.message.contains("200"), "{}", err.message);

    // A known kind with a broken body: invalid_request, same id.
    let mut broken = RequestFrame::new(
        78,
        Request::GetUser {
            user_id: "someone".into(),
        },
    )
    .encode()
    .unwrap();
    broken.truncate(broken.len() - 3);
    client.send_raw(broken).await;
    let payload = client.answer().await;
    assert_eq!(payload.id, 78);
    assert_eq!(payload.result.unwrap_err().code, ErrorCode::InvalidRequest);

    // Trailing bytes after a valid request: invalid_request too.
    let mut trailing = RequestFrame::new(79, Request::Ping).encode().unwrap();
    trailing.push(0);
    client.send_raw(trailing).await;
    let payload = client.answer().await;
    assert_eq!(payload.id, 79);
    assert_eq!(payload.result.unwrap_err().code, ErrorCode::InvalidRequest);

    // The connection is still good.
    assert_eq!(client.ok(Request::Ping).await, Response::Pong);

    // A frame without even an id cannot be answered: the daemon closes the connection.
    client.send_raw(vec![0xff]).await;
    assert_eq!(client.frame().await, None::<DaemonFrame>);
    daemon.shutdown().await.unwrap();
}

fn postcard_varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_listing_and_clearing_go_through_the_manager() {
    let home = home();
    let daemon = start(
        home.path(),
        config(4, "[throttle]\ndelay_after = 100\nlockout_after = 2\n"),
    )
    .await;
    let mut client = Client::to(&daemon).await;
    client.onboard("owner", OWNER_PASSWORD).await;
    client
        .ok(Request::Subscribe {
            kinds: vec![EventKind::LockoutStarted, EventKind::LockoutCleared],
        })
        .await;
    for _ in 0..2 {
        let flow = client.login_start().await;
        client
            .ok(Client::login_continue(&flow, "owner", "wrong"))
            .await;
    }
    let Response::Lockouts(lockouts) = client.ok(Request::ListLockouts).await else {
        panic!("no lockouts")
    };
    let username = latch_protocol::LockoutKey::Username("owner".into());
    assert!(
        lockouts
            .iter()
            .any(|l| l.key == username && l.locked_until.is_some()),
        "{lockouts:?}"
    );
    assert!(matches!(client.event().await, Event::LockoutStarted { .. }));
    // Both the username and the source were locked out; clear both.
    let source = latch_protocol::LockoutKey::Source(local().unwrap());
    for key in [username.clone(), source.clone()] {
        client.ok(Request::ClearLockout { key }).await;
    }
    let mut cleared = BTreeSet::new();
    while cleared.len() < 2 {
        match client.event().await {
            Event::LockoutCleared { key } => {
                cleared.insert(key.to_string());
            }
            Event::LockoutStarted { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        cleared,
        BTreeSet::from([username.to_string(), source.to_string()])
    );
    // Clearing again finds nothing, and says so.
    let nothing = client
        .call(Request::ClearLockout { key: username })
        .await
        .unwrap_err();
    assert_eq!(nothing.code, ErrorCode::NotFound);
    assert!(nothing.message.contains("username:owner"), "{nothing:?}");
    // The owner logs in again.
    client.login("owner", OWNER_PASSWORD).await;
    daemon.shutdown().await.unwrap();
}
