//! The daemon's life: a clean restart under a connected client, SIGKILL and SIGTERM in
//! the middle of a stream of writes, and the homes it refuses to start in.

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::{Arc, Mutex};

use latch_client::protocol::{Event, TokenType};
use latch_client::{Client, ClientError, ClientEvent, ClientOptions, NewUser, ReconnectPolicy};
use latch_tests::{Home, block_on, poll_until, run, runtime, write_file};

use super::{OWNER_PASSWORD, OWNER_USERNAME, login, onboard, user_id, wait_for_event};

#[test]
fn a_restart_rotates_the_token_and_clients_reconnect_and_resubscribe() {
    let home = Home::new();
    let daemon = home.start();
    let owner_id = onboard(&home);
    let anne_id = super::add_user(&home, "Anne", "anne", "anne's own password");
    let session = login(&home, OWNER_USERNAME, &[OWNER_PASSWORD]);
    let run = home.run(
        &[
            "token",
            "create-long-lived",
            "anne",
            "--name",
            "kiosk",
            "--days",
            "30",
        ],
        &[],
    );
    run.assert_code(0);
    let long_lived = run.stdout.trim().to_owned();

    // A client made before the restart, subscribed.
    let client = home.client();
    let mut events = block_on(client.subscribe_all()).unwrap();
    let mut seen = Vec::new();
    assert_eq!(client.connection_count(), 1);
    let first_token = home.session_token().unwrap();
    assert_eq!(first_token.trim().len(), 64, "32 random bytes in hex");

    let log = daemon.stop();
    assert!(log.contains("latchd stopped"), "{log}");
    let daemon = home.start();
    let second_token = home.session_token().unwrap();
    assert_eq!(second_token.trim().len(), 64);
    assert_ne!(
        first_token, second_token,
        "the session token rotates at every start"
    );

    // The subscription comes back by itself, with the new token, and says so.
    let reconnected = block_on(async {
        loop {
            match events.next_event().await {
                Some(ClientEvent::Reconnected) => return true,
                Some(other) => seen.push(other),
                None => return false,
            }
        }
    });
    assert!(reconnected, "the subscription ended; seen {seen:#?}");
    assert!(client.connection_count() >= 2);

    // Events flow again, for actions of any other client.
    home.run(&["user", "add", "Bob"], &[]).assert_code(0);
    let bob = wait_for_event(&mut events, &mut seen, "Bob's user_added", |e| {
        matches!(e, Event::UserAdded { .. })
    });
    let Event::UserAdded { user_id: bob_id } = bob else {
        unreachable!()
    };

    // The old client's calls work, and the data survived the restart.
    let users = block_on(client.list_users()).unwrap();
    for id in [&owner_id, &anne_id, &bob_id] {
        assert!(users.iter().any(|u| u.id == *id), "{id} in {users:#?}");
    }
    let valid = block_on(client.validate_token(&session.access)).unwrap();
    assert_eq!(valid.user.id, owner_id);
    let valid = block_on(client.validate_token(&long_lived)).unwrap();
    assert_eq!(valid.user.id, anne_id);
    assert_eq!(valid.token_type, TokenType::LongLivedAccessToken);
    let fresh =
        block_on(client.refresh(&session.refresh, Some(super::CLI_CLIENT_ID), None)).unwrap();
    home.run(&["token", "validate", fresh.access_token.expose()], &[])
        .assert_code(0);
    home.run(&["login", "anne"], &["anne's own password"])
        .assert_code(0);
    assert_eq!(user_id(&home, "anne"), anne_id);
    drop(daemon);
}

/// A mutation the daemon acknowledged.
#[derive(Debug, Clone)]
enum Ack {
    User(String),
    Token { id: String, access: String },
}

/// How many acknowledged writes a round waits for before it kills the daemon.
const ACKS_PER_ROUND: usize = 40;
/// Concurrent writers (their fsyncs are shared by group commit).
const WRITERS: usize = 4;

/// Everything acknowledged is there: users by id, long-lived tokens by id, and each
/// token's access token still validates.
fn check_acknowledged(client: &Client, owner_id: &str, acks: &[Ack]) {
    let users: HashSet<String> = block_on(client.list_users())
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    let tokens: HashSet<String> = block_on(client.list_tokens(owner_id))
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    for ack in acks {
        match ack {
            Ack::User(id) => assert!(users.contains(id), "acknowledged user {id} is lost"),
            Ack::Token { id, access } => {
                assert!(tokens.contains(id), "acknowledged token {id} is lost");
                let valid = block_on(client.validate_token(access))
                    .unwrap_or_else(|e| panic!("acknowledged token {id} is refused: {e}"));
                assert_eq!(valid.refresh_token_id, *id);
            }
        }
    }
}

/// How a round stops the daemon under its writers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGKILL: no chance to clean up; the journal is all there is.
    Kill,
    /// SIGTERM: running requests are answered, the store compacted.
    Term,
}

#[test]
fn acknowledged_writes_survive_sigkill_and_sigterm() {
    let home = Home::new();
    let mut daemon = home.start();
    let setup = home.client();
    let owner = block_on(setup.onboard("Owner", "owner", OWNER_PASSWORD)).unwrap();
    drop(setup);
    let mut acks: Vec<Ack> = Vec::new();

    // Three crashes, then a clean stop, each in the middle of a stream of writes.
    for (round, stop) in [Stop::Kill, Stop::Kill, Stop::Kill, Stop::Term]
        .into_iter()
        .enumerate()
    {
        let client = Client::new_lazy(ClientOptions {
            reconnect: ReconnectPolicy::Never,
            ..home.client_options()
        })
        .unwrap();
        block_on(client.ping()).unwrap();
        let acked: Arc<Mutex<Vec<Ack>>> = Arc::default();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let client = client.clone();
                let acked = Arc::clone(&acked);
                let owner_id = owner.id.clone();
                runtime().spawn(async move {
                    // Bounded: the daemon is stopped long before.
                    for i in 0..100_000 {
                        let name = format!("r{round} w{w} #{i}");
                        let ack = if i % 2 == 0 {
                            client
                                .create_user(NewUser::new(name))
                                .await
                                .map(|u| Ack::User(u.id))
                        } else {
                            client
                                .create_long_lived_token(&owner_id, &name, None, 30)
                                .await
                                .map(|t| Ack::Token {
                                    id: t.refresh_token_id,
                                    access: t.access_token.expose().to_owned(),
                                })
                        };
                        match ack {
                            Ok(ack) => acked.lock().unwrap().push(ack),
                            Err(e) => return Some(e),
                        }
                    }
                    None
                })
            })
            .collect();

        poll_until("acknowledged writes", || {
            (acked.lock().unwrap().len() >= ACKS_PER_ROUND).then_some(())
        });
        // Writes are still going out while the daemon stops.
        match stop {
            Stop::Kill => daemon.sigkill(),
            Stop::Term => {
                let (status, log) = daemon.terminate();
                assert_eq!(status.code(), Some(0), "{log}");
            }
        }
        for writer in writers {
            let error = block_on(writer).unwrap();
            // Stopped by the lost connection (or, at a clean stop, by the daemon
            // refusing new work), never by running out of iterations.
            let Some(error) = error else {
                panic!("a writer outlived the daemon");
            };
            if stop == Stop::Kill {
                assert!(
                    !matches!(error, ClientError::Api { .. }),
                    "a writer stops on the lost connection, got {error:?}"
                );
            }
        }
        acks.extend(acked.lock().unwrap().iter().cloned());

        daemon = home.start();
        let client = home.client();
        check_acknowledged(&client, &owner.id, &acks);
    }
    assert!(acks.len() >= 4 * ACKS_PER_ROUND);
    drop(daemon);
}

#[test]
fn latchd_refuses_a_busy_an_unsafe_or_a_corrupt_home() {
    // A second daemon on a served home: refused, and the first keeps serving.
    let home = Home::new();
    let daemon = home.start();
    let token = home.session_token();
    run(home.latchd(&[]), &[])
        .assert_code(1)
        .assert_stderr_has("already running");
    assert_eq!(
        home.session_token(),
        token,
        "the running daemon's token is kept"
    );
    block_on(home.client().ping()).unwrap();
    daemon.stop();

    // A home that group or others may write.
    let open = Home::new();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    run(open.latchd(&[]), &[])
        .assert_code(1)
        .assert_stderr_has("chmod 700");
    assert!(!open.socket().exists());

    // A store file that does not parse stops the daemon, names the file, and is never
    // replaced.
    let corrupt = Home::new();
    let auth = corrupt.join(".storage/auth");
    write_file(&auth, "{\"version\": 1, \"key\": \"auth\", \"data\": {");
    run(corrupt.latchd(&[]), &[])
        .assert_code(1)
        .assert_stderr_has(&auth.display().to_string());
    assert_eq!(
        std::fs::read_to_string(&auth).unwrap(),
        "{\"version\": 1, \"key\": \"auth\", \"data\": {"
    );
    assert!(!corrupt.socket().exists() && !corrupt.token_file().exists());
}
