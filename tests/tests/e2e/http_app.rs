//! An app signs in through latch-http as it would through Home Assistant, with nothing
//! but a plain HTTP client: the sign-in page (password, a wrong and a right TOTP code,
//! errors in place), the redirect with `code` and `state`, PKCE, the code exchange, a
//! refresh, a refresh with the wrong client, revocation. Trusted networks sign a LAN
//! address in and refuse the same token from outside; the throttle counts the address
//! latch-http saw behind the proxy.

use latch_client::protocol::LockoutKey;
use latch_tests::{Home, block_on};
use serde_json::json;

use super::http_support::{
    Answer, CLIENT_ID, Http, LAN, PASSWORD, REDIRECT_URI, REMOTE, ha_like_config, ha_like_home,
    ha_users, next_totp, url_encode, wrong_totp, xff,
};

/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const STATE: &str = "s t&=/ä";

/// The value of the hidden input `name` in a page.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in the page:\n{page}"))
        + marker.len();
    let end = page[start..].find('"').unwrap() + start;
    page[start..end].to_owned()
}

/// The authorization request's parameters, as the app sends them.
fn auth_params(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT_URI),
        ("state", STATE),
    ];
    params.extend_from_slice(extra);
    params
}

/// Posts a step of the page: the carried parameters, the flow id and the fields.
fn post_step(
    http: &Http,
    params: &[(&str, &str)],
    flow_id: &str,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Answer {
    let mut form: Vec<(&str, &str)> = params.to_vec();
    form.push(("flow_id", flow_id));
    form.extend_from_slice(fields);
    http.post_form("/auth/authorize", &form, headers)
}

/// The `code` and `state` of a redirect to the app.
fn returned(answer: &Answer) -> (String, String) {
    assert_eq!(answer.status, 303, "{}", answer.text());
    let location = answer.header("location").unwrap();
    let url = reqwest::Url::parse(location).unwrap();
    assert_eq!(
        format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap(),
            url.path()
        ),
        REDIRECT_URI
    );
    let pairs: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    (pairs["code"].clone(), pairs["state"].clone())
}

/// A code for the owner through the JSON API, without PKCE.
fn code_for_owner(http: &Http) -> String {
    let started = http.post_json(
        "/auth/login_flow",
        &json!({"client_id": CLIENT_ID, "handler": ["homeassistant", null], "redirect_uri": REDIRECT_URI}),
        &[],
    );
    let flow_id = started.json()["flow_id"].as_str().unwrap().to_owned();
    let entry = http.post_json(
        &format!("/auth/login_flow/{flow_id}"),
        &json!({"client_id": CLIENT_ID, "username": "paulus", "password": PASSWORD}),
        &[],
    );
    entry.json()["result"].as_str().unwrap().to_owned()
}

#[test]
fn an_app_signs_in_with_totp_refreshes_and_revokes_over_plain_http() {
    let home = ha_like_home();
    let _daemon = home.start();
    let door = home.start_http(&[]);
    let http = Http::new(&door.base());
    let users = ha_users(&home.client());
    let secret = &users.anne_secret;

    // The app opens the sign-in page.
    let params = auth_params(&[
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]);
    let page = http.get(&format!("/auth/authorize?{}", url_encode(&params)), &[]);
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let csp = page.header("content-security-policy").unwrap();
    for directive in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self' https://example.com",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    let html = page.text();
    assert!(
        html.contains(r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#)
    );
    assert!(
        html.contains(r#"<label for="f_username">Username</label>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<label for="f_password">Password</label>"#),
        "{html}"
    );
    assert!(html.contains("example.com"), "the page names the app");
    assert!(!html.contains("<script"), "no script");
    let flow_id = hidden(&html, "flow_id");

    // A wrong password is shown in place; the flow goes on.
    let wrong = post_step(
        &http,
        &params,
        &flow_id,
        &[("f_username", "anne"), ("f_password", "nope")],
        &[],
    );
    assert_eq!(wrong.status, 200);
    assert!(
        wrong.text().contains("Wrong username or password."),
        "{}",
        wrong.text()
    );
    assert!(
        wrong.text().contains(r#"value="anne""#),
        "the username is kept"
    );
    assert!(!wrong.text().contains("nope"), "the password is not");
    // The password, then the authenticator step.
    let mfa = post_step(
        &http,
        &params,
        &flow_id,
        &[("f_username", "anne"), ("f_password", PASSWORD)],
        &[],
    );
    assert_eq!(mfa.status, 200, "{}", mfa.text());
    assert!(
        mfa.text().contains("Two-step verification"),
        "{}",
        mfa.text()
    );
    assert!(
        mfa.text()
            .contains("Enter the code from Authenticator app.")
    );
    assert!(mfa.text().contains(r#"autocomplete="one-time-code""#));
    let bad_code = post_step(
        &http,
        &params,
        &flow_id,
        &[("f_code", &wrong_totp(secret))],
        &[],
    );
    assert!(
        bad_code.text().contains("That code is not valid"),
        "{}",
        bad_code.text()
    );
    let done = post_step(
        &http,
        &params,
        &flow_id,
        &[("f_code", &next_totp(secret))],
        &[],
    );
    let (code, state) = returned(&done);
    assert_eq!(state, STATE);

    // The code is bound to its client (a wrong client does not use it up) and to the
    // PKCE verifier.
    let other_client = http.post_form(
        "/auth/token",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "https://other.example/app"),
            ("code", &code),
            ("code_verifier", VERIFIER),
        ],
        &[],
    );
    assert_eq!(
        (other_client.status, other_client.json()),
        (
            400,
            json!({"error": "invalid_request", "error_description": "Invalid code"})
        )
    );
    let tokens = http.post_form(
        "/auth/token",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("code", &code),
            ("code_verifier", VERIFIER),
        ],
        &[],
    );
    assert_eq!(tokens.status, 200, "{}", tokens.text());
    assert_eq!(tokens.header("cache-control"), Some("no-store"));
    let tokens = tokens.json();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["ha_auth_provider"], "homeassistant");
    assert_eq!(tokens["expires_in"], 1800);
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let client = home.client();
    let who = block_on(client.validate_token(tokens["access_token"].as_str().unwrap())).unwrap();
    assert_eq!(who.user.id, users.ids["anne"]);
    let reused = http.post_form(
        "/auth/token",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("code", &code),
            ("code_verifier", VERIFIER),
        ],
        &[],
    );
    assert_eq!(
        reused.json()["error_description"],
        "Invalid code",
        "a code works once"
    );

    // PKCE refusals, on codes of the owner (no second factor) through the JSON API.
    let pkce_code = || {
        let started = http.post_json(
            "/auth/login_flow",
            &json!({"client_id": CLIENT_ID, "handler": ["homeassistant", null],
                    "redirect_uri": REDIRECT_URI, "code_challenge": CHALLENGE,
                    "code_challenge_method": "S256"}),
            &[],
        );
        let flow_id = started.json()["flow_id"].as_str().unwrap().to_owned();
        let entry = http.post_json(
            &format!("/auth/login_flow/{flow_id}"),
            &json!({"client_id": CLIENT_ID, "username": "paulus", "password": PASSWORD}),
            &[],
        );
        entry.json()["result"].as_str().unwrap().to_owned()
    };
    let exchange = |code: &str, verifier: Option<&str>| {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("code", code),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v));
        }
        let answer = http.post_form("/auth/token", &form, &[]);
        (answer.status, answer.json())
    };
    assert_eq!(
        exchange(&pkce_code(), None),
        (
            400,
            json!({"error": "invalid_request", "error_description": "Code verifier required"})
        )
    );
    let wrong_verifier = VERIFIER.replace('d', "e");
    assert_eq!(
        exchange(&pkce_code(), Some(&wrong_verifier)),
        (
            400,
            json!({"error": "invalid_grant", "error_description": "Invalid code verifier"})
        )
    );
    let plain_code = code_for_owner(&http);
    assert_eq!(
        exchange(&plain_code, Some(VERIFIER)),
        (
            400,
            json!({"error": "invalid_request",
                     "error_description": "Code verifier provided but no code challenge was present"})
        )
    );
    let bad_method = http.post_json(
        "/auth/login_flow",
        &json!({"client_id": CLIENT_ID, "handler": ["homeassistant", null], "redirect_uri": REDIRECT_URI,
                "code_challenge": CHALLENGE, "code_challenge_method": "plain"}),
        &[],
    );
    assert_eq!(
        (bad_method.status, bad_method.json()),
        (400, json!({"message": "Transform algorithm not supported"}))
    );

    // Refresh: a new access token; the wrong client is refused.
    let refreshed = http.post_form(
        "/auth/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("refresh_token", &refresh),
        ],
        &[],
    );
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    let access = refreshed.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(block_on(client.validate_token(&access)).is_ok());
    let wrong_client = http.post_form(
        "/auth/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "https://other.example/app"),
            ("refresh_token", &refresh),
        ],
        &[],
    );
    assert_eq!(
        (wrong_client.status, wrong_client.json()),
        (400, json!({"error": "invalid_request"}))
    );

    // The refresh was recorded with the client's address.
    let tokens_of_anne = block_on(client.list_tokens(&users.ids["anne"])).unwrap();
    let session = tokens_of_anne
        .iter()
        .find(|t| t.client_id.as_deref() == Some(CLIENT_ID))
        .unwrap();
    assert_eq!(session.last_used_ip.as_deref(), Some("127.0.0.1"));

    // Revoke: the refresh token and its access tokens stop working.
    let revoked = http.post_form("/auth/revoke", &[("token", &refresh)], &[]);
    assert_eq!(revoked.status, 200);
    assert!(block_on(client.validate_token(&access)).is_err());
    let after = http.post_form(
        "/auth/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("refresh_token", &refresh),
        ],
        &[],
    );
    assert_eq!(
        (after.status, after.json()),
        (400, json!({"error": "invalid_grant"}))
    );
}

#[test]
fn trusted_networks_sign_a_lan_address_in_and_refuse_it_from_outside() {
    let home = ha_like_home();
    let _daemon = home.start();
    let door = home.start_http(&[]);
    let http = Http::new(&door.base());
    let users = ha_users(&home.client());

    // From the LAN (behind the trusted proxy), the page offers the trusted network.
    let params = auth_params(&[("provider", "trusted_networks")]);
    let page = http.get(
        &format!("/auth/authorize?{}", url_encode(&params)),
        &xff(LAN),
    );
    let html = page.text();
    assert_eq!(page.status, 200, "{html}");
    assert!(html.contains("Who are you?"), "{html}");
    let paulus = users.ids["paulus"].as_str();
    assert!(
        html.contains(&format!(r#"type="radio" name="f_user" value="{paulus}""#)),
        "{html}"
    );
    assert!(
        !html.contains(&users.ids["ina"]),
        "a deactivated user is not offered"
    );
    let flow_id = hidden(&html, "flow_id");
    let done = post_step(&http, &params, &flow_id, &[("f_user", paulus)], &xff(LAN));
    let (code, _) = returned(&done);
    let tokens = http.post_form(
        "/auth/token",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT_ID),
            ("code", &code),
        ],
        &xff(LAN),
    );
    assert_eq!(tokens.status, 200, "{}", tokens.text());
    assert_eq!(tokens.json()["ha_auth_provider"], "trusted_networks");
    let refresh = tokens.json()["refresh_token"].as_str().unwrap().to_owned();
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", CLIENT_ID),
        ("refresh_token", refresh.as_str()),
    ];
    assert_eq!(http.post_form("/auth/token", &form, &xff(LAN)).status, 200);
    // The same token from outside the network is refused by the provider.
    let outside = http.post_form("/auth/token", &form, &xff(REMOTE));
    assert_eq!(
        (outside.status, outside.json()),
        (
            403,
            json!({"error": "access_denied", "error_description": "Not in trusted_networks"})
        )
    );
    // And from outside, the page does not offer the trusted network at all.
    let page = http.get(
        &format!("/auth/authorize?{}", url_encode(&params)),
        &xff(REMOTE),
    );
    assert_eq!(page.status, 400);
    assert!(
        page.text().contains("not available from your network"),
        "{}",
        page.text()
    );
    let page = http.get(
        &format!("/auth/authorize?{}", url_encode(&auth_params(&[]))),
        &xff(REMOTE),
    );
    assert!(!page.text().contains("Trusted Networks"), "{}", page.text());
}

#[test]
fn the_throttle_counts_the_address_behind_the_proxy() {
    let home = Home::empty();
    let config = ha_like_config().replace(
        "[throttle]\nenabled = false\n",
        "[throttle]\nlockout_after = 3\ndelay_after = 100\nlockout_secs = 600\n",
    );
    home.write_config(&config);
    let _daemon = home.start();
    let door = home.start_http(&[]);
    let http = Http::new(&door.base());
    ha_users(&home.client());

    let attempt = |username: &str, from: &str| {
        let started = http.post_json(
            "/auth/login_flow",
            &json!({"client_id": CLIENT_ID, "handler": ["homeassistant", null], "redirect_uri": REDIRECT_URI}),
            &xff(from),
        );
        let flow_id = started.json()["flow_id"].as_str().unwrap().to_owned();
        http.post_json(
            &format!("/auth/login_flow/{flow_id}"),
            &json!({"client_id": CLIENT_ID, "username": username, "password": "wrong"}),
            &xff(from),
        )
        .json()
    };
    for name in ["a1", "a2", "a3"] {
        assert_eq!(attempt(name, REMOTE)["errors"]["base"], "invalid_auth");
    }
    let locked = attempt("a4", REMOTE);
    assert_eq!(
        (locked["type"].clone(), locked["reason"].clone()),
        (json!("abort"), json!("too_many_attempts"))
    );
    // Another address is not locked out.
    assert_eq!(attempt("a5", LAN)["errors"]["base"], "invalid_auth");
    let lockouts = block_on(home.client().list_lockouts()).unwrap();
    assert!(
        lockouts
            .iter()
            .any(|l| l.key == LockoutKey::Source(REMOTE.parse().unwrap())
                && l.locked_until.is_some()),
        "{lockouts:?}"
    );
}

/// README, "Signing in apps over HTTP": the curl walk-through, request for request.
#[test]
fn the_readme_http_walk_through_works_as_written() {
    let home = Home::new();
    let _daemon = home.start();
    let door = home.start_http(&[]);
    let http = Http::new(&door.base());
    let client = home.client();
    let secret = block_on(async {
        client.onboard("Paulus", "paulus", PASSWORD).await.unwrap();
        let anne = client
            .create_user(latch_client::NewUser::new("Anne"))
            .await
            .unwrap();
        client
            .add_password(&anne.id, "anne", PASSWORD)
            .await
            .unwrap();
        super::http_support::enrol_totp(&client, &anne.id, "totp").await
    });
    let app = format!("{}/", door.base());

    let providers = http.get("/auth/providers", &[]);
    assert_eq!(
        providers.json(),
        json!({"providers": [{"name": "Home Assistant Local", "id": null, "type": "homeassistant"}],
               "preselect_remember_me": true})
    );
    let flow = http.post_json(
        "/auth/login_flow",
        &json!({"client_id": app, "handler": ["homeassistant", null], "redirect_uri": app}),
        &[],
    );
    assert_eq!(
        (flow.json()["type"].clone(), flow.json()["step_id"].clone()),
        (json!("form"), json!("init"))
    );
    let flow_id = flow.json()["flow_id"].as_str().unwrap().to_owned();
    let path = format!("/auth/login_flow/{flow_id}");
    let mfa = http.post_json(
        &path,
        &json!({"client_id": app, "username": "anne", "password": PASSWORD}),
        &[],
    );
    assert_eq!(mfa.json()["step_id"], "mfa", "{}", mfa.text());
    let entry = http.post_json(
        &path,
        &json!({"client_id": app, "code": next_totp(&secret)}),
        &[],
    );
    assert_eq!(entry.json()["type"], "create_entry", "{}", entry.text());
    let code = entry.json()["result"].as_str().unwrap().to_owned();

    let tokens = http.post_form(
        "/auth/token",
        &[
            ("client_id", &app),
            ("grant_type", "authorization_code"),
            ("code", &code),
        ],
        &[],
    );
    let tokens = tokens.json();
    let mut keys: Vec<&str> = tokens
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "access_token",
            "expires_in",
            "ha_auth_provider",
            "refresh_token",
            "token_type"
        ]
    );
    assert_eq!(tokens["expires_in"], 1800);
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let refreshed = http.post_form(
        "/auth/token",
        &[
            ("client_id", &app),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
        ],
        &[],
    );
    let mut keys: Vec<String> = refreshed
        .json()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["access_token", "expires_in", "token_type"]);
    let revoked = http.post_form("/auth/revoke", &[("token", refresh)], &[]);
    assert_eq!((revoked.status, revoked.body.len()), (200, 0));
    // The README's "latch token list" sees no session of Anne's left.
    let users = block_on(client.list_users()).unwrap();
    let anne = users
        .iter()
        .find(|u| u.username.as_deref() == Some("anne"))
        .unwrap();
    assert!(block_on(client.list_tokens(&anne.id)).unwrap().is_empty());
}

/// The page takes a recovery code in place of the TOTP code, and refuses to send the
/// browser to a redirect URI the client does not own (no open redirect).
#[test]
fn the_page_takes_a_recovery_code_and_never_redirects_where_it_should_not() {
    let home = ha_like_home();
    let _daemon = home.start();
    let door = home.start_http(&[]);
    let http = Http::new(&door.base());
    let client = home.client();
    let codes = block_on(async {
        client.onboard("Paulus", "paulus", PASSWORD).await.unwrap();
        let anne = client
            .create_user(latch_client::NewUser::new("Anne"))
            .await
            .unwrap();
        client
            .add_password(&anne.id, "anne", PASSWORD)
            .await
            .unwrap();
        super::http_support::enrol_totp_with_codes(&client, &anne.id, "totp")
            .await
            .1
    });
    assert!(!codes.is_empty());

    let params = auth_params(&[]);
    let page = http.get(&format!("/auth/authorize?{}", url_encode(&params)), &[]);
    let flow_id = hidden(&page.text(), "flow_id");
    post_step(
        &http,
        &params,
        &flow_id,
        &[("f_username", "anne"), ("f_password", PASSWORD)],
        &[],
    );
    let done = post_step(&http, &params, &flow_id, &[("f_code", &codes[0])], &[]);
    let (code, state) = returned(&done);
    assert_eq!(state, STATE);
    assert_eq!(code.len(), 32);
    // A recovery code works once.
    let page = http.get(&format!("/auth/authorize?{}", url_encode(&params)), &[]);
    let flow_id = hidden(&page.text(), "flow_id");
    post_step(
        &http,
        &params,
        &flow_id,
        &[("f_username", "anne"), ("f_password", PASSWORD)],
        &[],
    );
    let again = post_step(&http, &params, &flow_id, &[("f_code", &codes[0])], &[]);
    assert_eq!(again.status, 200);
    assert!(
        again.text().contains("That code is not valid"),
        "{}",
        again.text()
    );

    // Another host as redirect_uri, not listed by the client: signed in, but refused,
    // and no Location anywhere.
    let evil = [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", "https://evil.example/steal"),
        ("state", "x"),
    ];
    let page = http.get(&format!("/auth/authorize?{}", url_encode(&evil)), &[]);
    assert_eq!(page.status, 200);
    let flow_id = hidden(&page.text(), "flow_id");
    let refused = post_step(
        &http,
        &evil,
        &flow_id,
        &[("f_username", "paulus"), ("f_password", PASSWORD)],
        &[],
    );
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(refused.header("location").is_none());
    assert!(
        refused.text().contains("redirect_uri"),
        "{}",
        refused.text()
    );
    // A client id that is not one: refused before any sign-in, never redirected.
    let bad = [
        ("client_id", "javascript:alert(1)"),
        ("redirect_uri", "javascript:alert(1)"),
    ];
    let page = http.get(&format!("/auth/authorize?{}", url_encode(&bad)), &[]);
    assert_eq!(page.status, 400);
    assert!(page.header("location").is_none());
    assert!(!page.text().contains("javascript:alert"), "{}", page.text());
}
