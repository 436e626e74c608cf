//! The answers that need time to pass, compared with Home Assistant 2024.3's recorded
//! ones (`fixtures/home_assistant_2024_3.json`): an MFA step after the 5-minute login
//! session, and an authorization code exchanged 10 minutes after it was issued. latchd
//! runs in-process with a fixed clock the test moves; latch-http runs in-process in
//! front of it; requests go over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use latch_client::protocol::{Sensitive, SetupFlowState};
use latch_client::{Client, ClientOptions, NewUser};
use latch_daemon::DaemonOptions;
use latch_http::{HttpConfig, HttpServer};
use latch_models::{Clock, FixedClock};
use serde_json::{Value, json};

const FIXTURES: &str = include_str!("fixtures/home_assistant_2024_3.json");
const CLIENT_ID: &str = "https://example.com/app";
const REDIRECT_URI: &str = "https://example.com/app/callback";
const PASSWORD: &str = "correct horse battery staple";

/// The recorded answer of case `name`.
fn recorded(name: &str) -> (u16, Value) {
    let fixtures: Value = serde_json::from_str(FIXTURES).unwrap();
    let response = &fixtures["cases"][name]["response"];
    (
        u16::try_from(response["status"].as_u64().unwrap()).unwrap(),
        response["body"].clone(),
    )
}

/// `recorded` with its `<flow_id>` placeholder filled in.
fn with_flow_id(mut body: Value, flow_id: &str) -> Value {
    if body["flow_id"] == "<flow_id>" {
        body["flow_id"] = json!(flow_id);
    }
    body
}

/// RFC 6238 (SHA-1, 6 digits, 30 s) with the `totp-rs` crate, independent of latch's.
fn totp(secret: &str, at: i64) -> String {
    let key = totp_rs::Secret::try_from_base32(secret).unwrap();
    let totp = totp_rs::Builder::new().with_secret(key).build().unwrap();
    totp.generate(u64::try_from(at).unwrap()).to_string()
}

struct Setup {
    _home: tempfile::TempDir,
    clock: Arc<FixedClock>,
    daemon: Option<latch_daemon::DaemonHandle>,
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    http: reqwest::Client,
    anne_secret: String,
}

impl Setup {
    async fn new() -> Self {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join("latch.toml"),
            "[throttle]\nenabled = false\n[[auth_providers]]\ntype = \"homeassistant\"\nbcrypt_cost = 4\n",
        )
        .unwrap();
        let clock = Arc::new(FixedClock::new(Utc::now()));
        let mut options = DaemonOptions::load(Some(home.path()), None).unwrap();
        options.clock = Some(Arc::clone(&clock) as Arc<dyn Clock>);
        let daemon = latch_daemon::start(options).await.unwrap();
        let client = Client::connect_with(ClientOptions::for_home(home.path()))
            .await
            .unwrap();
        client.onboard("Paulus", "paulus", PASSWORD).await.unwrap();
        let anne = client.create_user(NewUser::new("Anne")).await.unwrap();
        client
            .add_password(&anne.id, "anne", PASSWORD)
            .await
            .unwrap();
        let SetupFlowState::Form(form) = client.mfa_setup_start(&anne.id, "totp").await.unwrap()
        else {
            panic!("expected the TOTP setup form");
        };
        let anne_secret = form.placeholder("code").unwrap().expose().to_owned();
        let code = totp(&anne_secret, clock.now().timestamp());
        client
            .mfa_setup_continue(&form.flow_id, vec![("code".into(), Sensitive::new(code))])
            .await
            .unwrap();
        // The setup's time step is used up.
        clock.advance(TimeDelta::seconds(30));

        let config = HttpConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..HttpConfig::default()
        };
        let server = HttpServer::bind(config, client).await.unwrap();
        let base = format!("http://{}", server.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        Self {
            _home: home,
            clock,
            daemon: Some(daemon),
            base,
            stop: Some(stop),
            server: Some(server),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            anne_secret,
        }
    }

    async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn start_flow(&self) -> String {
        let (status, body) = self
            .post_json(
                "/auth/login_flow",
                &json!({"client_id": CLIENT_ID, "handler": ["homeassistant", null], "redirect_uri": REDIRECT_URI}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["flow_id"].as_str().unwrap().to_owned()
    }

    async fn step(&self, flow_id: &str, data: Value) -> (u16, Value) {
        let mut data = data;
        data["client_id"] = json!(CLIENT_ID);
        self.post_json(&format!("/auth/login_flow/{flow_id}"), &data)
            .await
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
        if let Some(daemon) = self.daemon.take() {
            daemon.shutdown().await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mfa_step_after_five_minutes_is_login_expired() {
    let s = Setup::new().await;
    let flow_id = s.start_flow().await;
    let (status, form) = s
        .step(&flow_id, json!({"username": "anne", "password": PASSWORD}))
        .await;
    assert_eq!(
        (status, form["step_id"].clone()),
        (200, json!("mfa")),
        "{form}"
    );
    s.clock
        .advance(TimeDelta::minutes(5) + TimeDelta::seconds(1));
    let code = totp(&s.anne_secret, s.clock.now().timestamp());
    let answer = s.step(&flow_id, json!({ "code": code })).await;
    let (status, body) = recorded("mfa_login_expired");
    assert_eq!(answer, (status, with_flow_id(body, &flow_id)));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_exchanged_after_ten_minutes_is_invalid() {
    let s = Setup::new().await;
    let flow_id = s.start_flow().await;
    let (status, entry) = s
        .step(
            &flow_id,
            json!({"username": "paulus", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{entry}");
    let code = entry["result"].as_str().unwrap().to_owned();

    s.clock.advance(TimeDelta::minutes(10));
    let answer = s
        .post_form(
            "/auth/token",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", CLIENT_ID),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(answer, recorded("token_code_expired"));

    // One second less and it is still good (Home Assistant's `< 10 min`).
    let flow_id = s.start_flow().await;
    let (_, entry) = s
        .step(
            &flow_id,
            json!({"username": "paulus", "password": PASSWORD}),
        )
        .await;
    let code = entry["result"].as_str().unwrap().to_owned();
    s.clock
        .advance(TimeDelta::minutes(10) - TimeDelta::seconds(1));
    let (status, tokens) = s
        .post_form(
            "/auth/token",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", CLIENT_ID),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    s.stop().await;
}
