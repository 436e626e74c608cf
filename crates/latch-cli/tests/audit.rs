//! `latch audit` against the audit log a real daemon wrote.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, Run, latch_in, run};

const DEADLINE: Duration = Duration::from_secs(30);

/// Runs `latch audit ARGS…` until `done` accepts its output (the daemon writes the log
/// asynchronously), failing after [`DEADLINE`].
fn audit_until(daemon: &Daemon, args: &[&str], done: impl Fn(&Run) -> bool) -> Run {
    let start = Instant::now();
    loop {
        let mut all = vec!["audit"];
        all.extend_from_slice(args);
        let out = daemon.run(&all, "");
        if done(&out) {
            return out;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "latch audit never showed it:\n{}\n{}",
            out.stdout,
            out.stderr
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn json_lines(out: &Run) -> Vec<serde_json::Value> {
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn audit_json_prints_the_daemon_written_lines() {
    let daemon = Daemon::start();
    daemon.onboard();
    daemon
        .run(&["login", "paulus", "--password-stdin"], "wrong password\n")
        .assert_code(1);
    daemon
        .run(
            &["login", "paulus", "--password-stdin"],
            "correct horse battery\n",
        )
        .assert_code(0);

    let out = audit_until(&daemon, &["--json"], |out| {
        out.code == 0 && out.stdout.contains("login_succeeded")
    });
    let lines = json_lines(&out);
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert!(events.contains(&"user_added"), "{events:?}");
    let failed = lines.iter().find(|l| l["event"] == "login_failed").unwrap();
    assert_eq!(failed["username"], "paulus");
    assert_eq!(failed["reason"], "invalid_auth");
    assert!(!out.stdout.contains("correct horse"), "{}", out.stdout);
    assert!(!out.stdout.contains("wrong password"), "{}", out.stdout);

    // --event filters, --lines keeps the last ones.
    let out = daemon.run(&["audit", "--json", "--event", "login_failed"], "");
    out.assert_code(0);
    let only = json_lines(&out);
    assert_eq!(only.len(), 1, "{}", out.stdout);
    assert_eq!(only[0]["event"], "login_failed");
    let out = daemon.run(&["audit", "--json", "--lines", "2"], "");
    out.assert_code(0);
    let tail = json_lines(&out);
    assert_eq!(tail.len(), 2, "{}", out.stdout);
    // The log only grows: the two lines are consecutive in a later full read.
    let all = json_lines(daemon.run(&["audit", "--json"], "").assert_code(0));
    assert!(all.windows(2).any(|w| w == tail.as_slice()), "{tail:?}");
    assert_ne!(tail[0], lines[0], "--lines drops the first lines");

    // The text form shows the time, the event and its fields.
    let out = daemon.run(&["audit", "--event", "login_failed"], "");
    out.assert_code(0);
    assert!(out.stdout.contains("login_failed"), "{}", out.stdout);
    assert!(out.stdout.contains("username=paulus"), "{}", out.stdout);
    assert!(out.stdout.contains("reason=invalid_auth"), "{}", out.stdout);
}

#[test]
fn no_audit_log_is_a_clear_not_found() {
    let home = tempfile::tempdir().unwrap();
    let out = run(latch_in(home.path(), &["audit"]), "");
    out.assert_code(5);
    assert!(out.stderr.contains("no audit log at"), "{}", out.stderr);
    assert!(out.stderr.contains("audit.log"), "{}", out.stderr);
    assert!(out.stderr.contains("enabled = false"), "{}", out.stderr);
}
