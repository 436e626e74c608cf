//! The store's loaders: the Home Assistant snapshot files and latch's journal.

use std::fs;
use std::path::Path;

use latch_models::{Credentials, Group, GroupId, Policy, RefreshToken, Secret, User, UserId};
use latch_store::{Change, HaUser, JOURNAL_FILE, Store, StoreFile, StoreOptions, TotpState};
use tempfile::TempDir;

use crate::must;

/// Snapshot loaders: `data[0] % 4` picks the file of `.storage` (`auth`,
/// `auth_provider.homeassistant`, `auth_module.totp`, `latch.auth_module.totp`, in
/// [`StoreFile::ALL`]'s order); the rest is its content.
///
/// A refused open must leave the file exactly as it was and create no other snapshot
/// file; a store that opens must take a change to each file, compact (re-encoding every
/// file in Home Assistant's format), close, and reopen to exactly the same state.
pub fn store_snapshot(data: &[u8]) {
    let Some((&control, content)) = data.split_first() else {
        return;
    };
    let file = StoreFile::ALL[usize::from(control) % StoreFile::ALL.len()];
    open_and_check(&[(file.name(), content)]);
}

/// Journal loader: the rest of the input is `latch.journal` (beside no snapshot files).
/// With `data[0]` bit 0 set, each frame's checksum is fixed up first, so the fuzzer
/// reaches the records' JSON; otherwise the bytes are taken as they are. The invariants
/// are [`store_snapshot`]'s.
pub fn store_journal(data: &[u8]) {
    let Some((&control, journal)) = data.split_first() else {
        return;
    };
    let mut journal = journal.to_vec();
    if control & 1 == 1 {
        fix_checksums(&mut journal);
    }
    open_and_check(&[(JOURNAL_FILE, &journal)]);
}

/// Sets the crc32 of every complete `[u32 LE length][u32 LE crc32][payload]` frame.
fn fix_checksums(journal: &mut [u8]) {
    let mut off = 0usize;
    while let Some(header) = journal.get(off..off + 8) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let start = off + 8;
        let Some(end) = start.checked_add(len).filter(|&e| e <= journal.len()) else {
            return;
        };
        let crc = crc32fast::hash(&journal[start..end]);
        journal[off + 4..start].copy_from_slice(&crc.to_le_bytes());
        off = end;
    }
}

/// A scratch config directory, in memory where possible.
fn scratch() -> TempDir {
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("latch-fuzz-");
        b
    };
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    };
    must(dir, "a scratch directory")
}

/// Everything a store serves, to compare two stores.
#[derive(Debug, PartialEq)]
struct State {
    users: Vec<User>,
    groups: Vec<Group>,
    credentials: Vec<Credentials>,
    tokens: Vec<RefreshToken>,
    ha_users: Vec<HaUser>,
    totp: Vec<(UserId, Option<Secret>, Option<TotpState>)>,
}

impl State {
    fn of(store: &Store) -> Self {
        let users = store.users();
        let tokens = users
            .iter()
            .flat_map(|u| store.refresh_tokens_of(u.id.as_str()))
            .collect();
        let totp = store
            .totp_users()
            .into_iter()
            .map(|id| {
                let secret = store.totp_secret(id.as_str());
                let state = store.totp_state(id.as_str());
                (id, secret, state)
            })
            .collect();
        Self {
            users,
            groups: store.groups(),
            credentials: store.credentials(),
            tokens,
            ha_users: store.ha_users(),
            totp,
        }
    }
}

/// One change to each of the four files, so compaction re-encodes all of them.
fn touch_every_file() -> Vec<Change> {
    vec![
        Change::PutGroup(Group {
            id: GroupId::from("fuzz-group"),
            name: Some("Fuzz".into()),
            policy: Policy::read_only(),
            system_generated: false,
        }),
        Change::PutHaUser {
            username: "fuzz-user".into(),
            password: Secret::new("JDJiJDEyJGZ1enp6enp6"),
        },
        Change::PutTotpSecret {
            user_id: UserId::from("fuzz-user-id"),
            secret: Secret::new("JBSWY3DPEHPK3PXP"),
        },
        Change::PutTotpState {
            user_id: UserId::from("fuzz-user-id"),
            last_step: Some(7),
            recovery_codes: Vec::new(),
        },
    ]
}

/// Writes `files` into a fresh `.storage` and opens a store on it.
///
/// - A refusal must leave every file exactly as it was, and create no snapshot file.
/// - A store that opens must take a change to each file, compact (re-encoding every
///   file in Home Assistant's format), close, and reopen to exactly the same state.
fn open_and_check(files: &[(&str, &[u8])]) {
    let home = scratch();
    let storage = home.path().join(".storage");
    must(fs::create_dir(&storage), "create .storage");
    for (name, content) in files {
        must(
            fs::write(storage.join(name), content),
            "write an input file",
        );
    }
    let store = match Store::open(home.path(), StoreOptions::default()) {
        Ok(store) => store,
        Err(e) => {
            let _ = e.to_string();
            for (name, content) in files {
                let now = must(fs::read(storage.join(name)), "read an input file back");
                assert!(now == *content, "a refused open changed {name}: {e}");
            }
            for file in StoreFile::ALL {
                let written = files.iter().any(|(name, _)| *name == file.name());
                assert!(
                    written || !storage.join(file.name()).exists(),
                    "a refused open created {file}: {e}"
                );
            }
            return;
        }
    };
    // Changes the loaded data does not allow are refused; that is fine here.
    let _ = store.commit_blocking(touch_every_file());
    let before = State::of(&store);
    must(store.compact_blocking(), "compact a store that opened");
    must(store.close_blocking(), "close a store that opened");
    drop(store);
    let again = must(
        Store::open(home.path(), StoreOptions::default()),
        "reopen what the store wrote",
    );
    assert_eq!(
        State::of(&again),
        before,
        "the state changed through a save"
    );
    must(again.close_blocking(), "close the reopened store");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(target: &str, name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target)
            .join(name);
        must(fs::read(&path), "read a seed")
    }

    /// Opens `files` and returns the user count, or the error.
    fn users(files: &[(&str, &[u8])]) -> Result<usize, String> {
        let home = scratch();
        let storage = home.path().join(".storage");
        must(fs::create_dir(&storage), "create .storage");
        for (name, content) in files {
            must(fs::write(storage.join(name), content), "write");
        }
        let store = Store::open(home.path(), StoreOptions::default()).map_err(|e| e.to_string())?;
        Ok(store.users().len())
    }

    #[test]
    fn the_snapshot_seeds_load() {
        for (name, file) in [
            ("auth-full", StoreFile::Auth),
            ("auth-migrate-no-groups", StoreFile::Auth),
            ("provider-full", StoreFile::HaProvider),
            ("totp-full", StoreFile::Totp),
            ("latch-totp", StoreFile::LatchTotp),
        ] {
            let seed = corpus("store_snapshot", name);
            assert_eq!(seed[0] as usize, file as usize, "{name}: wrong file byte");
            assert!(users(&[(file.name(), &seed[1..])]).is_ok(), "{name}");
        }
        let full = corpus("store_snapshot", "auth-full");
        assert!(users(&[("auth", &full[1..])]).is_ok_and(|n| n > 1));
    }

    #[test]
    fn the_journal_seeds_replay() {
        let two = corpus("store_journal", "two-batches");
        assert_eq!(users(&[(JOURNAL_FILE, &two[1..])]), Ok(1));
        let torn = corpus("store_journal", "torn-tail");
        assert_eq!(users(&[(JOURNAL_FILE, &torn[1..])]), Ok(1));
        let mut fixed = corpus("store_journal", "fixed-up-checksums")[1..].to_vec();
        assert!(
            users(&[(JOURNAL_FILE, &fixed)]).is_err(),
            "a bad checksum loads"
        );
        fix_checksums(&mut fixed);
        assert_eq!(users(&[(JOURNAL_FILE, &fixed)]), Ok(0));
    }
}
