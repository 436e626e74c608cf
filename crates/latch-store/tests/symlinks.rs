//! latch never reads or writes its store through a planted symlink.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use latch_store::{Store, StoreError, StoreOptions};

fn outside(dir: &Path, name: &str) -> (std::path::PathBuf, Vec<u8>) {
    let path = dir.join(format!("outside-{name}"));
    let contents = format!("not latch's {name}\n").into_bytes();
    fs::write(&path, &contents).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    (path, contents)
}

fn refused(result: Result<Store, StoreError>) -> String {
    match result {
        Ok(_) => panic!("the store opened through a symlink"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_symlink_at_any_store_file_is_refused_and_its_target_untouched() {
    for name in [
        "auth",
        "auth_provider.homeassistant",
        "auth_module.totp",
        "latch.auth_module.totp",
        "latch.journal",
        "latch.lock",
    ] {
        let root = tempfile::tempdir().unwrap();
        let home = root.path().join("home");
        let storage = home.join(".storage");
        fs::create_dir_all(&storage).unwrap();
        fs::set_permissions(&storage, fs::Permissions::from_mode(0o700)).unwrap();
        let (target, contents) = outside(root.path(), name);
        symlink(&target, storage.join(name)).unwrap();

        let message = refused(Store::open(&home, StoreOptions::default()));
        assert!(message.contains("symlink"), "{name}: {message}");
        assert_eq!(fs::read(&target).unwrap(), contents, "{name}");
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{name}");
        assert!(
            fs::symlink_metadata(storage.join(name))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
}

#[test]
fn a_symlinked_storage_directory_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let home = root.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let elsewhere = root.path().join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    symlink(&elsewhere, home.join(".storage")).unwrap();

    let message = refused(Store::open(&home, StoreOptions::default()));
    assert!(message.contains("symlink"), "{message}");
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing written there"
    );
}

#[test]
fn a_loose_journal_is_narrowed_to_0600() {
    let home = tempfile::tempdir().unwrap();
    drop(Store::open(home.path(), StoreOptions::default()).unwrap());
    let journal = home.path().join(".storage/latch.journal");
    fs::set_permissions(&journal, fs::Permissions::from_mode(0o644)).unwrap();
    let store = Store::open(home.path(), StoreOptions::default()).unwrap();
    let mode = fs::metadata(&journal).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    store.close_blocking().unwrap();
}
