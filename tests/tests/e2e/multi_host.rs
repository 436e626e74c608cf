//! More than one host: real `latchd` processes sharing one real PostgreSQL database
//! (started by the test harness under target/), each validating from its own memory.
//!
//! Tests that stop, freeze or restart the server run on a cluster of their own
//! ([`latch_test_postgres::private_cluster`]) so the other tests keep theirs.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use latch_client::protocol::{ErrorCode, Event, LockoutKey, StoreBackendKind, Subject};
use latch_client::{Client, ClientError, NewUser};
use latch_tests::{Home, block_on, poll_until};

use super::brute_force::{INVALID_AUTH, LOCKED_OUT, attempt, ip, outcome};
use super::{add_user, json, login, mfa_setup, onboard, wait_for_event};

/// A home whose `[store]` is the shared database, as this host; `store_extra` adds keys
/// to `[store]`, `tables` whole tables after it.
fn shared_home_with(
    db: &latch_test_postgres::Database,
    host: &str,
    store_extra: &str,
    tables: &str,
) -> Home {
    let home = Home::empty();
    let password_file = home.join("db-password");
    std::fs::write(&password_file, latch_test_postgres::PASSWORD).unwrap();
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    home.write_config(&format!(
        "shutdown_grace_secs = 5\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\n\
         password_file = \"{}\"\nhost_name = \"{host}\"\n{store_extra}\n{tables}\n{}",
        db.url(),
        password_file.display(),
        latch_tests::FAST_PROVIDER
    ));
    home
}

fn shared_home(db: &latch_test_postgres::Database, host: &str) -> Home {
    shared_home_with(db, host, "", "")
}

/// A fresh database of the shared test cluster; fails the test if PostgreSQL cannot start.
fn database(name: &str) -> latch_test_postgres::Database {
    let cluster = latch_test_postgres::cluster().unwrap_or_else(|e| panic!("{e}"));
    cluster.database(name).unwrap_or_else(|e| panic!("{e}"))
}

/// The error code of a failed call (panics on success or on a failure without one).
fn code_of<T: std::fmt::Debug>(result: Result<T, ClientError>) -> ErrorCode {
    match result {
        Err(ClientError::Api { code, .. }) => code,
        other => panic!("expected an error answer, got {other:?}"),
    }
}

/// Every user id, in the order the host lists them.
fn user_ids(client: &Client) -> Vec<String> {
    block_on(client.list_users())
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect()
}

/// Sends SIGCONT to a frozen cluster when dropped, even when the test fails.
struct Thaw<'a>(&'a latch_test_postgres::Cluster);

impl Drop for Thaw<'_> {
    fn drop(&mut self) {
        let _ = self.0.signal("CONT");
    }
}

#[test]
fn two_daemons_on_one_database_share_users_events_and_revocations() {
    let db = database("e2e_two_hosts");
    let a = shared_home(&db, "a");
    let b = shared_home(&db, "b");
    let _daemon_a = a.start();
    let _daemon_b = b.start();

    // Onboarded on A: the owner is listed on B.
    let owner = onboard(&a);
    let client_b = b.client();
    poll_until("the owner listed on B", || {
        block_on(client_b.list_users())
            .unwrap()
            .iter()
            .any(|u| u.id == owner)
            .then_some(())
    });

    // A user added on A fires user_added on B's event stream.
    let mut events = block_on(client_b.subscribe_all()).unwrap();
    let mut seen = Vec::new();
    let added = add_user(&a, "Ann", "ann", "ann's password 1");
    wait_for_event(
        &mut events,
        &mut seen,
        "user_added from A",
        |e| matches!(e, Event::UserAdded { user_id } if *user_id == added),
    );

    // A login on A is valid on B; revoked on B, it is refused on A.
    let tokens = login(&a, "ann", &["ann's password 1"]);
    let client_a = a.client();
    poll_until("the token valid on B", || {
        block_on(client_b.validate_token(&tokens.access)).ok()
    });
    block_on(client_b.revoke_by_id(&tokens.refresh_id)).unwrap();
    poll_until("the revocation refused on A", || {
        block_on(client_a.validate_token(&tokens.access))
            .is_err()
            .then_some(())
    });
    assert_eq!(tokens.user_id, added);

    // `latch status` names the backend, the last batch applied and the lag.
    let head = block_on(client_a.store_status()).unwrap();
    assert_eq!(head.backend, StoreBackendKind::Postgres);
    assert!(head.connected);
    assert!(head.last_applied > 0, "{head:?}");
    poll_until("B at A's batch", || {
        (block_on(client_b.store_status()).unwrap().last_applied >= head.last_applied).then_some(())
    });
    let status = json(b.run(&["status", "--json"], &[]).assert_code(0));
    assert_eq!(status["store"]["backend"], "postgres", "{status:#}");
    assert_eq!(status["store"]["connected"], true, "{status:#}");
    assert!(
        status["store"]["last_applied"].as_u64().unwrap() >= head.last_applied,
        "{status:#}"
    );
    assert!(status["store"]["lag"].is_u64(), "{status:#}");
    b.run(&["status"], &[])
        .assert_code(0)
        .assert_stdout_has("postgres")
        .assert_stdout_has("last applied batch")
        .assert_stdout_has("lag");
}

/// How many hosts, writers per host, and usernames every writer tries to take.
const HOSTS: usize = 3;
const WRITERS: usize = 10;
const NAMES: usize = 12;

#[test]
fn three_hosts_of_ten_writers_take_each_contested_username_once_and_lose_no_write() {
    let db = database("e2e_conflicts");
    let homes: Vec<Home> = (0..HOSTS)
        .map(|h| shared_home(&db, &format!("h{h}")))
        .collect();
    let _daemons: Vec<_> = homes.iter().map(Home::start).collect();

    // Every writer creates a user per name and tries to give it the name as its
    // username, starting at its own place in the list: every name is contested by 30.
    let created = Arc::new(Mutex::new(Vec::<String>::new()));
    let winners = Arc::new(Mutex::new(BTreeMap::<String, Vec<String>>::new()));
    std::thread::scope(|s| {
        for (h, home) in homes.iter().enumerate() {
            for w in 0..WRITERS {
                let client = home.client();
                let created = Arc::clone(&created);
                let winners = Arc::clone(&winners);
                s.spawn(move || {
                    for k in 0..NAMES {
                        let name = format!("user{:02}", (k + w + h) % NAMES);
                        let user =
                            block_on(client.create_user(NewUser::new(format!("h{h} w{w} {name}"))))
                                .unwrap();
                        created.lock().unwrap().push(user.id.clone());
                        match block_on(client.add_password(&user.id, &name, "a password")) {
                            Ok(_) => winners
                                .lock()
                                .unwrap()
                                .entry(name)
                                .or_default()
                                .push(user.id),
                            Err(ClientError::Api {
                                code: ErrorCode::AlreadyExists,
                                ..
                            }) => {}
                            Err(e) => panic!("host {h} writer {w}, {name}: {e}"),
                        }
                    }
                });
            }
        }
    });

    let winners = winners.lock().unwrap().clone();
    let created: BTreeSet<String> = created.lock().unwrap().iter().cloned().collect();
    assert_eq!(created.len(), HOSTS * WRITERS * NAMES);
    assert_eq!(winners.len(), NAMES, "every name was taken: {winners:?}");
    for (name, ids) in &winners {
        assert_eq!(ids.len(), 1, "{name} was given to {ids:?}");
    }
    // Every host ends with every acknowledged user and each name on its one winner.
    for home in &homes {
        let client = home.client();
        poll_until("every acknowledged user on every host", || {
            let listed: BTreeSet<String> = user_ids(&client).into_iter().collect();
            (listed == created).then_some(())
        });
        for (name, ids) in &winners {
            let user = block_on(client.get_user_by_username(name)).unwrap();
            assert_eq!(&user.id, &ids[0], "{name}");
        }
    }
}

/// Creates users through `client` until `stop` is set or a call fails; each acknowledged
/// id is pushed to `acked`. Returns how the run ended (`None` if stopped).
fn write_until(
    client: &Client,
    tag: &str,
    stop: &AtomicBool,
    acked: &Mutex<Vec<String>>,
    keep_going: bool,
) -> Option<ClientError> {
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        match block_on(client.create_user(NewUser::new(format!("{tag} {n}")))) {
            Ok(user) => acked.lock().unwrap().push(user.id),
            Err(e) if !keep_going => return Some(e),
            Err(ClientError::Api {
                code: ErrorCode::Unavailable | ErrorCode::StorageFailed,
                ..
            }) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(e) => panic!("{tag}: {e}"),
        }
    }
    None
}

#[test]
fn a_host_killed_mid_write_loses_nothing_it_acknowledged() {
    let db = database("e2e_sigkill");
    let a = shared_home(&db, "a");
    let b = shared_home(&db, "b");
    let daemon_a = a.start();
    let _daemon_b = b.start();

    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let (client, acked, stop) = (a.client(), Arc::clone(&acked), Arc::clone(&stop));
            std::thread::spawn(move || write_until(&client, &format!("w{w}"), &stop, &acked, false))
        })
        .collect();
    poll_until("writes acknowledged on A", || {
        (acked.lock().unwrap().len() >= 60).then_some(())
    });
    daemon_a.sigkill();
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();

    // B has every acknowledged user; so has A once restarted, in the same order.
    let client_b = b.client();
    poll_until("B holds every acknowledged user", || {
        let listed: BTreeSet<String> = user_ids(&client_b).into_iter().collect();
        acked.is_subset(&listed).then_some(())
    });
    let _daemon_a = a.start();
    let client_a = a.client();
    poll_until("A restarted with B's users", || {
        (user_ids(&client_a) == user_ids(&client_b)).then_some(())
    });
}

#[test]
fn postgres_restarted_under_load_hosts_reconnect_catch_up_and_lose_nothing() {
    let cluster = latch_test_postgres::private_cluster("restart").unwrap_or_else(|e| panic!("{e}"));
    let db = cluster
        .database("e2e_restart")
        .unwrap_or_else(|e| panic!("{e}"));
    let a = shared_home(&db, "a");
    let b = shared_home(&db, "b");
    let _daemon_a = a.start();
    let _daemon_b = b.start();

    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = [&a, &b]
        .iter()
        .enumerate()
        .flat_map(|(h, home)| (0..4).map(move |w| (h, w, home.client())))
        .map(|(h, w, client)| {
            let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
            std::thread::spawn(move || {
                write_until(&client, &format!("h{h} w{w}"), &stop, &acked, true)
            })
        })
        .collect();
    poll_until("writes before the restart", || {
        (acked.lock().unwrap().len() >= 40).then_some(())
    });
    cluster.restart().unwrap_or_else(|e| panic!("{e}"));
    let at_restart = acked.lock().unwrap().len();
    poll_until("writes acknowledged after the restart", || {
        (acked.lock().unwrap().len() >= at_restart + 40).then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        assert!(w.join().unwrap().is_none());
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    let unique: BTreeSet<&String> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len(), "an id acknowledged twice");

    // Both hosts caught up to one state holding every acknowledged user, each once; a
    // third host loading from the database now has exactly that state too.
    let (client_a, client_b) = (a.client(), b.client());
    poll_until("A and B at the same batch", || {
        let (sa, sb) = (
            block_on(client_a.store_status()).unwrap(),
            block_on(client_b.store_status()).unwrap(),
        );
        (sa.connected && sb.connected && sa.last_applied == sb.last_applied).then_some(())
    });
    let listed = user_ids(&client_a);
    assert_eq!(listed, user_ids(&client_b));
    let listed_set: BTreeSet<&String> = listed.iter().collect();
    assert_eq!(listed_set.len(), listed.len(), "a user listed twice");
    assert!(
        unique.is_subset(&listed_set),
        "an acknowledged user is missing"
    );
    let c = shared_home(&db, "c");
    let _daemon_c = c.start();
    assert_eq!(user_ids(&c.client()), listed);
    assert_eq!(
        block_on(c.client().store_status()).unwrap().last_applied,
        block_on(client_a.store_status()).unwrap().last_applied
    );
}

#[test]
fn a_frozen_database_fails_writes_fast_and_validation_stops_at_the_staleness_bound() {
    let cluster = latch_test_postgres::private_cluster("frozen").unwrap_or_else(|e| panic!("{e}"));
    let db = cluster
        .database("e2e_frozen")
        .unwrap_or_else(|e| panic!("{e}"));
    let a = shared_home_with(
        &db,
        "a",
        "write_timeout_ms = 500\nmax_staleness_secs = 8",
        "",
    );
    let _daemon = a.start();
    onboard(&a);
    add_user(&a, "Ann", "ann", "ann's password 1");
    let tokens = login(&a, "ann", &["ann's password 1"]);
    let client = a.client();
    block_on(client.validate_token(&tokens.access)).unwrap();

    cluster.signal("STOP").unwrap_or_else(|e| panic!("{e}"));
    let thaw = Thaw(&cluster);
    // A write answers `unavailable` (within the write deadline, not the client's).
    assert_eq!(
        code_of(block_on(client.create_user(NewUser::new("Bob")))),
        ErrorCode::Unavailable
    );
    // Validation goes on from memory, within the bound...
    block_on(client.validate_token(&tokens.access)).unwrap();
    let status = json(a.run(&["status", "--json"], &[]).assert_code(0));
    assert_eq!(status["store"]["connected"], false, "{status:#}");
    assert_eq!(status["store"]["max_staleness_secs"], 8, "{status:#}");
    // ...and past it answers `unavailable`: validation, refresh, permission checks.
    let refused = poll_until("validation refused past the staleness bound", || {
        block_on(client.validate_token(&tokens.access)).err()
    });
    assert_eq!(refused.code(), Some(ErrorCode::Unavailable), "{refused}");
    assert_eq!(
        code_of(block_on(client.refresh(
            &tokens.refresh,
            Some(super::CLI_CLIENT_ID),
            None
        ))),
        ErrorCode::Unavailable
    );
    assert_eq!(
        code_of(block_on(client.check_permission(
            Subject::User(tokens.user_id.clone()),
            "light.kitchen",
            latch_client::protocol::PermissionKey::Read,
        ))),
        ErrorCode::Unavailable
    );

    // Thawed, the host reconnects: validation and writes work again.
    drop(thaw);
    poll_until("validation after the database is back", || {
        block_on(client.validate_token(&tokens.access)).ok()
    });
    poll_until("a write after the database is back", || {
        block_on(client.create_user(NewUser::new("Bob"))).ok()
    });
}

#[test]
fn a_lockout_set_on_one_host_refuses_on_another_until_cleared() {
    let db = database("e2e_lockout");
    let throttle = "[throttle]\ndelay_after = 100\nlockout_after = 3\nlockout_secs = 600\n";
    let a = shared_home_with(&db, "a", "", throttle);
    let b = shared_home_with(&db, "b", "", throttle);
    let _daemon_a = a.start();
    let _daemon_b = b.start();
    onboard(&a);
    add_user(&a, "Anne", "anne", "anne's own password");
    let (client_a, client_b) = (a.client(), b.client());
    poll_until("Anne on B", || {
        block_on(client_b.get_user_by_username("anne")).ok()
    });
    let mut events = block_on(client_b.subscribe_all()).unwrap();
    let mut seen = Vec::new();

    // Three wrong guesses on A lock Anne's username out, on B as well.
    for source in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        let state = attempt(&client_a, "anne", "a wrong password", ip(source));
        assert_eq!(outcome(&state), INVALID_AUTH);
    }
    wait_for_event(
        &mut events,
        &mut seen,
        "lockout_started on B",
        |e| matches!(e, Event::LockoutStarted { key: LockoutKey::Username(u), .. } if u == "anne"),
    );
    let state = attempt(&client_b, "anne", "anne's own password", ip("203.0.113.9"));
    assert_eq!(outcome(&state), LOCKED_OUT);
    let throttle_b = block_on(client_b.login_throttle(Some("anne"), None)).unwrap();
    assert!(throttle_b.locked_out.is_some(), "{throttle_b:?}");

    // Cleared on B, the lockout is lifted on A too.
    block_on(client_b.clear_lockout(LockoutKey::Username("anne".into()))).unwrap();
    poll_until("the lockout lifted on A", || {
        block_on(client_a.login_throttle(Some("anne"), None))
            .unwrap()
            .locked_out
            .is_none()
            .then_some(())
    });
    let state = attempt(&client_a, "anne", "anne's own password", ip("203.0.113.9"));
    assert_eq!(outcome(&state), "done");
}

/// The Home Assistant files a round trip must keep, byte for byte.
const HA_FILES: [&str; 3] = ["auth", "auth_provider.homeassistant", "auth_module.totp"];

#[test]
fn import_then_export_round_trips_every_user_token_and_secret() {
    // A home on files: users, password hashes, tokens (a login, a long-lived token) and a
    // TOTP secret, stopped cleanly so its .storage files hold it all.
    let source = Home::new();
    let daemon = source.start();
    onboard(&source);
    add_user(&source, "Ann", "ann", "ann's password 1");
    add_user(&source, "Bob", "bob", "bob's password 2");
    let tokens = login(&source, "ann", &["ann's password 1"]);
    mfa_setup(&source, "bob");
    let client = source.client();
    let bob = block_on(client.get_user_by_username("bob")).unwrap();
    let long_lived =
        block_on(client.create_long_lived_token(&bob.id, "grafana", None, 30)).unwrap();
    let status = json(source.run(&["status", "--json"], &[]).assert_code(0));
    assert_eq!(status["store"]["backend"], "files", "{status:#}");
    drop(client);
    daemon.stop();
    let storage = source.join(".storage");
    let original: Vec<Vec<u8>> = HA_FILES
        .iter()
        .map(|f| std::fs::read(storage.join(f)).unwrap())
        .collect();

    // Imported into an empty database, hosts on it serve the same users and tokens.
    let db = database("e2e_moving");
    let a = shared_home(&db, "a");
    let source_dir = source.path().display().to_string();
    let imported = latch_tests::run(a.latchd(&["import", &source_dir]), &[]);
    imported.assert_code(0).assert_stdout_has("imported from");
    assert!(imported.stdout.contains("3 users"), "{}", imported.stdout);
    // Importing again is refused: the database is not empty any more.
    latch_tests::run(a.latchd(&["import", &source_dir]), &[])
        .assert_code(2)
        .assert_stderr_has("import needs an empty one");
    {
        let _daemon_a = a.start();
        let client_a = a.client();
        let validated = block_on(client_a.validate_token(&tokens.access)).unwrap();
        assert_eq!(validated.user.id, tokens.user_id);
        block_on(client_a.validate_token(long_lived.access_token.expose())).unwrap();
        let listed = json(a.run(&["user", "list", "--json"], &[]).assert_code(0));
        assert_eq!(listed.as_array().unwrap().len(), 3, "{listed:#}");
    }

    // Exported back: Home Assistant's files, byte for byte what the home held.
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().join("ha");
    let out_text = out_dir.display().to_string();
    latch_tests::run(a.latchd(&["export", &out_text]), &[])
        .assert_code(0)
        .assert_stdout_has("exported to");
    for (name, before) in HA_FILES.iter().zip(&original) {
        let after = std::fs::read(out_dir.join(".storage").join(name)).unwrap();
        assert!(
            after == *before,
            "{name} differs after the round trip:\n--- before\n{}\n--- after\n{}",
            String::from_utf8_lossy(before),
            String::from_utf8_lossy(&after)
        );
    }
    // An export into a home that holds users is refused; so is a files configuration.
    latch_tests::run(a.latchd(&["export", &out_text]), &[])
        .assert_code(2)
        .assert_stderr_has("export needs an empty home");
    latch_tests::run(source.latchd(&["export", &out_text]), &[])
        .assert_code(2)
        .assert_stderr_has("backend = \"postgres\"");
    // A database that holds nothing has nothing to export.
    let empty = shared_home(&database("e2e_empty"), "e");
    latch_tests::run(
        empty.latchd(&["export", &out.path().join("x").display().to_string()]),
        &[],
    )
    .assert_code(2)
    .assert_stderr_has("nothing to export");
}
