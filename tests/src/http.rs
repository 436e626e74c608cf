//! `latch-http` in front of a home's `latchd`: started on a free loopback port, its
//! address read from its first log line, stopped with SIGTERM (or killed when the guard
//! drops, its log printed if the test is failing).

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::{CLIENT_VARS, DEADLINE, Home, POLL, binaries, send_sigterm, wait_until};

/// A running `latch-http`.
pub struct HttpDoor<'h> {
    home: &'h Home,
    child: Option<Child>,
    log: PathBuf,
    addr: SocketAddr,
    tls: bool,
}

impl std::fmt::Debug for HttpDoor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpDoor")
            .field("addr", &self.addr)
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

static STARTS: AtomicU32 = AtomicU32::new(0);

impl Home {
    /// `latch-http --home <home> --listen 127.0.0.1:0 ARGS…` with the client variables
    /// cleared. Its `[http]` section comes from the home's `latch.toml`.
    #[must_use]
    pub fn latch_http(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&binaries().latch_http);
        for var in CLIENT_VARS {
            command.env_remove(var);
        }
        command
            .arg("--home")
            .arg(self.path())
            .args(["--listen", "127.0.0.1:0"])
            .args(args);
        command
    }

    /// Starts `latch-http` for this home and waits until it listens.
    ///
    /// # Panics
    ///
    /// When it cannot start or exits before it listens.
    #[must_use]
    pub fn start_http(&self, args: &[&str]) -> HttpDoor<'_> {
        let n = STARTS.fetch_add(1, Ordering::Relaxed) + 1;
        let log = self.scratch(&format!("latch-http-{n}.log"));
        let file =
            File::create(&log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let stdout = file
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot share {}: {e}", log.display()));
        let child = self
            .latch_http(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start latch-http: {e}"));
        let mut door = HttpDoor {
            home: self,
            child: Some(child),
            log,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
        };
        door.wait_listening();
        door
    }
}

impl HttpDoor<'_> {
    /// The address it serves on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or `https://`).
    #[must_use]
    pub fn base(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The URL of `path` (which starts with `/`).
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// Everything it logged so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The home it serves.
    #[must_use]
    pub fn home(&self) -> &Home {
        self.home
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(child) = &mut self.child {
                match child.try_wait() {
                    Ok(None) => {}
                    Ok(Some(status)) => {
                        self.child = None;
                        panic!(
                            "latch-http exited ({status}) before it listened:\n{}",
                            self.log()
                        );
                    }
                    Err(e) => panic!("cannot check on latch-http: {e}"),
                }
            }
            let log = self.log();
            if let Some(rest) = log
                .lines()
                .find_map(|line| line.split_once("latch-http serving on ").map(|(_, r)| r))
            {
                let (scheme, addr) = rest.split_once("://").unwrap_or(("http", rest));
                let addr = addr.split_whitespace().next().unwrap_or_default();
                self.addr = addr
                    .parse()
                    .unwrap_or_else(|e| panic!("bad address {addr:?} in latch-http's log: {e}"));
                self.tls = scheme == "https";
                return;
            }
            if Instant::now() >= deadline {
                panic!("latch-http did not listen within {DEADLINE:?}:\n{log}");
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGTERM, then the exit status and the log.
    ///
    /// # Panics
    ///
    /// When it does not exit within [`DEADLINE`].
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let Some(mut child) = self.child.take() else {
            panic!("latch-http was stopped");
        };
        send_sigterm(&mut child);
        let status = wait_until(
            &mut child,
            Instant::now() + DEADLINE,
            "latch-http after SIGTERM",
        );
        (status, self.log())
    }

    /// Polls `check` on its log until it holds.
    ///
    /// # Panics
    ///
    /// When [`DEADLINE`] passes first.
    pub fn wait_for_log(&self, what: &str, check: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !check(&self.log()) {
            assert!(
                Instant::now() < deadline,
                "latch-http never logged {what}:\n{}",
                self.log()
            );
            std::thread::sleep(POLL.max(Duration::from_millis(10)));
        }
    }
}

impl Drop for HttpDoor<'_> {
    #[allow(clippy::print_stderr)] // A failing test's diagnostics go to the test output.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- latch-http log ({}) ----\n{}\n---- end of latch-http log ----",
                self.log.display(),
                self.log()
            );
        }
    }
}
