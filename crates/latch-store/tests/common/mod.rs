//! Helpers shared by the integration tests.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use latch_store::{Store, StoreFile, StoreOptions};
use tempfile::TempDir;

/// `tests/fixtures/ha/<name>`.
pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ha")
        .join(name)
}

/// The bytes of a fixture file.
pub(crate) fn fixture_file(name: &str, file: StoreFile) -> Vec<u8> {
    fs::read(fixture(name).join(".storage").join(file.name())).unwrap()
}

/// A temp config dir holding a copy of a fixture's `.storage`.
pub(crate) fn copy_fixture(name: &str) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join(".storage");
    fs::create_dir(&storage).unwrap();
    for entry in fs::read_dir(fixture(name).join(".storage")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), storage.join(entry.file_name())).unwrap();
    }
    dir
}

/// A temp config dir whose `.storage/auth` holds `auth`.
pub(crate) fn dir_with_auth(auth: &serde_json::Value) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join(".storage")).unwrap();
    fs::write(
        dir.path().join(".storage/auth"),
        serde_json::to_vec_pretty(auth).unwrap(),
    )
    .unwrap();
    dir
}

pub(crate) fn open(dir: &Path) -> Store {
    Store::open(dir, StoreOptions::default()).unwrap()
}

pub(crate) fn read(dir: &Path, file: StoreFile) -> Vec<u8> {
    fs::read(dir.join(".storage").join(file.name())).unwrap()
}

pub(crate) fn read_json(dir: &Path, file: StoreFile) -> serde_json::Value {
    serde_json::from_slice(&read(dir, file)).unwrap()
}
