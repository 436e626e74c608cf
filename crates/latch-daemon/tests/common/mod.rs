//! Helpers for the daemon's integration tests: a daemon in a temp home, a client on its
//! real socket speaking latch-protocol types, and waiting with a deadline.
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use latch_daemon::{DaemonConfig, DaemonFrame, DaemonHandle, DaemonOptions, ResponsePayload};
use latch_ipc::client::{ClientConfig, ClientConnection};
use latch_protocol::{
    ApiError, Event, FlowState, Handler, IssuedTokens, Request, RequestFrame, Response, Sensitive,
    UserInfo,
};
use serde::Serialize;
use serde::ser::{SerializeTuple, Serializer};

/// How long any single wait in these tests may take before it counts as a failure.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub const CLIENT_ID: &str = "http://127.0.0.1:8123/";
pub const OWNER_PASSWORD: &str = "correct horse battery staple";

pub fn local() -> Option<IpAddr> {
    Some("127.0.0.1".parse().unwrap())
}

/// A fresh home directory (0700, owned by us).
pub fn home() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("latchd-")
        .tempdir()
        .unwrap()
}

/// The defaults, with the given bcrypt cost (4 keeps tests fast) and extra TOML.
pub fn config(bcrypt_cost: u32, extra: &str) -> DaemonConfig {
    let text = format!(
        "{extra}\n[[auth_providers]]\ntype = \"homeassistant\"\nbcrypt_cost = {bcrypt_cost}\n"
    );
    DaemonConfig::from_toml(&text, Path::new("test.toml")).unwrap()
}

pub async fn start(home: &Path, config: DaemonConfig) -> DaemonHandle {
    latch_daemon::start(DaemonOptions::new(home, config))
        .await
        .unwrap()
}

/// Awaits `f`, failing the test after [`DEADLINE`].
pub async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A request frame's bytes, or any bytes: lets a test send what a newer (or broken)
/// client would.
#[derive(Clone, Debug)]
pub struct RawFrame(pub Vec<u8>);

impl Serialize for RawFrame {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Postcard writes a tuple's elements with no length: exactly these bytes.
        let mut t = serializer.serialize_tuple(self.0.len())?;
        for b in &self.0 {
            t.serialize_element(b)?;
        }
        t.end()
    }
}

/// A client connection on the daemon's socket, with the protocol's frames.
pub struct Client {
    pub conn: ClientConnection<RawFrame, ResponsePayload, Event>,
    next_id: u64,
    /// Events that arrived while waiting for an answer.
    pub events: VecDeque<Event>,
}

impl Client {
    pub async fn connect(config: &ClientConfig) -> Self {
        let conn = within("connect", latch_ipc::client::connect(config))
            .await
            .unwrap();
        Self {
            conn,
            next_id: 1,
            events: VecDeque::new(),
        }
    }

    pub async fn to(daemon: &DaemonHandle) -> Self {
        Self::connect(&daemon.client_config()).await
    }

    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends a request with the given id, without waiting.
    pub async fn send(&self, id: u64, request: Request) {
        let bytes = RequestFrame::new(id, request).encode().unwrap();
        self.conn.send(&RawFrame(bytes)).await.unwrap();
    }

    pub async fn send_raw(&self, bytes: Vec<u8>) {
        self.conn.send(&RawFrame(bytes)).await.unwrap();
    }

    /// The next frame; `None` once the daemon closed the connection.
    pub async fn frame(&mut self) -> Option<DaemonFrame> {
        within("a frame", self.conn.recv()).await.unwrap()
    }

    /// The next answer (events meanwhile are kept).
    pub async fn answer(&mut self) -> ResponsePayload {
        loop {
            match self
                .frame()
                .await
                .expect("the daemon closed the connection")
            {
                DaemonFrame::Response(payload) => return payload,
                DaemonFrame::Event(event) => self.events.push_back(event),
                DaemonFrame::Lagged(n) => panic!("lagged by {n}"),
            }
        }
    }

    /// The next event (answers meanwhile fail the test).
    pub async fn event(&mut self) -> Event {
        if let Some(event) = self.events.pop_front() {
            return event;
        }
        match self
            .frame()
            .await
            .expect("the daemon closed the connection")
        {
            DaemonFrame::Event(event) => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// Sends a request and waits for its answer.
    pub async fn call(&mut self, request: Request) -> Result<Response, ApiError> {
        let id = self.next_id();
        self.send(id, request).await;
        let payload = self.answer().await;
        assert_eq!(payload.id, id, "answers come back with their request's id");
        payload.result
    }

    pub async fn ok(&mut self, request: Request) -> Response {
        let name = request.name();
        match self.call(request).await {
            Ok(r) => r,
            Err(e) => panic!("{name} failed: {e}"),
        }
    }

    pub async fn onboard(&mut self, username: &str, password: &str) -> UserInfo {
        match self
            .ok(Request::Onboard {
                name: "Owner".into(),
                username: username.into(),
                password: Sensitive::from(password),
            })
            .await
        {
            Response::User(u) => u,
            other => panic!("{other:?}"),
        }
    }

    pub async fn create_user(&mut self, name: &str) -> UserInfo {
        match self
            .ok(Request::CreateUser {
                name: name.into(),
                group_ids: Some(vec!["system-users".into()]),
                local_only: false,
                system_generated: false,
            })
            .await
        {
            Response::User(u) => u,
            other => panic!("{other:?}"),
        }
    }

    pub async fn add_password(&mut self, user_id: &str, username: &str, password: &str) {
        self.ok(Request::AddPassword {
            user_id: user_id.into(),
            username: username.into(),
            password: Sensitive::from(password),
        })
        .await;
    }

    /// Starts a password login and returns the flow id.
    pub async fn login_start(&mut self) -> String {
        match self
            .ok(Request::LoginStart {
                handler: Handler::new("homeassistant"),
                client_id: CLIENT_ID.into(),
                redirect_uri: None,
                ip_address: local(),
            })
            .await
        {
            Response::Flow(FlowState::Form(form)) => {
                assert_eq!(form.step_id, "init");
                form.flow_id
            }
            other => panic!("{other:?}"),
        }
    }

    pub fn login_continue(flow_id: &str, username: &str, password: &str) -> Request {
        Request::LoginContinue {
            flow_id: flow_id.into(),
            input: vec![
                ("username".into(), Sensitive::from(username)),
                ("password".into(), Sensitive::from(password)),
            ],
            ip_address: local(),
        }
    }

    /// A full password login.
    pub async fn login(&mut self, username: &str, password: &str) -> IssuedTokens {
        let flow_id = self.login_start().await;
        match self
            .ok(Self::login_continue(&flow_id, username, password))
            .await
        {
            Response::Flow(FlowState::Done { tokens, .. }) => tokens,
            other => panic!("login did not finish: {other:?}"),
        }
    }

    pub fn validate(access_token: &Sensitive) -> Request {
        Request::ValidateToken {
            access_token: access_token.clone(),
            remote_ip: local(),
        }
    }
}
