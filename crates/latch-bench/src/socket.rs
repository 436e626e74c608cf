//! Scenarios 3–6: validation over the real socket of a `latchd` child process, through
//! `latch-client` (what a service uses).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use latch_client::Client;
use latch_client::protocol::{FlowState, Handler, Sensitive};

use crate::daemon::{CLIENT_ID, Daemon, PASSWORD, USERNAME, cpu_ticks, us_per_op};
use crate::report::percentile;

/// Latencies in microseconds and a rate.
#[derive(Clone, Debug)]
pub(crate) struct Latency {
    pub(crate) rate: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) samples: usize,
    /// CPU per operation, daemon and bench client, in µs (0 when not measured).
    pub(crate) cpu: Cpu,
}

/// CPU per operation in µs: the daemon's and the bench process's (the client).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cpu {
    pub(crate) daemon_us: f64,
    pub(crate) client_us: f64,
}

impl Cpu {
    /// A note fragment: "CPU/op: daemon X µs, client Y µs".
    pub(crate) fn describe(self) -> String {
        format!(
            "CPU per validation: latchd {:.1} µs, bench client {:.1} µs",
            self.daemon_us, self.client_us
        )
    }
}

/// Reads both processes' CPU clocks at the start of a measurement.
struct CpuMeter {
    pid: u32,
    daemon: u64,
    client: u64,
}

impl CpuMeter {
    fn start(daemon: &Daemon) -> Result<Self> {
        Ok(Self {
            pid: daemon.pid(),
            daemon: cpu_ticks(Some(daemon.pid()))?,
            client: cpu_ticks(None)?,
        })
    }

    fn finish(&self, ops: u64) -> Result<Cpu> {
        let daemon = cpu_ticks(Some(self.pid))?.saturating_sub(self.daemon);
        let client = cpu_ticks(None)?.saturating_sub(self.client);
        Ok(Cpu {
            daemon_us: us_per_op(daemon, ops),
            client_us: us_per_op(client, ops),
        })
    }
}

fn summarize(mut samples: Vec<f64>, elapsed: Duration) -> Result<Latency> {
    let n = samples.len();
    let p50_us = percentile(&mut samples, 50.0).context("no samples")?;
    let p99_us = percentile(&mut samples, 99.0).context("no samples")?;
    #[allow(clippy::cast_precision_loss)]
    let rate = n as f64 / elapsed.as_secs_f64();
    Ok(Latency {
        rate,
        p50_us,
        p99_us,
        samples: n,
        cpu: Cpu::default(),
    })
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Scenario 3: one connection, one request at a time.
pub(crate) async fn one_at_a_time(
    daemon: &Daemon,
    token: &str,
    duration: Duration,
) -> Result<Latency> {
    let client = daemon.client().await?;
    for _ in 0..500 {
        client.validate_token(token).await.context("validate")?;
    }
    let mut samples = Vec::with_capacity(200_000);
    let meter = CpuMeter::start(daemon)?;
    let start = Instant::now();
    while start.elapsed() < duration {
        let t = Instant::now();
        client.validate_token(token).await.context("validate")?;
        samples.push(micros(t.elapsed()));
    }
    let elapsed = start.elapsed();
    let cpu = meter.finish(samples.len() as u64)?;
    client.disconnect();
    Ok(Latency {
        cpu,
        ..summarize(samples, elapsed)?
    })
}

/// Scenario 4: `connections` connections with `in_flight` requests outstanding in all;
/// validations per second.
pub(crate) async fn pipelined(
    daemon: &Daemon,
    token: &str,
    connections: usize,
    in_flight: usize,
    duration: Duration,
) -> Result<(f64, Cpu)> {
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(daemon.client().await?);
    }
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let counting = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..in_flight {
        let client = clients[i % connections].clone();
        let token = token.to_owned();
        let (done, stop, counting) = (done.clone(), stop.clone(), counting.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                client.validate_token(&token).await?;
                if counting.load(Ordering::Relaxed) {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<(), latch_client::ClientError>(())
        });
    }
    // Warm-up, then count.
    tokio::time::sleep(duration / 5).await;
    counting.store(true, Ordering::Relaxed);
    let meter = CpuMeter::start(daemon)?;
    let start = Instant::now();
    tokio::time::sleep(duration).await;
    let n = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    let cpu = meter.finish(n)?;
    stop.store(true, Ordering::Relaxed);
    while let Some(result) = tasks.join_next().await {
        result?.context("validate")?;
    }
    for client in clients {
        client.disconnect();
    }
    #[allow(clippy::cast_precision_loss)]
    Ok((n as f64 / elapsed.as_secs_f64(), cpu))
}

/// Scenario 5: connect + handshake + one validation, `samples` times.
pub(crate) async fn handshake(daemon: &Daemon, token: &str, samples: usize) -> Result<Latency> {
    let mut out = Vec::with_capacity(samples);
    let start = Instant::now();
    for i in 0..samples + 20 {
        let t = Instant::now();
        let client = daemon.client().await?;
        client.validate_token(token).await.context("validate")?;
        let took = t.elapsed();
        client.disconnect();
        if i >= 20 {
            out.push(micros(took));
        }
    }
    summarize(out, start.elapsed())
}

/// What scenario 6 saw.
#[derive(Clone, Debug)]
pub(crate) struct UnderLoad {
    pub(crate) validation: Latency,
    pub(crate) logins: u64,
    pub(crate) login_tasks: usize,
}

/// One password login; returns whether it finished with tokens.
async fn login(client: &Client) -> Result<()> {
    let flow = client
        .login_start(Handler::new("homeassistant"), CLIENT_ID, None, None)
        .await
        .context("login_start")?;
    let FlowState::Form(form) = flow else {
        bail!("login_start did not answer a form: {flow:?}");
    };
    let input = vec![
        ("username".to_owned(), Sensitive::from(USERNAME)),
        ("password".to_owned(), Sensitive::from(PASSWORD)),
    ];
    match client.login_continue(&form.flow_id, input, None).await? {
        FlowState::Done { .. } => Ok(()),
        other => bail!("the login did not finish: {other:?}"),
    }
}

/// Scenario 6: `login_tasks` connections run password logins back to back (each a
/// bcrypt verification on the daemon's pool) while one more validates, one request at
/// a time.
pub(crate) async fn under_login_load(
    daemon: &Daemon,
    token: &str,
    login_tasks: usize,
    duration: Duration,
) -> Result<UnderLoad> {
    let logins = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..login_tasks {
        let client = daemon.client().await?;
        let (logins, stop) = (logins.clone(), stop.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                login(&client).await?;
                logins.fetch_add(1, Ordering::Relaxed);
            }
            client.disconnect();
            Ok::<(), anyhow::Error>(())
        });
    }
    let validator = daemon.client().await?;
    // Let the logins reach the bcrypt pool.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut samples = Vec::with_capacity(100_000);
    let start = Instant::now();
    while start.elapsed() < duration {
        let t = Instant::now();
        validator.validate_token(token).await.context("validate")?;
        samples.push(micros(t.elapsed()));
    }
    let elapsed = start.elapsed();
    let logins_done = logins.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    validator.disconnect();
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    if logins_done == 0 {
        bail!("no login finished during the measurement");
    }
    Ok(UnderLoad {
        validation: summarize(samples, elapsed)?,
        logins: logins_done,
        login_tasks,
    })
}
