//! The README's five-minute walk-through, command for command, on the default
//! configuration: the home comes from `LATCH_HOME`, as the README sets it.
//!
//! ```sh
//! export LATCH_HOME="$(mktemp -d)"
//! latchd &
//! latch status
//! latch onboard                          # Paulus, paulus, password twice
//! latch user add Anne --username anne    # password twice
//! latch mfa setup anne                   # scan the QR code, type the code
//! latch login anne --show-tokens         # password, then a code
//! latch token validate <access token>
//! kill %1
//! ```

use latch_tests::{Home, run, totp, unix_now};

const OWNER_PASSWORD: &str = "correct horse battery staple";
const ANNE_PASSWORD: &str = "anne's secret password";

#[test]
fn the_readme_walk_through_works_as_written() {
    // No latch.toml: the built-in defaults (bcrypt cost 12, as Home Assistant's).
    let home = Home::empty();
    let latchd = home.start_from_env();
    let latch = |args: &[&str], stdin: &[&str]| run(home.latch_from_env(args), stdin);

    latch(&["status"], &[])
        .assert_code(0)
        .assert_stdout_has("running")
        .assert_stdout_has("run `latch onboard`");

    latch(
        &["onboard"],
        &["Paulus", "paulus", OWNER_PASSWORD, OWNER_PASSWORD],
    )
    .assert_code(0)
    .assert_stdout_has("onboarded: Paulus is the owner (username paulus");

    latch(
        &["user", "add", "Anne", "--username", "anne"],
        &[ANNE_PASSWORD, ANNE_PASSWORD],
    )
    .assert_code(0)
    .assert_stdout_has("added user Anne")
    .assert_stdout_has("username anne");

    // The code shown by the authenticator app: here computed from the URI's secret.
    let mut attempts = Vec::new();
    let secret = loop {
        let mut setup =
            latch_tests::Interactive::spawn(home.latch_from_env(&["mfa", "setup", "anne"]));
        let secret = setup.read_until(latch_tests::otpauth_secret);
        setup.write_line(&totp::code_at(&secret, unix_now()));
        let done = setup.finish();
        if done.code == Some(0) {
            done.assert_stdout_has("totp is now enabled for Anne")
                .assert_stdout_has("Recovery codes");
            break secret;
        }
        // A code typed just as its 30 s step ended: set up again.
        done.assert_code(1).assert_stderr_has("invalid code");
        attempts.push(done);
        assert!(attempts.len() < 3, "{attempts:#?}");
    };

    let login = latch(
        &["login", "anne", "--show-tokens"],
        &[ANNE_PASSWORD, &totp::code_at(&secret, unix_now() + 30)],
    );
    login
        .assert_code(0)
        .assert_stdout_has("logged in as Anne")
        .assert_stdout_has("refresh token:");
    let access = login
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("access token:"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no access token in\n{}", login.stdout));

    latch(&["token", "validate", access], &[])
        .assert_code(0)
        .assert_stdout_has("valid: user Anne");

    latchd.stop();
    // With the daemon gone, the CLI says how to start it.
    latch(&["status"], &[])
        .assert_code(3)
        .assert_stderr_has("latchd is not running");
}
