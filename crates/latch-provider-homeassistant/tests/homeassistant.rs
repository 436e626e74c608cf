//! The `homeassistant` provider against a real store: Home Assistant 2026's
//! `tests/auth/providers/test_homeassistant.py` scenarios, HA-compatibility with hashes
//! made by Python's bcrypt, latch's additions (rehash, empty passwords), and the hash
//! pool's guarantees.
//!
//! bcrypt runs at cost 4 unless a test is about cost 12.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use latch_models::{Credentials, Group, Secret, User, UserMeta};
use latch_provider::{AuthProvider, Directory, FlowContext, LoginStep, ProviderError};
use latch_provider_homeassistant::password::{self, CutPassword};
use latch_provider_homeassistant::{
    DUMMY_HASH, HashPool, HomeAssistantConfig, HomeAssistantProvider, PROVIDER_TYPE,
};
use latch_store::{Change, Store, StoreOptions};
use serde_json::{Map, Value, json};
use tempfile::TempDir;

// ----- helpers -----

/// The manager's view of the store, as the provider gets it.
struct StoreDirectory(Store);

impl Directory for StoreDirectory {
    fn users(&self) -> Vec<User> {
        self.0.users()
    }

    fn user(&self, id: &str) -> Option<User> {
        self.0.user(id)
    }

    fn groups(&self) -> Vec<Group> {
        self.0.groups()
    }

    fn credentials_of_provider(
        &self,
        provider_type: &str,
        provider_id: Option<&str>,
    ) -> Vec<Credentials> {
        self.0
            .credentials()
            .into_iter()
            .filter(|c| {
                c.auth_provider_type == provider_type
                    && c.auth_provider_id.as_deref() == provider_id
            })
            .collect()
    }
}

struct Setup {
    home: TempDir,
    store: Store,
    provider: HomeAssistantProvider,
}

impl Setup {
    fn directory(&self) -> StoreDirectory {
        StoreDirectory(self.store.clone())
    }
}

fn config(cost: u32) -> HomeAssistantConfig {
    HomeAssistantConfig {
        name: None,
        bcrypt_cost: cost,
    }
}

fn open_store(home: &Path) -> Store {
    Store::open(home, StoreOptions::default()).unwrap()
}

fn setup_with(cost: u32, slots: usize) -> Setup {
    let home = tempfile::tempdir().unwrap();
    let store = open_store(home.path());
    let provider =
        HomeAssistantProvider::with_pool(config(cost), store.clone(), HashPool::new(slots))
            .unwrap();
    Setup {
        home,
        store,
        provider,
    }
}

fn setup() -> Setup {
    setup_with(4, 2)
}

fn input(username: &str, password: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("username".into(), json!(username));
    m.insert("password".into(), json!(password));
    m
}

fn is_invalid_auth<T>(r: &Result<T, ProviderError>) -> bool {
    matches!(r, Err(ProviderError::InvalidAuth(_)))
}

/// What the manager does with a new credential: create the user, link, store.
async fn create_linked_user(s: &Setup, credential: &Credentials) -> (User, Credentials) {
    let meta = s.provider.user_meta(credential).unwrap();
    let mut user = User::new(meta.name);
    user.is_active = meta.is_active;
    let mut credential = credential.clone();
    credential.user_id = Some(user.id.clone());
    s.store
        .commit(vec![
            Change::PutUser(user.clone()),
            Change::PutCredential(credential.clone()),
        ])
        .await
        .unwrap();
    (user, credential)
}

/// The stored bcrypt string of the first entry with this exact name.
fn stored_bcrypt(store: &Store, username: &str) -> String {
    let entry = store.ha_user(username).unwrap();
    password::decode_stored(&entry.password)
        .unwrap()
        .to_string()
}

/// Polls `cond` until it holds or ten seconds pass.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    cond()
}

// ----- Home Assistant's scenarios -----

#[tokio::test]
async fn validating_an_unknown_user_raises_invalid_auth() {
    let s = setup();
    assert!(is_invalid_auth(
        &s.provider.validate_login("non-existing", "pw").await
    ));
    s.provider.add_auth("test-user", "test-pass").await.unwrap();
    assert!(is_invalid_auth(
        &s.provider.validate_login("non-existing", "test-pass").await
    ));
}

#[tokio::test]
async fn new_users_get_their_username_as_name() {
    let s = setup();
    s.provider.add_auth("hello", "test-pass").await.unwrap();
    let credential = s
        .provider
        .get_or_create_credentials(
            &Map::from_iter([("username".to_owned(), json!("hello"))]),
            &s.directory(),
        )
        .unwrap();
    assert!(credential.is_new);
    assert_eq!(credential.auth_provider_type, "homeassistant");
    assert_eq!(credential.auth_provider_id, None);
    assert_eq!(
        s.provider.user_meta(&credential).unwrap(),
        UserMeta {
            name: Some("hello".into()),
            is_active: true,
            group: None,
            local_only: None,
        }
    );
}

#[tokio::test]
async fn adding_a_username_that_is_not_normalized_is_refused() {
    let s = setup();
    for username in ["test-user ", "TEST-USER"] {
        let e = s
            .provider
            .add_auth(username, "test-pass")
            .await
            .unwrap_err();
        assert_eq!(
            e,
            ProviderError::InvalidUsername {
                key: "username_not_normalized",
                message: format!(
                    "Username \"{username}\" is not normalized. Please make sure the username \
                     is lowercase and does not contain any whitespace."
                ),
            }
        );
    }
    assert!(s.store.ha_users().is_empty());
    assert_eq!(s.provider.pool().stats().completed, 0, "no hash was made");
}

#[tokio::test]
async fn adding_a_duplicate_username_is_refused() {
    let s = setup();
    s.provider.add_auth("test-user", "test-pass").await.unwrap();
    let e = s
        .provider
        .add_auth("test-user", "other-pass")
        .await
        .unwrap_err();
    assert_eq!(
        e,
        ProviderError::InvalidUsername {
            key: "username_already_exists",
            message: "Username \"test-user\" already exists".into(),
        }
    );
    // A legacy entry counts after normalisation.
    s.store
        .commit(vec![Change::PutHaUser {
            username: " Legacy ".into(),
            password: Secret::new("x"),
        }])
        .await
        .unwrap();
    let e = s.provider.add_auth("legacy", "pw").await.unwrap_err();
    assert!(matches!(
        e,
        ProviderError::InvalidUsername {
            key: "username_already_exists",
            ..
        }
    ));
    assert_eq!(s.provider.usernames(), vec!["test-user", " Legacy "]);
    s.provider
        .validate_login("test-user", "test-pass")
        .await
        .unwrap();
}

#[tokio::test]
async fn login_ignores_username_case_and_surrounding_whitespace() {
    let s = setup();
    s.provider.add_auth("test-user", "test-pass").await.unwrap();
    for username in ["test-user", " test-user ", "TEST-USER", "\tTest-User\n"] {
        s.provider
            .validate_login(username, "test-pass")
            .await
            .unwrap_or_else(|e| panic!("{username:?}: {e}"));
    }
}

#[tokio::test]
async fn passwords_are_case_and_whitespace_sensitive() {
    let s = setup();
    s.provider.add_auth("test-user", "test-pass").await.unwrap();
    for password in [
        "Test-pass",
        "TEST-PASS",
        " test-pass",
        "test-pass ",
        "test-pas",
    ] {
        assert!(
            is_invalid_auth(&s.provider.validate_login("test-user", password).await),
            "{password:?}"
        );
    }
    assert_eq!(s.provider.stats().dummy_checks, 0);
}

#[tokio::test]
async fn change_password_finds_the_user_by_normalized_name() {
    let s = setup();
    s.provider.add_auth("test-user", "test-pass").await.unwrap();
    s.provider
        .change_password("TEST-USER ", "new-pass")
        .await
        .unwrap();
    assert!(is_invalid_auth(
        &s.provider.validate_login("test-user", "test-pass").await
    ));
    s.provider
        .validate_login("test-user", "new-pass")
        .await
        .unwrap();
    assert_eq!(
        s.provider.change_password("nobody", "x").await,
        Err(ProviderError::UserNotFound)
    );
}

#[tokio::test]
async fn login_flow_returns_the_username_as_typed_and_credentials_normalized() {
    let s = setup();
    s.provider.add_auth("test-user", "test-pass").await.unwrap();
    let ctx = FlowContext::default();
    let dir = s.directory();

    let LoginStep::Form(form) = s
        .provider
        .login_step("init", None, &ctx, &dir)
        .await
        .unwrap()
    else {
        panic!("expected the form");
    };
    assert_eq!(form.step_id, "init");
    let names: Vec<&str> = form.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["username", "password"]);
    assert_eq!(form.base_error(), None);

    let wrong = input("test-user", "wrong");
    let LoginStep::Form(form) = s
        .provider
        .login_step("init", Some(&wrong), &ctx, &dir)
        .await
        .unwrap()
    else {
        panic!("expected the form again");
    };
    assert_eq!(form.base_error(), Some("invalid_auth"));

    let right = input("test-USER", "test-pass");
    let step = s
        .provider
        .login_step("init", Some(&right), &ctx, &dir)
        .await
        .unwrap();
    let LoginStep::Done(data) = step else {
        panic!("expected done, got {step:?}");
    };
    assert_eq!(
        Value::Object(data.clone()),
        json!({"username": "test-USER"})
    );

    let credential = s.provider.get_or_create_credentials(&data, &dir).unwrap();
    assert!(credential.is_new);
    assert_eq!(credential.data_str("username"), Some("test-user"));
}

#[tokio::test]
async fn saved_entries_load_again_and_credentials_are_reused() {
    let s = setup();
    s.provider.add_auth("hello", "test-pass").await.unwrap();
    let first = s
        .provider
        .get_or_create_credentials(&input("hello", "test-pass"), &s.directory())
        .unwrap();
    let (_, linked) = create_linked_user(&s, &first).await;
    let Setup {
        home,
        store,
        provider,
    } = s;
    drop(provider);
    store.close().await.unwrap();
    drop(store);

    let store = open_store(home.path());
    let provider =
        HomeAssistantProvider::with_pool(config(4), store.clone(), HashPool::new(1)).unwrap();
    let s = Setup {
        home,
        store,
        provider,
    };
    assert_eq!(s.provider.usernames(), vec!["hello"]);
    s.provider
        .validate_login("hello ", "test-pass")
        .await
        .unwrap();
    let again = s
        .provider
        .get_or_create_credentials(
            &Map::from_iter([("username".to_owned(), json!("hello "))]),
            &s.directory(),
        )
        .unwrap();
    assert!(!again.is_new);
    assert_eq!(again.id, linked.id);
    assert_eq!(again.user_id, linked.user_id);
}

#[tokio::test]
async fn change_username_renames_the_entry_and_the_credential_in_one_commit() {
    let s = setup();
    s.provider.add_auth("test-user", "test-pass").await.unwrap();
    let credential = s
        .provider
        .get_or_create_credentials(&input("test-user", ""), &s.directory())
        .unwrap();
    let (_, linked) = create_linked_user(&s, &credential).await;
    let commits = s.store.stats().commits;

    s.provider
        .change_username("TEST-USER", "new-user")
        .await
        .unwrap();

    assert_eq!(s.store.stats().commits, commits + 1, "one commit for both");
    assert_eq!(s.provider.usernames(), vec!["new-user"]);
    let rewritten = s.store.credential(linked.id.as_str()).unwrap();
    assert_eq!(rewritten.data_str("username"), Some("new-user"));
    s.provider
        .validate_login("new-user", "test-pass")
        .await
        .unwrap();
    assert!(is_invalid_auth(
        &s.provider.validate_login("test-user", "test-pass").await
    ));
    let found = s
        .provider
        .get_or_create_credentials(&input("New-User", ""), &s.directory())
        .unwrap();
    assert_eq!(found.id, linked.id);

    // Durable: a fresh store sees both changes.
    let Setup {
        home,
        store,
        provider,
    } = s;
    drop(provider);
    store.close().await.unwrap();
    drop(store);
    let store = open_store(home.path());
    assert_eq!(store.ha_users()[0].username, "new-user");
    assert_eq!(
        store
            .credential(linked.id.as_str())
            .unwrap()
            .data_str("username"),
        Some("new-user")
    );
}

#[tokio::test]
async fn change_username_refuses_unknown_users_and_bad_new_names() {
    let s = setup();
    s.provider.add_auth("test-user", "test-pass").await.unwrap();
    s.provider.add_auth("other", "test-pass").await.unwrap();
    assert_eq!(
        s.provider.change_username("nobody", "new-user").await,
        Err(ProviderError::UserNotFound)
    );
    // The new name is checked first, as in Home Assistant.
    for (old, new) in [("test-user", "New-User"), ("nobody", "new-user ")] {
        let e = s.provider.change_username(old, new).await.unwrap_err();
        assert!(
            matches!(
                e,
                ProviderError::InvalidUsername {
                    key: "username_not_normalized",
                    ..
                }
            ),
            "{old:?} -> {new:?}: {e:?}"
        );
    }
    for new in ["other", "test-user"] {
        let e = s
            .provider
            .change_username("test-user", new)
            .await
            .unwrap_err();
        assert_eq!(
            e,
            ProviderError::InvalidUsername {
                key: "username_already_exists",
                message: format!("Username \"{new}\" already exists"),
            }
        );
    }
    assert_eq!(s.provider.usernames(), vec!["test-user", "other"]);
}

#[tokio::test]
async fn remove_auth_removes_the_first_normalized_match() {
    let s = setup();
    s.provider.add_auth("test-user", "test-pass").await.unwrap();
    s.provider.add_auth("other", "test-pass").await.unwrap();
    s.provider.remove_auth(" Test-User").await.unwrap();
    assert_eq!(s.provider.usernames(), vec!["other"]);
    assert_eq!(
        s.provider.remove_auth("test-user").await,
        Err(ProviderError::UserNotFound)
    );
}

#[tokio::test]
async fn removing_credentials_removes_the_entry_and_ignores_a_missing_one() {
    let s = setup();
    s.provider.add_auth("test-user", "test-pass").await.unwrap();
    let credential = s
        .provider
        .get_or_create_credentials(&input("test-user", ""), &s.directory())
        .unwrap();
    s.provider
        .will_remove_credentials(&credential)
        .await
        .unwrap();
    assert!(s.provider.usernames().is_empty());
    // Already gone: ignored.
    s.provider
        .will_remove_credentials(&credential)
        .await
        .unwrap();
}

// ----- the 72-byte cut -----

/// Home Assistant cuts the UTF-8 bytes at 72 before hashing and checking, so anything
/// after byte 72 does not matter: that is its behaviour (and bcrypt's), kept on purpose.
#[tokio::test]
async fn passwords_are_cut_at_72_bytes() {
    let s = setup();
    let long: String = "0123456789".repeat(10);
    assert_eq!(long.len(), 100);
    s.provider.add_auth("long", &long).await.unwrap();
    let other_tail = format!("{}something else entirely", &long[..72]);
    for pw in [long.as_str(), &long[..72], other_tail.as_str()] {
        s.provider
            .validate_login("long", pw)
            .await
            .unwrap_or_else(|e| panic!("{pw:?}: {e}"));
    }
    assert!(is_invalid_auth(
        &s.provider.validate_login("long", &long[..71]).await
    ));
}

// ----- Home Assistant compatibility -----

#[derive(serde::Deserialize)]
struct Fixture {
    storage: Value,
    cases: Vec<FixtureCase>,
}

#[derive(serde::Deserialize)]
struct FixtureCase {
    username: String,
    accept: Vec<String>,
    reject: Vec<String>,
}

/// Entries hashed by Python's bcrypt exactly as Home Assistant does
/// (tests/fixtures/gen_ha_bcrypt.py), loaded from a real
/// `.storage/auth_provider.homeassistant` file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashes_made_by_home_assistant_validate_with_the_same_outcomes() {
    let fixture: Fixture = serde_json::from_str(include_str!("fixtures/ha_bcrypt.json")).unwrap();
    let home = tempfile::tempdir().unwrap();
    let storage = home.path().join(".storage");
    std::fs::create_dir_all(&storage).unwrap();
    std::fs::write(
        storage.join("auth_provider.homeassistant"),
        serde_json::to_vec_pretty(&fixture.storage).unwrap(),
    )
    .unwrap();
    let store = open_store(home.path());
    let provider = Arc::new(
        HomeAssistantProvider::with_pool(config(12), store.clone(), HashPool::new(2)).unwrap(),
    );
    let before = store.ha_users();
    assert_eq!(before.len(), fixture.cases.len());

    let mut checks = Vec::new();
    for case in &fixture.cases {
        // A legacy, unnormalised stored name logs in by its normalised form too.
        let normalized = latch_provider_homeassistant::normalize_username(&case.username);
        for pw in &case.accept {
            checks.push((case.username.clone(), pw.clone(), true));
        }
        if normalized != case.username {
            checks.push((normalized, case.accept[0].clone(), true));
        }
        for pw in &case.reject {
            checks.push((case.username.clone(), pw.clone(), false));
        }
    }
    let tasks: Vec<_> = checks
        .into_iter()
        .map(|(user, pw, expect)| {
            let provider = Arc::clone(&provider);
            tokio::spawn(async move {
                let r = provider.validate_login(&user, &pw).await;
                assert_eq!(r.is_ok(), expect, "{user:?} / {pw:?}: {r:?}");
                if !expect {
                    assert!(is_invalid_auth(&r));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        provider.stats().rehashes,
        0,
        "cost 12 hashes are left alone"
    );
    assert_eq!(provider.stats().dummy_checks, 0);
    assert_eq!(
        store.ha_users(),
        before,
        "validating never rewrites the file"
    );
}

/// What latch stores is what Home Assistant stores: standard Base64 (80 characters) of a
/// 60-character `$2b$12$` string that the same rules verify.
#[tokio::test]
async fn hashes_made_by_latch_have_home_assistants_format() {
    let s = setup_with(12, 1);
    s.provider.add_auth("test-user", "test-pass").await.unwrap();
    let entry = s.store.ha_user("test-user").unwrap();
    assert_eq!(entry.password.expose().len(), 80);
    let decoded = String::from_utf8(STANDARD.decode(entry.password.expose()).unwrap()).unwrap();
    assert_eq!(decoded.len(), 60);
    assert!(decoded.starts_with("$2b$12$"), "{decoded}");
    // Home Assistant's check: bcrypt.checkpw(pw.encode()[:72], b64decode(stored)).
    assert!(bcrypt::verify(b"test-pass", &decoded).unwrap());
    assert!(!bcrypt::verify(b"test-Pass", &decoded).unwrap());
}

// ----- timing and the dummy check -----

#[tokio::test]
async fn an_unknown_user_costs_a_dummy_check_and_a_wrong_password_does_not() {
    let s = setup();
    s.provider.add_auth("test-user", "test-pass").await.unwrap();
    let jobs = s.provider.pool().stats().completed;
    assert!(is_invalid_auth(
        &s.provider.validate_login("test-user", "wrong").await
    ));
    assert_eq!(s.provider.stats().dummy_checks, 0);
    assert_eq!(s.provider.pool().stats().completed, jobs + 1);

    assert!(is_invalid_auth(
        &s.provider.validate_login("nobody", "test-pass").await
    ));
    assert_eq!(s.provider.stats().dummy_checks, 1);
    // At cost 4 the first dummy check makes the cost-4 dummy hash: one bcrypt run, the
    // same work as checking against it.
    assert_eq!(s.provider.pool().stats().completed, jobs + 2);
    assert!(is_invalid_auth(
        &s.provider.validate_login("nobody", "test-pass").await
    ));
    assert_eq!(s.provider.stats().dummy_checks, 2);
    assert_eq!(s.provider.pool().stats().completed, jobs + 3);
}

/// Puts an entry with a hash of `cost` straight into the store, as a Home Assistant
/// directory (or an older latch) would have it.
async fn entry_at_cost(store: &Store, username: &str, cost: u32) {
    let h = password::hash(&CutPassword::new("pw"), cost).unwrap();
    store
        .commit(vec![Change::PutHaUser {
            username: username.into(),
            password: password::encode_for_storage(&h),
        }])
        .await
        .unwrap();
}

/// An unknown user is checked at the cost a known user's check costs: the cost most
/// stored hashes have, whatever `bcrypt_cost` says, followed as hashes change.
#[tokio::test]
async fn the_dummy_check_costs_what_most_stored_hashes_cost() {
    let s = setup_with(4, 2);
    assert_eq!(s.provider.dummy_cost(), 4, "no entry: the configured cost");
    entry_at_cost(&s.store, "a", 5).await;
    entry_at_cost(&s.store, "b", 5).await;
    entry_at_cost(&s.store, "c", 6).await;
    assert_eq!(s.provider.dummy_cost(), 5, "the most common stored cost");
    // New users get the configured cost: once they are the majority, so is their cost.
    for name in ["d", "e", "f"] {
        s.provider.add_auth(name, "pw").await.unwrap();
    }
    assert_eq!(s.provider.dummy_cost(), 4);
    // A tie goes to the configured cost.
    s.provider.remove_auth("f").await.unwrap();
    assert_eq!(s.provider.dummy_cost(), 4);
    entry_at_cost(&s.store, "g", 6).await;
    entry_at_cost(&s.store, "h", 6).await;
    assert_eq!(
        s.provider.dummy_cost(),
        6,
        "the other cost is now the majority"
    );
    // An unreadable entry does not count.
    s.store
        .commit(vec![Change::PutHaUser {
            username: "broken".into(),
            password: Secret::new("not base64!"),
        }])
        .await
        .unwrap();
    assert_eq!(s.provider.dummy_cost(), 6);

    // And the dummy check really runs at that cost.
    assert!(is_invalid_auth(
        &s.provider.validate_login("nobody", "pw").await
    ));
    assert!(is_invalid_auth(
        &s.provider.validate_login("nobody", "pw").await
    ));
    assert_eq!(s.provider.stats().dummy_checks, 2);
}

/// A Home Assistant directory (cost 12) served with a lower `bcrypt_cost`: unknown users
/// are checked at 12 against Home Assistant's own dummy, like the known users.
#[tokio::test]
async fn a_home_assistant_directory_at_cost_12_served_at_cost_4_keeps_cost_12_dummies() {
    let s = setup_with(4, 1);
    s.store
        .commit(vec![Change::PutHaUser {
            username: "paulus".into(),
            password: password::encode_for_storage(DUMMY_HASH),
        }])
        .await
        .unwrap();
    assert_eq!(s.provider.dummy_cost(), 12);
    let jobs = s.provider.pool().stats().completed;
    assert!(is_invalid_auth(
        &s.provider.validate_login("nobody", "x").await
    ));
    assert_eq!(
        s.provider.pool().stats().completed,
        jobs + 1,
        "one check against DUMMY_HASH, no hash made"
    );
}

// ----- limits -----

#[tokio::test]
async fn new_usernames_are_capped_at_255_bytes_without_control_characters() {
    let s = setup();
    let at_cap = "u".repeat(255);
    s.provider.add_auth(&at_cap, "pw").await.unwrap();
    s.provider.validate_login(&at_cap, "pw").await.unwrap();
    let over = "u".repeat(256);
    match s.provider.add_auth(&over, "pw").await {
        Err(ProviderError::InvalidUsername { key, message }) => {
            assert_eq!(key, "username_too_long");
            assert!(message.contains("255"), "{message}");
            assert!(!message.contains(&over), "the name is not echoed");
        }
        other => panic!("{other:?}"),
    }
    for bad in ["bob\u{1b}[2j", "line\nbreak", "tab\tname", "rlo\u{202e}x"] {
        match s.provider.add_auth(bad, "pw").await {
            Err(ProviderError::InvalidUsername { key, message }) => {
                assert_eq!(key, "username_invalid_character", "{bad:?}");
                assert!(message.contains("control character U+"), "{message}");
                assert!(!message.chars().any(char::is_control), "{message:?}");
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // Renames follow the same rule.
    assert!(matches!(
        s.provider.change_username(&at_cap, &over).await,
        Err(ProviderError::InvalidUsername {
            key: "username_too_long",
            ..
        })
    ));
    // Passwords: at most 1,024 bytes (bcrypt reads 72 of them).
    s.provider
        .change_password(&at_cap, &"p".repeat(1_024))
        .await
        .unwrap();
    assert!(matches!(
        s.provider
            .change_password(&at_cap, &"p".repeat(1_025))
            .await,
        Err(ProviderError::Limit(_))
    ));
    assert_eq!(s.store.ha_users().len(), 1, "nothing refused was stored");
}

/// A Home Assistant file may hold names longer than latch's caps (Home Assistant has
/// none): they load, log in and can be renamed to a valid name.
#[tokio::test]
async fn stored_names_longer_than_the_caps_still_work() {
    let s = setup();
    let long = "l".repeat(300);
    let h = password::hash(&CutPassword::new("pw"), 4).unwrap();
    s.store
        .commit(vec![Change::PutHaUser {
            username: long.clone(),
            password: password::encode_for_storage(&h),
        }])
        .await
        .unwrap();
    s.provider.validate_login(&long, "pw").await.unwrap();
    s.provider.change_password(&long, "pw2").await.unwrap();
    s.provider.validate_login(&long, "pw2").await.unwrap();
    s.provider.change_username(&long, "short").await.unwrap();
    s.provider.validate_login("short", "pw2").await.unwrap();
}

// ----- atomic additions and indexed lookups -----

/// `add_auth_with` commits the entry and the caller's changes as one batch: a refused
/// change leaves no entry behind.
#[tokio::test]
async fn add_auth_with_commits_the_entry_and_the_rest_together() {
    let s = setup();
    let mut user = User::new(Some("Anne".into()));
    user.is_active = true;
    let mut data = Map::new();
    data.insert("username".into(), json!("anne"));
    let mut credential = Credentials::new(PROVIDER_TYPE, None, data);
    credential.user_id = Some(user.id.clone());
    // The credential without its user: the store refuses the batch.
    let refused = s
        .provider
        .add_auth_with(
            "anne",
            "pw",
            vec![Change::PutCredential(credential.clone())],
        )
        .await;
    assert!(
        matches!(refused, Err(ProviderError::Storage(_))),
        "{refused:?}"
    );
    assert!(s.store.ha_user("anne").is_none(), "no orphan entry");
    s.provider
        .add_auth_with(
            "anne",
            "pw",
            vec![
                Change::PutUser(user.clone()),
                Change::PutCredential(credential),
            ],
        )
        .await
        .unwrap();
    assert!(s.store.ha_user("anne").is_some());
    assert!(s.store.user(user.id.as_str()).is_some());
}

/// A login folds the name it was given (and the entry's, to find its exact position),
/// never every stored name.
#[tokio::test(flavor = "current_thread")]
async fn a_login_does_not_fold_every_stored_username() {
    let s = setup();
    let h = password::hash(&CutPassword::new("pw"), 4).unwrap();
    let changes: Vec<Change> = (0..2_000)
        .map(|i| Change::PutHaUser {
            username: format!("user{i}"),
            password: password::encode_for_storage(&h),
        })
        .collect();
    s.store.commit(changes).await.unwrap();
    let before = latch_models::username_folds_on_this_thread();
    s.provider.validate_login("User1999", "pw").await.unwrap();
    assert!(is_invalid_auth(
        &s.provider.validate_login("nobody", "pw").await
    ));
    let folds = latch_models::username_folds_on_this_thread() - before;
    assert!(
        folds <= 4,
        "{folds} folds for two logins over 2,000 entries"
    );

    // The credential lookup of a finished login is indexed too.
    let dir = s.directory();
    let step = s
        .provider
        .login_step(
            "init",
            Some(&input("user7", "pw")),
            &FlowContext::default(),
            &dir,
        )
        .await
        .unwrap();
    let LoginStep::Done(data) = step else {
        panic!("{step:?}")
    };
    let credential = s.provider.get_or_create_credentials(&data, &dir).unwrap();
    create_linked_user(&s, &credential).await;
    let before = latch_models::username_folds_on_this_thread();
    let found = s.store.read(|d| {
        d.credential_by_username(PROVIDER_TYPE, None, "user7")
            .cloned()
    });
    assert_eq!(found.map(|c| c.id), Some(credential.id));
    assert_eq!(latch_models::username_folds_on_this_thread(), before);
}

/// At Home Assistant's cost 12 the dummy check is one bcrypt run against its `DUMMY`
/// hash (which is a real cost-12 hash of `foo`), with no hash made first.
#[tokio::test]
async fn at_cost_12_an_unknown_user_is_checked_against_home_assistants_dummy() {
    let s = setup_with(12, 1);
    assert!(is_invalid_auth(
        &s.provider.validate_login("nobody", "pw").await
    ));
    assert_eq!(s.provider.stats().dummy_checks, 1);
    assert_eq!(s.provider.pool().stats().completed, 1);
    assert_eq!(password::cost_of(DUMMY_HASH).unwrap(), 12);
}

#[tokio::test]
async fn an_unreadable_stored_hash_refuses_the_login_after_a_dummy_check() {
    let s = setup();
    s.store
        .commit(vec![
            Change::PutHaUser {
                username: "broken".into(),
                password: Secret::new("not base64!"),
            },
            Change::PutHaUser {
                username: "short".into(),
                password: password::encode_for_storage("$2b$04$tooshort"),
            },
        ])
        .await
        .unwrap();
    for user in ["broken", "short"] {
        assert!(is_invalid_auth(&s.provider.validate_login(user, "x").await));
    }
    assert_eq!(s.provider.stats().dummy_checks, 2);
}

#[tokio::test]
async fn login_uses_the_last_of_several_matching_entries() {
    let s = setup();
    let h1 = password::hash(&CutPassword::new("first"), 4).unwrap();
    let h2 = password::hash(&CutPassword::new("second"), 4).unwrap();
    s.store
        .commit(vec![
            Change::PutHaUser {
                username: "Test".into(),
                password: password::encode_for_storage(&h1),
            },
            Change::PutHaUser {
                username: "test".into(),
                password: password::encode_for_storage(&h2),
            },
        ])
        .await
        .unwrap();
    s.provider.validate_login("TEST", "second").await.unwrap();
    assert!(is_invalid_auth(
        &s.provider.validate_login("test", "first").await
    ));
}

// ----- latch's additions -----

#[tokio::test]
async fn a_lower_cost_hash_is_upgraded_after_a_successful_login() {
    let s = setup();
    s.provider.add_auth("test-user", "test-pass").await.unwrap();
    assert!(stored_bcrypt(&s.store, "test-user").starts_with("$2b$04$"));

    let stronger =
        HomeAssistantProvider::with_pool(config(5), s.store.clone(), HashPool::new(1)).unwrap();
    assert!(is_invalid_auth(
        &stronger.validate_login("test-user", "wrong").await
    ));
    assert!(stored_bcrypt(&s.store, "test-user").starts_with("$2b$04$"));
    assert_eq!(stronger.stats().rehashes, 0);

    stronger
        .validate_login("Test-User", "test-pass")
        .await
        .unwrap();
    let upgraded = stored_bcrypt(&s.store, "test-user");
    assert!(upgraded.starts_with("$2b$05$"), "{upgraded}");
    assert_eq!(stronger.stats().rehashes, 1);
    assert_eq!(s.provider.usernames(), vec!["test-user"]);

    stronger
        .validate_login("test-user", "test-pass")
        .await
        .unwrap();
    assert_eq!(
        stronger.stats().rehashes,
        1,
        "already at the configured cost"
    );
    assert_eq!(stored_bcrypt(&s.store, "test-user"), upgraded);
    // A provider configured lower never downgrades.
    s.provider
        .validate_login("test-user", "test-pass")
        .await
        .unwrap();
    assert_eq!(stored_bcrypt(&s.store, "test-user"), upgraded);
}

#[tokio::test]
async fn a_failed_upgrade_does_not_fail_the_login() {
    let s = setup();
    s.provider.add_auth("test-user", "test-pass").await.unwrap();
    let stronger =
        HomeAssistantProvider::with_pool(config(5), s.store.clone(), HashPool::new(1)).unwrap();
    s.store.close().await.unwrap(); // reads still work, commits fail
    stronger
        .validate_login("test-user", "test-pass")
        .await
        .unwrap();
    assert_eq!(stronger.stats().rehashes, 0);
    assert!(stored_bcrypt(&s.store, "test-user").starts_with("$2b$04$"));
}

#[tokio::test]
async fn empty_passwords_cannot_be_set() {
    let s = setup();
    assert!(matches!(
        s.provider.add_auth("test-user", "").await,
        Err(ProviderError::WeakPassword(_))
    ));
    assert!(s.provider.usernames().is_empty());
    s.provider.add_auth("test-user", "test-pass").await.unwrap();
    assert!(matches!(
        s.provider.change_password("test-user", "").await,
        Err(ProviderError::WeakPassword(_))
    ));
    s.provider
        .validate_login("test-user", "test-pass")
        .await
        .unwrap();
}

#[tokio::test]
async fn check_password_accepts_only_the_current_password() {
    let s = setup();
    s.provider.add_auth("test-user", "test-pass").await.unwrap();
    s.provider
        .check_password("test-user", "test-pass")
        .await
        .unwrap();
    assert!(is_invalid_auth(
        &s.provider.check_password("test-user", "nope").await
    ));
}

#[tokio::test]
async fn every_hashing_operation_goes_through_the_pool() {
    let s = setup();
    let done = || s.provider.pool().stats().completed;
    s.provider.add_auth("test-user", "test-pass").await.unwrap();
    assert_eq!(done(), 1);
    s.provider
        .validate_login("test-user", "test-pass")
        .await
        .unwrap();
    assert_eq!(done(), 2);
    s.provider
        .change_password("test-user", "new-pass")
        .await
        .unwrap();
    assert_eq!(done(), 3);
    s.provider
        .check_password("test-user", "new-pass")
        .await
        .unwrap();
    assert_eq!(done(), 4);
}

// ----- the hash pool under logins -----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_logins_never_hash_more_than_the_pool_allows() {
    for slots in [1, 2] {
        let s = setup_with(6, slots);
        s.provider.add_auth("test-user", "test-pass").await.unwrap();
        let provider = Arc::new(s.provider);
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let provider = Arc::clone(&provider);
                tokio::spawn(async move {
                    let pw = if i % 2 == 0 { "test-pass" } else { "wrong" };
                    provider.validate_login("test-user", pw).await.is_ok()
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            ok += usize::from(t.await.unwrap());
        }
        assert_eq!(ok, 4);
        let stats = provider.pool().stats();
        assert!(
            (1..=slots).contains(&stats.peak_in_use),
            "{slots} slots: {stats:?}"
        );
        assert_eq!(stats.completed, 9);
        assert_eq!((stats.in_use, stats.waiting), (0, 0));
    }
}

/// On a single-threaded runtime, the test itself (an async task on the only thread)
/// sees the login's bcrypt check running and runs a timer meanwhile: the check is not
/// on the runtime's thread.
#[tokio::test(flavor = "current_thread")]
async fn async_tasks_keep_running_while_a_login_hashes() {
    let fixture: Value = serde_json::from_str(include_str!("fixtures/ha_bcrypt.json")).unwrap();
    let entry = &fixture["storage"]["data"]["users"][0];
    assert_eq!(entry["username"], "test-user");
    let s = setup_with(12, 1);
    s.store
        .commit(vec![Change::PutHaUser {
            username: "test-user".into(),
            password: Secret::new(entry["password"].as_str().unwrap()),
        }])
        .await
        .unwrap();
    let provider = Arc::new(s.provider);
    let login = tokio::spawn({
        let provider = Arc::clone(&provider);
        async move { provider.validate_login("test-user", "test-pass").await }
    });
    let pool = provider.pool().clone();
    assert!(
        eventually(|| pool.stats().in_use == 1).await,
        "never saw the check running"
    );
    let ping = tokio::spawn(async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        "pong"
    });
    assert_eq!(ping.await.unwrap(), "pong");
    login.await.unwrap().unwrap();
    assert_eq!(pool.stats().completed, 1);
    drop(s.home);
}

#[test]
fn the_provider_is_named_and_typed_like_home_assistants() {
    let home = tempfile::tempdir().unwrap();
    let store = open_store(home.path());
    let provider = HomeAssistantProvider::with_pool(
        HomeAssistantConfig::default(),
        store.clone(),
        HashPool::new(1),
    )
    .unwrap();
    assert_eq!(provider.provider_type(), PROVIDER_TYPE);
    assert_eq!(provider.name(), "Home Assistant Local");
    assert_eq!(provider.id(), None);
    assert!(provider.supports_mfa());
    let named = HomeAssistantProvider::with_pool(
        HomeAssistantConfig::from_value(json!({"type": "homeassistant", "name": "Local"})).unwrap(),
        store.clone(),
        HashPool::new(1),
    )
    .unwrap();
    assert_eq!(named.name(), "Local");
    assert!(
        HomeAssistantProvider::with_pool(config(3), store, HashPool::new(1)).is_err(),
        "cost 3 is refused"
    );
}
