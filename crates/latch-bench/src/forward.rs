//! Forward-auth under load: `GET /auth/verify` as nginx's `auth_request` sends it, with
//! a session cookie and with a bearer token, over keep-alive connections, beside a
//! bare hyper server that answers 200 to everything (another process, measured with the
//! same load in the same run); and the time from a revoke to the first refused verify.
//!
//! latch's side is the real `latch-http` in front of a real `latchd`, with
//! `default_policy = "allow"`; the session comes from a sign-in through `/auth/signin`'s
//! form, the bearer token is a long-lived access token.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper_util::rt::TokioIo;

use crate::daemon::{PASSWORD, USERNAME};
use crate::http::{Ask, Conn, Server, form, post};
use crate::report::percentile;

/// The original URL every verify asks about.
const ORIGINAL_URL: &str = "https://app.home.example/dashboard";

/// `--bare-http`: serves `200 ok` to every request on a free loopback port, telling
/// `bound` its address first. Runs until killed.
pub(crate) fn bare_http(bound: impl FnOnce(SocketAddr)) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        bound(listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"ok",
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// Starts this binary in `--bare-http` mode.
pub(crate) fn spawn_bare_http() -> Result<Server> {
    let exe = std::env::current_exe().context("cannot find the bench binary")?;
    let mut child = Command::new(exe)
        .arg("--bare-http")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the bare hyper server")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .with_context(|| format!("the bare server said {line:?}"))?;
    Ok(Server::from_child(child, addr))
}

/// The value of a hidden input of a page.
fn hidden(page: &str, name: &str) -> Option<String> {
    let marker = format!(r#"name="{name}" value=""#);
    let start = page.find(&marker)? + marker.len();
    let end = start + page[start..].find('"')?;
    Some(page[start..end].to_owned())
}

/// Signs the owner in through `/auth/signin`'s form; the session cookie's value.
pub(crate) async fn session(addr: SocketAddr) -> Result<String> {
    let mut conn = Conn::open(addr).await?;
    let (status, page) = conn
        .call(
            Ask::Get {
                path: "/auth/signin".to_owned(),
                headers: Vec::new(),
            }
            .request(addr)?,
        )
        .await?;
    let page = String::from_utf8_lossy(&page).into_owned();
    if status != 200 {
        bail!("/auth/signin answered {status}: {page}");
    }
    let flow_id = hidden(&page, "flow_id").context("no flow id on the sign-in page")?;
    let csrf = hidden(&page, "csrf").context("no csrf token on the sign-in page")?;
    let body = form(&[
        ("flow_id", &flow_id),
        ("csrf", &csrf),
        ("f_username", USERNAME),
        ("f_password", PASSWORD),
    ]);
    let (status, headers, answer) = conn
        .call_with_headers(post(
            addr,
            "/auth/signin",
            "application/x-www-form-urlencoded",
            body,
        )?)
        .await?;
    let cookie = headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("latch_session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned);
    match cookie {
        Some(cookie) if !cookie.is_empty() => Ok(cookie),
        _ => bail!(
            "the sign-in answered {status} without a session: {}",
            String::from_utf8_lossy(&answer)
        ),
    }
}

/// The verify request nginx sends, with a credential header.
pub(crate) fn verify_ask(header: &str, value: String) -> Ask {
    Ask::Get {
        path: "/auth/verify".to_owned(),
        headers: vec![
            ("x-original-url".to_owned(), ORIGINAL_URL.to_owned()),
            ("x-forwarded-method".to_owned(), "GET".to_owned()),
            (header.to_owned(), value),
        ],
    }
}

/// The verify request for a session cookie.
pub(crate) fn cookie_ask(session: &str) -> Ask {
    verify_ask("cookie", format!("latch_session={session}"))
}

/// What the revoke scenario measured, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RevokeTimes {
    pub(crate) p50_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) trials: usize,
}

/// `trials` times: a fresh session, verified once (so latch-http caches it), revoked
/// through latch-client (what `latch token revoke` sends), then verified again and
/// again on a warm connection until the answer is not 200. The time runs from sending
/// the revoke to that first refusal.
pub(crate) async fn revoke_to_refusal(
    addr: SocketAddr,
    client: &latch_client::Client,
    trials: usize,
) -> Result<RevokeTimes> {
    let mut conn = Conn::open(addr).await?;
    let mut samples = Vec::new();
    for _ in 0..trials {
        let session = session(addr).await?;
        let ask = cookie_ask(&session);
        let (status, _) = conn.call(ask.request(addr)?).await?;
        if status != 200 {
            bail!("a fresh session's verify answered {status}");
        }
        let sent = Instant::now();
        client.revoke(&session).await.context("revoke")?;
        let deadline = sent + Duration::from_secs(5);
        loop {
            let (status, _) = conn.call(ask.request(addr)?).await?;
            if status != 200 {
                break;
            }
            if Instant::now() > deadline {
                bail!("a revoked session was still let through after 5 s");
            }
        }
        samples.push(sent.elapsed().as_secs_f64() * 1e3);
    }
    let max_ms = samples.iter().copied().fold(0.0, f64::max);
    Ok(RevokeTimes {
        p50_ms: percentile(&mut samples, 50.0).unwrap_or(0.0),
        max_ms,
        trials,
    })
}
