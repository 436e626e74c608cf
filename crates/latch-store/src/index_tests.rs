//! The username indexes answer exactly what a scan folding every stored name answers,
//! whatever sequence of puts, removals and renames built the state, and a lookup folds
//! no stored name.

use latch_models::{
    Credentials, GROUP_ID_ADMIN, GroupId, Secret, User, UserId, normalize_username,
    username_folds_on_this_thread,
};
use proptest::prelude::*;
use serde_json::{Map, json};

use crate::{AuthData, Change};

/// Names that collide after normalisation in several ways.
const NAMES: [&str; 6] = ["anne", "Anne", " anne ", "straße", "STRASSE", "bob"];
const USERS: [&str; 3] = ["u0", "u1", "u2"];
const CREDS: [&str; 4] = ["c0", "c1", "c2", "c3"];

fn user(id: &str) -> User {
    let mut u = User::new(Some(id.to_owned()));
    u.id = UserId::from(id);
    u.group_ids = vec![GroupId::from(GROUP_ID_ADMIN)];
    u
}

fn credential(id: &str, user_id: &str, provider_id: Option<&str>, username: &str) -> Credentials {
    let mut data = Map::new();
    data.insert("username".into(), json!(username));
    let mut c = Credentials::new("homeassistant", provider_id.map(str::to_owned), data);
    c.id = id.into();
    c.user_id = Some(UserId::from(user_id));
    c
}

#[derive(Clone, Debug)]
enum Op {
    Put(usize, u8),
    Remove(usize),
    Rename(usize, usize),
    PutUser(usize),
    RemoveUser(usize),
    PutCredential(usize, usize, bool, usize),
    RemoveCredential(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0..NAMES.len();
    let u = 0..USERS.len();
    let c = 0..CREDS.len();
    prop_oneof![
        4 => (n.clone(), any::<u8>()).prop_map(|(a, b)| Op::Put(a, b)),
        2 => n.clone().prop_map(Op::Remove),
        2 => (n.clone(), n.clone()).prop_map(|(a, b)| Op::Rename(a, b)),
        2 => u.clone().prop_map(Op::PutUser),
        1 => u.clone().prop_map(Op::RemoveUser),
        4 => (c.clone(), u, any::<bool>(), n).prop_map(|(a, b, d, e)| Op::PutCredential(a, b, d, e)),
        1 => c.prop_map(Op::RemoveCredential),
    ]
}

fn change(op: &Op) -> Change {
    match op {
        Op::Put(n, p) => Change::PutHaUser {
            username: NAMES[*n].to_owned(),
            password: Secret::new(format!("pw{p}")),
        },
        Op::Remove(n) => Change::RemoveHaUser {
            username: NAMES[*n].to_owned(),
        },
        Op::Rename(a, b) => Change::RenameHaUser {
            old: NAMES[*a].to_owned(),
            new: NAMES[*b].to_owned(),
        },
        Op::PutUser(u) => Change::PutUser(user(USERS[*u])),
        Op::RemoveUser(u) => Change::RemoveUser(UserId::from(USERS[*u])),
        Op::PutCredential(c, u, other_provider, n) => Change::PutCredential(credential(
            CREDS[*c],
            USERS[*u],
            other_provider.then_some("second"),
            NAMES[*n],
        )),
        Op::RemoveCredential(c) => Change::RemoveCredential(CREDS[*c].into()),
    }
}

/// What a scan that folds every stored name finds.
fn scanned_entries(d: &AuthData, normalized: &str) -> Vec<(String, String)> {
    d.ha_users()
        .iter()
        .filter(|h| normalize_username(&h.username) == normalized)
        .map(|h| (h.username.clone(), h.password.expose().to_owned()))
        .collect()
}

fn scanned_credential(d: &AuthData, provider_id: Option<&str>, normalized: &str) -> Option<String> {
    d.credentials()
        .find(|c| {
            c.auth_provider_type == "homeassistant"
                && c.auth_provider_id.as_deref() == provider_id
                && c.data_str("username")
                    .is_some_and(|u| normalize_username(u) == normalized)
        })
        .map(|c| c.id.to_string())
}

fn assert_index_matches_scan(d: &AuthData) -> Result<(), TestCaseError> {
    for name in NAMES {
        let normalized = normalize_username(name);
        let indexed: Vec<(String, String)> = d
            .ha_users_by_normalized(&normalized)
            .map(|h| (h.username.clone(), h.password.expose().to_owned()))
            .collect();
        prop_assert_eq!(indexed, scanned_entries(d, &normalized), "{}", name);
        prop_assert_eq!(
            d.ha_user(name).map(|h| h.password.expose().to_owned()),
            d.ha_users()
                .iter()
                .find(|h| h.username == name)
                .map(|h| h.password.expose().to_owned())
        );
        for provider_id in [None, Some("second")] {
            prop_assert_eq!(
                d.credential_by_username("homeassistant", provider_id, &normalized)
                    .map(|c| c.id.to_string()),
                scanned_credential(d, provider_id, &normalized)
            );
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn indexes_answer_what_a_full_scan_answers(ops in proptest::collection::vec(op(), 0..40)) {
        let mut d = AuthData::new();
        for op in &ops {
            let before = d.ha_generation();
            let c = change(op);
            let touches_entries = matches!(c, Change::PutHaUser { .. } | Change::RemoveHaUser { .. } | Change::RenameHaUser { .. });
            d.apply(c);
            if touches_entries {
                prop_assert!(d.ha_generation() > before);
            } else {
                prop_assert_eq!(d.ha_generation(), before);
            }
            assert_index_matches_scan(&d)?;
        }
    }
}

#[test]
fn a_lookup_folds_only_what_it_is_given() {
    let mut d = AuthData::new();
    for i in 0..1_000 {
        d.apply(Change::PutHaUser {
            username: format!("user{i}"),
            password: Secret::new("x"),
        });
    }
    let before = username_folds_on_this_thread();
    let found: Vec<&str> = d
        .ha_users_by_normalized("user500")
        .map(|h| h.username.as_str())
        .collect();
    assert_eq!(found, ["user500"]);
    assert!(d.ha_users_by_normalized("nobody").next().is_none());
    assert_eq!(
        username_folds_on_this_thread(),
        before,
        "no stored name was folded"
    );
    assert!(d.ha_user("user999").is_some());
    assert_eq!(
        username_folds_on_this_thread() - before,
        1,
        "an exact lookup folds its own name once"
    );
}

#[test]
fn a_loaded_file_with_names_that_collide_keeps_file_order() {
    let mut d = AuthData::new();
    d.set_ha_users(vec![
        crate::HaUser {
            username: "Paulus".into(),
            password: Secret::new("first"),
        },
        crate::HaUser {
            username: "bob".into(),
            password: Secret::new("b"),
        },
        crate::HaUser {
            username: "paulus ".into(),
            password: Secret::new("last"),
        },
    ]);
    let found: Vec<&str> = d
        .ha_users_by_normalized("paulus")
        .map(|h| h.password.expose())
        .collect();
    assert_eq!(found, ["first", "last"]);
    assert_eq!(
        d.ha_users_by_normalized("paulus")
            .next_back()
            .map(|h| h.username.as_str()),
        Some("paulus ")
    );
    d.apply(Change::RemoveHaUser {
        username: "Paulus".into(),
    });
    let found: Vec<&str> = d
        .ha_users_by_normalized("paulus")
        .map(|h| h.password.expose())
        .collect();
    assert_eq!(found, ["last"]);
    assert_eq!(d.ha_users_by_normalized("bob").count(), 1);
}
