//! Length limits against a flood: ~1,000 failed logins with 100 KB usernames, and 1,000
//! more with 1,000-byte usernames full of terminal escape sequences, leave the daemon's
//! event rings, throttle table and audit log small: an over-long value is refused before
//! anything is checked or kept, and what a failed login echoes (events, audit log,
//! throttle keys) is escaped and cut to 255 bytes.

use std::net::IpAddr;

use latch_client::Client;
use latch_client::protocol::{ErrorCode, FlowState, FormInput, Handler, Sensitive};
use latch_tests::{Home, block_on};

use super::{CLI_CLIENT_ID, json, onboard};

/// Starts a flow from `source` and answers it with `username` and a wrong password.
fn failed_login(
    client: &Client,
    username: &str,
    source: Option<IpAddr>,
) -> Result<FlowState, ErrorCode> {
    let flow = match block_on(client.login_start(
        Handler::new("homeassistant"),
        CLI_CLIENT_ID,
        None,
        source,
    ))
    .unwrap()
    {
        FlowState::Form(form) => form.flow_id,
        other => panic!("{other:?}"),
    };
    let input: FormInput = vec![
        ("username".to_owned(), Sensitive::from(username)),
        ("password".to_owned(), Sensitive::from("not the password")),
    ];
    block_on(client.login_continue(&flow, input, source))
        .map_err(|e| e.code().unwrap_or(ErrorCode::Unknown))
}

#[test]
fn a_flood_of_huge_and_hostile_usernames_keeps_rings_throttle_and_audit_small() {
    let home = Home::new();
    let daemon = home.start();
    onboard(&home);
    let client = home.client();
    let rss_before = daemon.rss_kib();

    // 1,000 usernames of 100 KB: refused as input, nothing checked, nothing kept.
    for i in 0..1_000u32 {
        let huge = format!("{i:04}{}", "A".repeat(100 * 1024));
        let source = Some(IpAddr::from([10, 1, (i / 256) as u8, (i % 256) as u8]));
        assert_eq!(
            failed_login(&client, &huge, source).unwrap_err(),
            ErrorCode::InvalidRequest
        );
    }
    // 1,000 usernames of 1,000 bytes, each full of escape sequences: real failed logins
    // (a dummy bcrypt each), from as many sources, so every one is tracked.
    for i in 0..1_000u32 {
        let hostile = format!(
            "{i:04}\u{1b}[2J\u{1b}]0;pwned\u{7}{}",
            "\u{1b}[31mX".repeat(160)
        );
        assert!(hostile.len() <= 1_024);
        let source = Some(IpAddr::from([10, 2, (i / 256) as u8, (i % 256) as u8]));
        match failed_login(&client, &hostile, source) {
            Ok(FlowState::Form(form)) => assert_eq!(form.error("base"), Some("invalid_auth")),
            other => panic!("{other:?}"),
        }
    }

    // The throttle table: one key per username and per source, none over 255 bytes, no
    // control character.
    let lockouts = json(home.run(&["lockouts", "--json"], &[]).assert_code(0));
    let lockouts = lockouts.as_array().unwrap();
    assert_eq!(lockouts.len(), 2_000, "1,000 usernames and 1,000 sources");
    for l in lockouts {
        let value = l["value"].as_str().unwrap();
        assert!(value.len() <= 255, "{} bytes", value.len());
        assert!(!value.chars().any(char::is_control), "{value:?}");
    }

    // The audit log: one line per failed login, each short, no raw escape.
    let audit = std::fs::read_to_string(home.join("audit.log")).unwrap();
    let failed: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["event"] == "login_failed")
        .collect();
    assert_eq!(failed.len(), 1_000);
    for line in &failed {
        let username = line["username"].as_str().unwrap();
        assert!(username.len() <= 255, "{} bytes", username.len());
        assert!(
            username.contains("\\u{1b}[2J"),
            "escaped, not dropped: {username}"
        );
        assert!(!username.chars().any(char::is_control));
    }
    assert!(
        audit.lines().all(|l| l.len() < 1_024),
        "every audit line is short"
    );
    assert!(
        audit.len() < 1_000_000,
        "audit.log is {} bytes",
        audit.len()
    );

    // The rings (1,024 events each) hold echoed names only: the daemon stays small.
    // Holding the usernames whole would take over 100 MB.
    if let (Some(before), Some(after)) = (rss_before, daemon.rss_kib()) {
        assert!(
            after.saturating_sub(before) < 20 * 1024,
            "latchd's RSS grew from {before} KiB to {after} KiB"
        );
    }
}
