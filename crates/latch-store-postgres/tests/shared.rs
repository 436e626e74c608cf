//! Several hosts on one real PostgreSQL database, in one process: every host applies
//! every batch in order, events of foreign changes, re-checked conflicts, start-up
//! from a checkpoint, import and export.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{config, database, host, token, until, user};
use latch_models::Secret;
use latch_store::{AuthData, Change, CommitError, Effect, Store, StoreOptions};
use latch_store_postgres::{PgBackend, export, import};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_host_reaches_the_other_with_its_event() {
    let db = database("reach");
    let a = host(&db, "a").await;
    let b = host(&db, "b").await;
    let mut events = b.store().subscribe_applied();
    a.store()
        .commit(vec![
            Change::PutUser(user("u1")),
            Change::PutRefreshToken(token("t1", "u1")),
        ])
        .await
        .unwrap();
    let sb = b.store();
    until(WAIT, "user on b", || sb.user("u1").is_some()).await;
    assert!(sb.refresh_token("t1").is_some());
    let applied = events.recv().await.unwrap();
    assert_eq!(applied.seq, 1);
    assert!(applied.effects.contains(&Effect::UserAdded("u1".into())));
    assert!(applied.effects.iter().any(|e| matches!(
        e,
        Effect::RefreshTokenCreated { id, .. } if id.as_str() == "t1"
    )));

    // A revocation on b is refused on a.
    sb.commit(vec![Change::RemoveRefreshToken("t1".into())])
        .await
        .unwrap();
    let sa = a.store();
    until(WAIT, "revocation on a", || sa.refresh_token("t1").is_none()).await;
    assert_eq!(sa.last_applied(), 2);
    assert_eq!(sa.snapshot(), sb.snapshot());
    // The status says where each host is.
    let status = a.status();
    assert!(status.connected);
    assert_eq!(status.last_applied, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_racing_for_the_same_usernames_take_each_once() {
    let db = database("race");
    let hosts = [
        host(&db, "a").await,
        host(&db, "b").await,
        host(&db, "c").await,
    ];
    let names: Vec<String> = (0..5).map(|i| format!("name{i}")).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for (h, backend) in hosts.iter().enumerate() {
        for w in 0..10 {
            let store = backend.store();
            let names = names.clone();
            tasks.spawn(async move {
                let mut won = Vec::new();
                for i in 0..names.len() {
                    let name = names[(i + w + h) % names.len()].clone();
                    let owner = format!("{h}-{w}");
                    let n = name.clone();
                    let r = store
                        .commit_with(move |d: &AuthData| {
                            if d.ha_user(&n).is_some() {
                                return Err("already_exists");
                            }
                            Ok(vec![Change::PutHaUser {
                                username: n,
                                password: Secret::new(owner),
                            }])
                        })
                        .await;
                    match r {
                        Ok(()) => won.push(name),
                        Err(CommitError::Refused("already_exists")) => {}
                        Err(e) => panic!("{e:?}"),
                    }
                }
                won
            });
        }
    }
    let mut winners: HashMap<String, usize> = HashMap::new();
    while let Some(r) = tasks.join_next().await {
        for name in r.unwrap() {
            *winners.entry(name).or_default() += 1;
        }
    }
    assert_eq!(winners.len(), names.len(), "{winners:?}");
    assert!(
        winners.values().all(|&n| n == 1),
        "a name taken twice: {winners:?}"
    );
    // Every host ends with the same state: each name once, with the winner's password.
    let expected = hosts[0].store().last_applied();
    for h in &hosts {
        let s = h.store();
        until(WAIT, "caught up", || s.last_applied() >= expected).await;
    }
    let first = hosts[0].store().snapshot();
    assert_eq!(first.ha_users().len(), names.len());
    for h in &hosts[1..] {
        assert_eq!(h.store().snapshot(), first);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_host_starts_from_the_newest_checkpoint_and_the_rows_after_it() {
    let db = database("checkpoint");
    let mut c = config(&db, "a");
    c.checkpoint_every = 4;
    let a = PgBackend::open(c).await.unwrap();
    let store = a.store();
    for i in 0..10 {
        store
            .commit(vec![Change::PutUser(user(&format!("u{i}")))])
            .await
            .unwrap();
    }
    until(WAIT, "a checkpoint", || a.status().checkpoints_written >= 1).await;
    let b = host(&db, "b").await;
    assert_eq!(b.store().last_applied(), 10);
    assert_eq!(b.store().snapshot(), store.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_or_rejected_batch_changes_nothing_anywhere() {
    let db = database("refused");
    let a = host(&db, "a").await;
    let store = a.store();
    let r = store
        .commit(vec![Change::PutRefreshToken(token("t", "nobody"))])
        .await;
    assert!(
        matches!(r, Err(latch_store::StoreError::Rejected { .. })),
        "{r:?}"
    );
    let r = store
        .commit_with(|_: &AuthData| Err::<Vec<Change>, _>("no"))
        .await;
    assert!(matches!(r, Err(CommitError::Refused("no"))));
    assert_eq!(store.last_applied(), 0, "nothing was appended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_moves_in_and_back_out_unchanged() {
    // A home with users, a login, a token and a TOTP secret, through a files store.
    let home = tempfile::tempdir().unwrap();
    let files = Store::open(home.path(), StoreOptions::default()).unwrap();
    files
        .commit(vec![
            Change::PutUser(user("u1")),
            Change::PutUser(user("u2")),
            Change::PutRefreshToken(token("t1", "u1")),
            Change::PutHaUser {
                username: "alice".into(),
                password: Secret::new("JDJiJDEyJGhhc2g="),
            },
            Change::PutTotpSecret {
                user_id: "u1".into(),
                secret: Secret::new("JBSWY3DPEHPK3PXP"),
            },
            Change::PutTotpState {
                user_id: "u1".into(),
                last_step: Some(42),
                recovery_codes: vec![Secret::new("code-hash")],
            },
        ])
        .await
        .unwrap();
    files.close().await.unwrap();
    let before = files.snapshot();
    drop(files);

    let db = database("moving");
    let c = config(&db, "importer");
    import(&c, &before).await.unwrap();
    // Importing twice is refused: the database is not empty any more.
    assert!(import(&c, &before).await.is_err());
    let a = PgBackend::open(c.clone()).await.unwrap();
    assert_eq!(a.store().snapshot(), before);
    a.store()
        .commit(vec![Change::RemoveRefreshToken("t1".into())])
        .await
        .unwrap();
    let after = a.store().snapshot();

    let out = tempfile::tempdir().unwrap();
    let seq = export(&c, out.path()).await.unwrap();
    assert_eq!(seq, 1);
    let exported = Store::open(out.path(), StoreOptions::default()).unwrap();
    assert_eq!(exported.snapshot(), after);
    // Home Assistant's files are there, in its format.
    let auth = std::fs::read_to_string(out.path().join(".storage/auth")).unwrap();
    assert!(auth.contains("\"key\": \"auth\""));
    assert!(
        out.path()
            .join(".storage/auth_provider.homeassistant")
            .exists()
    );
    assert!(out.path().join(".storage/auth_module.totp").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_lockout_reaches_every_other_host_and_stays_out_of_the_data() {
    let db = database("lockouts");
    let a = host(&db, "a").await;
    let b = host(&db, "b").await;
    let mut events = b.store().subscribe_applied();
    let until_time = chrono::DateTime::from_timestamp(4_000_000_000, 0).unwrap();
    a.store().share(vec![Change::Lockout {
        key: "username:anne".into(),
        until: until_time,
    }]);
    a.store().share(vec![Change::ClearLockout {
        key: "username:anne".into(),
    }]);
    // The two may share one row (group commit) or take one each: B applies both, in order.
    let mut effects = Vec::new();
    while effects.len() < 2 {
        effects.extend(events.recv().await.unwrap().effects.iter().cloned());
    }
    assert_eq!(
        effects,
        vec![
            Effect::LockoutStarted {
                key: "username:anne".into(),
                until: until_time,
            },
            Effect::LockoutCleared {
                key: "username:anne".into()
            },
        ]
    );
    // Nothing of it is state: both hosts hold what an empty store holds.
    assert_eq!(a.store().snapshot(), AuthData::new());
    assert_eq!(b.store().snapshot(), AuthData::new());
    // A files store keeps no lockouts: sharing one there does nothing.
    let home = tempfile::tempdir().unwrap();
    let files = Store::open(home.path(), StoreOptions::default()).unwrap();
    files.share(vec![Change::ClearLockout { key: "x".into() }]);
    assert_eq!(files.last_applied(), 0);
    files.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_refuses_a_database_without_latch_data() {
    let db = database("nothing");
    let out = tempfile::tempdir().unwrap();
    let err = export(&config(&db, "x"), out.path()).await.unwrap_err();
    assert!(matches!(err, latch_store_postgres::PgError::Empty), "{err}");
    // Nor does a migrated but empty one export anything.
    drop(host(&db, "a").await);
    let err = export(&config(&db, "x"), out.path()).await.unwrap_err();
    assert!(matches!(err, latch_store_postgres::PgError::Empty), "{err}");
}
