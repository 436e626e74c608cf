//! latch-http answers as Home Assistant 2024.3 answers: every case of
//! `crates/latch-http/tests/fixtures/home_assistant_2024_3.json`, sent in the order
//! `capture.py` sent it, to the real `latchd` and `latch-http`, and compared field for
//! field. Cases where latch-http answers differently on purpose say so and assert
//! latch-http's answer. (The two cases that need a clock moved forward, the MFA session
//! and an expired code, are compared by latch-http's own `tests/clock.rs` with an
//! injected clock; the choice between two MFA modules, which latch's single TOTP module
//! never offers, by the unit tests of latch-http's `ha_json`.)

use std::net::{IpAddr, TcpListener};

use serde_json::{Value, json};

use super::http_support::{
    Answer, CLIENT_ID, Http, LAN, LAN2, OTHER_CLIENT_ID, PASSWORD, Placeholders, REDIRECT_URI,
    REMOTE, assert_ha, ha_like_home, ha_users, next_totp, serve_page, wrong_totp, xff,
};

fn start_body(client_id: &str, handler: &str, redirect_uri: &str) -> Value {
    json!({"client_id": client_id, "handler": [handler, null], "redirect_uri": redirect_uri})
}

/// Starts a flow and returns its id.
fn start(
    http: &Http,
    handler: &str,
    client_id: &str,
    redirect: &str,
    headers: &[(&str, &str)],
) -> String {
    let answer = http.post_json(
        "/auth/login_flow",
        &start_body(client_id, handler, redirect),
        headers,
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["flow_id"].as_str().unwrap().to_owned()
}

fn step(
    http: &Http,
    flow_id: &str,
    client_id: &str,
    data: &Value,
    headers: &[(&str, &str)],
) -> Answer {
    let mut body = data.clone();
    body["client_id"] = json!(client_id);
    http.post_json(&format!("/auth/login_flow/{flow_id}"), &body, headers)
}

fn password(username: &str) -> Value {
    json!({"username": username, "password": PASSWORD})
}

/// A code for `username` (a whole password flow).
fn code_for(http: &Http, username: &str, headers: &[(&str, &str)]) -> String {
    let flow_id = start(http, "homeassistant", CLIENT_ID, REDIRECT_URI, headers);
    let answer = step(http, &flow_id, CLIENT_ID, &password(username), headers);
    assert_eq!(answer.json()["type"], "create_entry", "{}", answer.text());
    answer.json()["result"].as_str().unwrap().to_owned()
}

fn token(http: &Http, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Answer {
    http.post_form("/auth/token", form, headers)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn providers_well_known_and_forwarded_headers_are_home_assistants() {
    let home = ha_like_home();
    let _daemon = home.start();
    let door = home.start_http(&[]);
    let http = Http::new(&door.base());
    let ph = Placeholders::default();

    assert_ha(
        "providers_onboarding_required",
        &http.get("/auth/providers", &[]),
        &ph,
        &[],
    );
    ha_users(&home.client());
    assert_ha(
        "providers_loopback",
        &http.get("/auth/providers", &[]),
        &ph,
        &[],
    );
    assert_ha(
        "providers_lan",
        &http.get("/auth/providers", &xff(LAN)),
        &ph,
        &[],
    );
    assert_ha(
        "providers_remote",
        &http.get("/auth/providers", &xff(REMOTE)),
        &ph,
        &[],
    );
    let chain = format!("{REMOTE}, {LAN}, 127.0.0.1");
    assert_ha(
        "providers_forwarded_chain",
        &http.get("/auth/providers", &xff(&chain)),
        &ph,
        &[],
    );

    let stranger = Http::from_source(&door.base(), Some(IpAddr::from([127, 0, 0, 2])));
    assert_ha(
        "forwarded_untrusted_peer",
        &stranger.get("/auth/providers", &xff(LAN)),
        &ph,
        &[],
    );
    assert_ha(
        "forwarded_invalid_address",
        &http.get("/auth/providers", &xff("not-an-ip")),
        &ph,
        &[],
    );
    assert_ha(
        "forwarded_twice",
        &http.get(
            "/auth/providers",
            &[("x-forwarded-for", LAN), ("x-forwarded-for", LAN2)],
        ),
        &ph,
        &[],
    );
    let pair = format!("{REMOTE}, {LAN}");
    assert_ha(
        "forwarded_proto_count",
        &http.get(
            "/auth/providers",
            &[
                ("x-forwarded-for", &pair),
                ("x-forwarded-proto", "https, http, http"),
            ],
        ),
        &ph,
        &[],
    );
    assert_ha(
        "forwarded_empty_host",
        &http.get(
            "/auth/providers",
            &[("x-forwarded-for", LAN), ("x-forwarded-host", " ")],
        ),
        &ph,
        &[],
    );
    door.wait_for_log("the untrusted proxy", |log| {
        log.contains("Received X-Forwarded-For header from an untrusted proxy 127.0.0.2")
    });

    // latch supports PKCE (a Home Assistant 2026 addition) and says so.
    let well_known = http.get("/.well-known/oauth-authorization-server", &[]);
    assert_ha(
        "well_known",
        &well_known,
        &ph,
        &["code_challenge_methods_supported"],
    );
    assert_eq!(
        well_known.json()["code_challenge_methods_supported"],
        json!(["S256"])
    );
}

#[test]
fn login_flow_answers_are_home_assistants() {
    let home = ha_like_home();
    let _daemon = home.start();
    let door = home.start_http(&[]);
    let http = Http::new(&door.base());
    let users = ha_users(&home.client());
    let ph = Placeholders {
        users: users.ids.clone(),
        ..Placeholders::default()
    };

    assert_ha(
        "login_flow_get",
        &http.get("/auth/login_flow", &[]),
        &ph,
        &[],
    );
    assert_ha(
        "login_flow_invalid_json",
        &http.post_raw("/auth/login_flow", b"{not json", &[]),
        &ph,
        &[],
    );
    assert_ha(
        "login_flow_missing_redirect_uri",
        &http.post_json(
            "/auth/login_flow",
            &json!({"client_id": CLIENT_ID, "handler": ["homeassistant", null]}),
            &[],
        ),
        &ph,
        &[],
    );
    assert_ha(
        "login_flow_client_id_not_text",
        &http.post_json(
            "/auth/login_flow",
            &json!({"client_id": 5, "handler": ["homeassistant", null], "redirect_uri": REDIRECT_URI}),
            &[],
        ),
        &ph,
        &[],
    );
    let mut extra = start_body(CLIENT_ID, "homeassistant", REDIRECT_URI);
    extra["remember"] = json!(true);
    assert_ha(
        "login_flow_extra_key",
        &http.post_json("/auth/login_flow", &extra, &[]),
        &ph,
        &[],
    );
    assert_ha(
        "login_flow_not_an_object",
        &http.post_json("/auth/login_flow", &json!([1, 2]), &[]),
        &ph,
        &[],
    );
    assert_ha(
        "login_flow_invalid_client_id",
        &http.post_json(
            "/auth/login_flow",
            &start_body("ftp://example.com/app", "homeassistant", REDIRECT_URI),
            &[],
        ),
        &ph,
        &[],
    );
    assert_ha(
        "login_flow_public_ip_client_id",
        &http.post_json(
            "/auth/login_flow",
            &start_body(
                "http://8.8.8.8/app",
                "homeassistant",
                "http://8.8.8.8/app/cb",
            ),
            &[],
        ),
        &ph,
        &[],
    );
    // Home Assistant 2024.3 fails here with a 500 (a KeyError); latch-http answers what
    // Home Assistant 2026 answers.
    let unknown = http.post_json(
        "/auth/login_flow",
        &start_body(CLIENT_ID, "nope", REDIRECT_URI),
        &[],
    );
    assert_eq!(
        super::http_support::case("login_flow_unknown_handler")["response"]["status"],
        500
    );
    assert_eq!(
        (unknown.status, unknown.json()),
        (404, json!({"message": "Invalid handler specified"}))
    );

    let answer = http.post_json(
        "/auth/login_flow",
        &start_body(CLIENT_ID, "homeassistant", REDIRECT_URI),
        &[],
    );
    assert_ha("login_flow_start", &answer, &ph, &[]);
    let flow_id = answer.json()["flow_id"].as_str().unwrap().to_owned();
    let f = flow_id.as_str();
    assert_ha(
        "login_flow_wrong_password",
        &step(
            &http,
            f,
            CLIENT_ID,
            &json!({"username": "paulus", "password": "x"}),
            &[],
        ),
        &ph,
        &[],
    );
    assert_ha(
        "login_flow_unknown_user",
        &step(
            &http,
            f,
            CLIENT_ID,
            &json!({"username": "nobody", "password": "x"}),
            &[],
        ),
        &ph,
        &[],
    );
    assert_ha(
        "login_flow_input_malformed",
        &step(&http, f, CLIENT_ID, &json!({"username": "paulus"}), &[]),
        &ph,
        &[],
    );
    assert_ha(
        "login_flow_input_extra_key",
        &step(
            &http,
            f,
            CLIENT_ID,
            &json!({"username": "paulus", "password": PASSWORD, "remember": "yes"}),
            &[],
        ),
        &ph,
        &[],
    );
    assert_ha(
        "login_flow_input_not_text",
        &step(
            &http,
            f,
            CLIENT_ID,
            &json!({"username": "paulus", "password": 12345}),
            &[],
        ),
        &ph,
        &[],
    );
    assert_ha(
        "login_flow_step_missing_client_id",
        &http.post_json(&format!("/auth/login_flow/{f}"), &password("paulus"), &[]),
        &ph,
        &[],
    );
    assert_ha(
        "login_flow_step_invalid_client_id",
        &step(&http, f, "ftp://example.com/app", &password("paulus"), &[]),
        &ph,
        &[],
    );
    assert_ha(
        "login_flow_step_ip_changed",
        &step(&http, f, CLIENT_ID, &password("paulus"), &xff(LAN)),
        &ph,
        &[],
    );
    assert_ha(
        "login_flow_step_unknown_flow",
        &step(
            &http,
            "0123456789abcdef0123456789abcdef",
            CLIENT_ID,
            &password("paulus"),
            &[],
        ),
        &ph,
        &[],
    );
    // Home Assistant 2024.3 fails here with a 500 (its view takes no flow id); latch-http
    // answers what that view meant to answer.
    let shown = http.get(&format!("/auth/login_flow/{f}"), &[]);
    assert_eq!(
        super::http_support::case("login_flow_get_flow")["response"]["status"],
        500
    );
    assert_eq!(
        (shown.status, shown.json()),
        (404, json!({"message": "Invalid flow specified"}))
    );
    assert_ha(
        "login_flow_create_entry",
        &step(&http, f, CLIENT_ID, &password("paulus"), &[]),
        &ph,
        &[],
    );
    assert_ha(
        "login_flow_step_finished_flow",
        &step(&http, f, CLIENT_ID, &password("paulus"), &[]),
        &ph,
        &[],
    );

    let flow_id = start(&http, "homeassistant", CLIENT_ID, REDIRECT_URI, &[]);
    let path = format!("/auth/login_flow/{flow_id}");
    assert_ha("login_flow_delete", &http.delete(&path, &[]), &ph, &[]);
    assert_ha(
        "login_flow_delete_unknown",
        &http.delete(&path, &[]),
        &ph,
        &[],
    );

    // A redirect URI on another host, and a client page that cannot be fetched.
    let closed = format!("http://127.0.0.1:{}/app", free_port());
    let flow_id = start(
        &http,
        "homeassistant",
        &closed,
        "https://evil.example/callback",
        &[],
    );
    assert_ha(
        "login_flow_invalid_redirect_uri",
        &step(&http, &flow_id, &closed, &password("paulus"), &[]),
        &ph,
        &[],
    );
    let flow_id = start(
        &http,
        "homeassistant",
        CLIENT_ID,
        REDIRECT_URI,
        &xff(REMOTE),
    );
    assert_ha(
        "login_flow_blocked_local_only",
        &step(&http, &flow_id, CLIENT_ID, &password("lou"), &xff(REMOTE)),
        &ph,
        &[],
    );
    let flow_id = start(&http, "homeassistant", CLIENT_ID, REDIRECT_URI, &[]);
    assert_ha(
        "login_flow_blocked_inactive",
        &step(&http, &flow_id, CLIENT_ID, &password("ina"), &[]),
        &ph,
        &[],
    );

    // IndieAuth: a redirect URI on another host, listed by the client's page.
    let page = serve_page(|port| {
        format!(
            "<!doctype html><html><head><link rel=\"redirect_uri\" \
             href=\"http://localhost:{port}/elsewhere/cb\"></head><body>app</body></html>"
        )
    });
    let client = format!("http://127.0.0.1:{}/app", page.port());
    let listed = format!("http://localhost:{}/elsewhere/cb", page.port());
    let flow_id = start(&http, "homeassistant", &client, &listed, &[]);
    assert_ha(
        "login_flow_redirect_uri_from_link",
        &step(&http, &flow_id, &client, &password("paulus"), &[]),
        &ph,
        &[],
    );
    let unlisted = format!("http://localhost:{}/unlisted/cb", page.port());
    let flow_id = start(&http, "homeassistant", &client, &unlisted, &[]);
    assert_ha(
        "login_flow_redirect_uri_not_listed",
        &step(&http, &flow_id, &client, &password("paulus"), &[]),
        &ph,
        &[],
    );
    assert!(page.requests() >= 2, "the client's page was fetched");
}

#[test]
fn mfa_and_trusted_networks_answers_are_home_assistants() {
    let home = ha_like_home();
    let _daemon = home.start();
    let door = home.start_http(&[]);
    let http = Http::new(&door.base());
    let users = ha_users(&home.client());
    let ph = Placeholders {
        users: users.ids.clone(),
        ..Placeholders::default()
    };
    let secret = &users.anne_secret;

    let flow_id = start(&http, "homeassistant", CLIENT_ID, REDIRECT_URI, &[]);
    let f = flow_id.as_str();
    assert_ha(
        "mfa_password_ok",
        &step(&http, f, CLIENT_ID, &password("anne"), &[]),
        &ph,
        &[],
    );
    assert_ha(
        "mfa_wrong_code",
        &step(
            &http,
            f,
            CLIENT_ID,
            &json!({"code": wrong_totp(secret)}),
            &[],
        ),
        &ph,
        &[],
    );
    assert_ha(
        "mfa_input_malformed",
        &step(&http, f, CLIENT_ID, &json!({"pin": "123456"}), &[]),
        &ph,
        &[],
    );
    assert_ha(
        "mfa_create_entry",
        &step(
            &http,
            f,
            CLIENT_ID,
            &json!({"code": next_totp(secret)}),
            &[],
        ),
        &ph,
        &[],
    );

    let flow_id = start(&http, "homeassistant", CLIENT_ID, REDIRECT_URI, &[]);
    let f = flow_id.as_str();
    step(&http, f, CLIENT_ID, &password("anne"), &[]);
    let wrong = json!({"code": wrong_totp(secret)});
    for _ in 0..4 {
        assert_eq!(
            step(&http, f, CLIENT_ID, &wrong, &[]).json()["type"],
            "form"
        );
    }
    assert_ha(
        "mfa_too_many_retry",
        &step(&http, f, CLIENT_ID, &wrong, &[]),
        &ph,
        &[],
    );

    let answer = http.post_json(
        "/auth/login_flow",
        &start_body(CLIENT_ID, "trusted_networks", REDIRECT_URI),
        &xff(LAN),
    );
    assert_ha("trusted_networks_start", &answer, &ph, &[]);
    let flow_id = answer.json()["flow_id"].as_str().unwrap().to_owned();
    assert_ha(
        "trusted_networks_create_entry",
        &step(
            &http,
            &flow_id,
            CLIENT_ID,
            &json!({"user": users.ids["paulus"]}),
            &xff(LAN),
        ),
        &ph,
        &[],
    );
    assert_ha(
        "trusted_networks_not_allowed",
        &http.post_json(
            "/auth/login_flow",
            &start_body(CLIENT_ID, "trusted_networks", REDIRECT_URI),
            &xff(REMOTE),
        ),
        &ph,
        &[],
    );
}

#[test]
fn token_and_revoke_answers_are_home_assistants() {
    let home = ha_like_home();
    let _daemon = home.start();
    let door = home.start_http(&[]);
    let http = Http::new(&door.base());
    let users = ha_users(&home.client());
    let ph = Placeholders {
        users: users.ids.clone(),
        ..Placeholders::default()
    };
    let client = home.client();

    let code = code_for(&http, "paulus", &[]);
    let grant = |client_id: &str, code: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("client_id", client_id.to_owned()),
            ("code", code.to_owned()),
        ]
    };
    let send = |pairs: Vec<(&str, String)>, headers: &[(&str, &str)]| {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        token(&http, &pairs, headers)
    };
    assert_ha(
        "token_code_invalid_client_id",
        &send(grant("ftp://x/", &code), &[]),
        &ph,
        &[],
    );
    assert_ha(
        "token_code_missing_client_id",
        &send(
            vec![
                ("grant_type", "authorization_code".into()),
                ("code", code.clone()),
            ],
            &[],
        ),
        &ph,
        &[],
    );
    assert_ha(
        "token_code_missing_code",
        &send(
            vec![
                ("grant_type", "authorization_code".into()),
                ("client_id", CLIENT_ID.into()),
            ],
            &[],
        ),
        &ph,
        &[],
    );
    assert_ha(
        "token_code_other_client",
        &send(grant(OTHER_CLIENT_ID, &code), &[]),
        &ph,
        &[],
    );
    let tokens = send(grant(CLIENT_ID, &code), &[]);
    assert_ha("token_code", &tokens, &ph, &[]);
    assert_ha(
        "token_code_reused",
        &send(grant(CLIENT_ID, &code), &[]),
        &ph,
        &[],
    );
    assert_ha(
        "token_code_unknown",
        &send(grant(CLIENT_ID, "0123456789abcdef0123456789abcdef"), &[]),
        &ph,
        &[],
    );

    // A code from a trusted network, exchanged from outside it.
    let flow_id = start(
        &http,
        "trusted_networks",
        CLIENT_ID,
        REDIRECT_URI,
        &xff(LAN),
    );
    let answer = step(
        &http,
        &flow_id,
        CLIENT_ID,
        &json!({"user": users.ids["paulus"]}),
        &xff(LAN),
    );
    let tn_code = answer.json()["result"].as_str().unwrap().to_owned();
    assert_ha(
        "token_code_access_denied_provider",
        &send(grant(CLIENT_ID, &tn_code), &xff(REMOTE)),
        &ph,
        &[],
    );
    // A code whose user was deactivated before the exchange.
    let code = code_for(&http, "lou", &[]);
    latch_tests::block_on(client.deactivate_user(&users.ids["lou"])).unwrap();
    assert_ha(
        "token_code_access_denied_inactive",
        &send(grant(CLIENT_ID, &code), &[]),
        &ph,
        &[],
    );
    latch_tests::block_on(client.activate_user(&users.ids["lou"])).unwrap();

    let refresh = tokens.json()["refresh_token"].as_str().unwrap().to_owned();
    let refresh_with = |client_id: Option<&str>, token: &str| {
        let mut pairs = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", token.to_owned()),
        ];
        if let Some(c) = client_id {
            pairs.push(("client_id", c.to_owned()));
        }
        pairs
    };
    assert_ha(
        "token_refresh",
        &send(refresh_with(Some(CLIENT_ID), &refresh), &[]),
        &ph,
        &[],
    );
    assert_ha(
        "token_refresh_missing_token",
        &send(
            vec![
                ("grant_type", "refresh_token".into()),
                ("client_id", CLIENT_ID.into()),
            ],
            &[],
        ),
        &ph,
        &[],
    );
    assert_ha(
        "token_refresh_unknown_token",
        &send(refresh_with(Some(CLIENT_ID), "nope"), &[]),
        &ph,
        &[],
    );
    assert_ha(
        "token_refresh_other_client",
        &send(refresh_with(Some(OTHER_CLIENT_ID), &refresh), &[]),
        &ph,
        &[],
    );
    assert_ha(
        "token_refresh_without_client",
        &send(refresh_with(None, &refresh), &[]),
        &ph,
        &[],
    );
    assert_ha(
        "token_refresh_invalid_client_id",
        &send(refresh_with(Some("ftp://x/"), &refresh), &[]),
        &ph,
        &[],
    );
    let code = code_for(&http, "lou", &xff(LAN));
    let lou = send(grant(CLIENT_ID, &code), &xff(LAN)).json();
    let lou_refresh = lou["refresh_token"].as_str().unwrap().to_owned();
    assert_ha(
        "token_refresh_local_only_remote",
        &send(refresh_with(Some(CLIENT_ID), &lou_refresh), &xff(REMOTE)),
        &ph,
        &[],
    );
    assert_ha(
        "token_unsupported_grant_type",
        &send(
            vec![
                ("grant_type", "password".into()),
                ("client_id", CLIENT_ID.into()),
            ],
            &[],
        ),
        &ph,
        &[],
    );
    assert_ha("token_no_grant_type", &send(vec![], &[]), &ph, &[]);

    assert_ha(
        "token_action_revoke",
        &send(
            vec![("action", "revoke".into()), ("token", refresh.clone())],
            &[],
        ),
        &ph,
        &[],
    );
    assert_ha(
        "token_refresh_revoked",
        &send(refresh_with(Some(CLIENT_ID), &refresh), &[]),
        &ph,
        &[],
    );
    assert_ha(
        "revoke",
        &http.post_form("/auth/revoke", &[("token", &lou_refresh)], &[]),
        &ph,
        &[],
    );
    assert_ha(
        "revoke_unknown",
        &http.post_form("/auth/revoke", &[("token", "nope")], &[]),
        &ph,
        &[],
    );
    assert_ha(
        "revoke_without_token",
        &http.post_form("/auth/revoke", &[], &[]),
        &ph,
        &[],
    );
    // The revoked token's access tokens stop validating at once.
    let access = lou["access_token"].as_str().unwrap();
    assert!(latch_tests::block_on(client.validate_token(access)).is_err());
}
