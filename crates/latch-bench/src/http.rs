//! The HTTP door under load: the token endpoint's `refresh_token` grant, the request an
//! app sends every 30 minutes per session, over keep-alive connections.
//!
//! latch's side is the real `latch-http` (beside this binary in `target/release`) in
//! front of a real `latchd`; the app's refresh token comes from a sign-in through the
//! HTTP API (login flow, then the code exchange). Home Assistant's side, when the peer's
//! Python is given, is Home Assistant 2024.3's own `http` and `auth` components serving
//! the same API (`peer/ha_http.py`), measured in the same run with the same load. The
//! load is `connections` HTTP/1.1 keep-alive connections, each sending one request after
//! another (hyper's client); every answer must be a 200.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustix::process::{Pid, Signal, kill_process};
use serde_json::Value;

use crate::daemon::{CLIENT_ID, Daemon, PASSWORD, USERNAME, cpu_ticks, us_per_op};
use crate::report::percentile;

/// The Home Assistant HTTP peer's script.
const HA_HTTP_PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peer/ha_http.py");

/// A server the load runs against.
#[derive(Debug)]
pub(crate) struct Server {
    child: Child,
    /// Closing it tells the Home Assistant peer to stop.
    stdin: Option<ChildStdin>,
    pub(crate) addr: SocketAddr,
}

impl Server {
    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        drop(self.stdin.take());
        if matches!(self.child.try_wait(), Ok(None)) {
            if let Ok(pid) = i32::try_from(self.child.id())
                && let Some(pid) = Pid::from_raw(pid)
            {
                let _ = kill_process(pid, Signal::TERM);
            }
            let _ = self.child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `latch-http` beside this binary.
fn latch_http_path() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the bench binary")?;
    let path = exe.with_file_name("latch-http");
    if !path.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p latch-http` \
             (`cargo xtask bench` does)",
            path.display()
        );
    }
    Ok(path)
}

/// Starts `latch-http` for `daemon`'s home on a free loopback port; returns once it
/// has said where it listens.
pub(crate) fn spawn_latch_http(daemon: &Daemon) -> Result<Server> {
    let path = latch_http_path()?;
    let mut child = Command::new(&path)
        .arg("--home")
        .arg(daemon.home())
        .args(["--listen", "127.0.0.1:0", "--log-level", "info"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", path.display()))?;
    let stderr = child.stderr.take().context("no stderr")?;
    let addr = first_line_with(stderr, "latch-http serving on http://", |rest| {
        rest.split_whitespace().next().and_then(|a| a.parse().ok())
    })
    .context("latch-http did not say where it listens")?;
    Ok(Server {
        child,
        stdin: None,
        addr,
    })
}

/// Reads lines until one holds `marker`; `parse` reads what follows it. The rest of the
/// stream is drained in the background, so the child never blocks on a full pipe.
fn first_line_with<T>(
    stream: impl std::io::Read + Send + 'static,
    marker: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    use std::io::BufRead as _;
    let mut lines = std::io::BufReader::new(stream).lines();
    let found = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| line.split_once(marker).and_then(|(_, rest)| parse(rest)));
    std::thread::spawn(move || lines.for_each(drop));
    found
}

/// Home Assistant serving its auth API; returns it and the refresh token it issued.
pub(crate) fn spawn_home_assistant(python: &Path) -> Result<(Server, String, String)> {
    let mut child = Command::new(python)
        .arg(HA_HTTP_PEER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {} {HA_HTTP_PEER}", python.display()))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().context("no stdout")?;
    let line: Value = first_line_with(stdout, "{", |rest| {
        serde_json::from_str(&format!("{{{rest}")).ok()
    })
    .context("the Home Assistant peer did not start (see peer/ha_http.py)")?;
    let port = line["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .context("no port from the Home Assistant peer")?;
    let token = line["refresh_token"].as_str().context("no refresh token")?;
    let client_id = line["client_id"].as_str().context("no client id")?;
    Ok((
        Server {
            child,
            stdin,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        },
        token.to_owned(),
        client_id.to_owned(),
    ))
}

impl Server {
    /// A server process that has said where it listens.
    pub(crate) fn from_child(child: Child, addr: SocketAddr) -> Self {
        Self {
            child,
            stdin: None,
            addr,
        }
    }
}

/// One keep-alive connection.
pub(crate) struct Conn {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Conn {
    pub(crate) async fn open(addr: SocketAddr) -> Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self { send })
    }

    /// Sends a request; the answer's status and body.
    pub(crate) async fn call(&mut self, request: Request<Full<Bytes>>) -> Result<(u16, Bytes)> {
        let (status, _, body) = self.call_with_headers(request).await?;
        Ok((status, body))
    }

    /// Sends a request; the answer's status, headers and body.
    pub(crate) async fn call_with_headers(
        &mut self,
        request: Request<Full<Bytes>>,
    ) -> Result<(u16, hyper::HeaderMap, Bytes)> {
        self.send.ready().await?;
        let response = self.send.send_request(request).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, headers, body))
    }
}

pub(crate) fn post(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    body: String,
) -> Result<Request<Full<Bytes>>> {
    Request::post(path)
        .header("host", addr.to_string())
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .context("cannot build a request")
}

pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let enc = |s: &str| -> String {
                s.bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                            char::from(b).to_string()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect()
            };
            format!("{}={}", enc(k), enc(v))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Signs the daemon's owner in through latch-http as an app does; its refresh token.
pub(crate) async fn sign_in(addr: SocketAddr) -> Result<String> {
    let mut conn = Conn::open(addr).await?;
    let start = serde_json::json!({
        "client_id": CLIENT_ID, "handler": ["homeassistant", null], "redirect_uri": CLIENT_ID,
    });
    let (_, body) = conn
        .call(post(
            addr,
            "/auth/login_flow",
            "application/json",
            start.to_string(),
        )?)
        .await?;
    let flow: Value = serde_json::from_slice(&body)?;
    let flow_id = flow["flow_id"].as_str().context("no flow id")?;
    let step =
        serde_json::json!({"client_id": CLIENT_ID, "username": USERNAME, "password": PASSWORD});
    let (_, body) = conn
        .call(post(
            addr,
            &format!("/auth/login_flow/{flow_id}"),
            "application/json",
            step.to_string(),
        )?)
        .await?;
    let entry: Value = serde_json::from_slice(&body)?;
    let code = entry["result"].as_str().context("no code")?;
    let grant = form(&[
        ("grant_type", "authorization_code"),
        ("client_id", CLIENT_ID),
        ("code", code),
    ]);
    let (status, body) = conn
        .call(post(
            addr,
            "/auth/token",
            "application/x-www-form-urlencoded",
            grant,
        )?)
        .await?;
    if status != 200 {
        bail!(
            "the code exchange answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let tokens: Value = serde_json::from_slice(&body)?;
    Ok(tokens["refresh_token"]
        .as_str()
        .context("no refresh token")?
        .to_owned())
}

/// What a load run measured.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    pub(crate) rate: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    /// CPU per request of each metered process, in the order given.
    pub(crate) cpu_us: Vec<f64>,
    /// CPU per request of the bench's own client.
    pub(crate) client_us: f64,
}

/// What the load sends on every connection, again and again.
#[derive(Debug, Clone)]
pub(crate) enum Ask {
    /// `POST /auth/token` with the refresh grant.
    Refresh {
        /// The form body.
        body: String,
    },
    /// `GET /.well-known/oauth-authorization-server`: a static answer, latchd not asked.
    Static,
    /// `GET path` with these headers.
    Get {
        /// The path.
        path: String,
        /// The headers, besides `host`.
        headers: Vec<(String, String)>,
    },
}

impl Ask {
    /// The refresh grant of `refresh_token` for `client_id`.
    pub(crate) fn refresh(refresh_token: &str, client_id: &str) -> Self {
        Self::Refresh {
            body: form(&[
                ("grant_type", "refresh_token"),
                ("client_id", client_id),
                ("refresh_token", refresh_token),
            ]),
        }
    }

    pub(crate) fn request(&self, addr: SocketAddr) -> Result<Request<Full<Bytes>>> {
        match self {
            Self::Refresh { body } => post(
                addr,
                "/auth/token",
                "application/x-www-form-urlencoded",
                body.clone(),
            ),
            Self::Static => Request::get("/.well-known/oauth-authorization-server")
                .header("host", addr.to_string())
                .body(Full::new(Bytes::new()))
                .context("cannot build a request"),
            Self::Get { path, headers } => headers
                .iter()
                .fold(
                    Request::get(path.as_str()).header("host", addr.to_string()),
                    |r, (k, v)| r.header(k.as_str(), v.as_str()),
                )
                .body(Full::new(Bytes::new()))
                .context("cannot build a request"),
        }
    }
}

/// `connections` keep-alive connections, each sending `ask` one request after another
/// for `duration`; the CPU time of the processes `pids` is metered. Every answer must
/// be a 200.
pub(crate) async fn load(
    addr: SocketAddr,
    ask: &Ask,
    connections: usize,
    duration: Duration,
    pids: &[u32],
) -> Result<Load> {
    let mut conns = Vec::new();
    for _ in 0..connections {
        let mut conn = Conn::open(addr).await?;
        // Warm up, and check that the request works at all.
        let (status, answer) = conn.call(ask.request(addr)?).await?;
        if status != 200 {
            bail!(
                "{addr} answered {status}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
        conns.push(conn);
    }
    let ticks_before: Vec<u64> = pids
        .iter()
        .map(|pid| cpu_ticks(Some(*pid)))
        .collect::<Result<_>>()?;
    let client_before = cpu_ticks(None)?;
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for mut conn in conns {
        let ask = ask.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let request = ask.request(addr)?;
                let sent = Instant::now();
                let (status, answer) = conn.call(request).await?;
                latencies.push(sent.elapsed());
                if status != 200 {
                    bail!(
                        "{addr} answered {status}: {}",
                        String::from_utf8_lossy(&answer)
                    );
                }
            }
            anyhow::Ok(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ops = latencies.len() as u64;
    let cpu_us = pids
        .iter()
        .zip(&ticks_before)
        .map(|(pid, before)| {
            Ok(us_per_op(
                cpu_ticks(Some(*pid))?.saturating_sub(*before),
                ops,
            ))
        })
        .collect::<Result<_>>()?;
    let client_us = us_per_op(cpu_ticks(None)?.saturating_sub(client_before), ops);
    let mut micros: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let rate = micros.len() as f64 / elapsed;
    Ok(Load {
        rate,
        p50_us: percentile(&mut micros, 50.0).unwrap_or(0.0),
        p99_us: percentile(&mut micros, 99.0).unwrap_or(0.0),
        cpu_us,
        client_us,
    })
}
