//! Events: what an authenticated subscriber sees, and what an unauthenticated connection
//! does not.

use std::io::{ErrorKind, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use latch_client::protocol::{Event, EventKind, LockoutKey, Request, RequestFrame, TokenType};
use latch_client::{ClientEvent, NewUser};
use latch_tests::raw::{
    frame, hello, is_bad_proof_rejection, is_challenge, split_frames, wrong_proof,
};
use latch_tests::{DEADLINE, Home, block_on, poll_until, runtime};

use super::{
    CLI_CLIENT_ID, OWNER_PASSWORD, add_user, login, onboard, seen_or_wait_for_event, wait_for_event,
};

#[test]
fn a_subscriber_sees_the_events_of_cli_actions() {
    let home = Home::new();
    let _daemon = home.start();
    let client = home.client();
    let mut events = block_on(client.subscribe_all()).unwrap();
    let mut seen = Vec::new();

    let owner_id = onboard(&home);
    wait_for_event(
        &mut events,
        &mut seen,
        "the owner's user_added",
        |e| matches!(e, Event::UserAdded { user_id } if *user_id == owner_id),
    );
    let anne_id = add_user(&home, "Anne", "anne", "anne's own password");
    wait_for_event(
        &mut events,
        &mut seen,
        "Anne's user_added",
        |e| matches!(e, Event::UserAdded { user_id } if *user_id == anne_id),
    );

    home.run(&["login", "anne"], &["a wrong password"])
        .assert_code(1);
    let failed = wait_for_event(&mut events, &mut seen, "login_failed", |e| {
        matches!(e, Event::LoginFailed { .. })
    });
    let Event::LoginFailed {
        username,
        provider_type,
        reason,
        ..
    } = failed
    else {
        unreachable!()
    };
    assert_eq!(username.as_deref(), Some("anne"));
    assert_eq!(provider_type, "homeassistant");
    assert_eq!(reason, "invalid_auth");

    let tokens = login(&home, "anne", &["anne's own password"]);
    let created = wait_for_event(
        &mut events,
        &mut seen,
        "refresh_token_created",
        |e| matches!(e, Event::RefreshTokenCreated { refresh_token_id, .. } if *refresh_token_id == tokens.refresh_id),
    );
    assert_eq!(
        created,
        Event::RefreshTokenCreated {
            user_id: anne_id.clone(),
            refresh_token_id: tokens.refresh_id.clone(),
            token_type: TokenType::Normal,
            client_id: Some(CLI_CLIENT_ID.to_owned()),
            client_name: None,
        }
    );
    wait_for_event(
        &mut events,
        &mut seen,
        "login_succeeded",
        |e| matches!(e, Event::LoginSucceeded { user_id, .. } if *user_id == anne_id),
    );

    home.run(&["token", "revoke", "--id", &tokens.refresh_id], &[])
        .assert_code(0);
    wait_for_event(&mut events, &mut seen, "refresh_token_revoked", |e| {
        matches!(e, Event::RefreshTokenRevoked { refresh_token_id, user_id }
            if *refresh_token_id == tokens.refresh_id && *user_id == anne_id)
    });
    // Deactivation changes the user and revokes the sessions she still has; a login of
    // hers is then refused, and reported.
    let second = login(&home, "anne", &["anne's own password"]);
    home.run(&["user", "deactivate", "anne"], &[])
        .assert_code(0);
    wait_for_event(
        &mut events,
        &mut seen,
        "user_updated",
        |e| matches!(e, Event::UserUpdated { user_id } if *user_id == anne_id),
    );
    seen_or_wait_for_event(
        &mut events,
        &mut seen,
        "her session's refresh_token_revoked",
        |e| {
            matches!(e, Event::RefreshTokenRevoked { refresh_token_id, .. }
            if *refresh_token_id == second.refresh_id)
        },
    );
    home.run(&["login", "anne"], &["anne's own password"])
        .assert_code(1);
    let blocked = wait_for_event(&mut events, &mut seen, "the blocked login_failed", |e| {
        matches!(e, Event::LoginFailed { .. })
    });
    let Event::LoginFailed {
        username, reason, ..
    } = blocked
    else {
        unreachable!()
    };
    assert_eq!(username.as_deref(), Some("anne"));
    assert!(reason.contains("blocked"), "{reason}");
    home.run(&["user", "remove", "anne"], &[]).assert_code(0);
    wait_for_event(
        &mut events,
        &mut seen,
        "user_removed",
        |e| matches!(e, Event::UserRemoved { user_id } if *user_id == anne_id),
    );

    // No event carries a secret.
    let text = format!("{seen:?}");
    for secret in [
        &tokens.access,
        &tokens.refresh,
        &second.access,
        &second.refresh,
    ] {
        assert!(!text.contains(secret.as_str()), "{text}");
    }
    assert!(!text.contains(OWNER_PASSWORD) && !text.contains("anne's own password"));
}

#[test]
fn a_lockout_is_announced_listed_and_cleared() {
    // Three failures lock a username out (without the default delays between them).
    let home = Home::with_config(
        "[throttle]\ndelay_after = 3\nbase_delay_ms = 1\nmax_delay_ms = 1\n\
         lockout_after = 3\nlockout_secs = 600\n",
    );
    let _daemon = home.start();
    onboard(&home);
    add_user(&home, "Anne", "anne", "anne's own password");
    let client = home.client();
    let mut events =
        block_on(client.subscribe([EventKind::LockoutStarted, EventKind::LockoutCleared])).unwrap();
    let mut seen = Vec::new();

    for _ in 0..3 {
        home.run(&["login", "anne"], &["a wrong password"])
            .assert_code(1);
    }
    let anne = LockoutKey::Username("anne".to_owned());
    wait_for_event(
        &mut events,
        &mut seen,
        "lockout_started",
        |e| matches!(e, Event::LockoutStarted { key, .. } if *key == anne),
    );
    // Now even the right password is refused, and the CLI says why; others still log in.
    home.run(&["login", "anne"], &["anne's own password"])
        .assert_code(1)
        .assert_stderr_has("locked out");
    login(&home, super::OWNER_USERNAME, &[OWNER_PASSWORD]);
    let lockouts = super::json(home.run(&["lockouts", "--json"], &[]).assert_code(0));
    let entry = lockouts
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["key"] == "username:anne")
        .unwrap_or_else(|| panic!("{lockouts:#}"));
    assert!(entry["locked_until"].is_string(), "{entry:#}");

    home.run(&["lockouts", "--clear", "username:anne"], &[])
        .assert_code(0);
    wait_for_event(
        &mut events,
        &mut seen,
        "lockout_cleared",
        |e| matches!(e, Event::LockoutCleared { key } if *key == anne),
    );
    login(&home, "anne", &["anne's own password"]);
}

// ---- unauthenticated connections ---------------------------------------------------------

/// What a raw connection received before the daemon closed it, and when it closed.
struct Received {
    bytes: Vec<u8>,
    closed_at: Instant,
}

/// Connects without the handshake's token, writes `send`, then reads until the daemon
/// closes the connection (EOF, or a reset because our bytes were left unread).
fn raw_connection(home: &Home, send: Vec<u8>) -> JoinHandle<Received> {
    let mut stream = UnixStream::connect(home.socket()).unwrap();
    std::thread::spawn(move || {
        if !send.is_empty() {
            // The daemon may close before it read everything: that is its right.
            let _ = stream.write_all(&send);
        }
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!(
                    "the daemon did not close an unauthenticated connection within {DEADLINE:?} \
                     ({e}); received {bytes:?}"
                ),
            }
        }
        Received {
            bytes,
            closed_at: Instant::now(),
        }
    })
}

#[test]
fn an_unauthenticated_connection_gets_no_event_only_the_close() {
    // A short handshake deadline keeps the silent connections' wait short.
    let home = Home::with_config("[socket]\nhandshake_timeout_secs = 2\n");
    let _daemon = home.start();
    let client = home.client();
    let owner = block_on(client.onboard("Owner", "owner", OWNER_PASSWORD)).unwrap();
    let users_before = block_on(client.list_users()).unwrap().len();

    // An authenticated subscriber records when each event reaches it.
    let mut events = block_on(client.subscribe([EventKind::UserAdded])).unwrap();
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let record = Arc::clone(&arrivals);
    runtime().spawn(async move {
        while let Some(event) = events.next_event().await {
            if matches!(event, ClientEvent::Event(Event::UserAdded { .. })) {
                record.lock().unwrap().push(Instant::now());
            }
        }
    });

    let subscribe = RequestFrame::new(
        1,
        Request::Subscribe {
            kinds: EventKind::ALL.to_vec(),
        },
    )
    .encode()
    .unwrap();
    let connections = [
        ("silent", raw_connection(&home, Vec::new())),
        (
            "garbage",
            raw_connection(
                &home,
                b"GET /events HTTP/1.1\r\nHost: latch\r\n\r\n".to_vec(),
            ),
        ),
        ("hello, then silent", raw_connection(&home, hello())),
        (
            "hello, then a subscription instead of the proof",
            raw_connection(&home, [hello(), frame(&subscribe)].concat()),
        ),
        (
            "hello, then a wrong proof, then a subscription",
            raw_connection(&home, [hello(), wrong_proof(), frame(&subscribe)].concat()),
        ),
    ];

    // Events are broadcast the whole time the raw connections are open (a few a
    // second, until the daemon has closed them all).
    let mut added = 0;
    let deadline = Instant::now() + DEADLINE;
    while !connections.iter().all(|(_, c)| c.is_finished()) {
        assert!(Instant::now() < deadline, "the raw connections stay open");
        block_on(client.create_user(NewUser::new(format!("user {added}")))).unwrap();
        added += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(added > 0);
    poll_until("the subscriber to get the events", || {
        (arrivals.lock().unwrap().len() == added).then_some(())
    });
    let arrivals = arrivals.lock().unwrap().clone();
    let first_event = arrivals[0];

    for (name, connection) in connections {
        let received = connection.join().unwrap();
        let frames = split_frames(&received.bytes);
        match name {
            "silent" | "garbage" => assert!(frames.is_empty(), "{name}: {frames:?}"),
            "hello, then silent" | "hello, then a subscription instead of the proof" => {
                assert_eq!(frames.len(), 1, "{name}: only the challenge: {frames:?}");
                assert!(is_challenge(&frames[0]), "{name}: {frames:?}");
            }
            _ => {
                assert_eq!(frames.len(), 2, "{name}: {frames:?}");
                assert!(is_challenge(&frames[0]), "{name}: {frames:?}");
                assert!(is_bad_proof_rejection(&frames[1]), "{name}: {frames:?}");
            }
        }
        if name == "silent" || name == "hello, then silent" {
            // It was open while events were going out, and it got none of them.
            assert!(
                first_event < received.closed_at,
                "{name}: closed before any event was broadcast"
            );
        }
    }
    // The daemon still serves its authenticated client.
    let users = block_on(client.list_users()).unwrap();
    assert!(users.iter().any(|u| u.id == owner.id));
    assert_eq!(users.len(), users_before + added);
}
