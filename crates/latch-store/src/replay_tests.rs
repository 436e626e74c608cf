//! Replay idempotence: any journal suffix replayed over any later snapshot (files written
//! at different moments, as a crash during compaction leaves them) ends in the state
//! after the whole sequence.

use std::fs;

use chrono::{DateTime, TimeDelta};
use latch_models::{
    Credentials, GROUP_ID_ADMIN, GROUP_ID_READ_ONLY, Group, GroupId, RefreshToken, Secret,
    TokenType, User, UserId, permissions::Policy,
};
use proptest::prelude::*;
use serde_json::{Map, json};

use crate::journal::encode_frame;
use crate::{AuthData, Change, Store, StoreFile, StoreOptions};

const USERS: [&str; 4] = ["u0", "u1", "u2", "u3"];
const GROUPS: [&str; 2] = ["g0", "g1"];
const CREDS: [&str; 4] = ["c0", "c1", "c2", "c3"];
const TOKENS: [&str; 6] = ["t0", "t1", "t2", "t3", "t4", "t5"];
const NAMES: [&str; 3] = ["alice", "bob", "carol"];

#[derive(Clone, Debug)]
enum Op {
    PutUser(usize, u8, u8),
    RemoveUser(usize),
    PutGroup(usize, u8),
    RemoveGroup(usize),
    PutCredential(usize, usize, u8),
    RemoveCredential(usize),
    PutToken(usize, usize, Option<usize>, u8),
    RemoveToken(usize),
    Usage(usize, u8),
    Expiry(usize, Option<u8>),
    PutHa(usize, u8),
    RemoveHa(usize),
    RenameHa(usize, usize),
    PutTotp(usize, u8),
    RemoveTotp(usize),
    PutTotpState(usize, u8),
    RemoveTotpState(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let u = 0..USERS.len();
    let g = 0..GROUPS.len();
    let c = 0..CREDS.len();
    let t = 0..TOKENS.len();
    let h = 0..NAMES.len();
    prop_oneof![
        4 => (u.clone(), any::<u8>(), any::<u8>()).prop_map(|(a, b, c)| Op::PutUser(a, b, c)),
        1 => u.clone().prop_map(Op::RemoveUser),
        2 => (g.clone(), any::<u8>()).prop_map(|(a, b)| Op::PutGroup(a, b)),
        1 => g.prop_map(Op::RemoveGroup),
        3 => (c.clone(), u.clone(), any::<u8>()).prop_map(|(a, b, d)| Op::PutCredential(a, b, d)),
        1 => c.clone().prop_map(Op::RemoveCredential),
        4 => (t.clone(), u.clone(), proptest::option::of(c), any::<u8>())
            .prop_map(|(a, b, d, e)| Op::PutToken(a, b, d, e)),
        1 => t.clone().prop_map(Op::RemoveToken),
        2 => (t.clone(), any::<u8>()).prop_map(|(a, b)| Op::Usage(a, b)),
        1 => (t, proptest::option::of(any::<u8>())).prop_map(|(a, b)| Op::Expiry(a, b)),
        2 => (h.clone(), any::<u8>()).prop_map(|(a, b)| Op::PutHa(a, b)),
        1 => h.clone().prop_map(Op::RemoveHa),
        2 => (h.clone(), h).prop_map(|(a, b)| Op::RenameHa(a, b)),
        1 => (u.clone(), any::<u8>()).prop_map(|(a, b)| Op::PutTotp(a, b)),
        1 => u.clone().prop_map(Op::RemoveTotp),
        1 => (u.clone(), any::<u8>()).prop_map(|(a, b)| Op::PutTotpState(a, b)),
        1 => u.prop_map(Op::RemoveTotpState),
    ]
}

fn to_change(op: &Op) -> Change {
    let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    match *op {
        Op::PutUser(u, v, groups) => {
            let mut group_ids = Vec::new();
            for (bit, id) in [GROUP_ID_ADMIN, GROUP_ID_READ_ONLY, GROUPS[0], GROUPS[1]]
                .into_iter()
                .enumerate()
            {
                if groups & (1 << bit) != 0 {
                    group_ids.push(GroupId::from(id));
                }
            }
            Change::PutUser(User {
                id: UserId::from(USERS[u]),
                name: (v % 3 != 0).then(|| format!("name {v}")),
                is_owner: v % 5 == 0,
                is_active: v % 2 == 0,
                system_generated: v % 7 == 0,
                local_only: v % 11 == 0,
                group_ids,
            })
        }
        Op::RemoveUser(u) => Change::RemoveUser(USERS[u].into()),
        Op::PutGroup(g, v) => Change::PutGroup(Group {
            id: GROUPS[g].into(),
            name: (v % 4 != 0).then(|| format!("group {v}")),
            policy: if v % 2 == 0 {
                Policy::read_only()
            } else {
                Policy::all_entities()
            },
            system_generated: false,
        }),
        Op::RemoveGroup(g) => Change::RemoveGroup(GROUPS[g].into()),
        Op::PutCredential(c, u, v) => {
            let mut data = Map::new();
            data.insert("username".into(), json!(format!("user{v}")));
            let mut cred = Credentials::new("homeassistant", (v % 2 == 0).then(|| "x".into()), data);
            cred.id = CREDS[c].into();
            cred.user_id = Some(USERS[u].into());
            Change::PutCredential(cred)
        }
        Op::RemoveCredential(c) => Change::RemoveCredential(CREDS[c].into()),
        Op::PutToken(t, u, c, v) => Change::PutRefreshToken(RefreshToken {
            id: TOKENS[t].into(),
            user_id: USERS[u].into(),
            client_id: (v % 3 != 0).then(|| "http://localhost:8123/".into()),
            client_name: None,
            client_icon: (v % 5 == 0).then(|| "mdi:x".into()),
            token_type: [TokenType::Normal, TokenType::System, TokenType::LongLivedAccessToken]
                [usize::from(v % 3)],
            created_at: t0 + TimeDelta::microseconds(i64::from(v) * 1_234_567),
            access_token_expiration: 1800.0 + f64::from(v),
            // Values repeat across tokens now and then, like Home Assistant's tests.
            token: Secret::new(format!("token-{}", v % 8)),
            jwt_key: Secret::new(format!("jwt-{v}")),
            last_used_at: None,
            last_used_ip: None,
            expire_at: (v % 2 == 0).then(|| 1.7e9 + f64::from(v) / 7.0),
            credential_id: c.map(|c| CREDS[c].into()),
            version: Some("2026.11.0".into()),
        }),
        Op::RemoveToken(t) => Change::RemoveRefreshToken(TOKENS[t].into()),
        Op::Usage(t, v) => Change::TokenUsage {
            id: TOKENS[t].into(),
            last_used_at: t0 + TimeDelta::milliseconds(i64::from(v)),
            last_used_ip: (v % 2 == 0).then(|| format!("10.0.0.{v}")),
            expire_at: Some(1.8e9 + f64::from(v)),
        },
        Op::Expiry(t, v) => Change::SetTokenExpiry {
            id: TOKENS[t].into(),
            expire_at: v.map(|v| 1.9e9 + f64::from(v) * 0.5),
        },
        Op::PutHa(h, v) => Change::PutHaUser {
            username: NAMES[h].into(),
            password: Secret::new(format!("pw{v}")),
        },
        Op::RemoveHa(h) => Change::RemoveHaUser {
            username: NAMES[h].into(),
        },
        Op::RenameHa(a, b) => Change::RenameHaUser {
            old: NAMES[a].into(),
            new: NAMES[b].into(),
        },
        Op::PutTotp(u, v) => Change::PutTotpSecret {
            user_id: USERS[u].into(),
            secret: Secret::new(format!("SECRET{v}")),
        },
        Op::RemoveTotp(u) => Change::RemoveTotpSecret {
            user_id: USERS[u].into(),
        },
        Op::PutTotpState(u, v) => Change::PutTotpState {
            user_id: USERS[u].into(),
            last_step: (v % 3 != 0).then_some(u64::from(v)),
            recovery_codes: (0..v % 3).map(|i| Secret::new(format!("h{i}"))).collect(),
        },
        Op::RemoveTotpState(u) => Change::RemoveTotpState {
            user_id: USERS[u].into(),
        },
    }
}

/// The valid batches of a generated sequence (as the journal records them), and the
/// state after each.
fn valid_history(batches: &[Vec<Op>]) -> (Vec<Vec<Change>>, Vec<AuthData>) {
    let mut data = AuthData::new();
    let mut states = vec![data.clone()];
    let mut kept = Vec::new();
    for ops in batches {
        let changes: Vec<Change> = ops.iter().map(to_change).collect();
        if data.check(&changes).is_ok() {
            let (_, journaled) = data.apply_batch(changes, true);
            kept.push(journaled);
            states.push(data.clone());
        }
    }
    (kept, states)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn replaying_a_journal_suffix_over_later_snapshots_is_idempotent(
        batches in proptest::collection::vec(proptest::collection::vec(op(), 1..4), 1..40),
        picks in (any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<prop::sample::Index>()),
    ) {
        let (kept, states) = valid_history(&batches);
        let m = kept.len();
        // Journal from batch j; auth file as of k1, the other files as of k2; j <= k1, k2 <= m.
        let j = picks.0.index(m + 1);
        let k1 = j + picks.1.index(m + 1 - j);
        let k2 = j + picks.2.index(m + 1 - j);

        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join(".storage");
        fs::create_dir(&storage).unwrap();
        for (file, k) in [
            (StoreFile::Auth, k1),
            (StoreFile::HaProvider, k2),
            (StoreFile::Totp, k2),
            (StoreFile::LatchTotp, k2),
        ] {
            fs::write(storage.join(file.name()), states[k].encode(file).unwrap()).unwrap();
        }
        let mut journal = Vec::new();
        for (i, changes) in kept.iter().enumerate().skip(j) {
            let bytes = serde_json::to_vec(changes).unwrap();
            journal.extend(encode_frame([(i as u64 + 1, bytes.as_slice())]).unwrap());
        }
        fs::write(storage.join(crate::JOURNAL_FILE), journal).unwrap();

        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let replayed = store.snapshot();
        prop_assert!(replayed == states[m], "j={} k1={} k2={} m={}", j, k1, k2, m);
        // And it survives a compaction and a reload unchanged.
        store.close_blocking().unwrap();
        drop(store);
        let reloaded = Store::open(dir.path(), StoreOptions::default()).unwrap().snapshot();
        prop_assert!(reloaded == states[m]);
    }

    #[test]
    fn every_reachable_state_survives_its_own_files(
        batches in proptest::collection::vec(proptest::collection::vec(op(), 1..4), 1..40),
    ) {
        let (_, states) = valid_history(&batches);
        let last = states.last().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join(".storage");
        fs::create_dir(&storage).unwrap();
        for file in StoreFile::ALL {
            fs::write(storage.join(file.name()), last.encode(file).unwrap()).unwrap();
        }
        let loaded = Store::open(dir.path(), StoreOptions::default()).unwrap().snapshot();
        prop_assert!(&loaded == last);
        for file in StoreFile::ALL {
            prop_assert_eq!(loaded.encode(file).unwrap(), last.encode(file).unwrap());
        }
    }
}

