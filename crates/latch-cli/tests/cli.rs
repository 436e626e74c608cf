//! `latch` as an operator and a script use it: the built binary against a real daemon
//! in a temporary home, answers piped on stdin, exit codes and JSON checked.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::Stdio;

use common::{Daemon, latch_in, now, otpauth_secret, run, totp_at};

#[test]
fn status_without_a_daemon_exits_3_and_says_how_to_start_it() {
    let home = tempfile::tempdir().unwrap();
    let out = run(latch_in(home.path(), &["status"]), "");
    out.assert_code(3);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    for needle in [
        "latchd is not running",
        "latch.sock",
        "`latchd`",
        "cargo run --release --bin latchd",
        "LATCH_HOME",
    ] {
        assert!(out.stderr.contains(needle), "{needle:?} in {}", out.stderr);
    }
    // Scripts get a JSON answer too.
    let out = run(latch_in(home.path(), &["status", "--json"]), "");
    out.assert_code(3);
    assert_eq!(out.json()["running"], false);

    // Any other command says the same.
    let out = run(latch_in(home.path(), &["user", "list"]), "");
    out.assert_code(3);
    assert!(out.stderr.contains("latchd is not running"));
}

#[test]
fn a_missing_token_file_exits_4_and_names_the_file_and_variable() {
    let daemon = Daemon::start();
    let missing = daemon.home().join("elsewhere");
    let out = daemon.run(&["--token-file", missing.to_str().unwrap(), "status"], "");
    out.assert_code(4);
    assert!(
        out.stderr.contains(missing.to_str().unwrap()),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("LATCH_TOKEN_FILE"), "{}", out.stderr);

    // A stale token (another daemon's) is caught too.
    let stale = daemon.home().join("stale");
    std::fs::write(&stale, "cd".repeat(32)).unwrap();
    let out = daemon.run(
        &["--token-file", stale.to_str().unwrap(), "user", "list"],
        "",
    );
    out.assert_code(4);
    assert!(out.stderr.contains("stale"), "{}", out.stderr);
}

#[test]
fn onboarding_from_stdin_and_its_usual_mistakes() {
    let daemon = Daemon::start();
    let out = daemon.run(&["status", "--json"], "");
    out.assert_code(0);
    let status = out.json();
    assert_eq!(status["running"], true);
    assert_eq!(status["onboarded"], false);

    // Passwords that do not match, are empty or too short change nothing.
    let out = daemon.run(
        &["onboard"],
        "Paulus\npaulus\nfirst password\nsecond password\n",
    );
    out.assert_code(2);
    assert!(out.stderr.contains("do not match"), "{}", out.stderr);
    let out = daemon.run(&["onboard"], "Paulus\npaulus\n\n\n");
    out.assert_code(2);
    assert!(out.stderr.contains("empty"), "{}", out.stderr);
    let out = daemon.run(
        &["onboard", "--name", "Paulus", "--username", "paulus"],
        "short\nshort\n",
    );
    out.assert_code(2);
    assert!(out.stderr.contains("at least 8"), "{}", out.stderr);
    assert_eq!(
        daemon.run(&["status", "--json"], "").json()["onboarded"],
        false
    );

    // Every answer piped, one per line; the secret is never echoed.
    let out = daemon.run(
        &["onboard"],
        "Paulus\npaulus\ncorrect horse battery\ncorrect horse battery\n",
    );
    out.assert_code(0);
    assert!(out.stdout.contains("Paulus is the owner"), "{}", out.stdout);
    assert!(!out.stdout.contains("correct horse"));
    assert!(!out.stderr.contains("correct horse"));
    assert_eq!(
        daemon.run(&["status", "--json"], "").json()["onboarded"],
        true
    );

    let out = daemon.run(
        &["onboard", "--password-stdin"],
        "Anne\nanne\nanother password\n",
    );
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("already onboarded"), "{}", out.stderr);
}

#[test]
fn users_passwords_and_logins() {
    let daemon = Daemon::start();
    daemon.onboard();

    let out = daemon.run(
        &[
            "user",
            "add",
            "Anne",
            "--username",
            "Anne",
            "--password-stdin",
        ],
        "anne's password\n",
    );
    out.assert_code(0);
    assert!(out.stdout.contains("username anne"), "{}", out.stdout);

    let users = daemon.run(&["user", "list", "--json"], "");
    users.assert_code(0);
    let users = users.json();
    let anne = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "anne")
        .unwrap();
    assert_eq!(anne["group_ids"], serde_json::json!(["system-users"]));
    assert_eq!(anne["is_owner"], false);
    let anne_id = anne["id"].as_str().unwrap().to_owned();
    let table = daemon.run(&["user", "list"], "");
    table.assert_code(0);
    assert!(table.stdout.contains("anne") && table.stdout.contains("paulus"));

    // A taken username: the half-made user is removed again.
    let out = daemon.run(
        &[
            "user",
            "add",
            "Other Anne",
            "--username",
            "anne",
            "--password-stdin",
        ],
        "some password\n",
    );
    out.assert_code(6);
    assert!(out.stderr.contains("already_exists"), "{}", out.stderr);
    let count = daemon.run(&["user", "list", "--json"], "").json();
    assert_eq!(count.as_array().unwrap().len(), 2);

    // The password is set with confirmation; the old one stops working.
    let out = daemon.run(
        &["password", "set", "anne"],
        "new password 1\nnew password 1\n",
    );
    out.assert_code(0);
    let out = daemon.run(&["login", "anne", "--password-stdin"], "anne's password\n");
    out.assert_code(1);
    assert!(
        out.stderr.contains("wrong username or password"),
        "{}",
        out.stderr
    );
    let out = daemon.run(&["login", "anne", "--password-stdin"], "new password 1\n");
    out.assert_code(0);
    assert!(out.stdout.contains("logged in as Anne"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("access token:"),
        "tokens only with --show-tokens"
    );

    // By id, too; groups and (de)activation.
    let out = daemon.run(&["user", "groups", &anne_id, "system-read-only"], "");
    out.assert_code(0);
    assert!(out.stdout.contains("system-read-only"));
    daemon
        .run(&["user", "deactivate", "anne"], "")
        .assert_code(0);
    let out = daemon.run(&["login", "anne", "--password-stdin"], "new password 1\n");
    out.assert_code(1);
    daemon.run(&["user", "activate", "anne"], "").assert_code(0);

    // Unknown users are "not found".
    let out = daemon.run(&["user", "remove", "nobody"], "");
    out.assert_code(5);
    assert!(out.stderr.contains("nobody"), "{}", out.stderr);
    daemon.run(&["user", "remove", "anne"], "").assert_code(0);
}

#[test]
fn tokens_validate_with_exit_codes_and_json() {
    let daemon = Daemon::start();
    daemon.onboard();
    let out = daemon.run(
        &[
            "login",
            "paulus",
            "--password-stdin",
            "--show-tokens",
            "--json",
        ],
        "correct horse battery\n",
    );
    out.assert_code(0);
    let login = out.json();
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let refresh_id = login["refresh_token_id"].as_str().unwrap().to_owned();

    let out = daemon.run(&["token", "validate", &access], "");
    out.assert_code(0);
    assert!(out.stdout.starts_with("valid"), "{}", out.stdout);
    let out = daemon.run(
        &["token", "validate", "-", "--json"],
        &format!("{access}\n"),
    );
    out.assert_code(0);
    assert_eq!(out.json()["valid"], true);
    assert_eq!(out.json()["user"]["id"], login["user_id"]);

    let out = daemon.run(&["token", "validate", "not.a.token"], "");
    out.assert_code(1);
    let out = daemon.run(&["token", "validate", "not.a.token", "--json"], "");
    out.assert_code(1);
    assert_eq!(out.json()["valid"], false);
    assert_eq!(out.json()["error"]["code"], "invalid_token");

    let out = daemon.run(
        &[
            "token",
            "refresh",
            "-",
            "--client-id",
            "https://latch.localhost/cli",
        ],
        &format!("{refresh}\n"),
    );
    out.assert_code(0);
    let fresh = out.stdout.trim().to_owned();
    daemon
        .run(&["token", "validate", &fresh], "")
        .assert_code(0);

    let out = daemon.run(&["token", "list", "paulus", "--json"], "");
    out.assert_code(0);
    assert!(
        out.json()
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == refresh_id.as_str() && t["token_type"] == "normal")
    );

    let out = daemon.run(
        &[
            "token",
            "create-long-lived",
            "paulus",
            "--name",
            "dashboard",
            "--days",
            "7",
        ],
        "",
    );
    out.assert_code(0);
    daemon
        .run(&["token", "validate", out.stdout.trim()], "")
        .assert_code(0);

    daemon
        .run(&["token", "revoke", "--id", &refresh_id], "")
        .assert_code(0);
    daemon
        .run(&["token", "validate", &fresh], "")
        .assert_code(1);
    daemon
        .run(&["token", "revoke", "--id", &refresh_id], "")
        .assert_code(5);
}

#[test]
fn totp_setup_then_login_with_a_code() {
    let daemon = Daemon::start();
    daemon.onboard();

    // The code depends on the secret the command prints: answer it while it runs.
    let (out, secret) = (0..2)
        .find_map(|_| {
            let mut child = daemon
                .latch(&["mfa", "setup", "paulus"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdout = BufReader::new(child.stdout.take().unwrap());
            let mut shown = String::new();
            let secret = loop {
                let mut line = String::new();
                assert_ne!(stdout.read_line(&mut line).unwrap(), 0, "no URI in {shown}");
                shown.push_str(&line);
                if let Some(secret) = otpauth_secret(&line) {
                    break secret;
                }
            };
            let mut stdin = child.stdin.take().unwrap();
            writeln!(stdin, "{}", totp_at(&secret, now())).unwrap();
            drop(stdin);
            stdout.read_to_string(&mut shown).unwrap();
            let status = child.wait().unwrap();
            // At a 30 s boundary the code can miss once: try again.
            status.success().then_some((shown, secret))
        })
        .expect("the setup code was refused twice");
    assert!(out.contains('█'), "a QR code is drawn:\n{out}");
    assert!(out.contains("otpauth://totp/"), "{out}");
    assert!(out.contains("Recovery codes"), "{out}");
    assert!(out.contains("ONLY NOW"), "{out}");

    let users = daemon.run(&["user", "list", "--json"], "").json();
    assert_eq!(users[0]["mfa_modules"], serde_json::json!(["totp"]));

    // Password, then the code of the next step (the setup used the current one).
    let code = totp_at(&secret, now() + 30);
    let out = daemon.run(
        &["login", "paulus", "--password-stdin"],
        &format!("correct horse battery\n{code}\n"),
    );
    out.assert_code(0);
    assert!(out.stdout.contains("logged in as Paulus"), "{}", out.stdout);

    let out = daemon.run(
        &["login", "paulus", "--password-stdin"],
        "correct horse battery\n000000\n",
    );
    out.assert_code(1);

    let out = daemon.run(&["mfa", "recovery-codes", "paulus", "--json"], "");
    out.assert_code(0);
    assert!(!out.json()["recovery_codes"].as_array().unwrap().is_empty());
    daemon.run(&["mfa", "disable", "paulus"], "").assert_code(0);
    let users = daemon.run(&["user", "list", "--json"], "").json();
    assert_eq!(users[0]["mfa_modules"], serde_json::json!([]));
}

#[test]
fn check_exits_0_when_allowed_and_1_when_denied() {
    let daemon = Daemon::start();
    daemon.onboard();
    daemon
        .run(
            &["user", "add", "Reader", "--group", "system-read-only"],
            "",
        )
        .assert_code(0);
    let out = daemon.run(&["check", "paulus", "light.kitchen", "edit"], "");
    out.assert_code(0);
    assert!(out.stdout.starts_with("allowed"));
    daemon
        .run(&["check", "Reader", "light.kitchen", "read"], "")
        .assert_code(0);
    let out = daemon.run(
        &["check", "Reader", "light.kitchen", "control", "--json"],
        "",
    );
    out.assert_code(1);
    assert_eq!(out.json()["allowed"], false);
    assert_eq!(out.json()["permission"], "control");
    daemon
        .run(&["check", "nobody", "light.kitchen", "read"], "")
        .assert_code(5);
    // A bad permission is a usage error.
    daemon
        .run(&["check", "paulus", "light.kitchen", "write"], "")
        .assert_code(2);
}

#[test]
fn read_commands_speak_json() {
    let daemon = Daemon::start();
    daemon.onboard();
    daemon
        .run(&["login", "paulus", "--password-stdin"], "wrong password\n")
        .assert_code(1);
    for args in [
        &["status", "--json"][..],
        &["user", "list", "--json"],
        &["group", "list", "--json"],
        &["token", "list", "paulus", "--json"],
        &["lockouts", "--json"],
        &["user", "groups", "paulus", "--json"],
    ] {
        let out = daemon.run(args, "");
        out.assert_code(0);
        let _ = out.json();
    }
    let lockouts = daemon.run(&["lockouts", "--json"], "").json();
    assert!(
        lockouts
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["key"] == "username:paulus"),
        "{lockouts}"
    );
    daemon
        .run(&["lockouts", "--clear", "username:paulus"], "")
        .assert_code(0);
    let groups = daemon.run(&["group", "list", "--json"], "").json();
    assert!(
        groups
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"] == "system-admin" && g["policy"]["entities"] == true)
    );
}

#[test]
fn events_follow_as_json_lines() {
    let daemon = Daemon::start();
    daemon.onboard();
    let mut child = daemon
        .latch(&["events", "--json", "--kind", "user_added"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    // The subscription starts some time after the spawn: add users until one shows up
    // (the first ones may come before it).
    let mut line = String::new();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = stdout.read_line(&mut line);
        let _ = tx.send(line);
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let line = loop {
        daemon.run(&["user", "add", "Someone"], "").assert_code(0);
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(200)) {
            break line;
        }
        assert!(std::time::Instant::now() < deadline, "no event arrived");
    };
    child.kill().unwrap();
    let _ = child.wait();
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["kind"], "user_added");
    assert!(event["user_id"].is_string());

    let out = daemon.run(&["events", "--kind", "user_exploded"], "");
    out.assert_code(2);
    assert!(out.stderr.contains("user_added"), "{}", out.stderr);
}

#[test]
fn completions_are_generated() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let out = run(latch_in(home.path(), &["completions", shell]), "");
        out.assert_code(0);
        assert!(out.stdout.contains("latch"), "{shell}");
        assert!(out.stdout.contains("onboard"), "{shell}");
    }
    let out = run(latch_in(home.path(), &["completions", "tcsh"]), "");
    out.assert_code(2);
}

#[test]
fn help_documents_the_exit_codes() {
    let home = tempfile::tempdir().unwrap();
    let out = run(latch_in(home.path(), &["--help"]), "");
    out.assert_code(0);
    for needle in [
        "Exit codes",
        "3  latchd is not running",
        "4  the socket",
        "LATCH_TOKEN_FILE",
    ] {
        assert!(out.stdout.contains(needle), "{needle:?} in {}", out.stdout);
    }
}

#[test]
fn a_login_token_refreshes_without_naming_the_cli_client_id() {
    let daemon = Daemon::start();
    daemon.onboard();
    let out = daemon.run(
        &[
            "login",
            "paulus",
            "--password-stdin",
            "--show-tokens",
            "--json",
        ],
        "correct horse battery\n",
    );
    out.assert_code(0);
    let refresh = out.json()["refresh_token"].as_str().unwrap().to_owned();

    // The CLI's own client id is the default.
    let out = daemon.run(&["token", "refresh", "-"], &format!("{refresh}\n"));
    out.assert_code(0);
    daemon
        .run(&["token", "validate", out.stdout.trim()], "")
        .assert_code(0);

    // Another client id, or none: refused, naming the one the token was issued to.
    for args in [
        &[
            "token",
            "refresh",
            "-",
            "--client-id",
            "https://other.example/",
        ][..],
        &["token", "refresh", "-", "--no-client-id"],
    ] {
        let out = daemon.run(args, &format!("{refresh}\n"));
        out.assert_code(2);
        assert!(
            out.stderr
                .contains("issued to client id \"https://latch.localhost/cli\""),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("--client-id"), "{}", out.stderr);
    }
    let out = daemon.run(
        &["token", "refresh", "-", "--no-client-id", "--json"],
        &format!("{refresh}\n"),
    );
    out.assert_code(2);
    assert_eq!(out.json()["error"]["code"], "usage");
}

#[test]
fn json_errors_have_one_shape_for_every_command() {
    // Without a daemon.
    let home = tempfile::tempdir().unwrap();
    for args in [
        &["user", "list", "--json"][..],
        &["token", "validate", "x", "--json"],
        &["audit", "--json"],
        &["user", "frobnicate", "--json"],
        &["check", "paulus", "light.kitchen", "write", "--json"],
    ] {
        let out = run(latch_in(home.path(), args), "");
        assert_ne!(out.code, 0, "{args:?}");
        let error = &out.json()["error"];
        assert!(error["code"].is_string(), "{args:?}: {}", out.stdout);
        assert!(error["message"].is_string(), "{args:?}: {}", out.stdout);
        assert!(out.stderr.is_empty(), "{args:?}: {}", out.stderr);
    }
    let status = run(latch_in(home.path(), &["status", "--json"]), "");
    status.assert_code(3);
    assert_eq!(status.json()["running"], false);
    assert_eq!(status.json()["error"]["code"], "not_running");

    // With one: every kind of failure.
    let daemon = Daemon::start();
    daemon.onboard();
    for (args, stdin, code, name) in [
        (
            &["user", "remove", "nobody", "--json"][..],
            "",
            5,
            "not_found",
        ),
        (&["user", "add", " ", "--json"], "", 2, "usage"),
        (
            &["token", "revoke", "--id", "nope", "--json"],
            "",
            5,
            "token_not_found",
        ),
        (
            &["lockouts", "--clear", "username:nobody", "--json"],
            "",
            5,
            "not_found",
        ),
        (&["events", "--kind", "bogus", "--json"], "", 2, "usage"),
        (&["mfa", "disable", "nobody", "--json"], "", 5, "not_found"),
        (&["password", "set", "nobody", "--json"], "", 5, "not_found"),
        (
            &["onboard", "--password-stdin", "--json"],
            "A\na\npassword1\n",
            2,
            "usage",
        ),
        (
            &["login", "paulus", "--password-stdin", "--json"],
            "wrong password\n",
            1,
            "denied",
        ),
        (
            &["user", "add", "X", "--group", "no-such-group", "--json"],
            "",
            5,
            "group_not_found",
        ),
    ] {
        let out = daemon.run(args, stdin);
        out.assert_code(code);
        let doc = out.json();
        let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["error"], "{args:?}: {doc}");
        assert_eq!(doc["error"]["code"], name, "{args:?}: {doc}");
        assert!(!doc["error"]["message"].as_str().unwrap().is_empty());
        assert!(out.stderr.is_empty(), "{args:?}: {}", out.stderr);
    }
}
