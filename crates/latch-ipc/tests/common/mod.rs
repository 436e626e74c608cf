//! Helpers shared by the integration tests: test message types, an echo daemon, raw
//! (unauthenticated) connections, and polling with a deadline.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::{ConnectOptions, GenericFilePath, ToFsName as _};
use latch_ipc::broadcast::Broadcaster;
use latch_ipc::client::ClientConfig;
use latch_ipc::frame::{FrameReader, FrameWriter, MAX_FRAME};
use latch_ipc::handshake::{ClientHandshake, Hello, MAGIC};
use latch_ipc::server::{Connection, Server, ServerConfig};
use serde::{Deserialize, Serialize};

/// The protocol version the tests speak.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Req {
    pub id: u64,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resp {
    pub id: u64,
    pub body: String,
    /// The pid the daemon saw for this connection's peer.
    pub peer_pid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ev {
    pub seq: u64,
    pub data: Vec<u8>,
}

pub type TestServer = Server<Req, Resp, Ev>;
pub type TestConnection = Connection<Req, Resp, Ev>;
pub type TestClient = latch_ipc::client::ClientConnection<Req, Resp, Ev>;

/// A fresh home directory (0700, owned by us).
pub fn home() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("latch-ipc-")
        .tempdir()
        .unwrap()
}

/// Defaults for a test daemon in `home`.
pub fn server_config(home: &Path) -> ServerConfig {
    ServerConfig::new(home, VERSION)
}

pub fn client_config(home: &Path) -> ClientConfig {
    ClientConfig::for_home(&latch_ipc::home::Home::new(home), VERSION)
}

/// Serves one authenticated connection: echoes each request (concurrently, so responses
/// may come back out of order), and subscribes to `events` on a request whose body is
/// "subscribe" before answering it.
pub async fn serve(conn: TestConnection, events: Broadcaster<Ev>) {
    let peer = conn.peer();
    let (mut requests, sender) = conn.into_split();
    while let Ok(Some(req)) = requests.recv().await {
        if req.body == "subscribe" {
            sender.subscribe(&events).await.unwrap();
        }
        let sender = sender.clone();
        tokio::spawn(async move {
            let resp = Resp {
                id: req.id,
                body: req.body,
                peer_pid: peer.pid,
            };
            let _ = sender.send(&resp).await;
        });
    }
}

/// Runs an accept loop that serves every connection with [`serve`].
pub fn spawn_echo(mut server: TestServer, events: Broadcaster<Ev>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(conn) = server.accept().await {
            tokio::spawn(serve(conn, events.clone()));
        }
    })
}

/// Binds a daemon with `config` and serves it with [`spawn_echo`].
pub async fn start_echo(config: ServerConfig) -> (tokio::task::JoinHandle<()>, Broadcaster<Ev>) {
    let server = TestServer::bind(config).await.unwrap();
    let events = Broadcaster::new(64);
    (spawn_echo(server, events.clone()), events)
}

/// A raw, unauthenticated connection.
pub async fn raw_connect(socket: &Path) -> Stream {
    let name = socket.to_fs_name::<GenericFilePath>().unwrap();
    ConnectOptions::new()
        .name(name)
        .connect_tokio()
        .await
        .unwrap()
}

pub fn hello(version: u32) -> ClientHandshake {
    ClientHandshake::Hello(Hello {
        magic: MAGIC,
        version,
        client_nonce: [7; 32],
    })
}

/// Writes raw bytes.
pub async fn write_raw(stream: &Stream, bytes: &[u8]) {
    use tokio::io::AsyncWriteExt;
    let mut writer = stream;
    writer.write_all(bytes).await.unwrap();
}

/// Sends one frame holding `payload`.
pub async fn send_frame(stream: &Stream, payload: &[u8]) {
    FrameWriter::new(stream, MAX_FRAME)
        .send(payload)
        .await
        .unwrap();
}

/// Reads frames until the daemon closes the connection, which must happen within
/// `within`. Returns the frames and how long it took.
pub async fn read_until_closed(stream: &Stream, within: Duration) -> (Vec<BytesMut>, Duration) {
    let start = Instant::now();
    let mut reader = FrameReader::new(stream, MAX_FRAME);
    let mut frames = Vec::new();
    loop {
        let remaining = within.saturating_sub(start.elapsed());
        match tokio::time::timeout(remaining, reader.next_frame()).await {
            Err(_) => panic!(
                "the daemon did not close the connection within {within:?} (got {} frames)",
                frames.len()
            ),
            Ok(Ok(Some(frame))) => frames.push(frame),
            // End of stream, or a reset: either way the daemon closed it.
            Ok(Ok(None) | Err(_)) => return (frames, start.elapsed()),
        }
    }
}

/// Polls `check` until it returns true, failing after `within`.
pub async fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Retries `attempt` until it succeeds, failing after `within`.
pub async fn retry<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    what: &str,
    within: Duration,
    mut attempt: impl FnMut() -> F,
) -> T {
    let start = Instant::now();
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(err) => assert!(
                start.elapsed() < within,
                "timed out waiting for {what}: last error: {err}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A request.
pub fn req(id: u64, body: &str) -> Req {
    Req {
        id,
        body: body.to_owned(),
    }
}

/// The uid a listener of "another user" runs as (`nobody`).
pub const OTHER_UID: u32 = 65_534;

/// Binds `<dir>/latch.sock` from a thread that runs as `uid` (Linux keeps credentials per
/// thread at the system-call level, and rustix changes only the calling thread's), so
/// the kernel reports `uid` as the listener's. The thread accepts one connection and
/// sends how many bytes it received before the peer closed it. `dir` is given to `uid`.
/// Needs root.
#[cfg(target_os = "linux")]
pub fn listen_as(
    uid: u32,
    dir: &Path,
) -> (
    std::path::PathBuf,
    std::sync::mpsc::Receiver<std::io::Result<usize>>,
) {
    use rustix::thread::{Gid, Uid, set_thread_groups, set_thread_res_gid, set_thread_res_uid};
    use std::io::Read as _;
    std::os::unix::fs::chown(dir, Some(uid), Some(uid)).unwrap();
    let socket = dir.join("latch.sock");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let path = socket.clone();
    std::thread::spawn(move || {
        let listen = || -> std::io::Result<std::os::unix::net::UnixListener> {
            let (gid, uid) = (Gid::from_raw(uid), Uid::from_raw(uid));
            set_thread_groups(&[])?;
            set_thread_res_gid(gid, gid, gid)?;
            set_thread_res_uid(uid, uid, uid)?;
            std::os::unix::net::UnixListener::bind(&path)
        };
        let listener = match listen() {
            Ok(listener) => listener,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        let _ = ready_tx.send(Ok(()));
        let received = listener.accept().and_then(|(mut conn, _)| {
            let mut bytes = Vec::new();
            conn.read_to_end(&mut bytes).map(|_| bytes.len())
        });
        let _ = done_tx.send(received);
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the listener thread did not start")
        .expect("cannot listen as another uid");
    (socket, done_rx)
}

/// Binds `<dir>/latch.sock` as this process, accepts one connection and sends how many
/// bytes it received before the peer closed it.
pub fn listen_here(
    dir: &Path,
) -> (
    std::path::PathBuf,
    std::sync::mpsc::Receiver<std::io::Result<usize>>,
) {
    use std::io::Read as _;
    let socket = dir.join("latch.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let received = listener.accept().and_then(|(mut conn, _)| {
            let mut bytes = Vec::new();
            conn.read_to_end(&mut bytes).map(|_| bytes.len())
        });
        let _ = done_tx.send(received);
    });
    (socket, done_rx)
}

/// Writes a token file for `token`, mode `mode`.
#[cfg(unix)]
pub fn write_token_with_mode(path: &Path, token: &latch_ipc::token::SessionToken, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    latch_ipc::token::write_token_file(path, token).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
