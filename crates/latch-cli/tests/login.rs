//! What `latch` says around a login that latchd throttles, and the questions it asks
//! again on a terminal.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Daemon, LATCH};
use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use rustix::termios::{LocalModes, tcgetattr};

/// A delay from the second failure on, a lockout at the third.
const THROTTLE: &str = "\
shutdown_grace_secs = 2
[throttle]
delay_after = 1
base_delay_ms = 1000
max_delay_ms = 1000
lockout_after = 3
lockout_secs = 600
";

#[test]
fn a_throttled_login_says_how_long_it_waits_and_a_lockout_when_it_ends() {
    let daemon = Daemon::start_with_toml(THROTTLE);
    daemon.onboard();
    let wrong =
        |daemon: &Daemon| daemon.run(&["login", "paulus", "--password-stdin"], "nope nope\n");

    let first = wrong(&daemon);
    first.assert_code(1);
    assert!(!first.stderr.contains("holds"), "{}", first.stderr);

    let second = wrong(&daemon);
    second.assert_code(1);
    assert!(
        second
            .stderr
            .contains("latchd holds this attempt for 1 s before checking it"),
        "{}",
        second.stderr
    );

    // The third failure starts the lockout; the next attempt, even with the right
    // password, is told until when.
    wrong(&daemon).assert_code(1);
    let locked = daemon.run(
        &["login", "paulus", "--password-stdin"],
        "correct horse battery\n",
    );
    locked.assert_code(1);
    assert!(
        locked
            .stderr
            .contains("username:paulus is locked out until 20"),
        "{}",
        locked.stderr
    );
    assert!(
        locked.stderr.contains("(in 10 min)") || locked.stderr.contains("(in 9 min"),
        "{}",
        locked.stderr
    );
    assert!(
        locked
            .stderr
            .contains("latch lockouts --clear username:paulus"),
        "{}",
        locked.stderr
    );

    // --json: the same failure in the one error shape.
    let out = daemon.run(
        &["login", "paulus", "--password-stdin", "--json"],
        "correct horse battery\n",
    );
    out.assert_code(1);
    let error = &out.json()["error"];
    assert_eq!(error["code"], "denied");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("locked out until")
    );
}

/// `latch ARGS…` on a new pseudo-terminal that is its controlling terminal (through
/// `setsid -c`), answering each prompt as it appears; returns the exit code and what
/// the terminal showed.
fn on_terminal(daemon: &Daemon, args: &[&str], answers: &[(&str, &str)]) -> (i32, String) {
    let controller = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&controller).unwrap();
    unlockpt(&controller).unwrap();
    let name = ptsname(&controller, Vec::new()).unwrap();
    let device = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    let mut child = Command::new("setsid")
        .args(["-w", "-c", LATCH, "--home"])
        .arg(daemon.home())
        .args(args)
        .env_remove("LATCH_HOME")
        .env_remove("LATCH_SOCKET")
        .env_remove("LATCH_TOKEN_FILE")
        .stdin(Stdio::from(device.try_clone().unwrap()))
        .stdout(Stdio::from(device.try_clone().unwrap()))
        .stderr(Stdio::from(device))
        .spawn()
        .unwrap();
    let mut controller = File::from(controller);
    let mut writer = controller.try_clone().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = controller.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut shown = String::new();
    let mut seen = 0;
    for (prompt, answer) in answers {
        // Wait for the next occurrence of the prompt after those already answered.
        loop {
            if let Some(at) = shown[seen..].find(prompt) {
                seen += at + prompt.len();
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(bytes) => shown.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("no prompt {prompt:?}; the terminal shows:\n{shown}"),
            }
        }
        // The prompt is printed before echo is turned off: typing before that would be
        // echoed by the terminal, not by latch. Wait, as a person would, for the switch.
        while tcgetattr(&writer)
            .unwrap()
            .local_modes
            .contains(LocalModes::ECHO)
        {
            assert!(Instant::now() < deadline, "echo never turned off:\n{shown}");
            std::thread::sleep(Duration::from_millis(5));
        }
        writer.write_all(answer.as_bytes()).unwrap();
        writer.write_all(b"\r").unwrap();
    }
    let status = child.wait().unwrap();
    while let Ok(bytes) = rx.recv_timeout(Duration::from_millis(500)) {
        shown.push_str(&String::from_utf8_lossy(&bytes));
    }
    (status.code().unwrap_or(-1), shown)
}

#[test]
fn onboarding_on_a_terminal_asks_again_when_the_passwords_differ() {
    let daemon = Daemon::start();
    let (code, shown) = on_terminal(
        &daemon,
        &["onboard", "--name", "Paulus", "--username", "paulus"],
        &[
            ("New password: ", "correct horse battery"),
            ("Repeat the password: ", "correct horse battery!"),
            ("New password: ", "short"),
            ("New password: ", "correct horse battery"),
            ("Repeat the password: ", "correct horse battery"),
        ],
    );
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains("the passwords do not match: try again"),
        "{shown}"
    );
    assert!(shown.contains("at least 8"), "{shown}");
    assert!(shown.contains("Paulus is the owner"), "{shown}");
    assert!(
        !shown.contains("correct horse"),
        "a password was echoed:\n{shown}"
    );
    // The password that was confirmed is the one set.
    daemon
        .run(
            &["login", "paulus", "--password-stdin"],
            "correct horse battery\n",
        )
        .assert_code(0);
}
