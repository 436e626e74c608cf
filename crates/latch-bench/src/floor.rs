//! The socket floor: a raw ping-pong of a 64-byte frame between two processes over a
//! Unix socket, blocking IO, no framing, no crypto, no runtime.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The frame size.
const FRAME: usize = 64;

/// A measured ping-pong.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PingPong {
    /// Round trips per second.
    pub(crate) rate: f64,
    /// Microseconds per round trip.
    pub(crate) rtt_us: f64,
}

/// How the two ends of a ping-pong do their IO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Io {
    /// Blocking std reads and writes: the floor.
    Blocking,
    /// Tokio on one thread at each end (epoll, readiness, task wake-ups): what any async
    /// daemon and client pay before doing any work of their own. For reference.
    Async,
}

impl Io {
    fn echo_flag(self) -> &'static str {
        match self {
            Self::Blocking => "--echo",
            Self::Async => "--echo-async",
        }
    }
}

/// Measures round trips with a child process (this binary in `--echo` or
/// `--echo-async` mode) for `duration`.
pub(crate) fn measure(duration: Duration, io: Io) -> Result<PingPong> {
    let dir = tempfile::tempdir().context("cannot create a temp dir")?;
    let path = dir.path().join("pingpong.sock");
    let listener = UnixListener::bind(&path).context("cannot bind the ping-pong socket")?;
    let exe = std::env::current_exe().context("cannot find the bench binary")?;
    let mut child = Command::new(exe)
        .arg(io.echo_flag())
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("cannot start the echo process")?;
    let (stream, _) = listener
        .accept()
        .context("the echo process did not connect")?;
    let (n, secs) = match io {
        Io::Blocking => blocking_round_trips(stream, duration)?,
        Io::Async => current_thread()?.block_on(async_round_trips(stream, duration))?,
    };
    let status = child.wait()?;
    if !status.success() {
        bail!("the echo process failed: {status}");
    }
    #[allow(clippy::cast_precision_loss)]
    let n = n as f64;
    Ok(PingPong {
        rate: n / secs,
        rtt_us: secs * 1e6 / n,
    })
}

/// Round trips after a warm-up of 1,000, in batches of 100 until `duration` has passed:
/// how many and in how many seconds. Drops (closes) the stream at the end.
fn blocking_round_trips(mut stream: UnixStream, duration: Duration) -> Result<(u64, f64)> {
    let mut frame = [0x5a_u8; FRAME];
    let mut round_trip = |stream: &mut UnixStream| -> Result<()> {
        stream.write_all(&frame)?;
        stream.read_exact(&mut frame)?;
        Ok(())
    };
    for _ in 0..1_000 {
        round_trip(&mut stream)?;
    }
    let start = Instant::now();
    let mut n = 0_u64;
    while start.elapsed() < duration {
        for _ in 0..100 {
            round_trip(&mut stream)?;
        }
        n += 100;
    }
    Ok((n, start.elapsed().as_secs_f64()))
}

/// As [`blocking_round_trips`], with tokio.
async fn async_round_trips(stream: UnixStream, duration: Duration) -> Result<(u64, f64)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    stream.set_nonblocking(true)?;
    let mut stream = tokio::net::UnixStream::from_std(stream)?;
    let mut frame = [0x5a_u8; FRAME];
    for _ in 0..1_000 {
        stream.write_all(&frame).await?;
        stream.read_exact(&mut frame).await?;
    }
    let start = Instant::now();
    let mut n = 0_u64;
    while start.elapsed() < duration {
        for _ in 0..100 {
            stream.write_all(&frame).await?;
            stream.read_exact(&mut frame).await?;
        }
        n += 100;
    }
    Ok((n, start.elapsed().as_secs_f64()))
}

fn current_thread() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("cannot build a tokio runtime")
}

/// `--echo <socket>` / `--echo-async <socket>`: connect and send every 64-byte frame
/// back until the end of input.
pub(crate) fn echo(path: &str, io: Io) -> Result<()> {
    let mut stream = UnixStream::connect(path).with_context(|| format!("cannot connect {path}"))?;
    let mut frame = [0_u8; FRAME];
    if io == Io::Async {
        return current_thread()?.block_on(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            stream.set_nonblocking(true)?;
            let mut stream = tokio::net::UnixStream::from_std(stream)?;
            loop {
                match stream.read_exact(&mut frame).await {
                    Ok(_) => stream.write_all(&frame).await?,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
        });
    }
    loop {
        match stream.read_exact(&mut frame) {
            Ok(()) => stream.write_all(&frame)?,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}
