//! More than one host: real `latchd` processes sharing one real PostgreSQL database
//! (started by the test harness under target/), each validating from its own memory.

use std::os::unix::fs::PermissionsExt;

use latch_client::protocol::Event;
use latch_tests::{Home, block_on, poll_until};

use super::{add_user, login, onboard, wait_for_event};

/// A home whose `[store]` is the shared database, as this host.
fn shared_home(db: &latch_test_postgres::Database, host: &str) -> Home {
    let home = Home::empty();
    let password_file = home.join("db-password");
    std::fs::write(&password_file, latch_test_postgres::PASSWORD).unwrap();
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    home.write_config(&format!(
        "shutdown_grace_secs = 5\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\n\
         password_file = \"{}\"\nhost_name = \"{host}\"\n{}",
        db.url(),
        password_file.display(),
        latch_tests::FAST_PROVIDER
    ));
    home
}

#[test]
fn two_daemons_on_one_database_share_users_events_and_revocations() {
    let cluster = latch_test_postgres::cluster().unwrap_or_else(|e| panic!("{e}"));
    let db = cluster
        .database("e2e_two_hosts")
        .unwrap_or_else(|e| panic!("{e}"));
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
}
