//! The web components the forward-auth tests put around `latch-http`, each started on a
//! private loopback port with its files under `target/`, and stopped when its guard
//! drops: nginx (Debian's `/usr/sbin/nginx`), a small upstream app that echoes the
//! `Remote-*` headers it receives, and headless chromium driven through chromedriver
//! (Debian's `/usr/bin/chromium` and `/usr/bin/chromedriver`) over WebDriver.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::poll_until;

/// The workspace's `target/` (or `$CARGO_TARGET_DIR`).
#[must_use]
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

static DIRS: AtomicU32 = AtomicU32::new(0);

/// A fresh directory `target/<what>/<pid>-<n>`.
fn fresh_dir(what: &str) -> PathBuf {
    let n = DIRS.fetch_add(1, Ordering::Relaxed);
    let dir = target_dir()
        .join(what)
        .join(format!("{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    // Without `..`: chromedriver cannot find chromium's DevToolsActivePort through one.
    std::fs::canonicalize(&dir).unwrap_or_else(|e| panic!("cannot resolve {}: {e}", dir.display()))
}

/// A loopback port nothing listens on right now.
///
/// # Panics
/// When no port can be bound.
#[must_use]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port: {e}"))
}

fn wait_for_port(what: &str, port: u16, child: &mut Child, log: &Path) {
    poll_until(&format!("{what} to listen on port {port}"), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before it listened:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        TcpStream::connect(("127.0.0.1", port)).ok().map(drop)
    });
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

// ---- the upstream app --------------------------------------------------------------

/// What the upstream app saw of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The request line's path.
    pub path: String,
    /// Each `Remote-*` and `Cookie` header, lower-cased name and value, in order.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// Every value of header `name` (lower case).
    #[must_use]
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A plain HTTP/1.1 app on a loopback port: answers every request 200 with a text body
/// listing the `Remote-*` headers it received (`remote-user: anne` lines), and records
/// each request.
pub struct EchoApp {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stopping: Arc<AtomicBool>,
}

impl std::fmt::Debug for EchoApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EchoApp").field("addr", &self.addr).finish()
    }
}

fn serve_echo(stream: TcpStream, seen: &Mutex<Vec<Seen>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
        let mut headers = Vec::new();
        let mut close = line.ends_with("HTTP/1.0\r\n");
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let name = name.trim().to_ascii_lowercase();
                let value = value.trim().to_owned();
                if name == "connection" && value.eq_ignore_ascii_case("close") {
                    close = true;
                }
                if name.starts_with("remote-") || name == "cookie" {
                    headers.push((name, value));
                }
            }
        }
        let body: String = std::iter::once(format!("path: {path}\n"))
            .chain(headers.iter().map(|(k, v)| format!("{k}: {v}\n")))
            .collect();
        seen.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Seen { path, headers });
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "connection: close\r\n" } else { "" }
        )?;
        stream.flush()?;
        if close {
            return Ok(());
        }
    }
}

impl EchoApp {
    /// Starts the app on a free loopback port.
    ///
    /// # Panics
    /// When it cannot bind.
    #[must_use]
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind the echo app: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("no address: {e}"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        {
            let seen = Arc::clone(&seen);
            let stopping = Arc::clone(&stopping);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let seen = Arc::clone(&seen);
                    thread::spawn(move || {
                        let _ = serve_echo(stream, &seen);
                    });
                }
            });
        }
        Self {
            addr,
            seen,
            stopping,
        }
    }

    /// Where it listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request it has answered, in order.
    #[must_use]
    pub fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Drop for EchoApp {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

// ---- nginx ---------------------------------------------------------------------------

/// `/usr/sbin/nginx` (or the first `nginx` on `PATH`).
fn nginx_binary() -> PathBuf {
    let debian = PathBuf::from("/usr/sbin/nginx");
    if debian.exists() {
        return debian;
    }
    PathBuf::from("nginx")
}

/// A private nginx: one process (no daemon, no master), its configuration, logs, pid
/// and temporary files under `target/nginx/`.
pub struct Nginx {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl std::fmt::Debug for Nginx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nginx")
            .field("port", &self.port)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Nginx {
    /// Starts nginx on loopback `port` (from [`free_port`]) serving `site` (`server`,
    /// `upstream` and `map` blocks, included in its `http` block), whose `listen 80;` is
    /// replaced by that port.
    ///
    /// # Panics
    /// When the site has no `listen 80;`, or nginx refuses it or cannot start.
    #[must_use]
    pub fn start(site: &str, port: u16) -> Self {
        let dir = fresh_dir("nginx");
        assert!(site.contains("listen 80;"), "the site must listen on 80");
        let site = site.replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
        std::fs::write(dir.join("site.conf"), site).unwrap_or_else(|e| panic!("{e}"));
        let d = dir.display();
        let main = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\nevents {{ worker_connections 1024; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/tmp-body;\n\
             proxy_temp_path {d}/tmp-proxy;\n  fastcgi_temp_path {d}/tmp-fastcgi;\n\
             uwsgi_temp_path {d}/tmp-uwsgi;\n  scgi_temp_path {d}/tmp-scgi;\n\
             include {d}/site.conf;\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), main).unwrap_or_else(|e| panic!("{e}"));
        let log = dir.join("stderr.log");
        let stderr = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
        let mut child = Command::new(nginx_binary())
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nginx (install Debian's nginx package): {e}"));
        wait_for_port("nginx", port, &mut child, &log);
        Self { child, dir, port }
    }

    /// `http://127.0.0.1:<port>`.
    #[must_use]
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its error log.
    #[must_use]
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    #[allow(clippy::print_stderr)] // A failing test's diagnostics go to the test output.
    fn drop(&mut self) {
        stop(&mut self.child);
        if thread::panicking() {
            eprintln!("nginx error log:\n{}", self.error_log());
        }
    }
}

/// `crates/latch-http/docs/nginx.conf` with latch-http's and the app's addresses put
/// in place of 127.0.0.1:8123 and 127.0.0.1:3000.
#[must_use]
pub fn documented_nginx_site(latch_http: SocketAddr, app: SocketAddr) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/latch-http/docs/nginx.conf");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(text.contains("server 127.0.0.1:8123;") && text.contains("server 127.0.0.1:3000;"));
    text.replace("server 127.0.0.1:8123;", &format!("server {latch_http};"))
        .replace("server 127.0.0.1:3000;", &format!("server {app};"))
}

// ---- chromium through chromedriver --------------------------------------------------

/// A private chromedriver on a free loopback port, and the headless chromium sessions
/// it starts (their profiles under `target/browser/`).
pub struct Browser {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

static SESSIONS: AtomicUsize = AtomicUsize::new(0);

impl Browser {
    /// Starts `/usr/bin/chromedriver`.
    ///
    /// # Panics
    /// When it cannot start.
    #[must_use]
    pub fn start() -> Self {
        let dir = fresh_dir("browser");
        let port = free_port();
        let log = dir.join("chromedriver.log");
        let out = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
        let err = out.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let mut child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start chromedriver (install Debian's chromium-driver): {e}")
            });
        wait_for_port("chromedriver", port, &mut child, &log);
        Self { child, port, dir }
    }

    /// A new headless chromium session whose viewport is `width` × `height` CSS pixels
    /// (chromium's device emulation, as a phone: a desktop window cannot be narrower
    /// than 500 px).
    ///
    /// # Panics
    /// When chromium cannot start.
    pub async fn session(&self, width: u32, height: u32) -> fantoccini::Client {
        let n = SESSIONS.fetch_add(1, Ordering::Relaxed);
        let profile = self.dir.join(format!("profile-{n}"));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.display()),
                ],
                "mobileEmulation": {
                    "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0 },
                },
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        fantoccini::ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| panic!("cannot start a chromium session: {e}"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
