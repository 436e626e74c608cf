//! latch-tests: the harness of latch's end-to-end tests (the tests are in `tests/`).
//!
//! One job: run the real `latchd`, `latch` and `latch-http` binaries in a temporary
//! home and let a test talk to them, through the command line (arguments, stdin lines,
//! exit code, stdout, stderr), through `latch-client` on the real socket, and over HTTP
//! ([`http`] starts `latch-http` on a loopback port). It holds no auth logic
//! and no test of its own, and touches nothing outside the temporary directories it
//! creates: a [`Home`] removes its directory when dropped, and a [`Daemon`] guard
//! kills its `latchd` when dropped. Nothing here sleeps to wait for something: every
//! wait polls with a deadline ([`DEADLINE`]) and fails the test when it passes.
//!
//! The binaries are the ones cargo builds next to the test executable
//! (`target/<profile>/`): [`binaries`] runs `cargo build -p latch-daemon -p latch-cli
//! -p latch-http --bins` once per test process (a no-op when they are up to date).
//!
//! It also carries an RFC 6238 TOTP written from the RFCs ([`totp`]), so tests compute
//! codes independently of latch's own TOTP module and of the library it uses, and the
//! raw frames of the handshake ([`raw`]) for tests that play a misbehaving client, and
//! the web components of the forward-auth tests ([`web`]: nginx, an upstream app,
//! chromium through chromedriver).
//!
//! # Example
//!
//! ```no_run
//! use latch_tests::Home;
//!
//! let home = Home::new(); // latch.toml with bcrypt cost 4
//! let daemon = home.start(); // returns once `latchd` answers on its socket
//! home.run(
//!     &["onboard", "--name", "Paulus", "--username", "paulus"],
//!     &["correct horse battery", "correct horse battery"],
//! )
//! .assert_code(0);
//! let log = daemon.stop(); // SIGTERM: exit 0, socket and session token removed
//! assert!(log.contains("latchd stopped"));
//! ```

pub mod http;
pub mod raw;
pub mod totp;
pub mod web;

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use latch_client::{Client, ClientOptions, ReconnectPolicy};

/// How long any single wait may take before it fails the test.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// How often a wait re-checks its condition.
const POLL: Duration = Duration::from_millis(10);

/// The provider table every [`Home::new`] and [`Home::with_config`] home gets: the
/// default `homeassistant` provider with a bcrypt cost of 4 (hashing at Home
/// Assistant's 12 would dominate the run time).
pub const FAST_PROVIDER: &str = "[[auth_providers]]\ntype = \"homeassistant\"\nbcrypt_cost = 4\n";

/// The environment variables through which `latch` and `latchd` find a home; cleared for
/// every process started here so the developer's own daemon is never touched.
const CLIENT_VARS: [&str; 5] = [
    "LATCH_HOME",
    "LATCH_SOCKET",
    "LATCH_TOKEN_FILE",
    "RUST_LOG",
    "NOTIFY_SOCKET",
];

// ---- binaries ------------------------------------------------------------------------

/// The built binaries.
#[derive(Debug)]
pub struct Binaries {
    /// `latchd`.
    pub latchd: PathBuf,
    /// `latch`.
    pub latch: PathBuf,
    /// `latch-http`.
    pub latch_http: PathBuf,
}

/// The `latchd` and `latch` binaries of this build: `target/<profile>/`, found from the
/// test executable (`target/<profile>/deps/…`).
///
/// Once per test process they are (re)built with `$CARGO build -p latch-daemon -p
/// latch-cli --bins` for the same profile and target directory, so the tests never run
/// stale binaries; when they are up to date (as after `cargo xtask ci`'s build step)
/// that takes a fraction of a second. Without cargo, binaries already there are used.
///
/// # Panics
///
/// When the binaries cannot be found or built.
pub fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    BINARIES.get_or_init(|| {
        let dir = profile_dir();
        let found = Binaries {
            latchd: dir.join(exe_name("latchd")),
            latch: dir.join(exe_name("latch")),
            latch_http: dir.join(exe_name("latch-http")),
        };
        let present =
            found.latchd.is_file() && found.latch.is_file() && found.latch_http.is_file();
        build_binaries(&dir, present);
        for bin in [&found.latchd, &found.latch, &found.latch_http] {
            assert!(
                bin.is_file(),
                "{} is missing after the build: run `cargo build -p latch-daemon -p latch-cli -p latch-http --bins`",
                bin.display()
            );
        }
        found
    })
}

fn exe_name(name: &str) -> String {
    format!("{name}{}", std::env::consts::EXE_SUFFIX)
}

/// `target/<profile>/`: the directory of the test executable, without its `deps/`.
fn profile_dir() -> PathBuf {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => panic!("cannot find the test executable: {e}"),
    };
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir
}

/// Builds the binaries; `present` says whether older ones exist to fall back on when
/// cargo cannot be run at all.
fn build_binaries(profile_dir: &Path, present: bool) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command.args([
        "build",
        "-p",
        "latch-daemon",
        "-p",
        "latch-cli",
        "-p",
        "latch-http",
        "--bins",
    ]);
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
    }
    if let Some(target_dir) = profile_dir.parent() {
        command.env("CARGO_TARGET_DIR", target_dir);
    }
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    match command.status() {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("building latchd, latch and latch-http failed ({status})"),
        Err(_) if present => {}
        Err(e) => panic!("cannot run cargo to build latchd, latch and latch-http: {e}"),
    }
}

// ---- waiting and async ---------------------------------------------------------------

/// The runtime that `latch-client` calls run on (shared by every test of the process).
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => panic!("cannot build the tokio runtime: {e}"),
        }
    })
}

/// Runs a future to completion on [`runtime`], failing the test after [`DEADLINE`].
///
/// # Panics
///
/// When the future takes longer than [`DEADLINE`].
#[track_caller]
pub fn block_on<F: Future>(future: F) -> F::Output {
    let caller = std::panic::Location::caller();
    runtime().block_on(async {
        match tokio::time::timeout(DEADLINE, future).await {
            Ok(output) => output,
            Err(_) => panic!("timed out after {DEADLINE:?} (at {caller})"),
        }
    })
}

/// Calls `check` until it returns `Some`, at most until [`DEADLINE`].
///
/// # Panics
///
/// When the deadline passes; the message names `what`.
#[track_caller]
pub fn poll_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

/// Waits for a child process to exit, at most until `deadline`; kills it and fails
/// the test if it does not.
fn wait_until(child: &mut Child, deadline: Instant, what: &str) -> ExitStatus {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) => {}
            Err(e) => panic!("cannot wait for {what}: {e}"),
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {DEADLINE:?}; killed it");
        }
        std::thread::sleep(POLL);
    }
}

// ---- homes ---------------------------------------------------------------------------

/// A temporary latch home (mode 0700) inside a temporary directory that also holds the
/// daemons' logs. Everything is removed on drop.
#[derive(Debug)]
pub struct Home {
    root: tempfile::TempDir,
    home: PathBuf,
    starts: AtomicU32,
}

impl Default for Home {
    fn default() -> Self {
        Self::new()
    }
}

impl Home {
    /// A home whose `latch.toml` is [`FAST_PROVIDER`].
    #[must_use]
    pub fn new() -> Self {
        Self::with_config("")
    }

    /// A home whose `latch.toml` is `top` (top-level keys and tables) followed by
    /// [`FAST_PROVIDER`].
    #[must_use]
    pub fn with_config(top: &str) -> Self {
        let home = Self::empty();
        home.write_config(&format!("shutdown_grace_secs = 5\n{top}\n{FAST_PROVIDER}"));
        home
    }

    /// A home without any file: latchd runs on its built-in defaults.
    ///
    /// # Panics
    ///
    /// When the temporary directories cannot be created.
    #[must_use]
    pub fn empty() -> Self {
        let root = match tempfile::Builder::new().prefix("latch-e2e-").tempdir() {
            Ok(root) => root,
            Err(e) => panic!("cannot create a temporary directory: {e}"),
        };
        let home = root.path().join("home");
        if let Err(e) = std::fs::create_dir(&home) {
            panic!("cannot create {}: {e}", home.display());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            if let Err(e) = std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700))
            {
                panic!("cannot chmod {}: {e}", home.display());
            }
        }
        Self {
            root,
            home,
            starts: AtomicU32::new(0),
        }
    }

    /// The home directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.home
    }

    /// A path inside the home.
    #[must_use]
    pub fn join(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.home.join(relative)
    }

    /// A path for a file of the test (a log, a certificate) beside the home, removed
    /// with it.
    #[must_use]
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// Writes `<home>/latch.toml`.
    ///
    /// # Panics
    ///
    /// When the file cannot be written.
    pub fn write_config(&self, text: &str) {
        write_file(&self.join("latch.toml"), text);
    }

    /// The socket path.
    #[must_use]
    pub fn socket(&self) -> PathBuf {
        self.join("latch.sock")
    }

    /// The session-token path.
    #[must_use]
    pub fn token_file(&self) -> PathBuf {
        self.join("session-token")
    }

    /// The session token now in the home, if any.
    #[must_use]
    pub fn session_token(&self) -> Option<String> {
        std::fs::read_to_string(self.token_file()).ok()
    }

    // ---- the daemon ----

    /// Starts `latchd --home <home>` and waits until it answers on its socket.
    ///
    /// # Panics
    ///
    /// When it cannot be started, exits, or does not answer within [`DEADLINE`].
    #[must_use]
    pub fn start(&self) -> Daemon<'_> {
        let mut command = self.latchd_command();
        command.arg("--home").arg(&self.home);
        self.spawn_daemon(command)
    }

    /// Starts plain `latchd` with `LATCH_HOME=<home>` in its environment (as a README
    /// shows it) and waits until it answers.
    ///
    /// # Panics
    ///
    /// As [`Home::start`].
    #[must_use]
    pub fn start_from_env(&self) -> Daemon<'_> {
        let mut command = self.latchd_command();
        command.env("LATCH_HOME", &self.home);
        self.spawn_daemon(command)
    }

    /// As [`Home::start`], but latchd runs with its open-file limit (soft and hard) set
    /// to `limit` (through `sh -c 'ulimit -n LIMIT; exec latchd …'`), to see what it does
    /// when it runs out of descriptors.
    ///
    /// # Panics
    ///
    /// As [`Home::start`].
    #[cfg(unix)]
    #[must_use]
    pub fn start_with_fd_limit(&self, limit: u64) -> Daemon<'_> {
        let mut command = Command::new("sh");
        for var in CLIENT_VARS {
            command.env_remove(var);
        }
        command
            .arg("-c")
            .arg(format!(
                "ulimit -S -n {limit} && ulimit -H -n {limit} && exec \"$0\" \"$@\""
            ))
            .arg(&binaries().latchd)
            .arg("--home")
            .arg(&self.home);
        self.spawn_daemon(command)
    }

    /// `latchd --home <home> ARGS…` with the client variables cleared, for runs that
    /// are expected to end by themselves (`--check-config`, refusals to start).
    #[must_use]
    pub fn latchd(&self, args: &[&str]) -> Command {
        let mut command = self.latchd_command();
        command.arg("--home").arg(&self.home).args(args);
        command
    }

    fn latchd_command(&self) -> Command {
        let mut command = Command::new(&binaries().latchd);
        for var in CLIENT_VARS {
            command.env_remove(var);
        }
        command
    }

    fn spawn_daemon(&self, mut command: Command) -> Daemon<'_> {
        let n = self.starts.fetch_add(1, Ordering::Relaxed) + 1;
        let log = self.root.path().join(format!("latchd-{n}.log"));
        let file = match File::create(&log) {
            Ok(file) => file,
            Err(e) => panic!("cannot create {}: {e}", log.display()),
        };
        let stdout = match file.try_clone() {
            Ok(file) => file,
            Err(e) => panic!("cannot share {}: {e}", log.display()),
        };
        let child = match command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(file)
            .spawn()
        {
            Ok(child) => child,
            Err(e) => panic!("cannot start {}: {e}", binaries().latchd.display()),
        };
        let mut daemon = Daemon {
            home: self,
            child: Some(child),
            log,
        };
        daemon.wait_ready();
        daemon
    }

    // ---- latch-client ----

    /// Client options for this home (the environment ignored), with short deadlines.
    #[must_use]
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Some(DEADLINE),
            ..ClientOptions::for_home(&self.home)
        }
    }

    /// A connected `latch-client` [`Client`] (default reconnect policy).
    ///
    /// # Panics
    ///
    /// When it cannot connect.
    #[must_use]
    pub fn client(&self) -> Client {
        let options = self.client_options();
        match block_on(Client::connect_with(options)) {
            Ok(client) => client,
            Err(e) => panic!("cannot connect to latchd in {}: {e}", self.home.display()),
        }
    }

    // ---- the command line ----

    /// `latch --home <home> ARGS…` with the client variables cleared.
    #[must_use]
    pub fn latch(&self, args: &[&str]) -> Command {
        let mut command = latch_command();
        command.arg("--home").arg(&self.home).args(args);
        command
    }

    /// `latch ARGS…` with `LATCH_HOME=<home>` (as a README shows it).
    #[must_use]
    pub fn latch_from_env(&self, args: &[&str]) -> Command {
        let mut command = latch_command();
        command.env("LATCH_HOME", &self.home).args(args);
        command
    }

    /// Runs `latch --home <home> ARGS…`, piping `stdin` one line each.
    #[must_use]
    pub fn run(&self, args: &[&str], stdin: &[&str]) -> Run {
        run(self.latch(args), stdin)
    }

    /// Starts `latch --home <home> ARGS…` for a conversation on stdin and stdout.
    #[must_use]
    pub fn spawn(&self, args: &[&str]) -> Interactive {
        Interactive::spawn(self.latch(args))
    }
}

/// Writes a file, creating its directory.
///
/// # Panics
///
/// When it cannot.
pub fn write_file(path: &Path, contents: impl AsRef<[u8]>) {
    if let Some(dir) = path.parent()
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        panic!("cannot create {}: {e}", dir.display());
    }
    if let Err(e) = std::fs::write(path, contents) {
        panic!("cannot write {}: {e}", path.display());
    }
}

fn latch_command() -> Command {
    let mut command = Command::new(&binaries().latch);
    for var in CLIENT_VARS {
        command.env_remove(var);
    }
    command
}

// ---- the daemon guard ------------------------------------------------------------------

/// A running `latchd`. Dropping it kills the process (SIGKILL) and, when the test is
/// failing, prints the daemon's log.
pub struct Daemon<'h> {
    home: &'h Home,
    child: Option<Child>,
    log: PathBuf,
}

impl fmt::Debug for Daemon<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Daemon")
            .field("home", &self.home.path())
            .field("pid", &self.child.as_ref().map(Child::id))
            .field("log", &self.log)
            .finish()
    }
}

impl Daemon<'_> {
    /// The process id.
    ///
    /// # Panics
    ///
    /// After the process was stopped.
    #[must_use]
    pub fn pid(&self) -> u32 {
        match &self.child {
            Some(child) => child.id(),
            None => panic!("latchd was stopped"),
        }
    }

    /// The daemon's resident set size in KiB (`VmRSS` in `/proc/<pid>/status`); `None`
    /// where there is no such file.
    #[must_use]
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The CPU time the daemon has used so far, user and system, in clock ticks
    /// (`/proc/<pid>/stat`); `None` where there is no such file.
    #[must_use]
    pub fn cpu_ticks(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some(utime + stime)
    }

    /// Everything the daemon wrote to stdout and stderr so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn child(&mut self) -> &mut Child {
        match &mut self.child {
            Some(child) => child,
            None => panic!("latchd was stopped"),
        }
    }

    /// Polls until the socket accepts and a `latch-client` ping is answered.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        let options = ClientOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Some(Duration::from_secs(2)),
            reconnect: ReconnectPolicy::Never,
            ..ClientOptions::for_home(self.home.path())
        };
        loop {
            match self.child().try_wait() {
                Ok(None) => {}
                Ok(Some(status)) => {
                    self.child = None;
                    panic!(
                        "latchd exited ({status}) before it answered:\n{}",
                        self.log()
                    );
                }
                Err(e) => panic!("cannot check on latchd: {e}"),
            }
            #[cfg(unix)]
            let accepts = std::os::unix::net::UnixStream::connect(self.home.socket()).is_ok();
            #[cfg(not(unix))]
            let accepts = true;
            if accepts {
                let answered = runtime().block_on(async {
                    match Client::connect_with(options.clone()).await {
                        Ok(client) => client.ping().await.is_ok(),
                        Err(_) => false,
                    }
                });
                if answered {
                    return;
                }
            }
            if Instant::now() >= deadline {
                panic!("latchd did not answer within {DEADLINE:?}:\n{}", self.log());
            }
            std::thread::sleep(POLL);
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    ///
    /// # Panics
    ///
    /// When the signal cannot be sent or latchd does not exit within [`DEADLINE`].
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let Some(mut child) = self.child.take() else {
            panic!("latchd was stopped");
        };
        send_sigterm(&mut child);
        let status = wait_until(
            &mut child,
            Instant::now() + DEADLINE,
            "latchd after SIGTERM",
        );
        (status, self.log())
    }

    /// A clean stop: SIGTERM, then checks that latchd exited with status 0 and removed
    /// its socket and session token. Returns the log.
    ///
    /// # Panics
    ///
    /// When any of that does not hold.
    pub fn stop(self) -> String {
        let home = self.home;
        let (status, log) = self.terminate();
        assert_eq!(status.code(), Some(0), "latchd's exit status\n{log}");
        assert!(
            !home.socket().exists(),
            "latchd left its socket behind\n{log}"
        );
        assert!(
            !home.token_file().exists(),
            "latchd left its session token behind\n{log}"
        );
        log
    }

    /// Kills latchd with SIGKILL (no chance to clean up) and reaps it.
    pub fn sigkill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(unix)]
fn send_sigterm(child: &mut Child) {
    use rustix::process::{Pid, Signal, kill_process};
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(Pid::from_raw)
        .unwrap_or_else(|| panic!("bad pid {}", child.id()));
    if let Err(e) = kill_process(pid, Signal::TERM) {
        panic!("cannot send SIGTERM to latchd ({pid:?}): {e}");
    }
}

#[cfg(not(unix))]
fn send_sigterm(child: &mut Child) {
    let _ = child.kill();
}

impl Drop for Daemon<'_> {
    #[allow(clippy::print_stderr)] // A failing test's diagnostics go to the test output.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- latchd log ({}) ----\n{}\n---- end of latchd log ----",
                self.log.display(),
                self.log()
            );
        }
    }
}

// ---- running `latch` -------------------------------------------------------------------

/// What a run of `latch` produced.
#[derive(Debug, Clone)]
pub struct Run {
    /// The exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code; shows stdout and stderr when it differs.
    ///
    /// # Panics
    ///
    /// When the code differs.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code of latch\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts that stdout contains `needle`.
    ///
    /// # Panics
    ///
    /// When it does not.
    #[track_caller]
    pub fn assert_stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "{needle:?} not in stdout\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts that stderr contains `needle`.
    ///
    /// # Panics
    ///
    /// When it does not.
    #[track_caller]
    pub fn assert_stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "{needle:?} not in stderr\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// The stdout and stderr together, for searching.
    #[must_use]
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs a command with `stdin` lines piped in, waiting at most [`DEADLINE`].
///
/// # Panics
///
/// When it cannot be started or does not finish in time.
#[must_use]
pub fn run(command: Command, stdin: &[&str]) -> Run {
    let mut session = Interactive::spawn(command);
    for line in stdin {
        session.write_line(line);
    }
    session.finish()
}

/// A `latch` process being talked to: its stdout is read line by line as it comes, its
/// stdin written to.
pub struct Interactive {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stdout: String,
    stderr: Option<JoinHandle<String>>,
    deadline: Instant,
}

impl fmt::Debug for Interactive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interactive")
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

impl Interactive {
    /// Starts the command with piped stdin, stdout and stderr.
    ///
    /// # Panics
    ///
    /// When it cannot be started.
    #[must_use]
    pub fn spawn(mut command: Command) -> Self {
        let mut child = match command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => panic!("cannot start {command:?}: {e}"),
        };
        let (tx, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if tx.send(line).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
        let stderr = child.stderr.take().map(|mut stderr| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text);
                text
            })
        });
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
            stdout: String::new(),
            stderr,
            deadline: Instant::now() + DEADLINE,
        }
    }

    /// Reads stdout line by line until `pick` finds what it wants in a line.
    ///
    /// # Panics
    ///
    /// When stdout ends or [`DEADLINE`] passes first.
    #[track_caller]
    pub fn read_until<T>(&mut self, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push_str(&line);
                    if let Some(found) = pick(&line) {
                        return found;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "latch did not print it in time; stdout so far:\n{}",
                        self.stdout
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("latch's stdout ended first:\n{}", self.stdout);
                }
            }
        }
    }

    /// Writes one line to stdin. A process that already exited is not an error here: its
    /// exit code tells.
    pub fn write_line(&mut self, line: &str) {
        if let Some(stdin) = &mut self.stdin {
            let _ = writeln!(stdin, "{line}");
        }
    }

    /// Closes stdin, waits for the exit (at most until the deadline) and collects all
    /// output.
    ///
    /// # Panics
    ///
    /// When the process does not exit in time.
    #[must_use]
    pub fn finish(mut self) -> Run {
        drop(self.stdin.take());
        let status = wait_until(&mut self.child, self.deadline, "latch");
        // The pipes are closed once the process is gone: the readers end.
        while let Ok(line) = self.lines.recv_timeout(DEADLINE) {
            self.stdout.push_str(&line);
        }
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Run {
            code: status.code(),
            stdout: std::mem::take(&mut self.stdout),
            stderr,
        }
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `secret=` parameter of the first `otpauth://` URI in `text`.
#[must_use]
pub fn otpauth_secret(text: &str) -> Option<String> {
    let uri = &text[text.find("otpauth://")?..];
    let query = &uri[uri.find('?')? + 1..];
    query
        .split(['&', ' ', '\n', '\r'])
        .find_map(|pair| pair.strip_prefix("secret="))
        .map(str::to_owned)
}

/// Raises this process's soft open-file limit to its hard limit (daemons started
/// afterwards inherit it); returns the soft limit now in force.
#[cfg(unix)]
#[must_use]
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.maximum.is_some() && limit.current != limit.maximum {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        );
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Seconds since the Unix epoch, now.
#[must_use]
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
