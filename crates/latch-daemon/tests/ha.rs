//! Finding a Home Assistant process on the home through a `/proc`-shaped directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use latch_daemon::ha::{HomeAssistantProcess, find_running_in, is_home_assistant_dir};

fn process(proc_root: &Path, pid: u32, args: &[&str]) -> std::path::PathBuf {
    let dir = proc_root.join(pid.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmdline = args.join("\0");
    cmdline.push('\0');
    std::fs::write(dir.join("cmdline"), cmdline).unwrap();
    dir
}

#[test]
fn a_home_assistant_directory_is_recognised_by_its_version_file() {
    let home = tempfile::tempdir().unwrap();
    assert!(!is_home_assistant_dir(home.path()));
    std::fs::write(home.path().join(".HA_VERSION"), "2026.1.0").unwrap();
    assert!(is_home_assistant_dir(home.path()));
}

#[test]
fn finds_hass_configured_on_the_home_and_nothing_else() {
    let proc_root = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let home_text = home.path().to_str().unwrap();
    let elsewhere_text = elsewhere.path().to_str().unwrap();
    // Not Home Assistant, or Home Assistant on another directory.
    process(proc_root.path(), 10, &["vim", "-c", home_text]);
    process(
        proc_root.path(),
        11,
        &["/srv/ha/bin/hass", "-c", elsewhere_text],
    );
    std::fs::create_dir_all(proc_root.path().join("self")).unwrap();
    assert_eq!(find_running_in(proc_root.path(), home.path()), None);

    process(
        proc_root.path(),
        12,
        &["python3", "-m", "homeassistant", "--config", home_text],
    );
    assert_eq!(
        find_running_in(proc_root.path(), home.path()),
        Some(HomeAssistantProcess {
            pid: 12,
            config_dir: home.path().to_path_buf(),
        })
    );
}

#[cfg(unix)]
#[test]
fn resolves_a_relative_config_against_the_working_directory() {
    let proc_root = tempfile::tempdir().unwrap();
    let parent = tempfile::tempdir().unwrap();
    let home = parent.path().join("config");
    std::fs::create_dir(&home).unwrap();
    let dir = process(proc_root.path(), 20, &["hass", "-c", "config"]);
    std::os::unix::fs::symlink(parent.path(), dir.join("cwd")).unwrap();
    let found = find_running_in(proc_root.path(), &home).unwrap();
    assert_eq!(found.pid, 20);
}

#[cfg(unix)]
#[test]
fn without_a_config_argument_the_default_directory_counts() {
    let proc_root = tempfile::tempdir().unwrap();
    let user_home = tempfile::tempdir().unwrap();
    let home = user_home.path().join(".homeassistant");
    std::fs::create_dir(&home).unwrap();
    let dir = process(proc_root.path(), 30, &["hass"]);
    let environ = format!("PATH=/usr/bin\0HOME={}\0", user_home.path().display());
    std::fs::write(dir.join("environ"), environ).unwrap();
    assert_eq!(
        find_running_in(proc_root.path(), &home).map(|p| p.pid),
        Some(30)
    );
}
