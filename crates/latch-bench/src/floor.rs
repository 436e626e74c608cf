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

/// Measures round trips with a child process (this binary in `--echo` mode) for
/// `duration`.
pub(crate) fn measure(duration: Duration) -> Result<PingPong> {
    let dir = tempfile::tempdir().context("cannot create a temp dir")?;
    let path = dir.path().join("pingpong.sock");
    let listener = UnixListener::bind(&path).context("cannot bind the ping-pong socket")?;
    let exe = std::env::current_exe().context("cannot find the bench binary")?;
    let mut child = Command::new(exe)
        .arg("--echo")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("cannot start the echo process")?;
    let (mut stream, _) = listener
        .accept()
        .context("the echo process did not connect")?;
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
    loop {
        for _ in 0..100 {
            round_trip(&mut stream)?;
        }
        n += 100;
        if start.elapsed() >= duration {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(stream);
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

/// `--echo <socket>`: connect and send every 64-byte frame back until the end of input.
pub(crate) fn echo(path: &str) -> Result<()> {
    let mut stream = UnixStream::connect(path).with_context(|| format!("cannot connect {path}"))?;
    let mut frame = [0_u8; FRAME];
    loop {
        match stream.read_exact(&mut frame) {
            Ok(()) => stream.write_all(&frame)?,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}
