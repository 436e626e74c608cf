//! The operator's flows through `latch`: onboarding, users and passwords, TOTP, tokens,
//! deactivation.

use latch_client::ClientError;
use latch_client::protocol::{ErrorCode, TokenType};
use latch_tests::{Home, block_on, totp, unix_now};

use super::{
    CLI_CLIENT_ID, OWNER_PASSWORD, OWNER_USERNAME, add_user, is_recovery_code, json, login,
    mfa_setup, onboard, user_id,
};

const ANNE_PASSWORD: &str = "anne's own password";

/// The daemon refused the token as invalid.
fn is_invalid_token<T: std::fmt::Debug>(result: &Result<T, ClientError>) -> bool {
    matches!(
        result,
        Err(ClientError::Api {
            code: ErrorCode::InvalidToken,
            ..
        })
    )
}

#[test]
fn onboarding_a_user_and_a_password_login() {
    let home = Home::new();
    let _daemon = home.start();

    let status = json(home.run(&["status", "--json"], &[]).assert_code(0));
    assert_eq!(status["onboarded"], false, "{status:#}");

    // Every prompt answered on stdin, one line each.
    let owner_id = onboard(&home);
    let status = json(home.run(&["status", "--json"], &[]).assert_code(0));
    assert_eq!(status["onboarded"], true, "{status:#}");

    // A user without a login, then its password (asked twice).
    home.run(&["user", "add", "Anne"], &[])
        .assert_code(0)
        .assert_stdout_has("added user Anne");
    home.run(
        &["password", "set", "Anne", "--username", "anne"],
        &[ANNE_PASSWORD, ANNE_PASSWORD],
    )
    .assert_code(0)
    .assert_stdout_has("password set for Anne (username anne)");
    let anne_id = user_id(&home, "anne");
    assert_ne!(anne_id, owner_id);

    // The daemon agrees, as a client of the socket sees it.
    let client = home.client();
    let users = block_on(client.list_users()).unwrap();
    assert_eq!(users.len(), 2, "{users:#?}");
    let owner = users.iter().find(|u| u.id == owner_id).unwrap();
    assert!(owner.is_owner && owner.is_admin && owner.is_active);
    assert_eq!(owner.username.as_deref(), Some(OWNER_USERNAME));
    let anne = users.iter().find(|u| u.id == anne_id).unwrap();
    assert!(!anne.is_owner && anne.is_active);
    assert_eq!(anne.group_ids, ["system-users"]);
    assert_eq!(anne.username.as_deref(), Some("anne"));

    // The password logs in (the prompt reads stdin); usernames ignore case.
    let run = home.run(&["login", "anne"], &[ANNE_PASSWORD]);
    run.assert_code(0).assert_stdout_has("logged in as Anne");
    assert!(
        !run.output().contains(ANNE_PASSWORD),
        "the password is echoed"
    );
    home.run(&["login", "ANNE"], &[ANNE_PASSWORD])
        .assert_code(0)
        .assert_stdout_has(&anne_id);
    home.run(
        &["login", OWNER_USERNAME, "--password-stdin"],
        &[OWNER_PASSWORD],
    )
    .assert_code(0)
    .assert_stdout_has("logged in as Paulus");

    // A wrong password, another user's password, a wrong case: refused with exit 1.
    for wrong in ["not the password", OWNER_PASSWORD, "ANNE'S OWN PASSWORD"] {
        home.run(&["login", "anne"], &[wrong])
            .assert_code(1)
            .assert_stderr_has("wrong username or password");
    }
    home.run(&["login", "nobody"], &[ANNE_PASSWORD])
        .assert_code(1)
        .assert_stderr_has("wrong username or password");
    // Still nobody logged in more than the three successes.
    let tokens = json(
        home.run(&["token", "list", "anne", "--json"], &[])
            .assert_code(0),
    );
    assert_eq!(tokens.as_array().unwrap().len(), 2, "{tokens:#}");
}

#[test]
fn totp_enrolment_then_the_login_asks_for_a_code() {
    let home = Home::new();
    let _daemon = home.start();
    onboard(&home);
    let anne_id = add_user(&home, "Anne", "anne", ANNE_PASSWORD);

    let enrolment = mfa_setup(&home, "anne");
    let shown = &enrolment.output.stdout;
    assert!(shown.contains("otpauth://totp/"), "{shown}");
    assert!(shown.contains('█'), "a QR code is drawn:\n{shown}");
    assert_eq!(enrolment.secret.len(), 32, "{}", enrolment.secret);
    assert!(shown.contains("ONLY NOW"), "{shown}");
    let recovery = enrolment.recovery_codes();
    assert_eq!(recovery.len(), 10, "{shown}");

    // The codes are shown once: nothing the daemon answers later carries them.
    let users = home
        .run(&["user", "list", "--json"], &[])
        .assert_code(0)
        .stdout
        .clone();
    let anne = home
        .run(&["user", "list"], &[])
        .assert_code(0)
        .stdout
        .clone();
    for code in &recovery {
        assert!(!users.contains(code.as_str()) && !anne.contains(code.as_str()));
    }
    let listed = json(home.run(&["user", "list", "--json"], &[]).assert_code(0));
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == anne_id.as_str())
        .unwrap();
    assert_eq!(entry["mfa_modules"], serde_json::json!(["totp"]));

    // The password alone is no longer enough: the login asks for the code next. The
    // setup used the current step, and a used step is refused, so answer the next one.
    let code = totp::code_at(&enrolment.secret, unix_now() + 30);
    let run = home.run(&["login", "anne"], &[ANNE_PASSWORD, &code]);
    run.assert_code(0).assert_stdout_has("logged in as Anne");
    assert!(!run.output().contains(&enrolment.secret));

    // A wrong code is refused; without a code the login cannot finish.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    home.run(&["login", "anne"], &[ANNE_PASSWORD, wrong])
        .assert_code(1)
        .assert_stderr_has("wrong code");
    let run = home.run(&["login", "anne"], &[ANNE_PASSWORD]);
    assert_ne!(run.code, Some(0), "{run:?}");

    // A recovery code stands in for the code, once.
    let spare = &recovery[0];
    assert!(is_recovery_code(spare));
    home.run(&["login", "anne"], &[ANNE_PASSWORD, spare])
        .assert_code(0)
        .assert_stdout_has("logged in as Anne");
    home.run(&["login", "anne"], &[ANNE_PASSWORD, spare])
        .assert_code(1)
        .assert_stderr_has("wrong code");
}

#[test]
fn tokens_validate_refresh_and_revoke_through_the_cli_and_the_client() {
    let home = Home::new();
    let _daemon = home.start();
    let owner_id = onboard(&home);
    let client = home.client();

    let tokens = login(&home, OWNER_USERNAME, &[OWNER_PASSWORD]);
    assert_eq!(tokens.user_id, owner_id);
    assert_eq!(tokens.refresh.len(), 128, "HA's token_hex(64)");

    // The access token validates, through the CLI (exit 0) and the client.
    home.run(&["token", "validate", &tokens.access], &[])
        .assert_code(0)
        .assert_stdout_has("valid: user Paulus");
    let valid = block_on(client.validate_token(&tokens.access)).unwrap();
    assert_eq!(valid.user.id, owner_id);
    assert_eq!(valid.refresh_token_id, tokens.refresh_id);
    assert_eq!(valid.token_type, TokenType::Normal);

    // Refreshing gives new access tokens that validate too.
    let run = home.run(
        &["token", "refresh", "-", "--client-id", CLI_CLIENT_ID],
        &[&tokens.refresh],
    );
    run.assert_code(0);
    let refreshed = run.stdout.trim().to_owned();
    assert!(refreshed.split('.').count() == 3, "a JWT: {refreshed}");
    home.run(&["token", "validate", "-"], &[&refreshed])
        .assert_code(0);
    let by_client = block_on(client.refresh(&tokens.refresh, Some(CLI_CLIENT_ID), None)).unwrap();
    let valid = block_on(client.validate_token(by_client.access_token.expose())).unwrap();
    assert_eq!(valid.refresh_token_id, tokens.refresh_id);

    // Garbage and a tampered signature are refused with exit 1.
    home.run(&["token", "validate", "not.a.token"], &[])
        .assert_code(1);
    let mut tampered = tokens.access.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    home.run(&["token", "validate", &tampered], &[])
        .assert_code(1);

    // Revoking the refresh token (by value) kills every access token minted from it.
    home.run(&["token", "revoke", "--token", "-"], &[&tokens.refresh])
        .assert_code(0);
    for access in [&tokens.access, &refreshed] {
        home.run(&["token", "validate", access], &[])
            .assert_code(1)
            .assert_stdout_has("invalid");
    }
    assert!(is_invalid_token(&block_on(
        client.validate_token(by_client.access_token.expose())
    )));
    assert!(is_invalid_token(&block_on(client.refresh(
        &tokens.refresh,
        Some(CLI_CLIENT_ID),
        None
    ))));
    home.run(
        &["token", "refresh", "-", "--client-id", CLI_CLIENT_ID],
        &[&tokens.refresh],
    )
    .assert_code(1);
    let listed = json(
        home.run(&["token", "list", "paulus", "--json"], &[])
            .assert_code(0),
    );
    assert!(
        !listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == tokens.refresh_id.as_str()),
        "{listed:#}"
    );
    // By id, too: a second session, revoked through the client.
    let second = login(&home, OWNER_USERNAME, &[OWNER_PASSWORD]);
    home.run(&["token", "validate", &second.access], &[])
        .assert_code(0);
    block_on(client.revoke_by_id(&second.refresh_id)).unwrap();
    home.run(&["token", "validate", &second.access], &[])
        .assert_code(1);
}

#[test]
fn a_deactivated_user_has_its_tokens_and_logins_refused() {
    let home = Home::new();
    let _daemon = home.start();
    onboard(&home);
    let anne_id = add_user(&home, "Anne", "anne", ANNE_PASSWORD);
    let client = home.client();

    let session = login(&home, "anne", &[ANNE_PASSWORD]);
    let run = home.run(
        &[
            "token",
            "create-long-lived",
            "anne",
            "--name",
            "dashboard",
            "--days",
            "30",
        ],
        &[],
    );
    run.assert_code(0);
    let long_lived = run.stdout.trim().to_owned();
    let owner = login(&home, OWNER_USERNAME, &[OWNER_PASSWORD]);
    for access in [&session.access, &long_lived, &owner.access] {
        home.run(&["token", "validate", access], &[]).assert_code(0);
    }

    home.run(&["user", "deactivate", "anne"], &[])
        .assert_code(0)
        .assert_stdout_has("deactivated user Anne");
    let anne = block_on(client.get_user(&anne_id)).unwrap();
    assert!(!anne.is_active);

    // Every token of hers is refused, through the CLI and the client; refreshing fails.
    for access in [&session.access, &long_lived] {
        home.run(&["token", "validate", access], &[]).assert_code(1);
        assert!(is_invalid_token(&block_on(client.validate_token(access))));
    }
    home.run(
        &["token", "refresh", "-", "--client-id", CLI_CLIENT_ID],
        &[&session.refresh],
    )
    .assert_code(1);
    // She cannot log in; the owner is not affected.
    home.run(&["login", "anne"], &[ANNE_PASSWORD])
        .assert_code(1);
    home.run(&["token", "validate", &owner.access], &[])
        .assert_code(0);

    // Activating her again lets her log in, but her old tokens stay revoked.
    home.run(&["user", "activate", "anne"], &[]).assert_code(0);
    for access in [&session.access, &long_lived] {
        home.run(&["token", "validate", access], &[]).assert_code(1);
    }
    let again = login(&home, "anne", &[ANNE_PASSWORD]);
    home.run(&["token", "validate", &again.access], &[])
        .assert_code(0);
}
