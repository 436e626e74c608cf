//! The home directory checks and the session-token file.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;
use latch_ipc::home::{HomeError, current_uid, ensure_home, ensure_home_owned_by};
use latch_ipc::token::{SessionToken, TokenFile, read_token_file};

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_missing_home_is_created_0700() {
    let root = home();
    let dir = root.path().join("a/b/.latch");
    ensure_home(&dir).unwrap();
    let metadata = std::fs::metadata(&dir).unwrap();
    assert!(metadata.is_dir());
    assert_eq!(metadata.mode() & 0o777, 0o700);
    assert_eq!(metadata.uid(), current_uid());
}

#[test]
fn group_or_other_writable_homes_are_refused() {
    let root = home();
    let dir = root.path().join("home");
    std::fs::create_dir(&dir).unwrap();
    for mode in [0o777, 0o770, 0o702, 0o720] {
        chmod(&dir, mode);
        let err = ensure_home(&dir).unwrap_err();
        assert!(
            matches!(err, HomeError::TooPermissive { mode: m, .. } if m == mode),
            "{mode:o}: {err}"
        );
        let text = err.to_string();
        assert!(text.contains(dir.to_str().unwrap()), "{text}");
        assert!(text.contains("chmod 700"), "{text}");
    }
    for mode in [0o700, 0o750, 0o755] {
        chmod(&dir, mode);
        ensure_home(&dir).unwrap();
    }
}

#[test]
fn a_home_owned_by_another_user_is_refused() {
    let root = home();
    let someone_else = current_uid().wrapping_add(1);
    let err = ensure_home_owned_by(root.path(), someone_else).unwrap_err();
    match &err {
        HomeError::WrongOwner {
            owner, expected, ..
        } => {
            assert_eq!(*owner, current_uid());
            assert_eq!(*expected, someone_else);
        }
        other => panic!("expected WrongOwner, got {other}"),
    }
    assert!(err.to_string().contains(root.path().to_str().unwrap()));
}

#[test]
fn a_symlinked_or_non_directory_home_is_refused() {
    let root = home();
    let real = root.path().join("real");
    std::fs::create_dir(&real).unwrap();
    chmod(&real, 0o700);
    let link = root.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert!(matches!(
        ensure_home(&link).unwrap_err(),
        HomeError::Symlink { .. }
    ));
    let file = root.path().join("file");
    std::fs::write(&file, b"").unwrap();
    assert!(matches!(
        ensure_home(&file).unwrap_err(),
        HomeError::NotADirectory { .. }
    ));
}

#[test]
fn the_token_file_is_64_hex_chars_mode_0600_with_one_link() {
    let root = home();
    let path = root.path().join("session-token");
    let file = TokenFile::create(&path).unwrap();
    let metadata = std::fs::symlink_metadata(&path).unwrap();
    assert!(metadata.file_type().is_file());
    assert_eq!(metadata.mode() & 0o777, 0o600);
    assert_eq!(metadata.nlink(), 1);
    assert_eq!(metadata.uid(), current_uid());
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.len(), 64);
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(&SessionToken::from_hex(&text).unwrap(), file.token());
    assert_eq!(&read_token_file(&path).unwrap(), file.token());
    // Nothing else (no temp file) is left in the directory.
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
}

#[test]
fn a_symlink_at_the_token_path_is_replaced_not_followed() {
    let root = home();
    let victim = root.path().join("victim");
    std::fs::write(&victim, b"do not touch").unwrap();
    let path = root.path().join("session-token");
    std::os::unix::fs::symlink(&victim, &path).unwrap();

    let file = TokenFile::create(&path).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"do not touch");
    let metadata = std::fs::symlink_metadata(&path).unwrap();
    assert!(metadata.file_type().is_file(), "the symlink is still there");
    assert_eq!(metadata.mode() & 0o777, 0o600);
    assert_eq!(&read_token_file(&path).unwrap(), file.token());
}

#[test]
fn a_hard_link_at_the_token_path_is_replaced_not_written_through() {
    let root = home();
    let victim = root.path().join("victim");
    std::fs::write(&victim, b"do not touch").unwrap();
    let path = root.path().join("session-token");
    std::fs::hard_link(&victim, &path).unwrap();
    let _file = TokenFile::create(&path).unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"do not touch");
    assert_eq!(std::fs::metadata(&path).unwrap().nlink(), 1);
}

#[test]
fn every_start_gets_a_new_token_and_drop_removes_the_file() {
    let root = home();
    let path = root.path().join("session-token");
    let first = TokenFile::create(&path).unwrap();
    let first_token = first.token().clone();
    let second = TokenFile::create(&path).unwrap();
    assert_ne!(&first_token, second.token());
    assert_eq!(&read_token_file(&path).unwrap(), second.token());
    // The first daemon's file is gone; dropping its handle leaves the second's alone.
    drop(first);
    assert_eq!(&read_token_file(&path).unwrap(), second.token());
    drop(second);
    assert!(!path.exists());
}

#[test]
fn token_read_errors_name_the_file_and_the_variable() {
    let root = home();
    let path = root.path().join("session-token");
    let err = read_token_file(&path).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("no session token at {}", path.display())),
        "{text}"
    );
    assert!(text.contains("is latchd running with this home?"), "{text}");
    assert!(text.contains("LATCH_TOKEN_FILE"), "{text}");

    for junk in ["", "abc", &"g".repeat(64), &"a".repeat(65)] {
        std::fs::write(&path, junk).unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let err = read_token_file(&path).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("is not 64 hex characters"),
            "{junk:?}: {text}"
        );
        assert!(text.contains(path.to_str().unwrap()), "{text}");
    }
}
