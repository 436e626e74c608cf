//! What a user typed never reaches the operator's terminal raw: a failed login whose
//! username holds ESC sequences, a newline, a carriage return and a bell shows escaped
//! in `latch events` and `latch audit`.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Daemon;

/// Clears the screen, recolours, fakes a second line, returns the carriage and rings.
const NASTY: &str = "\u{1b}[2J\u{1b}[31mroot\nlogin_succeeded user_id=0\r\u{7}";

const DEADLINE: Duration = Duration::from_secs(30);

/// True if `text` holds a raw control character other than the line breaks between
/// lines.
fn has_raw_control(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\n')
}

fn fail_a_login(daemon: &Daemon) {
    daemon
        .run(&["login", NASTY, "--password-stdin"], "wrong password\n")
        .assert_code(1);
}

/// Follows `latch events ARGS…`, failing logins with the nasty username until a
/// `login_failed` line shows; returns that line.
fn follow_events(daemon: &Daemon, args: &[&str]) -> String {
    let mut all = vec!["events", "--kind", "login_failed"];
    all.extend_from_slice(args);
    let mut child = daemon
        .latch(&all)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    // The subscription starts some time after the spawn: fail logins until one shows.
    let start = Instant::now();
    let line = loop {
        fail_a_login(daemon);
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
            break line;
        }
        assert!(start.elapsed() < DEADLINE, "no event arrived");
    };
    child.kill().unwrap();
    let _ = child.wait();
    line
}

#[test]
fn a_username_with_escape_sequences_shows_escaped_in_events_and_audit() {
    let daemon = Daemon::start();
    daemon.onboard();

    // What the daemon sent, exactly (JSON escapes every control character).
    let json_line = follow_events(&daemon, &["--json"]);
    assert!(!has_raw_control(&json_line), "{json_line:?}");
    let event: serde_json::Value = serde_json::from_str(&json_line).unwrap();
    assert_eq!(event["kind"], "login_failed");
    let sent = event["username"].as_str().unwrap_or_default().to_owned();

    // The text form: one line, no raw control, and whatever the daemon kept of the
    // username shown with visible escapes.
    let text_line = follow_events(&daemon, &[]);
    assert!(text_line.starts_with("login_failed "), "{text_line:?}");
    assert!(!has_raw_control(&text_line), "{text_line:?}");
    if sent.contains('\u{1b}') {
        assert!(text_line.contains(r"\x1b[2J\x1b[31mroot"), "{text_line}");
    }
    if sent.contains('\n') {
        assert!(
            text_line.contains(r"root\nlogin_succeeded user_id=0\r\x07"),
            "{text_line}"
        );
    }

    // The audit log, as text and as JSON lines.
    let start = Instant::now();
    let audit = loop {
        let out = daemon.run(&["audit", "--event", "login_failed"], "");
        if out.code == 0 && out.stdout.contains("login_failed") {
            break out;
        }
        assert!(start.elapsed() < DEADLINE, "no audit line: {out:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!has_raw_control(&audit.stdout), "{:?}", audit.stdout);
    for line in audit.stdout.lines() {
        assert!(line.contains("login_failed"), "a faked line: {line:?}");
        if sent.contains('\u{1b}') {
            assert!(line.contains(r"\x1b[2J"), "{line}");
        }
    }
    let audit_json = daemon.run(&["audit", "--json", "--event", "login_failed"], "");
    audit_json.assert_code(0);
    assert!(
        !has_raw_control(&audit_json.stdout),
        "{:?}",
        audit_json.stdout
    );
    for line in audit_json.stdout.lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(value["event"], "login_failed");
    }
}
