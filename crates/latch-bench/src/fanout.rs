//! Scenario 9: many authenticated, subscribed connections; one event; the time until
//! the last connection has it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use latch_client::NewUser;
use latch_ipc::ServerFrame;
use latch_ipc::client::{ClientConfig, ClientConnection};
use latch_ipc::home::Home;
use latch_protocol::{Event, EventKind, PROTOCOL_VERSION, Request, RequestFrame, ResponsePayload};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tokio::sync::{Semaphore, mpsc};

use crate::daemon::Daemon;

type Conn = ClientConnection<RequestFrame, ResponsePayload, Event>;

/// File descriptors kept free for everything else the bench and the daemon hold.
const FD_SPARE: u64 = 256;
/// Handshakes in progress at once (the daemon closes pre-auth connections past 64).
const CONNECT_CONCURRENCY: usize = 32;
/// How long the last event may take before the run gives up.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(30);

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (children inherit it); returns
/// the soft limit now in force.
pub(crate) fn raise_fd_limit() -> u64 {
    let limit = getrlimit(Resource::Nofile);
    if let Some(max) = limit.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(max),
                maximum: Some(max),
            },
        );
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// What the fan-out saw.
#[derive(Clone, Debug)]
pub(crate) struct FanOut {
    pub(crate) connections: usize,
    pub(crate) requested: usize,
    pub(crate) fd_limit: u64,
    pub(crate) connect_secs: f64,
    pub(crate) last_ms: f64,
    pub(crate) p50_ms: f64,
}

async fn subscribed(config: &ClientConfig) -> Result<Conn> {
    let mut conn: Conn = latch_ipc::client::connect(config).await?;
    conn.send(&RequestFrame {
        id: 1,
        request: Request::Subscribe {
            kinds: vec![EventKind::UserAdded],
        },
    })
    .await?;
    match conn.recv().await? {
        Some(ServerFrame::Response(ResponsePayload {
            id: 1,
            result: Ok(_),
        })) => Ok(conn),
        other => bail!("subscribe was answered {other:?}"),
    }
}

/// Scenario 9 with `requested` connections (fewer if the fd limit does not allow).
pub(crate) async fn measure(daemon: &Daemon, requested: usize) -> Result<FanOut> {
    let fd_limit = raise_fd_limit();
    let allowed = usize::try_from(fd_limit.saturating_sub(FD_SPARE)).unwrap_or(usize::MAX);
    let n = requested.min(allowed);
    let config = ClientConfig::for_home(&Home::new(daemon.home()), PROTOCOL_VERSION);

    let t = Instant::now();
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut connecting = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (gate, config) = (gate.clone(), config.clone());
        connecting.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            subscribed(&config).await
        });
    }
    let mut conns = Vec::with_capacity(n);
    while let Some(result) = connecting.join_next().await {
        conns.push(result?.context("connect + subscribe")?);
    }
    let connect_secs = t.elapsed().as_secs_f64();

    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let mut senders = Vec::with_capacity(n);
    let mut waiting = tokio::task::JoinSet::new();
    for conn in conns {
        let (sender, mut receiver) = conn.into_split();
        senders.push(sender);
        let tx = tx.clone();
        waiting.spawn(async move {
            while let Ok(Some(frame)) = receiver.recv().await {
                if let ServerFrame::Event(Event::UserAdded { .. }) = frame {
                    let _ = tx.send(Instant::now());
                    break;
                }
            }
        });
    }
    drop(tx);
    let trigger = daemon.client().await?;
    // Let every waiting task reach its first read.
    tokio::task::yield_now().await;
    let t0 = Instant::now();
    trigger
        .create_user(NewUser::new("fan-out"))
        .await
        .context("create_user")?;
    let mut arrivals = Vec::with_capacity(n);
    let deadline = tokio::time::sleep(DELIVERY_DEADLINE);
    tokio::pin!(deadline);
    while arrivals.len() < n {
        tokio::select! {
            at = rx.recv() => match at {
                Some(at) => arrivals.push(at.duration_since(t0).as_secs_f64() * 1e3),
                None => break,
            },
            () = &mut deadline => break,
        }
    }
    trigger.disconnect();
    for sender in &senders {
        sender.close();
    }
    waiting.abort_all();
    if arrivals.len() < n {
        bail!(
            "only {} of {n} connections received the event within {DELIVERY_DEADLINE:?}",
            arrivals.len()
        );
    }
    let last_ms = arrivals.iter().copied().fold(0.0_f64, f64::max);
    let p50_ms = crate::report::percentile(&mut arrivals, 50.0).unwrap_or_default();
    Ok(FanOut {
        connections: n,
        requested,
        fd_limit,
        connect_secs,
        last_ms,
        p50_ms,
    })
}
