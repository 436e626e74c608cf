//! latch-test-postgres: a real PostgreSQL for tests, started by the test process itself.
//!
//! One job: [`cluster`] starts (once per test process) a private cluster with its files
//! under the target directory (`initdb` + `pg_ctl`, as the `postgres` user when the tests
//! run as root), listening on a free loopback port and on a Unix socket in its own
//! directory; [`Cluster::database`] creates a fresh database for each test. A watcher
//! process stops the cluster when the test process ends, however it ends (a panic, a
//! kill), and a cluster left by a killed run is stopped and removed at the next start.
//! If the cluster cannot start, the caller gets the reason: tests fail with it, they
//! never skip.
//!
//! What it must not do: touch any cluster it did not create, or listen beyond loopback.
//!
//! ```no_run
//! let cluster = latch_test_postgres::cluster().unwrap();
//! let db = cluster.database("my_test").unwrap();
//! assert!(db.url().starts_with("postgres://"));
//! ```

use std::fmt;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The superuser's password (TCP connections need it; the Unix socket trusts).
pub const PASSWORD: &str = "latch-test-password";

/// Where Debian installs PostgreSQL's server programs; `LATCH_PG_BIN` overrides.
const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Why the cluster cannot be had.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot start the test PostgreSQL: {0}")]
pub struct HarnessError(String);

fn fail(what: impl fmt::Display) -> HarnessError {
    HarnessError(what.to_string())
}

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    as_postgres: bool,
    counter: AtomicU64,
}

/// A fresh database of the cluster.
#[derive(Debug, Clone)]
pub struct Database {
    name: String,
    port: u16,
    socket_dir: PathBuf,
}

impl Database {
    /// The database's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL over TCP to 127.0.0.1, without the password (give it as
    /// [`PASSWORD`]).
    #[must_use]
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, self.name)
    }

    /// A libpq-style key/value string over the Unix socket (no password needed).
    #[must_use]
    pub fn socket_conninfo(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname={}",
            self.socket_dir.display(),
            self.port,
            self.name
        )
    }

    /// The TCP port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }
}

static CLUSTER: OnceLock<Result<Cluster, HarnessError>> = OnceLock::new();

/// A cluster of its own, for a test that stops, freezes or restarts the server: the
/// other tests of the process keep the shared [`cluster`]. Stopped and removed when
/// dropped (and by its watcher when the process ends however it ends).
///
/// # Errors
/// [`HarnessError`] with the reason it could not be started.
pub fn private_cluster(name: &str) -> Result<Cluster, HarnessError> {
    let clean: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(32)
        .collect();
    Cluster::start_in(&format!("{}-{clean}", std::process::id()))
}

/// The cluster of this test process, started on first use.
///
/// # Errors
/// [`HarnessError`] with the reason it could not be started.
pub fn cluster() -> Result<&'static Cluster, HarnessError> {
    CLUSTER
        .get_or_init(Cluster::start)
        .as_ref()
        .map_err(Clone::clone)
}

fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    // crates/latch-test-postgres → the workspace's target/.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Cluster {
    fn start() -> Result<Self, HarnessError> {
        Self::start_in(&std::process::id().to_string())
    }

    /// Starts a cluster in `target/latch-pg/<name>`; `name` begins with this process's
    /// id, so a later run knows whether it is left over.
    fn start_in(name: &str) -> Result<Self, HarnessError> {
        let bin = std::env::var_os("LATCH_PG_BIN")
            .map_or_else(|| PathBuf::from(DEFAULT_BIN), PathBuf::from);
        if !bin.join("initdb").exists() {
            return Err(fail(format!(
                "{} has no initdb: install Debian's postgresql (apt-get install postgresql) or set LATCH_PG_BIN",
                bin.display()
            )));
        }
        let root = target_dir().join("latch-pg");
        fs::create_dir_all(&root).map_err(|e| fail(format!("{}: {e}", root.display())))?;
        let as_postgres = is_root();
        let cluster = Self {
            dir: root.join(name),
            port: free_port()?,
            bin,
            as_postgres,
            counter: AtomicU64::new(0),
        };
        cluster.clean_leftovers(&root);
        cluster.init()?;
        cluster.launch()?;
        Ok(cluster)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, mut cmd: Command, what: &str) -> Result<(), HarnessError> {
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| fail(format!("{what}: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(fail(format!(
                "{what} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// Stops and removes the clusters of test processes that are gone.
    fn clean_leftovers(&self, root: &Path) {
        let Ok(entries) = fs::read_dir(root) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // `<pid>` or `<pid>-<name>`: the process that owns it.
            let alive = entry
                .file_name()
                .to_str()
                .and_then(|n| n.split('-').next())
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if alive && path != self.dir {
                continue;
            }
            let data = path.join("data");
            if data.join("postmaster.pid").exists() {
                let mut stop = self.command("pg_ctl");
                stop.arg("stop")
                    .arg("-D")
                    .arg(&data)
                    .args(["-m", "immediate"]);
                let _ = stop.stdin(Stdio::null()).output();
            }
            let _ = fs::remove_dir_all(&path);
        }
    }

    fn init(&self) -> Result<(), HarnessError> {
        let data = self.dir.join("data");
        let sock = self.dir.join("sock");
        for d in [&self.dir, &sock] {
            fs::create_dir_all(d).map_err(|e| fail(format!("{}: {e}", d.display())))?;
        }
        let pwfile = self.dir.join("pwfile");
        fs::write(&pwfile, PASSWORD).map_err(|e| fail(format!("{}: {e}", pwfile.display())))?;
        if self.as_postgres {
            self.run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(&self.dir);
                    c
                },
                "chown the cluster directory to postgres",
            )?;
        }
        let mut initdb = self.command("initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()));
        self.run(initdb, "initdb")
    }

    fn launch(&self) -> Result<(), HarnessError> {
        let data = self.dir.join("data");
        let sock = self.dir.join("sock");
        let log = self.dir.join("postgres.log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c max_connections=200 -c fsync=on",
            self.port,
            sock.display()
        );
        let mut start = self.command("pg_ctl");
        start
            .arg("start")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(&options)
            .args(["-w", "-t", "60"]);
        if let Err(e) = self.run(start, "pg_ctl start") {
            let tail = fs::read_to_string(&log).unwrap_or_default();
            return Err(fail(format!("{e}\nserver log:\n{tail}")));
        }
        // The watcher: stops the cluster once this process is gone, however it ends.
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = if self.as_postgres {
            format!(
                "runuser -u postgres -- {} stop -D {} -m fast",
                pg_ctl.display(),
                data.display()
            )
        } else {
            format!("{} stop -D {} -m fast", pg_ctl.display(), data.display())
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = self.dir.display()
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail(format!("cannot start the watcher: {e}")))?;
        Ok(())
    }

    /// The Unix socket directory.
    #[must_use]
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// The TCP port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a fresh, empty database named after `prefix`.
    ///
    /// # Errors
    /// [`HarnessError`] if `createdb` fails.
    pub fn database(&self, prefix: &str) -> Result<Database, HarnessError> {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let clean: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let name = format!("{clean}_{n}");
        let mut create = self.command("createdb");
        create
            .arg("-h")
            .arg(self.socket_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres"])
            .arg(&name);
        self.run(create, "createdb")?;
        Ok(Database {
            name,
            port: self.port,
            socket_dir: self.socket_dir(),
        })
    }

    /// Sends `signal` (`STOP`, `CONT`) to the postmaster and all its processes: the
    /// database hangs (or resumes) as a stuck server would.
    ///
    /// # Errors
    /// [`HarnessError`] if the signal cannot be sent.
    pub fn signal(&self, signal: &str) -> Result<(), HarnessError> {
        let pid = fs::read_to_string(self.dir.join("data/postmaster.pid"))
            .map_err(|e| fail(format!("postmaster.pid: {e}")))?;
        let pid = pid.lines().next().unwrap_or_default().trim().to_owned();
        // The postmaster and its children.
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("kill -{signal} {pid} $(pgrep -P {pid})"));
        self.run(cmd, "kill")
    }

    /// Restarts the server (`pg_ctl restart -m fast`): every connection is cut.
    ///
    /// # Errors
    /// [`HarnessError`] if it does not come back.
    pub fn restart(&self) -> Result<(), HarnessError> {
        let mut cmd = self.command("pg_ctl");
        cmd.arg("restart")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "-t", "60"])
            .arg("-l")
            .arg(self.dir.join("postgres.log"));
        self.run(cmd, "pg_ctl restart")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Only private clusters are ever dropped (the shared one is a static).
        let mut stop = self.command("pg_ctl");
        stop.arg("stop")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate"]);
        let _ = stop.stdin(Stdio::null()).output();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Result<u16, HarnessError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(addr) => return Ok(addr.port()),
            Err(e) if Instant::now() > deadline => {
                return Err(fail(format!("no free loopback port: {e}")));
            }
            Err(_) => {}
        }
    }
}
