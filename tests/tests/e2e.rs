//! End-to-end tests: the real `latchd` and `latch` binaries in temporary homes, talked to
//! through the command line and through `latch-client` on the real socket.
//!
//! Every test starts its own daemon in its own home (see the `latch-tests` harness), so
//! they run in parallel; each daemon is killed and each home removed when its test ends.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "e2e/brute_force.rs"]
mod brute_force;
#[path = "e2e/cli_flows.rs"]
mod cli_flows;
#[path = "e2e/events.rs"]
mod events;
#[path = "e2e/files.rs"]
mod files;
#[path = "e2e/forward_auth.rs"]
mod forward_auth;
#[path = "e2e/forward_auth_browser.rs"]
mod forward_auth_browser;
#[path = "e2e/home_assistant.rs"]
mod home_assistant;
#[path = "e2e/http_app.rs"]
mod http_app;
#[path = "e2e/http_fixtures.rs"]
mod http_fixtures;
#[path = "e2e/http_ops.rs"]
mod http_ops;
#[path = "e2e/http_support.rs"]
mod http_support;
// Reads the daemon's memory and CPU time from /proc.
#[cfg(target_os = "linux")]
#[path = "e2e/hostile.rs"]
mod hostile;
#[path = "e2e/large_store.rs"]
mod large_store;
#[path = "e2e/lifecycle.rs"]
mod lifecycle;
#[path = "e2e/limits.rs"]
mod limits;
#[path = "e2e/multi_host.rs"]
mod multi_host;
#[path = "e2e/readme.rs"]
mod readme;

use latch_client::ClientEvent;
use latch_client::Subscription;
use latch_client::protocol::Event;
use latch_tests::{Home, Run, block_on, otpauth_secret, totp, unix_now};

/// The owner every test onboards.
const OWNER_NAME: &str = "Paulus";
const OWNER_USERNAME: &str = "paulus";
const OWNER_PASSWORD: &str = "correct horse battery staple";

/// The client id `latch login` issues its tokens to.
const CLI_CLIENT_ID: &str = "https://latch.localhost/cli";

/// `latch onboard` with every answer piped; returns the owner's id.
fn onboard(home: &Home) -> String {
    home.run(
        &["onboard"],
        &[OWNER_NAME, OWNER_USERNAME, OWNER_PASSWORD, OWNER_PASSWORD],
    )
    .assert_code(0)
    .assert_stdout_has("Paulus is the owner");
    user_id(home, OWNER_USERNAME)
}

/// `latch user add NAME --username USERNAME` with the password typed twice; returns the
/// new user's id.
fn add_user(home: &Home, name: &str, username: &str, password: &str) -> String {
    home.run(
        &["user", "add", name, "--username", username],
        &[password, password],
    )
    .assert_code(0)
    .assert_stdout_has(&format!("username {username}"));
    user_id(home, username)
}

/// The id of the user with this username, from `latch user list --json`.
fn user_id(home: &Home, username: &str) -> String {
    let users = json(home.run(&["user", "list", "--json"], &[]).assert_code(0));
    users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == username)
        .unwrap_or_else(|| panic!("no user {username} in {users:#}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", run.stdout))
}

/// The tokens of a finished `latch login --show-tokens --json`.
#[derive(Debug, Clone)]
struct Tokens {
    user_id: String,
    access: String,
    refresh: String,
    refresh_id: String,
}

/// `latch login USER --show-tokens --json`, the password (and any further answers)
/// piped; the login must succeed.
fn login(home: &Home, username: &str, answers: &[&str]) -> Tokens {
    let run = home.run(&["login", username, "--show-tokens", "--json"], answers);
    run.assert_code(0);
    let value = json(&run);
    let field = |name: &str| {
        value[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {value:#}"))
            .to_owned()
    };
    Tokens {
        user_id: field("user_id"),
        access: field("access_token"),
        refresh: field("refresh_token"),
        refresh_id: field("refresh_token_id"),
    }
}

/// What `latch mfa setup USER` printed, and the secret of its `otpauth://` URI.
#[derive(Debug)]
struct Enrolment {
    secret: String,
    output: Run,
}

impl Enrolment {
    /// The recovery codes printed after "Recovery codes".
    fn recovery_codes(&self) -> Vec<String> {
        let after = self
            .output
            .stdout
            .split("Recovery codes")
            .nth(1)
            .unwrap_or_else(|| panic!("no recovery codes in\n{}", self.output.stdout));
        after
            .lines()
            .map(str::trim)
            .filter(|line| is_recovery_code(line))
            .map(str::to_owned)
            .collect()
    }
}

/// `xxxxx-xxxxx`, lower-case letters and digits.
fn is_recovery_code(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            p.len() == 5
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// `latch mfa setup USER`, answering with the code of the secret it prints (computed by
/// the test's own RFC 6238). The setup accepts the current 30 s step only, so a code
/// computed just before a step boundary can miss: the whole setup is tried again then.
fn mfa_setup(home: &Home, user: &str) -> Enrolment {
    let mut failures = Vec::new();
    for _ in 0..3 {
        let mut session = home.spawn(&["mfa", "setup", user]);
        let secret = session.read_until(otpauth_secret);
        session.write_line(&totp::code_at(&secret, unix_now()));
        let output = session.finish();
        if output.code == Some(0) {
            return Enrolment { secret, output };
        }
        // Only a refused code may be retried.
        output.assert_code(1).assert_stderr_has("invalid code");
        failures.push(output);
    }
    panic!("the setup code was refused three times: {failures:#?}");
}

/// Reads events until one matches `wanted`; fails after the deadline. Every event seen
/// is appended to `seen` (for messages).
fn wait_for_event(
    events: &mut Subscription,
    seen: &mut Vec<ClientEvent>,
    what: &str,
    wanted: impl Fn(&Event) -> bool,
) -> Event {
    let found = block_on(async {
        tokio::time::timeout(EVENT_DEADLINE, async {
            loop {
                match events.next_event().await {
                    Some(ClientEvent::Event(event)) if wanted(&event) => {
                        seen.push(ClientEvent::Event(event.clone()));
                        return Some(event);
                    }
                    Some(other) => seen.push(other),
                    None => return None,
                }
            }
        })
        .await
    });
    match found {
        Ok(Some(event)) => event,
        Ok(None) => panic!("the subscription ended before {what}; seen: {seen:#?}"),
        Err(_) => panic!("no {what} within {EVENT_DEADLINE:?}; seen: {seen:#?}"),
    }
}

/// As [`wait_for_event`], but an event already in `seen` counts too: for events whose
/// order among themselves is not specified.
fn seen_or_wait_for_event(
    events: &mut Subscription,
    seen: &mut Vec<ClientEvent>,
    what: &str,
    wanted: impl Fn(&Event) -> bool,
) -> Event {
    let earlier = seen.iter().find_map(|e| match e {
        ClientEvent::Event(event) if wanted(event) => Some(event.clone()),
        _ => None,
    });
    earlier.unwrap_or_else(|| wait_for_event(events, seen, what, wanted))
}

/// How long a test waits for one event (less than the harness's own deadline, so the
/// failure lists the events seen).
const EVENT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15);
