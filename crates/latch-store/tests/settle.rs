//! The snapshot files follow the data while the store runs: rewritten in the background
//! once changes settle (as Home Assistant saves about a second after a change), so a
//! backup of `.storage` copied at any moment holds current data, with the journal still
//! the path to durability.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::fs;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::open;
use latch_models::{GROUP_ID_ADMIN, GroupId, RefreshToken, Secret, TokenType, User, UserId};
use latch_store::{AuthData, Change, Store, StoreError, StoreFile, StoreOptions, WriteStep};

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

fn token(id: &str, user: &str) -> RefreshToken {
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
        expire_at: None,
        credential_id: None,
        version: Some("2026.11.0".into()),
    }
}

fn poll_until(deadline: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < end, "{what}: not reached in {deadline:?}");
        std::thread::yield_now();
    }
}

/// True once every snapshot file on disk holds exactly what the store holds in memory.
fn files_current(store: &Store) -> bool {
    StoreFile::ALL.into_iter().all(|file| {
        let expected = store.read(|d| d.encode(file)).unwrap();
        let path = store.storage_dir().join(file.name());
        match fs::read(&path) {
            Ok(bytes) => bytes == expected,
            // A file never written is current while it holds nothing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                expected == AuthData::new().encode(file).unwrap()
            }
            Err(e) => panic!("{}: {e}", path.display()),
        }
    })
}

/// What a backup holds: a copy of the snapshot files only (no journal, no lock).
fn backup(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    fs::create_dir(to.path().join(".storage")).unwrap();
    for file in StoreFile::ALL {
        let src = from.join(".storage").join(file.name());
        if src.exists() {
            fs::copy(&src, to.path().join(".storage").join(file.name())).unwrap();
        }
    }
    to
}

#[test]
fn the_files_are_current_within_seconds_of_an_acknowledged_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .commit_blocking(vec![
            Change::PutUser(user("a")),
            Change::PutRefreshToken(token("ta", "a")),
            Change::PutUser(user("b")),
            Change::PutHaUser {
                username: "b".into(),
                password: Secret::new("cGFzcw=="),
            },
        ])
        .unwrap();
    poll_until(Duration::from_secs(10), "files current", || {
        files_current(&store)
    });
    // A revoked token and a removed user must not come back from a backup.
    store
        .commit_blocking(vec![
            Change::RemoveRefreshToken("ta".into()),
            Change::RemoveUser("b".into()),
            Change::RemoveHaUser {
                username: "b".into(),
            },
        ])
        .unwrap();
    let acknowledged = Instant::now();
    poll_until(Duration::from_secs(10), "files current", || {
        files_current(&store)
    });
    let lag = acknowledged.elapsed();
    let copy = backup(dir.path());
    let restored = open(copy.path());
    assert!(restored.refresh_token("ta").is_none(), "revoked token back");
    assert!(restored.user("b").is_none(), "removed user back");
    assert!(restored.ha_user("b").is_none(), "removed login back");
    assert!(restored.user("a").is_some());
    assert_eq!(restored.snapshot(), store.snapshot());
    // Once the files hold everything, the idle journal is emptied too.
    poll_until(Duration::from_secs(10), "journal emptied", || {
        store.stats().journal_bytes == 0
    });
    assert!(store.stats().settled_snapshots >= 2, "{:?}", store.stats());
    assert_eq!(store.stats().compactions, 0, "no compaction was needed");
    eprintln!("files current {lag:?} after the acknowledgement");
}

#[test]
fn a_burst_of_changes_rewrites_the_files_once() {
    let dir = tempfile::tempdir().unwrap();
    let delay = Duration::from_secs(3);
    let store = Store::open(
        dir.path(),
        StoreOptions {
            snapshot_delay: Some(delay),
            snapshot_max_delay: Duration::from_secs(120),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    // 128 commits from 16 threads at once: far less than the delay apart.
    let started = Instant::now();
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..8 {
                    store
                        .commit_blocking(vec![Change::PutUser(user(&format!("w{w}-{i}")))])
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let burst = started.elapsed();
    assert!(
        burst < delay,
        "the burst took {burst:?}, longer than the {delay:?} it must fit in"
    );
    assert_eq!(
        store.stats().snapshot_writes,
        0,
        "nothing written mid-burst"
    );
    poll_until(Duration::from_secs(30), "files rewritten", || {
        store.stats().settled_snapshots > 0
    });
    assert!(files_current(&store));
    let stats = store.stats();
    assert_eq!(stats.settled_snapshots, 1, "{stats:?}");
    assert_eq!(stats.snapshot_writes, 1, "only auth changed: {stats:?}");
    assert_eq!(stats.commits, 128);
    assert_eq!(open(backup(dir.path()).path()).users().len(), 128);
}

#[test]
fn a_stream_of_changes_that_never_settles_is_saved_by_the_longest_delay() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreOptions {
            snapshot_delay: Some(Duration::from_secs(60)),
            snapshot_max_delay: Duration::from_millis(500),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    // Changes keep coming far more often than once a minute: only the longest delay
    // can get the files written while the stream goes on.
    let end = Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    while store.stats().settled_snapshots == 0 {
        assert!(Instant::now() < end, "no rewrite under a steady stream");
        i += 1;
        store
            .commit_blocking(vec![Change::PutUser(user(&format!("u{i}")))])
            .unwrap();
    }
    let saved = open(backup(dir.path()).path()).users().len();
    assert!(saved >= 1 && saved <= i, "{saved} of {i}");
}

/// The steps one background rewrite of `auth` takes, from a clean run.
fn job_steps() -> Vec<WriteStep> {
    let dir = tempfile::tempdir().unwrap();
    let armed = Arc::new(AtomicBool::new(false));
    let steps = Arc::new(Mutex::new(Vec::new()));
    let (hook_armed, recorder) = (Arc::clone(&armed), Arc::clone(&steps));
    let store = Store::open(
        dir.path(),
        StoreOptions {
            snapshot_delay: Some(Duration::from_millis(50)),
            fault_hook: Some(Arc::new(move |step| {
                if hook_armed.load(Ordering::SeqCst) {
                    recorder.lock().unwrap().push(step);
                }
                Ok(())
            })),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    armed.store(true, Ordering::SeqCst);
    store
        .commit_blocking(vec![Change::PutUser(user("a"))])
        .unwrap();
    poll_until(Duration::from_secs(10), "journal emptied", || {
        store.stats().settled_snapshots == 1 && store.stats().journal_bytes == 0
    });
    drop(store);
    steps.lock().unwrap().clone()
}

#[test]
fn a_failure_at_every_step_of_a_background_rewrite_loses_nothing() {
    let steps = job_steps();
    // The commit's own append, then the job: checkpoint, temp file, rename, directory,
    // and the emptying of the journal.
    for expected in [
        WriteStep::JournalWrite,
        WriteStep::SnapshotTempWrite(StoreFile::Auth),
        WriteStep::SnapshotTempSync(StoreFile::Auth),
        WriteStep::SnapshotRename(StoreFile::Auth),
        WriteStep::DirSync,
        WriteStep::JournalTruncate,
        WriteStep::JournalTruncateSync,
    ] {
        assert!(steps.contains(&expected), "{expected:?} never happened");
    }
    // Skip the commit's own append and sync: the job starts after them.
    for (fail_at, &failed) in steps.iter().enumerate().skip(2) {
        let dir = tempfile::tempdir().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicBool::new(false));
        let (hook_calls, hook_armed) = (Arc::clone(&calls), Arc::clone(&armed));
        let store = Store::open(
            dir.path(),
            StoreOptions {
                snapshot_delay: Some(Duration::from_millis(50)),
                // A failed rewrite is retried after this.
                snapshot_max_delay: Duration::from_millis(200),
                fault_hook: Some(Arc::new(move |step| {
                    if !hook_armed.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    if hook_calls.fetch_add(1, Ordering::SeqCst) == fail_at {
                        Err(io::Error::other(format!("injected failure at {step:?}")))
                    } else {
                        Ok(())
                    }
                })),
                ..StoreOptions::default()
            },
        )
        .unwrap();
        armed.store(true, Ordering::SeqCst);
        store
            .commit_blocking(vec![
                Change::PutUser(user("a")),
                Change::PutRefreshToken(token("ta", "a")),
            ])
            .unwrap();
        poll_until(Duration::from_secs(10), "the failing step", || {
            calls.load(Ordering::SeqCst) > fail_at
        });
        let journal_failed = matches!(
            failed,
            WriteStep::JournalWrite
                | WriteStep::JournalSync
                | WriteStep::JournalTruncate
                | WriteStep::JournalTruncateSync
        );
        if journal_failed {
            // The journal's end is unknown: the store refuses writes until reopened.
            // (The probe rewrites user a as it is, so it changes nothing if it passes.)
            poll_until(Duration::from_secs(10), "poisoned", || {
                matches!(
                    store.commit_blocking(vec![Change::PutUser(user("a"))]),
                    Err(StoreError::Poisoned { .. })
                )
            });
        } else {
            // A file write failed: the journal has everything, and the rewrite is
            // retried.
            poll_until(Duration::from_secs(10), "rewrite retried", || {
                store.stats().settled_snapshots >= 1
            });
            assert!(files_current(&store), "failure at {failed:?}");
        }
        let expected = store.snapshot();
        // A crash: the store goes without a clean close.
        drop(store);
        assert!(
            fs::read_dir(dir.path().join(".storage"))
                .unwrap()
                .all(|e| !e
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".latch-tmp")),
            "failure at {failed:?}: temp files left behind"
        );
        let reopened = open(dir.path());
        let mut acked = AuthData::new();
        acked.apply(Change::PutUser(user("a")));
        acked.apply(Change::PutRefreshToken(token("ta", "a")));
        assert_eq!(reopened.snapshot(), acked, "failure at {failed:?}");
        if !journal_failed {
            assert_eq!(expected, acked);
        }
    }
}

#[test]
fn a_clean_close_while_a_rewrite_runs_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreOptions {
            snapshot_delay: Some(Duration::ZERO),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    for i in 0..50 {
        store
            .commit_blocking(vec![Change::PutUser(user(&format!("u{i}")))])
            .unwrap();
    }
    store.close_blocking().unwrap();
    assert!(files_current(&store));
    assert_eq!(
        fs::metadata(dir.path().join(".storage/latch.journal"))
            .unwrap()
            .len(),
        0
    );
    drop(store);
    assert_eq!(open(dir.path()).users().len(), 50);
}

/// A gate a fault hook can hold a thread at until the test opens it.
#[derive(Default)]
struct Gate {
    state: Mutex<(bool, bool)>, // (someone is held, open)
    changed: std::sync::Condvar,
}

impl Gate {
    fn hold(&self) {
        let mut s = self.state.lock().unwrap();
        s.0 = true;
        self.changed.notify_all();
        while !s.1 {
            s = self.changed.wait(s).unwrap();
        }
    }
    fn wait_held(&self) {
        let mut s = self.state.lock().unwrap();
        while !s.0 {
            let (next, timeout) = self
                .changed
                .wait_timeout(s, Duration::from_secs(30))
                .unwrap();
            assert!(!timeout.timed_out(), "the hooked thread never arrived");
            s = next;
        }
    }
    fn open(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }
}

/// The writer takes every queued message off its channel at once; a close that arrives
/// just before the rewrite's "done" is handled first and must find that "done" in its
/// own queue, not wait on the channel for it forever (seen as a hung daemon shutdown).
#[test]
fn a_close_queued_just_before_a_rewrite_ends_does_not_wait_forever() {
    let dir = tempfile::tempdir().unwrap();
    let job_gate = Arc::new(Gate::default());
    let writer_gate = Arc::new(Gate::default());
    let hold_writer = Arc::new(AtomicBool::new(false));
    let job_synced = Arc::new(AtomicBool::new(false));
    let (jg, wg, hw, js) = (
        Arc::clone(&job_gate),
        Arc::clone(&writer_gate),
        Arc::clone(&hold_writer),
        Arc::clone(&job_synced),
    );
    let store = Store::open(
        dir.path(),
        StoreOptions {
            snapshot_delay: Some(Duration::ZERO),
            fault_hook: Some(Arc::new(move |step| {
                match step {
                    WriteStep::SnapshotTempWrite(_) => jg.hold(),
                    WriteStep::DirSync => js.store(true, Ordering::SeqCst),
                    WriteStep::JournalWrite if hw.swap(false, Ordering::SeqCst) => wg.hold(),
                    _ => {}
                }
                Ok(())
            })),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    // A change starts a rewrite at once; hold it before its files are written.
    store
        .commit_blocking(vec![Change::PutUser(user("a"))])
        .unwrap();
    job_gate.wait_held();
    // Hold the writer in its next group commit.
    hold_writer.store(true, Ordering::SeqCst);
    let committer = {
        let store = store.clone();
        std::thread::spawn(move || store.commit_blocking(vec![Change::PutUser(user("b"))]))
    };
    writer_gate.wait_held();
    // While the writer is held: the close, then the rewrite's end, queue behind it.
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    let closer = {
        let store = store.clone();
        std::thread::spawn(move || {
            let _ = closed_tx.send(store.close_blocking());
        })
    };
    std::thread::sleep(Duration::from_millis(100)); // the close is on the channel
    job_gate.open();
    poll_until(Duration::from_secs(30), "the rewrite synced", || {
        job_synced.load(Ordering::SeqCst)
    });
    std::thread::sleep(Duration::from_millis(100)); // its "done" is on the channel
    writer_gate.open();

    committer.join().unwrap().unwrap();
    closed_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the close never returned")
        .unwrap();
    closer.join().unwrap();
    drop(store);
    assert_eq!(open(dir.path()).users().len(), 2);
}
