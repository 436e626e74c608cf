//! Brute force: the throttle (per username and per source, a growing delay, a lockout that
//! expires, the allow-list, `latch lockouts`), TOTP replay, and the MFA retry limit.
//!
//! `events.rs` already shows a username lockout announced, listed and cleared through the
//! CLI; these tests drive login flows through `latch-client`, which can give each attempt
//! a source address.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use latch_client::Client;
use latch_client::protocol::{ErrorCode, FlowState, FormInput, Handler, Sensitive};
use latch_tests::{Home, block_on, poll_until, totp, unix_now};

use super::{
    CLI_CLIENT_ID, OWNER_PASSWORD, OWNER_USERNAME, add_user, json, login, mfa_setup, onboard,
};

const ANNE_PASSWORD: &str = "anne's own password";
const WRONG_PASSWORD: &str = "a wrong password";

pub(super) fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

/// Starts a login flow with the `homeassistant` provider from `source`; returns its id.
pub(super) fn start(client: &Client, source: Option<IpAddr>) -> String {
    let state =
        block_on(client.login_start(Handler::new("homeassistant"), CLI_CLIENT_ID, None, source))
            .unwrap();
    match state {
        FlowState::Form(form) if form.step_id == "init" => form.flow_id,
        other => panic!("a login flow started with {other:?}"),
    }
}

/// Answers the current step of a flow.
pub(super) fn answer(
    client: &Client,
    flow_id: &str,
    fields: &[(&str, &str)],
    source: Option<IpAddr>,
) -> FlowState {
    let input: FormInput = fields
        .iter()
        .map(|(name, value)| ((*name).to_owned(), Sensitive::from(*value)))
        .collect();
    block_on(client.login_continue(flow_id, input, source)).unwrap()
}

/// A whole password attempt: a fresh flow from `source`, answered once.
pub(super) fn attempt(
    client: &Client,
    username: &str,
    password: &str,
    source: Option<IpAddr>,
) -> FlowState {
    let flow_id = start(client, source);
    answer(
        client,
        &flow_id,
        &[("username", username), ("password", password)],
        source,
    )
}

/// A flow state in a few words: `done`, `abort: REASON`, `form STEP: ERROR`.
pub(super) fn outcome(state: &FlowState) -> String {
    match state {
        FlowState::Done { .. } => "done".to_owned(),
        FlowState::Abort { reason, .. } => format!("abort: {reason}"),
        FlowState::Form(form) => {
            format!(
                "form {}: {}",
                form.step_id,
                form.error("base").unwrap_or("-")
            )
        }
    }
}

pub(super) const INVALID_AUTH: &str = "form init: invalid_auth";
pub(super) const LOCKED_OUT: &str = "abort: too_many_attempts";

/// `latch lockouts --json`.
fn lockouts(home: &Home) -> serde_json::Value {
    json(home.run(&["lockouts", "--json"], &[]).assert_code(0))
}

/// The entry of `key` in `latch lockouts --json`, if listed.
fn lockout(home: &Home, key: &str) -> Option<serde_json::Value> {
    lockouts(home)
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["key"] == key)
        .cloned()
}

fn is_locked(home: &Home, key: &str) -> bool {
    lockout(home, key).is_some_and(|l| l["locked_until"].is_string())
}

/// Three failures lock out, without delays before.
const LOCK_AFTER_THREE: &str =
    "[throttle]\ndelay_after = 100\nlockout_after = 3\nlockout_secs = 600\n";

#[test]
fn failures_lock_out_a_username_from_any_source_and_a_source_for_any_username() {
    let home = Home::with_config(LOCK_AFTER_THREE);
    let _daemon = home.start();
    onboard(&home);
    add_user(&home, "Anne", "anne", ANNE_PASSWORD);
    let client = home.client();

    // Per username: one guess each from three addresses locks Anne's username out...
    for source in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        let state = attempt(&client, "anne", WRONG_PASSWORD, ip(source));
        assert_eq!(outcome(&state), INVALID_AUTH, "from {source}");
    }
    // ...for every address, even with her password; the owner still logs in from there.
    let fourth = ip("203.0.113.4");
    let state = attempt(&client, "anne", ANNE_PASSWORD, fourth);
    assert_eq!(outcome(&state), LOCKED_OUT);
    let state = attempt(&client, OWNER_USERNAME, OWNER_PASSWORD, fourth);
    assert_eq!(outcome(&state), "done");
    let listed = lockout(&home, "username:anne").unwrap();
    assert_eq!(listed["kind"], "username", "{listed:#}");
    assert!(listed["locked_until"].is_string(), "{listed:#}");
    let source = lockout(&home, "source:203.0.113.1").unwrap();
    assert_eq!(source["failures"], 1, "{source:#}");
    assert!(source["locked_until"].is_null(), "{source:#}");

    // Per source: three usernames guessed from one address lock that address out, for
    // every username; the same people still log in from elsewhere.
    let attacker = ip("198.51.100.7");
    for guess in ["admin", "root", "homeassistant"] {
        let state = attempt(&client, guess, WRONG_PASSWORD, attacker);
        assert_eq!(outcome(&state), INVALID_AUTH, "{guess}");
    }
    let state = attempt(&client, OWNER_USERNAME, OWNER_PASSWORD, attacker);
    assert_eq!(outcome(&state), LOCKED_OUT);
    let state = attempt(&client, OWNER_USERNAME, OWNER_PASSWORD, ip("198.51.100.8"));
    assert_eq!(outcome(&state), "done");
    let listed = lockout(&home, "source:198.51.100.7").unwrap();
    assert_eq!(listed["kind"], "source", "{listed:#}");
    assert_eq!(listed["value"], "198.51.100.7", "{listed:#}");
    assert!(listed["locked_until"].is_string(), "{listed:#}");
    assert!(!is_locked(&home, "username:admin"));
    // The table names both lockouts too.
    home.run(&["lockouts"], &[])
        .assert_code(0)
        .assert_stdout_has("username:anne")
        .assert_stdout_has("source:198.51.100.7");

    // Clearing the source lifts that lockout only.
    home.run(&["lockouts", "--clear", "source:198.51.100.7"], &[])
        .assert_code(0)
        .assert_stdout_has("cleared the lockout of source:198.51.100.7");
    assert!(lockout(&home, "source:198.51.100.7").is_none());
    let state = attempt(&client, OWNER_USERNAME, OWNER_PASSWORD, attacker);
    assert_eq!(outcome(&state), "done");
    let state = attempt(&client, "anne", ANNE_PASSWORD, fourth);
    assert_eq!(outcome(&state), LOCKED_OUT);
    // A bare username names the username's lockout.
    home.run(&["lockouts", "--clear", "anne"], &[])
        .assert_code(0);
    assert!(lockout(&home, "username:anne").is_none());
    let state = attempt(&client, "anne", ANNE_PASSWORD, fourth);
    assert_eq!(outcome(&state), "done");
}

#[test]
fn a_good_login_forgets_the_usernames_failures_not_the_sources() {
    let home = Home::with_config(LOCK_AFTER_THREE);
    let _daemon = home.start();
    onboard(&home);
    add_user(&home, "Anne", "anne", ANNE_PASSWORD);
    let client = home.client();
    let source = ip("192.0.2.50");

    for _ in 0..2 {
        let state = attempt(&client, "anne", WRONG_PASSWORD, source);
        assert_eq!(outcome(&state), INVALID_AUTH);
    }
    let state = attempt(&client, "anne", ANNE_PASSWORD, source);
    assert_eq!(outcome(&state), "done");
    assert!(lockout(&home, "username:anne").is_none());
    assert_eq!(lockout(&home, "source:192.0.2.50").unwrap()["failures"], 2);
    // One more failure from that address, with any username, is its third.
    let state = attempt(&client, OWNER_USERNAME, WRONG_PASSWORD, source);
    assert_eq!(outcome(&state), INVALID_AUTH);
    assert!(is_locked(&home, "source:192.0.2.50"));
    assert!(!is_locked(&home, &format!("username:{OWNER_USERNAME}")));
    let state = attempt(&client, "anne", ANNE_PASSWORD, source);
    assert_eq!(outcome(&state), LOCKED_OUT);
}

#[test]
fn a_lockout_expires_after_its_duration() {
    const LOCKOUT: Duration = Duration::from_secs(2);
    let home =
        Home::with_config("[throttle]\ndelay_after = 100\nlockout_after = 2\nlockout_secs = 2\n");
    let _daemon = home.start();
    onboard(&home);
    add_user(&home, "Anne", "anne", ANNE_PASSWORD);
    let client = home.client();
    let source = ip("192.0.2.1");

    let state = attempt(&client, "anne", WRONG_PASSWORD, source);
    assert_eq!(outcome(&state), INVALID_AUTH);
    let state = attempt(&client, "anne", WRONG_PASSWORD, source);
    let locked_at = Instant::now();
    assert_eq!(outcome(&state), INVALID_AUTH);
    let state = attempt(&client, "anne", ANNE_PASSWORD, source);
    assert_eq!(outcome(&state), LOCKED_OUT);
    assert!(is_locked(&home, "username:anne") && is_locked(&home, "source:192.0.2.1"));

    // Refused attempts do not prolong it: the daemon is asked until it lets Anne in.
    poll_until("the lockout to expire", || {
        std::thread::sleep(Duration::from_millis(100));
        let state = attempt(&client, "anne", ANNE_PASSWORD, source);
        match outcome(&state).as_str() {
            "done" => Some(()),
            LOCKED_OUT => None,
            other => panic!("while locked out: {other}"),
        }
    });
    let waited = locked_at.elapsed();
    assert!(
        waited >= LOCKOUT - Duration::from_millis(500),
        "let in after {waited:?}, the lockout lasts {LOCKOUT:?}"
    );
    assert!(!is_locked(&home, "username:anne") && !is_locked(&home, "source:192.0.2.1"));
    // The count started afresh at the lockout: one failure now locks nothing.
    let state = attempt(&client, "anne", WRONG_PASSWORD, source);
    assert_eq!(outcome(&state), INVALID_AUTH);
    let state = attempt(&client, "anne", ANNE_PASSWORD, source);
    assert_eq!(outcome(&state), "done");
}

#[test]
fn the_delay_doubles_with_each_failure_up_to_its_cap() {
    // After the first failure every attempt waits 50 ms, 100, 200, 400, then 800 (the
    // cap) each time; a lockout never comes.
    let home = Home::with_config(
        "[throttle]\ndelay_after = 1\nbase_delay_ms = 50\nmax_delay_ms = 800\n\
         lockout_after = 100\n",
    );
    let _daemon = home.start();
    onboard(&home);
    add_user(&home, "Anne", "anne", ANNE_PASSWORD);
    let client = home.client();
    let source = ip("192.0.2.9");

    // One flow takes every guess (a wrong password leaves it open).
    let flow_id = start(&client, source);
    let mut took = Vec::new();
    for _ in 0..9 {
        let t = Instant::now();
        let state = answer(
            &client,
            &flow_id,
            &[("username", "anne"), ("password", WRONG_PASSWORD)],
            source,
        );
        took.push(t.elapsed());
        assert_eq!(outcome(&state), INVALID_AUTH);
    }
    // Attempt i (from 0) follows i failures: no wait for the first, then the doubling.
    let expected_ms = [0, 50, 100, 200, 400, 800, 800, 800, 800];
    for (i, (took, ms)) in took.iter().zip(expected_ms).enumerate() {
        assert!(
            *took >= Duration::from_millis(ms),
            "attempt {i} took {took:?}, less than its {ms} ms delay: {took:?}"
        );
    }
    // Growing, not flat: the second attempt waited far less than the cap. Capped: the
    // ninth did not wait the 6.4 s that doubling would reach.
    assert!(took[1] < Duration::from_millis(500), "{took:?}");
    assert!(took[8] < Duration::from_secs(3), "{took:?}");

    // A delay is not a refusal: Anne's password still works (after the wait), and her
    // username's count is then forgotten; the source's is not.
    let state = attempt(&client, "anne", ANNE_PASSWORD, source);
    assert_eq!(outcome(&state), "done");
    assert!(lockout(&home, "username:anne").is_none());
    let listed = lockout(&home, "source:192.0.2.9").unwrap();
    assert_eq!(listed["failures"], 9, "{listed:#}");
    assert!(listed["locked_until"].is_null(), "{listed:#}");
}

#[test]
fn an_allow_listed_source_is_never_throttled() {
    let home = Home::with_config(&format!("{LOCK_AFTER_THREE}allow = [\"192.168.1.0/24\"]\n"));
    let _daemon = home.start();
    onboard(&home);
    add_user(&home, "Anne", "anne", ANNE_PASSWORD);
    let client = home.client();
    let lan = ip("192.168.1.20");

    // From the household LAN, failures are not even counted.
    for _ in 0..5 {
        let state = attempt(&client, "anne", WRONG_PASSWORD, lan);
        assert_eq!(outcome(&state), INVALID_AUTH);
    }
    assert_eq!(lockouts(&home), serde_json::json!([]));
    let state = attempt(&client, "anne", ANNE_PASSWORD, lan);
    assert_eq!(outcome(&state), "done");

    // From outside, three lock her username and that address out...
    let outside = ip("10.0.0.9");
    for _ in 0..3 {
        let state = attempt(&client, "anne", WRONG_PASSWORD, outside);
        assert_eq!(outcome(&state), INVALID_AUTH);
    }
    assert!(is_locked(&home, "username:anne") && is_locked(&home, "source:10.0.0.9"));
    let state = attempt(&client, "anne", ANNE_PASSWORD, outside);
    assert_eq!(outcome(&state), LOCKED_OUT);
    let state = attempt(&client, "anne", ANNE_PASSWORD, None);
    assert_eq!(outcome(&state), LOCKED_OUT);
    // ...but not from the LAN, written as IPv4 or as IPv4-mapped IPv6.
    let state = attempt(&client, "anne", ANNE_PASSWORD, lan);
    assert_eq!(outcome(&state), "done");
    let state = attempt(&client, "anne", ANNE_PASSWORD, ip("::ffff:192.168.1.21"));
    assert_eq!(outcome(&state), "done");

    // The mapped spelling of the outside address names its lockout, too.
    home.run(&["lockouts", "--clear", "source:::ffff:10.0.0.9"], &[])
        .assert_code(0);
    assert!(lockout(&home, "source:10.0.0.9").is_none());
    let state = attempt(&client, OWNER_USERNAME, OWNER_PASSWORD, outside);
    assert_eq!(outcome(&state), "done");
}

/// A six-digit code that is none of `secret`'s codes around now.
fn wrong_code(secret: &str) -> String {
    let now = unix_now();
    let near: Vec<String> = (0..=4)
        .map(|k| totp::code_at(secret, (now + k * 30).saturating_sub(60)))
        .collect();
    ["000000", "111111", "222222"]
        .into_iter()
        .find(|c| !near.iter().any(|n| n == c))
        .unwrap()
        .to_owned()
}

/// Starts a login flow for Anne and gives her password; returns the flow at its `mfa`
/// step.
fn at_mfa_step(client: &Client) -> String {
    let flow_id = start(client, None);
    let state = answer(
        client,
        &flow_id,
        &[("username", "anne"), ("password", ANNE_PASSWORD)],
        None,
    );
    assert_eq!(outcome(&state), "form mfa: -");
    flow_id
}

#[test]
fn a_totp_code_is_accepted_once() {
    let home = Home::new();
    let _daemon = home.start();
    onboard(&home);
    add_user(&home, "Anne", "anne", ANNE_PASSWORD);
    let secret = mfa_setup(&home, "anne").secret;
    let client = home.client();

    // Two logins race with the same code (the next step's, so not the one the setup
    // used): exactly one gets in; the other is told the code was used already and may
    // retry with the next one.
    let first = at_mfa_step(&client);
    let second = at_mfa_step(&client);
    let used_at = unix_now() + 30;
    let code = totp::code_at(&secret, used_at);
    let (a, b) = block_on(async {
        let input = || vec![("code".to_owned(), Sensitive::from(code.as_str()))];
        tokio::join!(
            client.login_continue(&first, input(), None),
            client.login_continue(&second, input(), None),
        )
    });
    let mut outcomes = [outcome(&a.unwrap()), outcome(&b.unwrap())];
    outcomes.sort();
    assert_eq!(outcomes, ["done", "form mfa: code_already_used"]);

    // The same code is refused afterwards, through the CLI too, and so is an earlier
    // step's code that would still be inside the window.
    home.run(&["login", "anne"], &[ANNE_PASSWORD, &code])
        .assert_code(1)
        .assert_stderr_has("that code was already used");
    let earlier = totp::code_at(&secret, used_at - 30);
    let flow_id = at_mfa_step(&client);
    let state = answer(&client, &flow_id, &[("code", &earlier)], None);
    assert_eq!(outcome(&state), "form mfa: code_already_used");
}

#[test]
fn the_mfa_retry_limit_ends_the_flow() {
    // Without the throttle, so only the module's limit of 5 wrong codes is at work.
    let home = Home::with_config("[throttle]\nenabled = false\n");
    let _daemon = home.start();
    onboard(&home);
    add_user(&home, "Anne", "anne", ANNE_PASSWORD);
    let secret = mfa_setup(&home, "anne").secret;
    let client = home.client();
    let wrong = wrong_code(&secret);

    let flow_id = at_mfa_step(&client);
    for n in 1..5 {
        let state = answer(&client, &flow_id, &[("code", &wrong)], None);
        assert_eq!(outcome(&state), "form mfa: invalid_code", "wrong code {n}");
    }
    let state = answer(&client, &flow_id, &[("code", &wrong)], None);
    assert_eq!(outcome(&state), "abort: too_many_retry");
    // The flow is gone: not even the right code continues it.
    let right = vec![(
        "code".to_owned(),
        Sensitive::from(totp::code_at(&secret, unix_now() + 30)),
    )];
    let err = block_on(client.login_continue(&flow_id, right, None)).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::FlowNotFound), "{err}");
    // The limit is the flow's, not a lockout: a new login with a right code gets in.
    login(
        &home,
        "anne",
        &[ANNE_PASSWORD, &totp::code_at(&secret, unix_now() + 30)],
    );
}

/// A person's own password change through latchd: wrong current passwords count as
/// failed logins (by username and by source), fire `login_failed` into the audit log,
/// and lock out with `too_many_attempts`; a local-only user is refused from a remote
/// address; the request without an address is refused for a local-only user too.
#[test]
fn changing_ones_own_password_is_throttled_like_a_login() {
    let home = Home::with_config(LOCK_AFTER_THREE);
    let _daemon = home.start();
    onboard(&home);
    let anne = add_user(&home, "Anne", "anne", ANNE_PASSWORD);
    let client = home.client();
    let from = ip("203.0.113.20");
    let FlowState::Done { tokens, .. } = attempt(&client, "anne", ANNE_PASSWORD, from) else {
        panic!("anne could not log in")
    };
    let access = tokens.access_token.expose().to_owned();
    let change = |current: &str, source: Option<IpAddr>| {
        block_on(client.change_own_password_from(&access, current, "anne's next password", source))
    };

    for _ in 0..3 {
        let err = change(WRONG_PASSWORD, from).unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::InvalidAuth), "{err}");
    }
    let err = change(ANNE_PASSWORD, from).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TooManyAttempts), "{err}");
    assert!(is_locked(&home, "username:anne"));
    assert!(is_locked(&home, "source:203.0.113.20"));
    // The same lockout refuses a login with her password.
    let state = attempt(&client, "anne", ANNE_PASSWORD, ip("203.0.113.21"));
    assert_eq!(outcome(&state), LOCKED_OUT);
    let audit = std::fs::read_to_string(home.join("audit.log")).unwrap();
    let failed: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["event"] == "login_failed" && l["username"] == "anne")
        .collect();
    assert_eq!(
        failed
            .iter()
            .filter(|l| l["reason"] == "invalid_auth" && l["source"] == "203.0.113.20")
            .count(),
        3,
        "{audit}"
    );
    assert!(
        failed.iter().any(|l| l["reason"] == "too_many_attempts"),
        "{audit}"
    );

    home.run(&["lockouts", "--clear", "username:anne"], &[])
        .assert_code(0);
    home.run(&["lockouts", "--clear", "source:203.0.113.20"], &[])
        .assert_code(0);
    // Local-only: refused from a remote address and from none, before any check.
    block_on(client.update_user(
        &anne,
        latch_client::UserUpdate {
            local_only: Some(true),
            ..latch_client::UserUpdate::default()
        },
    ))
    .unwrap();
    let err = change(ANNE_PASSWORD, ip("8.8.8.8")).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
    let err = block_on(client.change_own_password(&access, ANNE_PASSWORD, "x y z")).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
    assert!(
        lockout(&home, "username:anne").is_none(),
        "nothing was counted"
    );
    // From the machine itself it works, and the new password logs in.
    change(ANNE_PASSWORD, ip("127.0.0.1")).unwrap();
    let state = attempt(&client, "anne", "anne's next password", ip("127.0.0.1"));
    assert_eq!(outcome(&state), "done");
}
