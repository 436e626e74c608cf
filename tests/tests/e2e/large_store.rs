//! A store of 100,000 users, written in Home Assistant's format before latchd starts:
//! listings come a page at a time and every command that names a user finds it
//! directly, where one listing of everyone would outgrow a frame.

use std::fmt::Write as _;

use latch_client::ClientError;
use latch_client::protocol::{ErrorCode, Request};
use latch_tests::{Home, write_file};

use super::json;

const USERS: usize = 100_000;
/// The user the commands name.
const TARGET: usize = 54_321;
const TOKENS: usize = 3;

/// A user id that does not sort like the user's number, so id order is not file order.
fn user_id(i: usize) -> String {
    format!(
        "{:032x}",
        (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    )
}

/// `.storage/auth` with [`USERS`] users (the first is the owner), each with a password
/// credential `user-NNNNNN`, and [`TOKENS`] refresh tokens for the target user; written
/// as text, in Home Assistant's envelope.
fn write_large_store(home: &Home) {
    let mut users = String::with_capacity(USERS * 200);
    let mut credentials = String::with_capacity(USERS * 200);
    for i in 0..USERS {
        let sep = if i == 0 { "" } else { "," };
        let (group, owner) = if i == 0 {
            ("system-admin", "true")
        } else {
            ("system-users", "false")
        };
        let id = user_id(i);
        let _ = write!(
            users,
            "{sep}\n{{\"id\":\"{id}\",\"group_ids\":[\"{group}\"],\"is_owner\":{owner},\
             \"is_active\":true,\"name\":\"User {i}\",\"system_generated\":false,\
             \"local_only\":false}}"
        );
        let _ = write!(
            credentials,
            "{sep}\n{{\"id\":\"c{i:031}\",\"user_id\":\"{id}\",\
             \"auth_provider_type\":\"homeassistant\",\"auth_provider_id\":null,\
             \"data\":{{\"username\":\"user-{i:06}\"}}}}"
        );
    }
    let mut tokens = String::new();
    for t in 0..TOKENS {
        let sep = if t == 0 { "" } else { "," };
        let user = user_id(TARGET);
        let secret = format!("{t:0128}");
        let _ = write!(
            tokens,
            "{sep}\n{{\"id\":\"t{t:031}\",\"user_id\":\"{user}\",\"client_id\":\"https://latch.localhost/cli\",\
             \"client_name\":null,\"client_icon\":null,\"token_type\":\"normal\",\
             \"created_at\":\"2026-01-01T00:00:00.000000+00:00\",\"access_token_expiration\":1800.0,\
             \"token\":\"{secret}\",\"jwt_key\":\"{secret}\",\"last_used_at\":null,\"last_used_ip\":null,\
             \"expire_at\":null,\"credential_id\":\"c{TARGET:031}\",\"version\":\"2024.3.3\"}}"
        );
    }
    let auth = format!(
        "{{\"version\":1,\"minor_version\":1,\"key\":\"auth\",\"data\":{{\"users\":[{users}],\
         \"groups\":[{{\"id\":\"system-admin\",\"name\":\"Administrators\"}},\
         {{\"id\":\"system-users\",\"name\":\"Users\"}},\
         {{\"id\":\"system-read-only\",\"name\":\"Read Only\"}}],\
         \"credentials\":[{credentials}],\"refresh_tokens\":[{tokens}]}}}}"
    );
    write_file(&home.join(".storage").join("auth"), auth);
}

#[test]
fn a_hundred_thousand_users_are_listed_a_page_at_a_time_and_found_directly() {
    let home = Home::new();
    write_large_store(&home);
    let _daemon = home.start();

    // The whole listing, a page at a time: every user once, in id order.
    let client = home.client();
    let ids: Vec<String> = latch_tests::block_on(client.users().all())
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    let mut expected: Vec<String> = (0..USERS).map(user_id).collect();
    expected.sort();
    assert_eq!(ids.len(), USERS);
    assert!(ids == expected, "every user once, in id order");

    // `latch user list` pages through them too.
    let run = home.run(&["user", "list"], &[]);
    run.assert_code(0);
    let rows = run.stdout.lines().filter(|l| l.contains("user-")).count();
    assert_eq!(rows, USERS);

    // Commands naming a user find it by username (any case), by id, or by its name.
    let target = format!("user-{TARGET:06}");
    let tokens = json(
        home.run(&["token", "list", &target.to_uppercase(), "--json"], &[])
            .assert_code(0),
    );
    assert_eq!(tokens.as_array().unwrap().len(), TOKENS, "{tokens:#}");
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["user_id"] == user_id(TARGET).as_str())
    );
    home.run(&["check", &target, "light.kitchen", "read"], &[])
        .assert_code(0)
        .assert_stdout_has("allowed");
    home.run(
        &["check", &user_id(TARGET), "light.kitchen", "read", "--json"],
        &[],
    )
    .assert_code(0);
    home.run(
        &["check", &format!("User {TARGET}"), "light.kitchen", "edit"],
        &[],
    )
    .assert_code(0);
    home.run(&["check", "nobody", "light.kitchen", "read"], &[])
        .assert_code(5);

    // One unpaged listing of everyone no longer fits a frame: a clear error, and the
    // connection goes on.
    let refused = latch_tests::block_on(client.request(Request::ListUsers));
    match refused {
        Err(ClientError::Api {
            code: ErrorCode::AnswerTooLarge,
            message,
        }) => assert!(message.contains("ListUsersPage"), "{message}"),
        other => panic!("expected answer_too_large, got {other:?}"),
    }
    latch_tests::block_on(client.ping()).unwrap();
}
