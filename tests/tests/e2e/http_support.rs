//! What the HTTP tests share: a home with Home Assistant's test setup (the users of
//! `crates/latch-http/tests/fixtures/capture.py`), a plain HTTP client (reqwest with
//! rustls), and the comparison of an answer with Home Assistant's recorded one.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use latch_client::protocol::{Sensitive, SetupFlowState};
use latch_client::{Client, NewUser};
use latch_tests::{Home, block_on, totp, unix_now};
use serde_json::Value;

/// Home Assistant 2024.3's answers, captured by `capture.py`.
pub(crate) const FIXTURES: &str =
    include_str!("../../../crates/latch-http/tests/fixtures/home_assistant_2024_3.json");

pub(crate) const CLIENT_ID: &str = "https://example.com/app";
pub(crate) const REDIRECT_URI: &str = "https://example.com/app/callback";
pub(crate) const OTHER_CLIENT_ID: &str = "https://other.example/app";
pub(crate) const PASSWORD: &str = "correct horse battery staple";
pub(crate) const LAN: &str = "192.168.1.20";
pub(crate) const LAN2: &str = "192.168.1.21";
pub(crate) const REMOTE: &str = "203.0.113.9";

/// The configuration of `capture.py`'s Home Assistant: the password provider, trusted
/// networks for 192.168.1.0/24, TOTP, a trusted proxy at 127.0.0.1, and no throttling
/// (Home Assistant has none; `http_app.rs` tests latch's through HTTP).
pub(crate) fn ha_like_config() -> String {
    "shutdown_grace_secs = 5\n\
     [throttle]\nenabled = false\n\
     [[auth_providers]]\ntype = \"homeassistant\"\nbcrypt_cost = 4\n\
     [[auth_providers]]\ntype = \"trusted_networks\"\ntrusted_networks = [\"192.168.1.0/24\"]\n\
     allow_bypass_login = false\n\
     [http]\nuse_x_forwarded_for = true\ntrusted_proxies = [\"127.0.0.1\"]\n"
        .to_owned()
}

/// A home configured as [`ha_like_config`].
pub(crate) fn ha_like_home() -> Home {
    let home = Home::empty();
    home.write_config(&ha_like_config());
    home
}

/// The users of `capture.py`, by username, and Anne's TOTP secret.
#[derive(Debug)]
pub(crate) struct Users {
    pub(crate) ids: HashMap<String, String>,
    pub(crate) anne_secret: String,
}

/// The users `capture.py` creates: the owner `paulus`, `anne` with TOTP, `lou` (local
/// only), `ina` (deactivated) and `max` (TOTP), all with [`PASSWORD`], in that order.
pub(crate) fn ha_users(client: &Client) -> Users {
    block_on(async {
        let mut ids = HashMap::new();
        let owner = client.onboard("Paulus", "paulus", PASSWORD).await.unwrap();
        ids.insert("paulus".to_owned(), owner.id);
        for (name, username, local_only) in [
            ("Anne", "anne", false),
            ("Lou", "lou", true),
            ("Ina", "ina", false),
        ] {
            let user = client
                .create_user(NewUser {
                    local_only,
                    group_ids: Some(vec!["system-admin".into()]),
                    ..NewUser::new(name)
                })
                .await
                .unwrap();
            client
                .add_password(&user.id, username, PASSWORD)
                .await
                .unwrap();
            ids.insert(username.to_owned(), user.id);
        }
        client.deactivate_user(&ids["ina"]).await.unwrap();
        let max = client
            .create_user(NewUser {
                group_ids: Some(vec!["system-admin".into()]),
                ..NewUser::new("Max")
            })
            .await
            .unwrap();
        client.add_password(&max.id, "max", PASSWORD).await.unwrap();
        ids.insert("max".to_owned(), max.id);
        let anne_secret = enrol_totp(client, &ids["anne"], "totp").await;
        // Home Assistant's Max also has a second TOTP module, which latch cannot have
        // (one TOTP module per home); its choice step is checked in latch-http's ha_json.
        enrol_totp(client, &ids["max"], "totp").await;
        Users { ids, anne_secret }
    })
}

/// Enrols `user_id` in TOTP with a code computed independently of latch; returns the
/// secret latch generated (its setup takes no given secret, unlike Home Assistant's).
pub(crate) async fn enrol_totp(client: &Client, user_id: &str, module_id: &str) -> String {
    enrol_totp_with_codes(client, user_id, module_id).await.0
}

/// [`enrol_totp`], also returning the one-time recovery codes.
pub(crate) async fn enrol_totp_with_codes(
    client: &Client,
    user_id: &str,
    module_id: &str,
) -> (String, Vec<String>) {
    let SetupFlowState::Form(form) = client.mfa_setup_start(user_id, module_id).await.unwrap()
    else {
        panic!("expected the TOTP setup form");
    };
    let secret = form.placeholder("code").unwrap().expose().to_owned();
    let code = totp::code_at(&secret, unix_now());
    let done = client
        .mfa_setup_continue(&form.flow_id, vec![("code".into(), Sensitive::new(code))])
        .await
        .unwrap();
    let SetupFlowState::Done { recovery_codes, .. } = done else {
        panic!("expected the TOTP setup to finish, got {done:?}");
    };
    let codes = recovery_codes
        .iter()
        .map(|c| c.expose().to_owned())
        .collect();
    (secret, codes)
}

/// A sent request's answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    /// The body as JSON.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {:?} (status {})",
                String::from_utf8_lossy(&self.body),
                self.status
            )
        })
    }

    /// The body as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A plain HTTP client of one latch-http.
pub(crate) struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    /// A client of `base`; redirects are not followed (the tests look at them).
    pub(crate) fn new(base: &str) -> Self {
        Self::from_source(base, None)
    }

    /// A client whose connections come from `source` (a 127.0.0.0/8 address).
    pub(crate) fn from_source(base: &str, source: Option<IpAddr>) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .local_address(source)
            .no_proxy()
            .build()
            .unwrap();
        Self {
            client,
            base: base.to_owned(),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap().to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    fn with(request: reqwest::RequestBuilder, headers: &[(&str, &str)]) -> reqwest::RequestBuilder {
        headers.iter().fold(request, |r, (k, v)| r.header(*k, *v))
    }

    pub(crate) fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        block_on(self.send(Self::with(self.client.get(self.url(path)), headers)))
    }

    pub(crate) fn options(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let request = self
            .client
            .request(reqwest::Method::OPTIONS, self.url(path));
        block_on(self.send(Self::with(request, headers)))
    }

    pub(crate) fn delete(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        block_on(self.send(Self::with(self.client.delete(self.url(path)), headers)))
    }

    pub(crate) fn post_json(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
        self.post_raw(path, body.to_string().as_bytes(), headers)
    }

    pub(crate) fn post_raw(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Answer {
        let request = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_vec());
        block_on(self.send(Self::with(request, headers)))
    }

    pub(crate) fn post_form(
        &self,
        path: &str,
        pairs: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Answer {
        let body = url_encode(pairs);
        let request = self
            .client
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        block_on(self.send(Self::with(request, headers)))
    }
}

/// `application/x-www-form-urlencoded`.
pub(crate) fn url_encode(pairs: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    char::from(b).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `X-Forwarded-For: ip`.
pub(crate) fn xff(ip: &str) -> [(&str, &str); 1] {
    [("x-forwarded-for", ip)]
}

/// What the placeholders of the fixtures stand for in this run.
#[derive(Debug, Default)]
pub(crate) struct Placeholders {
    /// `<user:NAME>` → the user's id.
    pub(crate) users: HashMap<String, String>,
    /// `<port>`, `<page_port>`, `<closed_port>` → the port.
    pub(crate) ports: HashMap<String, u16>,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_jwt(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl Placeholders {
    /// Does the value of this run match the recorded one, placeholders filled in?
    fn matches(&self, recorded: &Value, actual: &Value, path: &str, errors: &mut Vec<String>) {
        match (recorded, actual) {
            (Value::String(r), Value::String(a)) => {
                let ok = match r.as_str() {
                    "<flow_id>" | "<code>" => is_hex(a, 32),
                    "<refresh_token>" => is_hex(a, 128),
                    "<access_token>" => is_jwt(a),
                    other => {
                        if let Some(name) = other
                            .strip_prefix("<user:")
                            .and_then(|n| n.strip_suffix('>'))
                        {
                            self.users.get(name).is_some_and(|id| id == a)
                        } else {
                            let mut expected = other.to_owned();
                            for (name, port) in &self.ports {
                                expected =
                                    expected.replace(&format!("<{name}>"), &port.to_string());
                            }
                            expected == *a
                        }
                    }
                };
                if !ok {
                    errors.push(format!("{path}: Home Assistant {r:?}, latch-http {a:?}"));
                }
            }
            (Value::Object(r), Value::Object(a)) => {
                for (k, rv) in r {
                    match a.get(k) {
                        Some(av) => self.matches(rv, av, &format!("{path}.{k}"), errors),
                        None => errors.push(format!("{path}.{k}: missing (Home Assistant {rv})")),
                    }
                }
                for k in a.keys().filter(|k| !r.contains_key(*k)) {
                    errors.push(format!("{path}.{k}: not in Home Assistant's answer"));
                }
            }
            (Value::Array(r), Value::Array(a)) if r.len() == a.len() => {
                for (i, (rv, av)) in r.iter().zip(a).enumerate() {
                    self.matches(rv, av, &format!("{path}[{i}]"), errors);
                }
            }
            (r, a) if r == a => {}
            (r, a) => errors.push(format!("{path}: Home Assistant {r}, latch-http {a}")),
        }
    }
}

/// The recorded case `name`.
pub(crate) fn case(name: &str) -> Value {
    let fixtures: Value = serde_json::from_str(FIXTURES).unwrap();
    let case = fixtures["cases"][name].clone();
    assert!(!case.is_null(), "no fixture case {name}");
    case
}

/// Asserts that `answer` is Home Assistant's answer of case `name`: the same status,
/// every header Home Assistant sent with the same value (latch-http may send more, e.g.
/// its security headers), and the same body field for field. `additions` names keys
/// latch-http adds to an object body on purpose.
#[track_caller]
pub(crate) fn assert_ha(name: &str, answer: &Answer, ph: &Placeholders, additions: &[&str]) {
    let case = case(name);
    let expected = &case["response"];
    let mut errors = Vec::new();
    let status = expected["status"].as_u64().unwrap();
    if u64::from(answer.status) != status {
        errors.push(format!(
            "status: Home Assistant {status}, latch-http {}",
            answer.status
        ));
    }
    for (k, v) in expected["headers"].as_object().unwrap() {
        let got = answer.header(k);
        if got != v.as_str() {
            errors.push(format!(
                "header {k}: Home Assistant {v}, latch-http {got:?}"
            ));
        }
    }
    match (expected["body_kind"].as_str(), &expected["body"]) {
        (_, Value::Null) => {
            if !answer.body.is_empty() {
                errors.push(format!(
                    "body: Home Assistant empty, latch-http {:?}",
                    answer.text()
                ));
            }
        }
        (Some("text"), Value::String(text)) => {
            if answer.text() != *text {
                errors.push(format!(
                    "body: Home Assistant {text:?}, latch-http {:?}",
                    answer.text()
                ));
            }
        }
        (_, body) => match serde_json::from_slice::<Value>(&answer.body) {
            Ok(mut actual) => {
                if let Value::Object(map) = &mut actual {
                    for key in additions {
                        map.remove(*key);
                    }
                }
                ph.matches(body, &actual, "body", &mut errors);
            }
            Err(e) => errors.push(format!("body is not JSON ({e}): {:?}", answer.text())),
        },
    }
    assert!(
        errors.is_empty(),
        "{name}: latch-http differs from Home Assistant 2024.3:\n  {}\nrequest: {}",
        errors.join("\n  "),
        case["request"]
    );
}

/// The TOTP code for `secret` a step after now (the step of the setup code is used up,
/// and latch refuses a code twice), accepted for the next minute.
pub(crate) fn next_totp(secret: &str) -> String {
    totp::code_at(secret, unix_now() + 30)
}

/// A six-digit code that no step near now accepts for `secret`.
pub(crate) fn wrong_totp(secret: &str) -> String {
    let now = unix_now();
    let near: Vec<String> = [0, 30, 60, 90]
        .iter()
        .map(|d| totp::code_at(secret, now - 30 + d))
        .collect();
    (0..10u32)
        .map(|i| format!("{:06}", (123_456 + i * 111_111) % 1_000_000))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// A client's web page on a loopback port, for IndieAuth discovery: every GET is
/// answered with the page. Stopped when dropped.
pub(crate) struct Page {
    port: u16,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Page {
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// How many requests it has answered.
    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves `page(port)` on a free loopback port.
pub(crate) fn serve_page(page: impl FnOnce(u16) -> String) -> Page {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let html = page(port);
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let thread = {
        let stop = Arc::clone(&stop);
        let requests = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                requests.fetch_add(1, Ordering::SeqCst);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                    html.len()
                );
                let _ = stream.write_all(answer.as_bytes());
            }
        })
    };
    Page {
        port,
        stop,
        requests,
        thread: Some(thread),
    }
}
