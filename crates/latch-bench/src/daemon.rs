//! A real `latchd` in a temp home, as a child process, and a client for it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use latch_client::{Client, ClientOptions, ReconnectPolicy};
use rustix::process::{Pid, Signal, kill_process};
use tempfile::TempDir;

/// The password of the bench's owner account.
pub(crate) const PASSWORD: &str = "correct horse battery staple";
/// Its username.
pub(crate) const USERNAME: &str = "bench";
/// The OAuth client id of the bench's logins.
pub(crate) const CLIENT_ID: &str = "http://127.0.0.1:8123/";

/// How long a daemon may take to answer its first ping.
const READY_DEADLINE: Duration = Duration::from_secs(20);

/// A `latchd` child process in its own temp home; stopped (SIGTERM, wait) on drop.
#[derive(Debug)]
pub(crate) struct Daemon {
    child: Child,
    home: TempDir,
    spawned_at: Instant,
}

/// `latchd` beside this binary (`target/release/latchd`).
pub(crate) fn latchd_path() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the bench binary")?;
    let path = exe.with_file_name("latchd");
    if !path.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p latch-daemon` \
             (`cargo xtask bench` does)",
            path.display()
        );
    }
    Ok(path)
}

impl Daemon {
    /// Starts `latchd` on a fresh empty home with the given bcrypt cost, throttling off
    /// and logs at `warn`. Returns at once: see [`Daemon::wait_ready`].
    pub(crate) fn spawn(bcrypt_cost: u32) -> Result<Self> {
        Self::spawn_with(bcrypt_cost, |_| Ok(String::new()))
    }

    /// As [`Daemon::spawn`], with the tables `extra` writes for the home appended to its
    /// `latch.toml` (a `[store]` on a shared database, say).
    pub(crate) fn spawn_with(
        bcrypt_cost: u32,
        extra: impl FnOnce(&Path) -> Result<String>,
    ) -> Result<Self> {
        let home = tempfile::Builder::new()
            .prefix("latch-bench-")
            .tempdir()
            .context("cannot create a temp home")?;
        let tables = extra(home.path())?;
        let (child, spawned_at) = start(home.path(), bcrypt_cost, &tables)?;
        Ok(Self {
            child,
            home,
            spawned_at,
        })
    }

    /// Stops the daemon (a clean stop: the store's files are rewritten) and starts it
    /// again on the same home with another bcrypt cost. Returns at once: see
    /// [`Daemon::wait_ready`].
    pub(crate) fn restart_with_cost(&mut self, bcrypt_cost: u32) -> Result<()> {
        self.stop();
        let (child, spawned_at) = start(self.home.path(), bcrypt_cost, "")?;
        self.child = child;
        self.spawned_at = spawned_at;
        Ok(())
    }

    /// Polls connect + handshake + ping until the daemon answers; returns the time from
    /// the exec to that answer.
    pub(crate) async fn wait_ready(&mut self) -> Result<Duration> {
        loop {
            if let Ok(client) = Client::connect_with(self.options()).await
                && client.ping().await.is_ok()
            {
                let ready = self.spawned_at.elapsed();
                client.disconnect();
                return Ok(ready);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("latchd exited before it was ready: {status}");
            }
            if self.spawned_at.elapsed() > READY_DEADLINE {
                bail!("latchd not ready after {READY_DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    }

    /// Client options for this daemon: no reconnects, no request deadline (a deadline
    /// is a timer per request, which is not the daemon's cost).
    pub(crate) fn options(&self) -> ClientOptions {
        ClientOptions {
            reconnect: ReconnectPolicy::Never,
            request_timeout: None,
            ..ClientOptions::for_home(self.home.path())
        }
    }

    /// The home directory.
    pub(crate) fn home(&self) -> &std::path::Path {
        self.home.path()
    }

    /// The daemon's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A connected client.
    pub(crate) async fn client(&self) -> Result<Client> {
        Client::connect_with(self.options())
            .await
            .context("cannot connect to latchd")
    }

    /// Onboards the owner (username [`USERNAME`], password [`PASSWORD`]) and returns a
    /// long-lived access token for it, and the user id.
    pub(crate) async fn owner_token(&self) -> Result<(String, String)> {
        let client = self.client().await?;
        let owner = client
            .onboard("Bench", USERNAME, PASSWORD)
            .await
            .context("onboard")?;
        let token = client
            .create_long_lived_token(&owner.id, "latch-bench", None, 30)
            .await
            .context("create a long-lived token")?;
        client.disconnect();
        Ok((token.access_token.expose().to_owned(), owner.id))
    }

    fn stop(&mut self) {
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

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes `home/latch.toml` (the given bcrypt cost, throttling off, logs at `warn`) and
/// starts `latchd` on `home`.
fn start(home: &Path, bcrypt_cost: u32, tables: &str) -> Result<(Child, Instant)> {
    let latchd = latchd_path()?;
    let config = format!(
        "log_level = \"warn\"\n\n[[auth_providers]]\ntype = \"homeassistant\"\n\
         bcrypt_cost = {bcrypt_cost}\n\n[throttle]\nenabled = false\n{tables}"
    );
    std::fs::write(home.join("latch.toml"), config).context("cannot write latch.toml")?;
    let spawned_at = Instant::now();
    let child = Command::new(&latchd)
        .arg("--home")
        .arg(home)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", latchd.display()))?;
    Ok((child, spawned_at))
}

/// Resident set size of a process (`VmRSS` in `/proc/<pid>/status`), in kB.
pub(crate) fn rss_kb(pid: Option<u32>) -> Result<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_vm_rss(&status).with_context(|| format!("no VmRSS in {path}"))
}

/// The `VmRSS:` line of a `/proc/<pid>/status` text, in kB.
pub(crate) fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// CPU time (user + system) a process has used so far, in clock ticks of 10 ms
/// (`/proc/<pid>/stat` fields 14 and 15; Linux's USER_HZ is 100).
pub(crate) fn cpu_ticks(pid: Option<u32>) -> Result<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_cpu_ticks(&stat).with_context(|| format!("cannot parse {path}"))
}

/// utime + stime of a `/proc/<pid>/stat` line.
pub(crate) fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields restart after the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Microseconds of CPU per operation, from clock ticks.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn us_per_op(ticks: u64, ops: u64) -> f64 {
    ticks as f64 * 10_000.0 / ops.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_ticks() {
        let stat =
            "4242 (latch d) S 1 4242 4242 0 -1 4194560 900 0 0 0 170 30 0 0 20 0 4 0 123 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(200));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1"), None);
        assert!((us_per_op(200, 1_000) - 2_000.0).abs() < 1e-9);
    }

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tlatchd\nVmPeak:\t  10000 kB\nVmRSS:\t    6144 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(6144));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }
}
