//! Replay is exact: whatever mix of old and new snapshot files a crash during compaction
//! leaves, with the journal and its checkpoint, opening ends in the state after the whole
//! sequence (order included), and that state survives its own files.

use std::fs;

use chrono::{DateTime, TimeDelta};
use latch_models::{
    Credentials, GROUP_ID_ADMIN, GROUP_ID_READ_ONLY, Group, GroupId, RefreshToken, Secret,
    TokenType, User, UserId, permissions::Policy,
};
use proptest::prelude::*;
use serde_json::{Map, json};

use crate::journal::{Checkpoint, encode_checkpoint, encode_frame};
use crate::load::file_digest;
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
            let mut cred =
                Credentials::new("homeassistant", (v % 2 == 0).then(|| "x".into()), data);
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
            token_type: [
                TokenType::Normal,
                TokenType::System,
                TokenType::LongLivedAccessToken,
            ][usize::from(v % 3)],
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

/// The valid batches of a generated sequence, and the state after each.
fn valid_history(batches: &[Vec<Op>]) -> (Vec<Vec<Change>>, Vec<AuthData>) {
    let mut data = AuthData::new();
    let mut states = vec![data.clone()];
    let mut kept = Vec::new();
    for ops in batches {
        let changes: Vec<Change> = ops.iter().map(to_change).collect();
        if data.check(&changes).is_ok() {
            for c in changes.clone() {
                data.apply(c);
            }
            kept.push(changes);
            states.push(data.clone());
        }
    }
    (kept, states)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn replay_after_an_interrupted_compaction_is_exact(
        batches in proptest::collection::vec(proptest::collection::vec(op(), 1..4), 1..40),
        picks in (any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<prop::sample::Index>()),
        renamed in any::<[bool; 4]>(),
    ) {
        let (kept, states) = valid_history(&batches);
        let m = kept.len();
        // The last completed compaction left the files at batch j and the journal from
        // j + 1. The interrupted one captured batch k, wrote its checkpoint after the
        // first p journaled batches, and renamed the files flagged in `renamed`.
        let j = picks.0.index(m + 1);
        let k = j + picks.1.index(m + 1 - j);
        let p = picks.2.index(k - j + 1);

        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join(".storage");
        fs::create_dir(&storage).unwrap();
        let mut files = [None; 4];
        for f in StoreFile::ALL {
            let new = states[k].encode(f).unwrap();
            files[f.index()] = Some(file_digest(&new));
            let content = if renamed[f.index()] { new } else { states[j].encode(f).unwrap() };
            fs::write(storage.join(f.name()), content).unwrap();
        }
        let mut journal = Vec::new();
        for (i, changes) in kept.iter().enumerate().skip(j) {
            if i == j + p {
                journal.extend(encode_checkpoint(&Checkpoint { seq: k as u64, files }).unwrap());
            }
            let bytes = serde_json::to_vec(changes).unwrap();
            journal.extend(encode_frame([(i as u64 + 1, bytes.as_slice())]).unwrap());
        }
        if j + p == m {
            journal.extend(encode_checkpoint(&Checkpoint { seq: k as u64, files }).unwrap());
        }
        fs::write(storage.join(crate::JOURNAL_FILE), journal).unwrap();

        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        prop_assert!(store.snapshot() == states[m], "j={} k={} p={} m={}", j, k, p, m);
        // New commits continue the sequence, and everything survives a close.
        store.commit_blocking(vec![Change::PutHaUser {
            username: "after".into(),
            password: Secret::new("x"),
        }]).unwrap();
        let expected = store.snapshot();
        store.close_blocking().unwrap();
        drop(store);
        let reloaded = Store::open(dir.path(), StoreOptions::default()).unwrap().snapshot();
        prop_assert!(reloaded == expected);
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
