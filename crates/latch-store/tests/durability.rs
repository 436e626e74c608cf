//! Durability: crash consistency at every write step, torn tails, corruption, group
//! commit, usage coalescing, permissions and the directory lock.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use common::{copy_fixture, open, read};
use latch_models::{
    Credentials, GROUP_ID_ADMIN, GroupId, RefreshToken, Secret, TokenType, User, UserId,
};
use latch_store::{
    AuthData, Change, ChangeError, Store, StoreError, StoreFile, StoreOptions, WriteStep,
};
use serde_json::{Map, json};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-05-01T10:00:00.123456Z")
        .unwrap()
        .to_utc()
}

fn user(id: &str) -> User {
    let mut u = User::new(Some(format!("user {id}")));
    u.id = UserId::from(id);
    u.is_active = true;
    u.group_ids.push(GroupId::from(GROUP_ID_ADMIN));
    u
}

fn credential(id: &str, user: &str) -> Credentials {
    let mut data = Map::new();
    data.insert("username".into(), json!(id));
    let mut c = Credentials::new("homeassistant", None, data);
    c.id = id.into();
    c.user_id = Some(user.into());
    c
}

fn token(id: &str, user: &str, credential: Option<&str>) -> RefreshToken {
    RefreshToken {
        id: id.into(),
        user_id: user.into(),
        client_id: Some("http://localhost:8123/".into()),
        client_name: None,
        client_icon: None,
        token_type: TokenType::Normal,
        created_at: t0(),
        access_token_expiration: 1800.0,
        token: Secret::new(format!("token-{id}-{}", "a".repeat(100))),
        jwt_key: Secret::new(format!("jwt-{id}")),
        last_used_at: None,
        last_used_ip: None,
        expire_at: Some(1_730_000_000.5),
        credential_id: credential.map(Into::into),
        version: Some("2026.11.0".into()),
    }
}

fn options_with_hook(
    hook: impl Fn(WriteStep) -> io::Result<()> + Send + Sync + 'static,
) -> StoreOptions {
    StoreOptions {
        fault_hook: Some(Arc::new(hook)),
        ..StoreOptions::default()
    }
}

fn storage_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir.join(".storage"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ----- crash consistency -----

/// What the scenario does, in order.
enum Action {
    Commit(Vec<Change>),
    Compact,
    Close,
}

fn scenario() -> Vec<Action> {
    use Action::{Close, Commit, Compact};
    vec![
        Commit(vec![
            Change::PutUser(user("a")),
            Change::PutCredential(credential("ca", "a")),
            Change::PutRefreshToken(token("ta", "a", Some("ca"))),
        ]),
        Compact,
        Commit(vec![Change::PutHaUser {
            username: "alice".into(),
            password: Secret::new("cGFzcw=="),
        }]),
        Commit(vec![Change::PutTotpSecret {
            user_id: "a".into(),
            secret: Secret::new("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"),
        }]),
        Commit(vec![
            Change::PutUser(user("b")),
            Change::PutRefreshToken(token("tb", "b", None)),
        ]),
        Compact,
        Commit(vec![
            Change::RemoveRefreshToken("ta".into()),
            Change::SetTokenExpiry {
                id: "tb".into(),
                expire_at: None,
            },
        ]),
        Commit(vec![
            Change::RenameHaUser {
                old: "alice".into(),
                new: "alicia".into(),
            },
            Change::PutTotpState {
                user_id: "a".into(),
                last_step: Some(42),
                recovery_codes: vec![Secret::new("hash")],
            },
        ]),
        Commit(vec![Change::RemoveUser("a".into())]),
        Close,
    ]
}

/// Runs the scenario; returns each commit with whether it was acknowledged and whether
/// it may have reached the disk without acknowledgement (a failed journal write).
fn run_scenario(dir: &Path, options: StoreOptions) -> Vec<(Vec<Change>, Outcome)> {
    let store = Store::open(dir, options).unwrap();
    let mut out = Vec::new();
    for action in scenario() {
        match action {
            Action::Commit(changes) => {
                let outcome = match store.commit_blocking(changes.clone()) {
                    Ok(()) => Outcome::Acked,
                    Err(StoreError::Io { .. }) => Outcome::Maybe,
                    Err(StoreError::Poisoned { .. }) => Outcome::Refused,
                    Err(e) => panic!("unexpected error {e}"),
                };
                out.push((changes, outcome));
            }
            Action::Compact => {
                let _ = store.compact_blocking();
            }
            Action::Close => {
                let _ = store.close_blocking();
            }
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Outcome {
    Acked,
    /// The journal write failed: applied in memory, perhaps on disk, not acknowledged.
    Maybe,
    /// Refused before being applied.
    Refused,
}

#[test]
fn a_failure_at_every_write_step_leaves_a_loadable_store_with_every_acknowledged_commit() {
    // A clean run, recording the steps.
    let steps = Arc::new(Mutex::new(Vec::new()));
    let clean = tempfile::tempdir().unwrap();
    let recorder = Arc::clone(&steps);
    let results = run_scenario(
        clean.path(),
        options_with_hook(move |s| {
            recorder.lock().unwrap().push(s);
            Ok(())
        }),
    );
    assert!(results.iter().all(|(_, o)| *o == Outcome::Acked));
    let steps = steps.lock().unwrap().clone();
    for expected in [
        WriteStep::JournalWrite,
        WriteStep::JournalSync,
        WriteStep::SnapshotTempWrite(StoreFile::Auth),
        WriteStep::SnapshotTempSync(StoreFile::HaProvider),
        WriteStep::SnapshotRename(StoreFile::Totp),
        WriteStep::SnapshotRename(StoreFile::LatchTotp),
        WriteStep::DirSync,
        WriteStep::JournalTruncate,
        WriteStep::JournalTruncateSync,
    ] {
        assert!(steps.contains(&expected), "{expected:?} never happened");
    }

    for (fail_at, failing_step) in steps.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&count);
        let results = run_scenario(
            dir.path(),
            options_with_hook(move |step| {
                if counter.fetch_add(1, Ordering::SeqCst) == fail_at {
                    Err(io::Error::other(format!("injected failure at {step:?}")))
                } else {
                    Ok(())
                }
            }),
        );
        // The process "crashes" here: everything is dropped, then reopened from disk.
        let reopened = Store::open(dir.path(), StoreOptions::default())
            .unwrap_or_else(|e| panic!("failure at step {fail_at} ({failing_step:?}): {e}"));
        let state = reopened.snapshot();

        let mut acked = AuthData::new();
        let mut with_maybe = AuthData::new();
        let mut maybe_seen = false;
        for (changes, outcome) in &results {
            match outcome {
                Outcome::Acked => {
                    for c in changes {
                        acked.apply(c.clone());
                        with_maybe.apply(c.clone());
                    }
                }
                Outcome::Maybe => {
                    maybe_seen = true;
                    for c in changes {
                        with_maybe.apply(c.clone());
                    }
                }
                Outcome::Refused => {}
            }
        }
        assert!(
            state == acked || (maybe_seen && state == with_maybe),
            "failure at step {fail_at} ({failing_step:?}): the reopened state is neither the \
             acknowledged commits nor those plus the unacknowledged one"
        );
        assert!(
            storage_files(dir.path())
                .iter()
                .all(|n| !n.ends_with(".latch-tmp")),
            "temp files left behind"
        );
        // And the reopened store works.
        reopened
            .commit_blocking(vec![Change::PutUser(user("after"))])
            .unwrap();
    }
}

#[test]
fn a_journal_write_failure_poisons_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let fail = Arc::new(AtomicUsize::new(0));
    let flag = Arc::clone(&fail);
    let store = Store::open(
        dir.path(),
        options_with_hook(move |step| {
            if step == WriteStep::JournalSync && flag.load(Ordering::SeqCst) == 1 {
                Err(io::Error::other("disk gone"))
            } else {
                Ok(())
            }
        }),
    )
    .unwrap();
    store
        .commit_blocking(vec![Change::PutUser(user("a"))])
        .unwrap();
    fail.store(1, Ordering::SeqCst);
    let e = store
        .commit_blocking(vec![Change::PutUser(user("b"))])
        .unwrap_err();
    assert!(matches!(e, StoreError::Io { .. }), "{e}");
    assert!(e.to_string().contains("disk gone"));
    fail.store(0, Ordering::SeqCst);
    let e = store
        .commit_blocking(vec![Change::PutUser(user("c"))])
        .unwrap_err();
    assert!(matches!(e, StoreError::Poisoned { .. }), "{e}");
    assert!(store.user("c").is_none(), "a refused batch is not applied");
    assert!(store.user("a").is_some(), "reads keep working");
    drop(store);
    let store = open(dir.path());
    assert!(store.user("a").is_some());
    store
        .commit_blocking(vec![Change::PutUser(user("d"))])
        .unwrap();
}

// ----- the journal on open -----

/// Options that leave every change in the journal until a compaction: no background
/// rewrite of the snapshot files (tests/settle.rs covers those).
fn journal_only() -> StoreOptions {
    StoreOptions {
        snapshot_delay: None,
        ..StoreOptions::default()
    }
}

/// Two commits, each its own frame, left in the journal (no close).
fn two_frames(dir: &Path) -> (Vec<u8>, usize) {
    let store = Store::open(dir, journal_only()).unwrap();
    store
        .commit_blocking(vec![Change::PutUser(user("a"))])
        .unwrap();
    let first_len = store.stats().journal_bytes as usize;
    store
        .commit_blocking(vec![
            Change::PutUser(user("b")),
            Change::PutRefreshToken(token("tb", "b", None)),
        ])
        .unwrap();
    drop(store);
    (read_journal(dir), first_len)
}

fn read_journal(dir: &Path) -> Vec<u8> {
    fs::read(dir.join(".storage/latch.journal")).unwrap()
}

fn write_journal(dir: &Path, bytes: &[u8]) {
    fs::write(dir.join(".storage/latch.journal"), bytes).unwrap();
}

#[test]
fn drop_without_close_keeps_everything_in_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = two_frames(dir.path());
    assert!(!journal.is_empty());
    assert!(
        !dir.path().join(".storage/auth").exists(),
        "no compaction on drop"
    );
    let store = open(dir.path());
    assert!(store.user("a").is_some() && store.user("b").is_some());
    assert!(store.refresh_token("tb").is_some());
}

#[test]
fn a_torn_tail_is_dropped_at_every_byte_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, first_len) = two_frames(dir.path());
    for cut in first_len..journal.len() {
        write_journal(dir.path(), &journal[..cut]);
        let store = open(dir.path());
        assert!(store.user("a").is_some(), "cut at {cut}");
        assert!(store.user("b").is_none(), "cut at {cut}: half a batch");
        assert!(store.refresh_token("tb").is_none(), "cut at {cut}");
        drop(store);
        assert_eq!(
            read_journal(dir.path()).len(),
            first_len,
            "the torn tail is truncated away"
        );
    }
    // A store reopened after a torn tail appends cleanly.
    write_journal(dir.path(), &journal[..journal.len() - 1]);
    let store = open(dir.path());
    store
        .commit_blocking(vec![Change::PutUser(user("c"))])
        .unwrap();
    drop(store);
    let store = open(dir.path());
    assert!(store.user("a").is_some() && store.user("c").is_some());
}

#[test]
fn a_corrupt_record_in_the_middle_fails_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = two_frames(dir.path());
    journal[12] ^= 0x01; // inside the first frame's payload
    write_journal(dir.path(), &journal);
    let e = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
    assert!(
        matches!(e, StoreError::CorruptJournal { offset: 0, .. }),
        "{e}"
    );
    assert!(e.to_string().contains(".storage/latch.journal"), "{e}");
    assert_eq!(read_journal(dir.path()), journal, "left untouched");
}

#[test]
fn a_corrupt_or_truncated_snapshot_fails_with_its_path_and_is_left_untouched() {
    for file in [StoreFile::Auth, StoreFile::HaProvider, StoreFile::Totp] {
        let dir = copy_fixture("full");
        let path = dir.path().join(".storage").join(file.name());
        let full = fs::read(&path).unwrap();
        for damaged in [
            full[..full.len() / 2].to_vec(),
            b"not json at all".to_vec(),
            Vec::new(),
        ] {
            fs::write(&path, &damaged).unwrap();
            let before: Vec<_> = StoreFile::ALL
                .iter()
                .map(|f| fs::read(dir.path().join(".storage").join(f.name())).ok())
                .collect();
            let e = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
            assert!(matches!(e, StoreError::Parse { .. }), "{file}: {e}");
            assert!(
                e.to_string().contains(&format!(".storage/{}", file.name())),
                "{e}"
            );
            let after: Vec<_> = StoreFile::ALL
                .iter()
                .map(|f| fs::read(dir.path().join(".storage").join(f.name())).ok())
                .collect();
            assert_eq!(before, after, "nothing renamed, replaced or rewritten");
            assert!(
                storage_files(dir.path())
                    .iter()
                    .all(|n| !n.contains("corrupt")),
                "not renamed away like Home Assistant does"
            );
        }
    }
}

// ----- group commit -----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_share_fsyncs_and_all_survive() {
    let dir = tempfile::tempdir().unwrap();
    // A slow disk, so commits queue up behind each sync as they would in production.
    let store = Store::open(
        dir.path(),
        options_with_hook(|step| {
            if step == WriteStep::JournalSync {
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(())
        }),
    )
    .unwrap();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let id = format!("u{t}-{i}");
                store
                    .commit(vec![Change::PutUser(user(&id))])
                    .await
                    .unwrap();
                assert!(store.user(&id).is_some(), "visible once committed");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.commits, 32 * 50);
    assert!(
        stats.fsyncs < stats.commits / 2,
        "group commit: {} fsyncs for {} commits",
        stats.fsyncs,
        stats.commits
    );
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.users().len(), 32 * 50);
    for t in 0..32 {
        for i in 0..50 {
            assert!(store.user(&format!("u{t}-{i}")).is_some());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commits_racing_compactions_reopen_to_the_exact_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreOptions {
            compact_after_bytes: 2048,
            ..options_with_hook(|step| {
                if step == WriteStep::JournalSync {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(())
            })
        },
    )
    .unwrap();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..30 {
                // Removing and re-adding users moves them to the end: order matters.
                let a = format!("u{t}-{}", i % 3);
                let b = format!("u{t}-{}", (i + 1) % 3);
                store
                    .commit(vec![Change::RemoveUser(a.as_str().into())])
                    .await
                    .unwrap();
                store
                    .commit(vec![
                        Change::RemoveUser(b.as_str().into()),
                        Change::PutUser(user(&b)),
                        Change::PutRefreshToken(token(&format!("t{t}-{i}"), &b, None)),
                    ])
                    .await
                    .unwrap();
                store.commit(vec![Change::PutUser(user(&a))]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(store.stats().compactions >= 3, "{:?}", store.stats());
    let expected = store.snapshot();
    drop(store);
    let reopened = open(dir.path()).snapshot();
    assert!(reopened == expected, "replay after compactions is exact");
    let order = |d: &AuthData| d.users().map(|u| u.id.to_string()).collect::<Vec<_>>();
    assert_eq!(order(&reopened), order(&expected));
}

/// Holds the writer thread inside `sync_data` until released.
#[derive(Default)]
struct Gate {
    state: Mutex<(bool, usize)>,
    cv: std::sync::Condvar,
}

impl Gate {
    fn hold(&self) {
        self.state.lock().unwrap().0 = true;
    }

    fn release(&self) {
        self.state.lock().unwrap().0 = false;
        self.cv.notify_all();
    }

    fn wait_until_held(&self) {
        let mut g = self.state.lock().unwrap();
        while g.1 == 0 {
            g = self.cv.wait(g).unwrap();
        }
    }

    fn pass(&self) {
        let mut g = self.state.lock().unwrap();
        if g.0 {
            g.1 += 1;
            self.cv.notify_all();
            while g.0 {
                g = self.cv.wait(g).unwrap();
            }
            g.1 -= 1;
        }
    }
}

#[test]
fn batches_applied_while_a_compaction_captures_are_not_replayed_twice() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(Gate::default());
    let hook_gate = Arc::clone(&gate);
    let store = Store::open(
        dir.path(),
        StoreOptions {
            // A (padded) crosses the bound, B and C afterwards do not.
            compact_after_bytes: 4096,
            ..options_with_hook(move |step| {
                if step == WriteStep::JournalSync {
                    hook_gate.pass();
                }
                Ok(())
            })
        },
    )
    .unwrap();
    for id in ["x", "y", "z"] {
        store
            .commit_blocking(vec![Change::PutUser(user(id))])
            .unwrap();
    }
    let order = |s: &Store| {
        s.users()
            .iter()
            .map(|u| u.id.to_string())
            .collect::<Vec<_>>()
    };
    let in_background = |changes: Vec<Change>| {
        let store = store.clone();
        std::thread::spawn(move || store.commit_blocking(changes).unwrap())
    };

    // The writer is held inside the sync of A; B and C are applied to memory meanwhile,
    // so the compaction that follows A captures them before they reach the journal.
    gate.hold();
    let a = in_background(vec![
        Change::RemoveUser("x".into()),
        Change::PutHaUser {
            username: "padding".into(),
            password: Secret::new("p".repeat(5000)),
        },
    ]);
    gate.wait_until_held();
    let b = in_background(vec![
        Change::RemoveUser("y".into()),
        Change::PutUser(user("y")),
    ]);
    poll_until(Duration::from_secs(10), || order(&store) == ["z", "y"]);
    let c = in_background(vec![Change::PutUser(user("x"))]);
    poll_until(Duration::from_secs(10), || order(&store) == ["z", "y", "x"]);
    gate.release();
    for t in [a, b, c] {
        t.join().unwrap();
    }
    assert_eq!(order(&store), ["z", "y", "x"]);
    // B and C are journaled, and answered, before the compaction captures them.
    poll_until(Duration::from_secs(10), || store.stats().compactions > 0);
    assert_eq!(store.stats().compactions, 1);
    drop(store);
    assert_eq!(
        order(&open(dir.path())),
        ["z", "y", "x"],
        "B and C replayed over a snapshot holding them would give z, x, y"
    );
}

/// A crash while compaction renames the snapshot files must not leave half of a batch
/// that was never journaled: here one batch sets a TOTP secret (`auth_module.totp`) and
/// its state (`latch.auth_module.totp`), the compaction captures it while it is still
/// queued, and the process dies (every later write fails) between the two renames.
#[test]
fn a_crash_between_snapshot_renames_never_splits_a_queued_batch() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(Gate::default());
    let hook_gate = Arc::clone(&gate);
    let dead = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hook_dead = Arc::clone(&dead);
    let store = Store::open(
        dir.path(),
        StoreOptions {
            // A (padded) crosses the bound.
            compact_after_bytes: 4096,
            ..options_with_hook(move |step| {
                if hook_dead.load(Ordering::SeqCst)
                    || step == WriteStep::SnapshotRename(StoreFile::LatchTotp)
                {
                    // The crash: from here on nothing reaches the disk.
                    hook_dead.store(true, Ordering::SeqCst);
                    return Err(io::Error::other("crashed"));
                }
                if step == WriteStep::JournalSync {
                    hook_gate.pass();
                }
                Ok(())
            })
        },
    )
    .unwrap();
    store
        .commit_blocking(vec![Change::PutUser(user("u"))])
        .unwrap();
    let in_background = |changes: Vec<Change>| {
        let store = store.clone();
        std::thread::spawn(move || store.commit_blocking(changes))
    };

    // The writer is held inside the sync of A; B is applied to memory meanwhile, so the
    // compaction that follows A captures it before it reaches the journal.
    gate.hold();
    let a = in_background(vec![Change::PutHaUser {
        username: "padding".into(),
        password: Secret::new("p".repeat(5000)),
    }]);
    gate.wait_until_held();
    let b = in_background(vec![
        Change::PutTotpSecret {
            user_id: "u".into(),
            secret: Secret::new("JBSWY3DPEHPK3PXP"),
        },
        Change::PutTotpState {
            user_id: "u".into(),
            last_step: Some(7),
            recovery_codes: vec![Secret::new("hash")],
        },
    ]);
    poll_until(Duration::from_secs(10), || store.totp_secret("u").is_some());
    gate.release();
    a.join().unwrap().unwrap();
    let b = b.join().unwrap();
    poll_until(Duration::from_secs(10), || dead.load(Ordering::SeqCst));
    drop(store);

    let reopened = open(dir.path());
    let secret = reopened.totp_secret("u").is_some();
    let state = reopened.totp_state("u").is_some();
    assert_eq!(
        secret, state,
        "batch B is split: secret {secret}, state {state} (B answered {b:?})"
    );
    if b.is_ok() {
        assert!(secret && state, "acknowledged batch B is lost");
    }
}

#[test]
fn the_journal_is_compacted_once_it_grows_past_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreOptions {
            compact_after_bytes: 4096,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    for i in 0..100 {
        store
            .commit_blocking(vec![Change::PutUser(user(&format!("u{i}")))])
            .unwrap();
    }
    let stats = store.stats();
    assert!(stats.compactions >= 3, "{stats:?}");
    assert!(stats.journal_bytes < 4096, "{stats:?}");
    let expected = store.snapshot();
    drop(store);
    assert!(dir.path().join(".storage/auth").exists());
    assert_eq!(open(dir.path()).snapshot(), expected);
}

// ----- validation -----

#[tokio::test]
async fn a_batch_that_breaks_integrity_applies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .commit(vec![
            Change::PutUser(user("a")),
            Change::PutCredential(credential("ca", "a")),
            Change::PutRefreshToken(token("ta", "a", Some("ca"))),
        ])
        .await
        .unwrap();
    let before = store.snapshot();
    let commits = store.stats().commits;

    let mut in_unknown_group = user("x");
    in_unknown_group.group_ids.push("nope".into());
    let mut unlinked = credential("cu", "a");
    unlinked.user_id = None;
    let mut nan = token("tn", "a", None);
    nan.expire_at = Some(f64::NAN);
    let cases: Vec<(Vec<Change>, usize, ChangeError)> = vec![
        (
            vec![
                Change::PutUser(user("b")),
                Change::PutRefreshToken(token("tx", "ghost", None)),
            ],
            1,
            ChangeError::UnknownUser("ghost".into()),
        ),
        (
            vec![Change::PutUser(in_unknown_group)],
            0,
            ChangeError::UnknownGroup("nope".into()),
        ),
        (
            vec![Change::PutCredential(unlinked)],
            0,
            ChangeError::UnlinkedCredential("cu".into()),
        ),
        (
            vec![
                Change::PutUser(user("b")),
                Change::PutCredential(credential("ca", "b")),
            ],
            1,
            ChangeError::CredentialOfOtherUser {
                credential: "ca".into(),
                user: "b".into(),
            },
        ),
        (
            vec![
                Change::RemoveUser("a".into()),
                Change::PutUser(user("a")),
                Change::PutRefreshToken(token("t2", "a", Some("ca"))),
            ],
            2,
            ChangeError::UnknownCredential("ca".into()),
        ),
        (
            vec![Change::RemoveGroup(GROUP_ID_ADMIN.into())],
            0,
            ChangeError::SystemGroup(GROUP_ID_ADMIN.into()),
        ),
        (
            vec![Change::PutRefreshToken(nan)],
            0,
            ChangeError::InvalidValue("expire_at must be a finite number".into()),
        ),
        (
            vec![Change::SetTokenExpiry {
                id: "nope".into(),
                expire_at: None,
            }],
            0,
            ChangeError::UnknownRefreshToken("nope".into()),
        ),
        (
            vec![Change::RenameHaUser {
                old: "x".into(),
                new: "y".into(),
            }],
            0,
            ChangeError::UnknownHaUser("x".into()),
        ),
        (
            vec![
                Change::PutHaUser {
                    username: "x".into(),
                    password: Secret::new("p"),
                },
                Change::PutHaUser {
                    username: "y".into(),
                    password: Secret::new("p"),
                },
                Change::RenameHaUser {
                    old: "x".into(),
                    new: "y".into(),
                },
            ],
            2,
            ChangeError::HaUserExists("y".into()),
        ),
        (
            vec![Change::PutTotpSecret {
                user_id: "ghost".into(),
                secret: Secret::new("s"),
            }],
            0,
            ChangeError::UnknownUser("ghost".into()),
        ),
    ];
    for (batch, index, reason) in cases {
        match store.commit(batch).await {
            Err(StoreError::Rejected {
                index: i,
                reason: r,
            }) => {
                assert_eq!((i, &r), (index, &reason));
            }
            other => panic!("expected a rejection ({reason}), got {other:?}"),
        }
        assert!(store.snapshot() == before, "nothing applied");
    }
    assert_eq!(store.stats().commits, commits, "nothing journaled");

    // A group in use cannot go; once unused it can.
    let custom = latch_models::Group::new_custom(
        Some("c".into()),
        latch_models::permissions::Policy::read_only(),
    );
    let mut member = user("m");
    member.group_ids = vec![custom.id.clone()];
    store
        .commit(vec![
            Change::PutGroup(custom.clone()),
            Change::PutUser(member),
        ])
        .await
        .unwrap();
    let e = store
        .commit(vec![Change::RemoveGroup(custom.id.clone())])
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Rejected {
                reason: ChangeError::GroupInUse { .. },
                ..
            }
        ),
        "{e}"
    );
    store
        .commit(vec![
            Change::RemoveUser("m".into()),
            Change::RemoveGroup(custom.id.clone()),
        ])
        .await
        .unwrap();
    assert!(store.group(custom.id.as_str()).is_none());
}

#[tokio::test]
async fn credential_removal_nulls_the_tokens_that_name_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .commit(vec![
            Change::PutUser(user("a")),
            Change::PutCredential(credential("ca", "a")),
            Change::PutRefreshToken(token("ta", "a", Some("ca"))),
        ])
        .await
        .unwrap();
    store
        .commit(vec![Change::RemoveCredential("ca".into())])
        .await
        .unwrap();
    assert_eq!(store.refresh_token("ta").unwrap().credential_id, None);
    let expected = store.snapshot();
    store.close().await.unwrap();
    drop(store);
    assert_eq!(open(dir.path()).snapshot(), expected);
}

#[tokio::test]
async fn secrets_never_show_in_debug_output() {
    let change = Change::PutRefreshToken(token("t", "u", None));
    let text = format!(
        "{change:?} {:?} {:?}",
        Change::PutHaUser {
            username: "x".into(),
            password: Secret::new("hunter2-hash"),
        },
        Change::PutTotpState {
            user_id: "u".into(),
            last_step: None,
            recovery_codes: vec![Secret::new("recovery-hash")],
        }
    );
    for secret in ["token-t-aaaa", "jwt-t", "hunter2-hash", "recovery-hash"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

// ----- usage metadata -----

fn store_with_token(dir: &Path, interval: Duration) -> Store {
    let store = Store::open(
        dir,
        StoreOptions {
            usage_flush_interval: interval,
            ..journal_only()
        },
    )
    .unwrap();
    store
        .commit_blocking(vec![
            Change::PutUser(user("a")),
            Change::PutRefreshToken(token("t1", "a", None)),
            Change::PutRefreshToken(token("t2", "a", None)),
        ])
        .unwrap();
    store
}

fn poll_until(deadline: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !done() {
        assert!(
            Instant::now() < end,
            "condition not reached in {deadline:?}"
        );
        std::thread::yield_now();
    }
}

#[test]
fn usage_is_coalesced_into_at_most_one_record_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let interval = Duration::from_millis(100);
    let store = store_with_token(dir.path(), interval);
    let started = Instant::now();
    let mut last = t0();
    for i in 0..2000 {
        last = t0() + TimeDelta::milliseconds(i);
        let id = if i % 2 == 0 { "t1" } else { "t2" };
        store
            .record_usage(
                id,
                last,
                Some(format!("10.0.0.{}", i % 250)),
                Some(2e9 + f64::from(i as u32)),
            )
            .unwrap();
    }
    assert_eq!(
        store.refresh_token("t2").unwrap().last_used_at,
        Some(last),
        "memory is updated at once"
    );
    poll_until(Duration::from_secs(10), || store.stats().usage_flushes >= 1);
    let flushes = store.stats().usage_flushes;
    let intervals = started.elapsed().as_millis() / interval.as_millis() + 1;
    assert!(
        u128::from(flushes) <= intervals,
        "{flushes} usage records in {intervals} intervals"
    );
    assert_eq!(store.stats().commits, 1, "usage is not a commit");
    let expected = store.snapshot();
    drop(store);
    let reopened = open(dir.path());
    assert_eq!(reopened.snapshot(), expected);
    let t2 = reopened.refresh_token("t2").unwrap();
    assert_eq!(t2.last_used_at, Some(last));
    assert_eq!(t2.last_used_ip.as_deref(), Some("10.0.0.249"));
    assert_eq!(t2.expire_at, Some(2e9 + 1999.0));
}

#[test]
fn usage_waits_for_its_interval_and_a_crash_loses_at_most_that() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_token(dir.path(), Duration::from_secs(3600));
    store
        .record_usage("t1", t0(), Some("192.168.1.5".into()), Some(2e9))
        .unwrap();
    // A later commit is journaled at once; the usage stays in memory.
    store
        .commit_blocking(vec![Change::PutUser(user("b"))])
        .unwrap();
    assert_eq!(store.stats().usage_flushes, 0);

    // A crash now: a copy of the directory as the disk holds it.
    let crashed = tempfile::tempdir().unwrap();
    fs::create_dir(crashed.path().join(".storage")).unwrap();
    for name in storage_files(dir.path()) {
        if name != "latch.lock" {
            fs::copy(
                dir.path().join(".storage").join(&name),
                crashed.path().join(".storage").join(&name),
            )
            .unwrap();
        }
    }
    let after_crash = open(crashed.path());
    assert!(
        after_crash.user("b").is_some(),
        "acknowledged commits survive"
    );
    assert_eq!(
        after_crash.refresh_token("t1").unwrap().last_used_at,
        None,
        "usage of the last interval may be lost"
    );

    // A clean close journals it.
    store.close_blocking().unwrap();
    assert_eq!(store.stats().usage_flushes, 1);
    drop(store);
    let t1 = open(dir.path()).refresh_token("t1").unwrap();
    assert_eq!(t1.last_used_at, Some(t0()));
    assert_eq!(t1.last_used_ip.as_deref(), Some("192.168.1.5"));
}

#[test]
fn usage_of_unknown_or_removed_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_token(dir.path(), Duration::from_secs(3600));
    assert!(matches!(
        store.record_usage("nope", t0(), None, None),
        Err(StoreError::Rejected {
            reason: ChangeError::UnknownRefreshToken(_),
            ..
        })
    ));
    assert!(
        store
            .record_usage("t1", t0(), None, Some(f64::INFINITY))
            .is_err()
    );
    store.record_usage("t1", t0(), None, None).unwrap();
    store
        .commit_blocking(vec![Change::RemoveRefreshToken("t1".into())])
        .unwrap();
    store.close_blocking().unwrap();
    drop(store);
    assert!(open(dir.path()).refresh_token("t1").is_none());
}

// ----- files, permissions, lock, lifecycle -----

#[test]
fn files_are_0600_and_the_directory_0700() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .commit_blocking(vec![
            Change::PutUser(user("a")),
            Change::PutHaUser {
                username: "a".into(),
                password: Secret::new("cA=="),
            },
            Change::PutTotpSecret {
                user_id: "a".into(),
                secret: Secret::new("S"),
            },
            Change::PutTotpState {
                user_id: "a".into(),
                last_step: None,
                recovery_codes: Vec::new(),
            },
        ])
        .unwrap();
    store.close_blocking().unwrap();
    let storage = dir.path().join(".storage");
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&storage), 0o700);
    let names = storage_files(dir.path());
    assert_eq!(
        names,
        [
            "auth",
            "auth_module.totp",
            "auth_provider.homeassistant",
            "latch.auth_module.totp",
            "latch.journal",
            "latch.lock"
        ]
    );
    for name in names {
        assert_eq!(mode(&storage.join(&name)), 0o600, "{name}");
    }
}

#[test]
fn a_second_store_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let e = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
    assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    assert!(e.to_string().contains(".storage/latch.lock"), "{e}");
    first.close_blocking().unwrap();
    let second = open(dir.path());
    drop(second);
    drop(first);
    let _third = open(dir.path());
}

#[tokio::test]
async fn a_closed_store_refuses_writes_but_answers_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .commit(vec![Change::PutUser(user("a"))])
        .await
        .unwrap();
    store.close().await.unwrap();
    store.close().await.unwrap();
    assert!(matches!(
        store.commit(vec![Change::PutUser(user("b"))]).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(store.compact().await, Err(StoreError::Closed)));
    assert!(matches!(
        store.record_usage("x", t0(), None, None),
        Err(StoreError::Closed)
    ));
    assert!(store.user("a").is_some());
    assert!(!read(dir.path(), StoreFile::Auth).is_empty());
}

#[test]
fn an_empty_batch_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.commit_blocking(Vec::new()).unwrap();
    assert_eq!(store.stats(), latch_store::StoreStats::default());
}
