//! Running latch-http: its command line and configuration, TLS, what it answers while
//! latchd is away and after it comes back, and its limits (body size, slow clients,
//! login flows per address).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use latch_tests::{DEADLINE, Home, poll_until, run};
use serde_json::json;

use super::http_support::{
    CLIENT_ID, Http, LAN, LAN2, REDIRECT_URI, ha_like_config, url_encode, xff,
};

const EXAMPLE: &str = include_str!("../../../crates/latch-http/latch-http.toml.example");

fn start_body() -> serde_json::Value {
    json!({"client_id": CLIENT_ID, "handler": ["homeassistant", null], "redirect_uri": REDIRECT_URI})
}

#[test]
fn the_command_line_checks_and_prints_its_configuration() {
    let home = Home::new();
    let printed = run(home.latch_http(&["--print-default-config"]), &[]);
    printed.assert_code(0);
    assert_eq!(printed.stdout, EXAMPLE);

    run(home.latch_http(&["--check-config"]), &[])
        .assert_code(0)
        .assert_stdout_has("configuration ok");
    home.write_config(&format!(
        "{}\n[http]\nuse_x_forwarded_for = true\n",
        latch_tests::FAST_PROVIDER
    ));
    run(home.latch_http(&["--check-config"]), &[])
        .assert_code(2)
        .assert_stderr_has("http.trusted_proxies");
    home.write_config("[http]\nlisten = \"127.0.0.1:1\"\nport = 8123\n");
    run(home.latch_http(&["--check-config"]), &[])
        .assert_code(2)
        .assert_stderr_has("at line 3");
    // latchd reads the same file and leaves [http] to latch-http.
    home.write_config(&format!(
        "{}\n[http]\nlisten = \"127.0.0.1:0\"\n",
        latch_tests::FAST_PROVIDER
    ));
    run(home.latchd(&["--check-config"]), &[]).assert_code(0);
}

#[test]
fn while_latchd_is_away_latch_http_answers_503_and_recovers_when_it_returns() {
    let home = Home::empty();
    home.write_config(&ha_like_config());
    let daemon = home.start();
    let door = home.start_http(&[]);
    let http = Http::new(&door.base());
    assert_eq!(
        http.get("/auth/providers", &[]).status,
        400,
        "not onboarded yet"
    );

    daemon.stop();
    let away = http.get("/auth/providers", &[]);
    assert_eq!(away.status, 503);
    assert_eq!(away.json()["code"], "daemon_unavailable");
    let token = http.post_form(
        "/auth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", "x")],
        &[],
    );
    assert_eq!(token.status, 503);
    door.wait_for_log("that latchd is away", |log| {
        log.contains("latchd is not reachable")
    });

    // A new latchd (a new session token): the next request reconnects.
    let _daemon = home.start();
    let back = poll_until("latch-http to reach the new latchd", || {
        let answer = http.get("/auth/providers", &[]);
        (answer.status != 503).then_some(answer)
    });
    assert_eq!(back.json()["code"], "onboarding_required");
    door.wait_for_log("that latchd is back", |log| {
        log.contains("latchd is reachable again")
    });

    // SIGTERM stops it cleanly.
    let (status, log) = door.terminate();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("latch-http stopped"), "{log}");
}

#[test]
fn bodies_slow_clients_and_login_flows_per_address_are_limited() {
    let home = Home::empty();
    home.write_config(&format!(
        "{}max_login_flows_per_address = 2\nheader_timeout_secs = 1\nmax_body_bytes = 4096\n",
        ha_like_config()
    ));
    let _daemon = home.start();
    let door = home.start_http(&[]);
    let http = Http::new(&door.base());
    latch_tests::block_on(home.client().onboard(
        "Paulus",
        "paulus",
        "correct horse battery staple",
    ))
    .unwrap();

    // A body over the cap.
    let big = "a".repeat(5000);
    let answer = http.post_form("/auth/token", &[("grant_type", &big)], &[]);
    assert_eq!(answer.status, 413);

    // Two flows per address; a third waits until one ends.
    let start = |from: &str| http.post_json("/auth/login_flow", &start_body(), &xff(from));
    let first = start(LAN).json()["flow_id"].as_str().unwrap().to_owned();
    let second = start(LAN).json()["flow_id"].as_str().unwrap().to_owned();
    let refused = start(LAN);
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json()["code"], "too_many_login_flows");
    assert_eq!(start(LAN2).status, 200, "another address is not affected");
    let deleted = http.delete(&format!("/auth/login_flow/{first}"), &[]);
    assert_eq!(deleted.status, 200);
    assert_eq!(start(LAN).status, 200);
    // The sign-in page, whose every load starts a flow, never locks a person out: a
    // load gives up the address's oldest flow instead, in latchd too.
    let page = format!(
        "/auth/authorize?{}",
        url_encode(&[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI)
        ])
    );
    for _ in 0..3 {
        assert_eq!(http.get(&page, &xff(LAN)).status, 200);
    }
    let gone = http.post_json(
        &format!("/auth/login_flow/{second}"),
        &json!({"client_id": CLIENT_ID, "username": "paulus", "password": "x"}),
        &xff(LAN),
    );
    assert_eq!(gone.status, 404, "{}", gone.text());

    // A request head over the cap.
    let big_header = "x".repeat(20_000);
    let answer = http.get("/auth/providers", &[("x-padding", &big_header)]);
    assert_eq!(answer.status, 431);

    // A client that never finishes its request head is cut off.
    let mut slow = TcpStream::connect(door.addr()).unwrap();
    slow.write_all(b"GET /auth/providers HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(DEADLINE)).unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    assert!(
        started.elapsed() < DEADLINE,
        "the connection was closed by latch-http"
    );
    assert!(
        buf.is_empty() || String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the deadline"
    );
}

#[test]
fn tls_is_served_with_the_configured_certificate() {
    let home = Home::empty();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert_path = home.scratch("cert.pem");
    let key_path = home.scratch("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    home.write_config(&format!(
        "{}\n[http]\nssl_certificate = {:?}\nssl_key = {:?}\n",
        latch_tests::FAST_PROVIDER,
        cert_path.display().to_string(),
        key_path.display().to_string()
    ));
    let _daemon = home.start();
    let door = home.start_http(&[]);
    assert!(door.base().starts_with("https://"), "{}", door.base());

    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .no_proxy()
        .build()
        .unwrap();
    let url = format!(
        "https://localhost:{}/.well-known/oauth-authorization-server",
        door.addr().port()
    );
    let answer = latch_tests::block_on(client.get(&url).send()).unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    // Plain HTTP on the TLS port gets no answer.
    let plain = Http::new(&format!("http://{}", door.addr()));
    let refused = latch_tests::block_on(
        reqwest::Client::new()
            .get(plain.url("/.well-known/oauth-authorization-server"))
            .send(),
    );
    assert!(refused.is_err() || refused.is_ok_and(|r| !r.status().is_success()));

    // A certificate that is not there stops it at start, with the path.
    home.write_config(&format!(
        "{}\n[http]\nssl_certificate = \"/nonexistent/cert.pem\"\nssl_key = {:?}\n",
        latch_tests::FAST_PROVIDER,
        key_path.display().to_string()
    ));
    let failed = run(home.latch_http(&[]), &[]);
    failed
        .assert_code(1)
        .assert_stderr_has("/nonexistent/cert.pem");
    run(home.latch_http(&["--check-config"]), &[])
        .assert_code(2)
        .assert_stderr_has("/nonexistent/cert.pem");
    // A key that is not a key, too.
    std::fs::write(&key_path, "not a key").unwrap();
    home.write_config(&format!(
        "{}\n[http]\nssl_certificate = {:?}\nssl_key = {:?}\n",
        latch_tests::FAST_PROVIDER,
        cert_path.display().to_string(),
        key_path.display().to_string()
    ));
    run(home.latch_http(&["--check-config"]), &[])
        .assert_code(2)
        .assert_stderr_has("key.pem");
}

#[test]
fn the_token_endpoints_allow_the_configured_cors_origins_only() {
    let home = Home::new();
    let _daemon = home.start();
    let door = home.start_http(&[]);
    let http = Http::new(&door.base());
    let cast = "https://cast.home-assistant.io";
    let form = [("grant_type", "refresh_token"), ("refresh_token", "nope")];

    let allowed = http.post_form("/auth/token", &form, &[("origin", cast)]);
    assert_eq!(allowed.header("access-control-allow-origin"), Some(cast));
    let preflight = http.options(
        "/auth/revoke",
        &[("origin", cast), ("access-control-request-method", "POST")],
    );
    assert_eq!(preflight.status, 200);
    assert_eq!(preflight.header("access-control-allow-origin"), Some(cast));
    assert!(
        preflight
            .header("access-control-allow-methods")
            .is_some_and(|m| m.contains("POST"))
    );

    let other = http.post_form("/auth/token", &form, &[("origin", "https://evil.example")]);
    assert_eq!(other.header("access-control-allow-origin"), None);
    let not_cors = http.get("/auth/providers", &[("origin", cast)]);
    assert_eq!(not_cors.header("access-control-allow-origin"), None);
}
