//! The files latchd creates in its home: never readable by group or others, not even for
//! an instant, and never written through a symbolic link planted in their place.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use latch_tests::{Home, block_on, run, write_file};

use super::{add_user, onboard};

/// What the permission watcher saw.
#[derive(Debug, Default)]
struct Watched {
    /// Paths found existing, summed over every pass.
    observations: u64,
    /// The first few sightings of a path with group or other permission bits.
    exposed: Vec<String>,
    /// How many such sightings in all.
    exposed_count: u64,
    /// Names (relative to the home) seen at least once.
    names: BTreeSet<String>,
}

/// Polls, as fast as it can until `stop` is set, `session-token` (and its temp files),
/// `latch.sock`, `.storage` and every file in it, recording any moment one exists with
/// a group or other permission bit.
fn watch(home: PathBuf, stop: Arc<AtomicBool>) -> JoinHandle<Watched> {
    std::thread::spawn(move || {
        let storage = home.join(".storage");
        let mut watched = Watched::default();
        let mut paths: Vec<PathBuf> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            paths.clear();
            paths.push(home.join("session-token"));
            paths.push(home.join("latch.sock"));
            paths.push(storage.clone());
            if let Ok(entries) = fs::read_dir(&home) {
                paths.extend(
                    entries
                        .flatten()
                        .filter(|e| {
                            e.file_name()
                                .to_string_lossy()
                                .starts_with("session-token.")
                        })
                        .map(|e| e.path()),
                );
            }
            if let Ok(entries) = fs::read_dir(&storage) {
                paths.extend(entries.flatten().map(|e| e.path()));
            }
            for path in &paths {
                let Ok(metadata) = fs::symlink_metadata(path) else {
                    continue; // Not there (yet, or any more).
                };
                watched.observations += 1;
                let name = path
                    .strip_prefix(&home)
                    .map_or_else(|_| path.display().to_string(), |p| p.display().to_string());
                if metadata.mode() & 0o077 != 0 {
                    watched.exposed_count += 1;
                    if watched.exposed.len() < 20 {
                        watched
                            .exposed
                            .push(format!("{name} mode {:o}", metadata.mode()));
                    }
                }
                watched.names.insert(name);
            }
        }
        watched
    })
}

#[test]
fn no_file_is_ever_group_or_other_accessible_across_starts_rotations_and_writes() {
    let home = Home::new();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(home.path().to_path_buf(), Arc::clone(&stop));

    let daemon = home.start();
    onboard(&home);
    add_user(&home, "Anne", "anne", "anne's own password");
    daemon.stop(); // Compacts: the snapshot files are written.

    // A restart rotates the session token; then more writes and a compaction.
    let daemon = home.start();
    add_user(&home, "Bob", "bob", "bob's own password");
    block_on(home.client().ping()).unwrap();
    daemon.stop();
    let daemon = home.start();
    add_user(&home, "Cleo", "cleo", "cleo's own password");
    daemon.stop();

    stop.store(true, Ordering::Relaxed);
    let watched = watcher.join().unwrap();
    assert!(
        watched.exposed.is_empty(),
        "{} sightings of group/other permission bits, first ones: {:#?}",
        watched.exposed_count,
        watched.exposed
    );
    assert!(
        watched.observations > 100,
        "the watcher saw too little to prove anything: {watched:?}"
    );
    for name in ["session-token", "latch.sock", ".storage", ".storage/auth"] {
        assert!(
            watched.names.contains(name),
            "the watcher never saw {name}: {watched:?}"
        );
    }
}

/// A file outside the home for a planted link to point at: (path, contents, mode).
fn outside_target(home: &Home, name: &str) -> (PathBuf, Vec<u8>, u32) {
    let path = home
        .path()
        .parent()
        .unwrap()
        .join(format!("outside-{name}"));
    let contents = format!("not latch's {name}: must stay as it is\n").into_bytes();
    write_file(&path, &contents);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    (path, contents, 0o644)
}

#[track_caller]
fn assert_untouched(path: &Path, contents: &[u8], mode: u32) {
    let metadata = fs::symlink_metadata(path).unwrap();
    assert!(metadata.is_file(), "{} is no longer a file", path.display());
    assert_eq!(
        metadata.mode() & 0o7777,
        mode,
        "the mode of {}",
        path.display()
    );
    assert_eq!(
        fs::read(path).unwrap(),
        contents,
        "the contents of {}",
        path.display()
    );
}

#[track_caller]
fn assert_private_regular_file(path: &Path) {
    let metadata = fs::symlink_metadata(path).unwrap();
    assert!(
        metadata.file_type().is_file(),
        "{} is not a regular file: {:?}",
        path.display(),
        metadata.file_type()
    );
    assert_eq!(
        metadata.mode() & 0o777,
        0o600,
        "the mode of {}",
        path.display()
    );
}

#[test]
fn a_symlink_planted_at_the_session_token_is_replaced_never_followed() {
    let home = Home::new();
    let (target, contents, mode) = outside_target(&home, "token");
    symlink(&target, home.token_file()).unwrap();

    let daemon = home.start();
    assert_private_regular_file(&home.token_file());
    let token = home.session_token().unwrap();
    assert_eq!(token.trim().len(), 64, "a fresh token: {token:?}");
    assert_untouched(&target, &contents, mode);
    block_on(home.client().ping()).unwrap();
    daemon.stop();
    assert_untouched(&target, &contents, mode);
}

#[test]
fn a_symlink_planted_at_the_socket_makes_latchd_refuse_to_start() {
    let home = Home::new();
    let (target, contents, mode) = outside_target(&home, "socket");
    symlink(&target, home.socket()).unwrap();

    let refused = run(home.latchd(&[]), &[]);
    refused
        .assert_code(2)
        .assert_stderr_has("it exists and is not a socket")
        .assert_stderr_has(&home.socket().display().to_string());
    let link = fs::symlink_metadata(home.socket()).unwrap();
    assert!(link.file_type().is_symlink(), "the link is left alone");
    assert_eq!(fs::read_link(home.socket()).unwrap(), target);
    assert_untouched(&target, &contents, mode);
    assert!(!home.token_file().exists(), "no token without a socket");
}

#[test]
fn a_symlink_planted_in_the_store_makes_latchd_refuse_to_start() {
    // A real `auth` file, from a home of its own, for a link to point at.
    let source = Home::new();
    let daemon = source.start();
    onboard(&source);
    daemon.stop();

    for name in ["auth", "latch.journal"] {
        let home = Home::new();
        let (target, _, _) = outside_target(&home, name);
        fs::copy(source.join(".storage/auth"), &target).unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        let contents = fs::read(&target).unwrap();
        let storage = home.join(".storage");
        fs::DirBuilder::new().mode(0o700).create(&storage).unwrap();
        symlink(&target, storage.join(name)).unwrap();

        let refused = run(home.latchd(&[]), &[]);
        // Permanent: a restart meets the same link.
        assert_eq!(refused.code, Some(2), "{name}: {}", refused.stderr);
        refused.assert_stderr_has("symlink");
        let link = fs::symlink_metadata(storage.join(name)).unwrap();
        assert!(
            link.file_type().is_symlink(),
            "{name}: the link is left alone"
        );
        assert_untouched(&target, &contents, 0o644);
        assert!(!home.socket().exists(), "{name}: nothing is served");
    }
}
