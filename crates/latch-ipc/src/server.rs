//! The daemon side: bind the socket in the latch home, accept, check, authenticate.
//!
//! [`Server::bind`] checks the home, takes the single-instance lock, reclaims a stale
//! socket (refusing a live one or a non-socket), writes a fresh session token and
//! listens (mode 0600). A spawned accept loop then, for every connection:
//!
//! 1. reads the peer's credentials and closes a disallowed peer before reading a byte;
//! 2. takes a pre-authentication slot; when all are taken, the oldest connection still
//!    in its handshake is closed to make room (nothing queues behind idle strangers, and
//!    strangers cannot keep an honest client out by sitting on the slots);
//! 3. spawns the handshake, under one deadline, in the connection's own task;
//! 4. on success takes an authenticated slot (a separate limit: strangers never hold one)
//!    and hands the connection to [`Server::accept`].
//!
//! Failures are logged with their reason only, at a limited rate.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use interprocess::local_socket::tokio::{Listener, Stream};
use interprocess::local_socket::traits::StreamCommon as _;
use interprocess::local_socket::traits::tokio::Listener as _;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName as _};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::broadcast::Broadcaster;
use crate::conn::{
    Command, FrameReceiver, OutboundLimits, OutboundQueue, SendError, ServerFrame, wire,
};
use crate::frame::{FrameError, FrameReader, FrameWriter, MAX_FRAME, PRE_AUTH_MAX_FRAME};
use crate::handshake::{
    AuthResult, DEFAULT_HANDSHAKE_TIMEOUT, HandshakeError, RejectCode, ServerHandshake,
    ServerParams, VersionRule, same_version, send_rejection, server_handshake,
};
use crate::home::{Home, HomeError, current_uid, ensure_home_owned_by};
use crate::limit::LogLimiter;
use crate::peer::{PeerInfo, PeerPolicy};
use crate::slots::{PreAuthSlot, PreAuthSlots, Taken};
use crate::token::{SessionToken, TokenError, TokenFile};

/// Default cap on connections still in their handshake.
pub const DEFAULT_MAX_PRE_AUTH: usize = 64;
/// Default cap on authenticated connections.
pub const DEFAULT_MAX_AUTHENTICATED: usize = 16_384;
/// Default outbound budget of a connection: bytes of answers queued and not yet read
/// (4 MiB; see [`frame_cost`](crate::frame_cost)).
pub const DEFAULT_OUTBOUND_BUDGET: usize = 4 * 1024 * 1024;
/// Default stall deadline: a started frame must be complete, and an answer over the
/// budget must find room, within it.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of per-connection failure lines logged per second.
pub const DEFAULT_FAILURE_LOGS_PER_SECOND: u32 = 10;

/// Authenticated connections waiting for [`Server::accept`].
const INCOMING_QUEUE: usize = 128;
/// How long the stale-socket probe waits for a connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after a failed `accept` (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How a daemon listens. Build with [`ServerConfig::new`] and adjust the fields.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The latch home (holds the socket, token and lock).
    pub home: PathBuf,
    /// The daemon's protocol version (supplied by the protocol crate).
    pub protocol_version: u32,
    /// Which client versions are accepted (default: equal to the daemon's).
    pub version_rule: VersionRule,
    /// Which peers may connect (default: this uid and root).
    pub peer_policy: PeerPolicy,
    /// The uid that must own the home (default: this process's effective uid).
    pub home_owner: u32,
    /// Deadline for the whole handshake (default 5 s).
    pub handshake_timeout: Duration,
    /// Cap on connections still in their handshake (default 64). When it is reached, the
    /// oldest of them is closed to make room for the new one (0: nobody gets in).
    pub max_pre_auth: usize,
    /// Cap on authenticated connections (default 16,384). When it is reached, a client
    /// that completes the handshake is refused with [`RejectCode::Busy`].
    pub max_authenticated: usize,
    /// Largest frame payload after authentication (default 1 MiB).
    pub max_frame_length: usize,
    /// Bytes of answers each connection may hold queued and unread (default 4 MiB,
    /// counted by [`frame_cost`](crate::frame_cost)). An answer that does not fit waits
    /// for the client to read; one larger than the whole budget waits for an empty
    /// queue.
    pub outbound_budget: usize,
    /// The stall deadline (default 10 s): an answer that waits this long for room in the
    /// budget closes the connection (the client does not read its answers), and so does a
    /// frame the client started and did not finish within it. An idle connection (between
    /// frames, such as a subscriber's) has no deadline.
    pub stall_timeout: Duration,
    /// Per-connection failure lines logged per second at most (default 10).
    pub failure_logs_per_second: u32,
}

impl ServerConfig {
    /// Defaults for a daemon in `home` speaking `protocol_version`.
    pub fn new(home: impl Into<PathBuf>, protocol_version: u32) -> Self {
        Self {
            home: home.into(),
            protocol_version,
            version_rule: same_version,
            peer_policy: PeerPolicy::current_user(),
            home_owner: current_uid(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_pre_auth: DEFAULT_MAX_PRE_AUTH,
            max_authenticated: DEFAULT_MAX_AUTHENTICATED,
            max_frame_length: MAX_FRAME,
            outbound_budget: DEFAULT_OUTBOUND_BUDGET,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            failure_logs_per_second: DEFAULT_FAILURE_LOGS_PER_SECOND,
        }
    }
}

/// Errors starting a daemon's listener.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The home is missing and cannot be created, or is unsafe.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// The session-token file cannot be written.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The lock file cannot be opened or locked.
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Another process holds the single-instance lock.
    #[error("latchd is already running with this home: another process holds the lock on {}", path.display())]
    AlreadyRunning {
        /// The lock file.
        path: PathBuf,
    },
    /// A live listener answers on the socket path.
    #[error("another latchd is listening on {}", path.display())]
    AlreadyListening {
        /// The socket path.
        path: PathBuf,
    },
    /// Something other than a socket sits at the socket path.
    #[error("refusing to remove {}: it exists and is not a socket", path.display())]
    NotASocket {
        /// The socket path.
        path: PathBuf,
    },
    /// The socket path cannot be inspected or probed.
    #[error("cannot check the existing socket {}: {source}", path.display())]
    Probe {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A stale socket cannot be removed.
    #[error("cannot remove the stale socket {}: {source}", path.display())]
    RemoveStale {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Listening failed.
    #[error("cannot listen on {}: {source}", path.display())]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// Connection counts, for status output and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections in their handshake.
    pub pre_auth: usize,
    /// Authenticated connections still open.
    pub authenticated: usize,
}

/// A listening daemon. `Req` is what clients send; `Resp` and `Ev` are what it sends
/// back, as [`ServerFrame`]s.
///
/// Dropping it (or [`Server::shutdown`]) stops accepting, closes every connection it
/// accepted, removes the socket and the token file, and releases the lock.
pub struct Server<Req, Resp, Ev> {
    incoming: mpsc::Receiver<Authenticated>,
    accept_task: Option<JoinHandle<()>>,
    cancel: CancellationToken,
    pre_auth: Arc<PreAuthSlots>,
    authenticated: Arc<Semaphore>,
    max_authenticated: usize,
    max_frame: usize,
    outbound: OutboundLimits,
    home: Home,
    socket: SocketFile,
    token_file: Option<TokenFile>,
    _lock: File,
    _marker: PhantomData<fn(Req) -> (Resp, Ev)>,
}

impl<Req, Resp, Ev> fmt::Debug for Server<Req, Resp, Ev> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("home", &self.home)
            .field("socket", &self.socket.path)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<Req, Resp, Ev> Server<Req, Resp, Ev> {
    /// Checks the home, takes the lock, reclaims a stale socket, writes a fresh session
    /// token, listens, and starts accepting in a spawned task. Must run on a Tokio runtime.
    pub async fn bind(config: ServerConfig) -> Result<Self, ServerError> {
        let home = Home::new(&config.home);
        ensure_home_owned_by(home.dir(), config.home_owner)?;
        let lock = acquire_lock(&home.lock_path())?;
        let socket_path = home.socket_path();
        reclaim_stale_socket(&socket_path).await?;
        let token_file = TokenFile::create(home.token_path())?;
        let listener = listen(&socket_path)?;
        let socket = SocketFile::record(socket_path);

        let max_authenticated = config.max_authenticated.min(Semaphore::MAX_PERMITS);
        let pre_auth = PreAuthSlots::new(config.max_pre_auth);
        let authenticated = Arc::new(Semaphore::new(max_authenticated));
        let cancel = CancellationToken::new();
        let (incoming_tx, incoming) = mpsc::channel(INCOMING_QUEUE);
        let ctx = Arc::new(Ctx {
            token: token_file.token().clone(),
            version: config.protocol_version,
            version_rule: config.version_rule,
            handshake_timeout: config.handshake_timeout,
            policy: config.peer_policy,
            pre_auth: Arc::clone(&pre_auth),
            authenticated: Arc::clone(&authenticated),
            max_authenticated,
            incoming: incoming_tx,
            log: LogLimiter::per_second(config.failure_logs_per_second),
            cancel: cancel.clone(),
        });
        let accept_task = tokio::spawn(accept_loop(listener, ctx));
        tracing::info!(socket = %socket.path.display(), "listening");
        Ok(Self {
            incoming,
            accept_task: Some(accept_task),
            cancel,
            pre_auth,
            authenticated,
            max_authenticated,
            max_frame: config.max_frame_length,
            outbound: OutboundLimits {
                budget: config.outbound_budget,
                stall: Some(config.stall_timeout),
            },
            home,
            socket,
            token_file: Some(token_file),
            _lock: lock,
            _marker: PhantomData,
        })
    }

    /// The next authenticated connection. Handshakes run concurrently in their own tasks;
    /// failed ones never show up here.
    pub async fn accept(&mut self) -> Option<Connection<Req, Resp, Ev>> {
        let authenticated = self.incoming.recv().await?;
        Some(Connection::new(
            authenticated,
            self.max_frame,
            self.outbound,
            self.cancel.child_token(),
        ))
    }

    /// The home the daemon runs in.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The socket path.
    pub fn socket_path(&self) -> &Path {
        &self.socket.path
    }

    /// The session-token file's path.
    pub fn token_path(&self) -> PathBuf {
        self.home.token_path()
    }

    /// How many connections are in their handshake, and how many are authenticated.
    pub fn stats(&self) -> ServerStats {
        ServerStats {
            pre_auth: self.pre_auth.in_use(),
            authenticated: self
                .max_authenticated
                .saturating_sub(self.authenticated.available_permits()),
        }
    }

    /// Stops accepting, closes every connection, removes the socket and the token file,
    /// waits for the accept loop to end, then releases the lock.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(task) = self.accept_task.take() {
            let _ = task.await;
        }
    }

    fn stop(&mut self) {
        self.cancel.cancel();
        self.socket.remove();
        if let Some(token_file) = self.token_file.take()
            && let Err(err) = token_file.remove()
        {
            tracing::warn!(%err, "cannot remove the session token");
        }
    }
}

impl<Req, Resp, Ev> Drop for Server<Req, Resp, Ev> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The socket file this server created, remembered by identity so that only that file is
/// ever removed.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    #[cfg(unix)]
    identity: Option<(u64, u64)>,
}

impl SocketFile {
    fn record(path: PathBuf) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let identity = std::fs::symlink_metadata(&path)
                .ok()
                .map(|metadata| (metadata.dev(), metadata.ino()));
            Self { path, identity }
        }
        #[cfg(not(unix))]
        {
            Self { path }
        }
    }

    fn remove(&mut self) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let Some(identity) = self.identity.take() else {
                return;
            };
            let ours = std::fs::symlink_metadata(&self.path)
                .is_ok_and(|metadata| (metadata.dev(), metadata.ino()) == identity);
            if ours && let Err(err) = std::fs::remove_file(&self.path) {
                tracing::warn!(%err, socket = %self.path.display(), "cannot remove the socket");
            }
        }
    }
}

fn acquire_lock(path: &Path) -> Result<File, ServerError> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC;
        options.mode(0o600).custom_flags(flags.bits().cast_signed());
    }
    let file = options.open(path).map_err(|source| ServerError::Lock {
        path: path.to_path_buf(),
        source,
    })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(ServerError::AlreadyRunning {
            path: path.to_path_buf(),
        }),
        Err(TryLockError::Error(source)) => Err(ServerError::Lock {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Removes a socket left behind by a dead daemon; refuses a live one and anything that is
/// not a socket. Runs under the lock, so no other latchd races it.
#[cfg(unix)]
async fn reclaim_stale_socket(path: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::FileTypeExt;
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ServerError::Probe {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if !metadata.file_type().is_socket() {
        return Err(ServerError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::UnixStream::connect(path)).await {
        // Something accepted the connection, or is too busy to: it is alive.
        Ok(Ok(_)) | Err(_) => Err(ServerError::AlreadyListening {
            path: path.to_path_buf(),
        }),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(socket = %path.display(), "removing a stale socket");
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ServerError::RemoveStale {
                    path: path.to_path_buf(),
                    source: e,
                }),
                _ => Ok(()),
            }
        }
        Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Ok(Err(source)) => Err(ServerError::Probe {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(not(unix))]
async fn reclaim_stale_socket(_path: &Path) -> Result<(), ServerError> {
    // Named pipes vanish with their last handle; the listener is created as the first
    // instance, so a live daemon makes `listen` fail.
    Ok(())
}

/// Listens on `path`, mode 0600 where the platform supports it. Never overwrites an
/// existing file, and does not unlink the path on drop (the server removes its own socket,
/// by identity, while it still holds the lock).
fn listen(path: &Path) -> Result<Listener, ServerError> {
    let bind_error = |source| ServerError::Bind {
        path: path.to_path_buf(),
        source,
    };
    let options = || -> io::Result<ListenerOptions<'_>> {
        Ok(ListenerOptions::new()
            .name(path.to_fs_name::<GenericFilePath>()?)
            .reclaim_name(false)
            .try_overwrite(false))
    };
    #[cfg(unix)]
    {
        use interprocess::os::unix::local_socket::ListenerOptionsExt;
        match options().map_err(bind_error)?.mode(0o600).create_tokio() {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                tracing::warn!(
                    socket = %path.display(),
                    "this platform cannot set a socket's mode; relying on the home's 0700"
                );
            }
            Err(source) => return Err(bind_error(source)),
        }
    }
    options()
        .map_err(bind_error)?
        .create_tokio()
        .map_err(bind_error)
}

/// What the accept loop and the handshake tasks share.
struct Ctx {
    token: SessionToken,
    version: u32,
    version_rule: VersionRule,
    handshake_timeout: Duration,
    policy: PeerPolicy,
    pre_auth: Arc<PreAuthSlots>,
    authenticated: Arc<Semaphore>,
    max_authenticated: usize,
    incoming: mpsc::Sender<Authenticated>,
    log: LogLimiter,
    cancel: CancellationToken,
}

impl Ctx {
    /// Logs a per-connection failure: reason only, rate-limited.
    fn log_failure(
        &self,
        what: &str,
        reason: &dyn fmt::Display,
        peer: Option<&PeerInfo>,
        quiet: bool,
    ) {
        let Some(suppressed) = self.log.admit(Instant::now()) else {
            return;
        };
        let uid = peer.and_then(|p| p.uid);
        let pid = peer.and_then(|p| p.pid);
        if quiet {
            tracing::debug!(%reason, ?uid, ?pid, suppressed, "{what}");
        } else {
            tracing::warn!(%reason, ?uid, ?pid, suppressed, "{what}");
        }
    }
}

/// A connection whose peer passed the credential check and that holds a pre-auth slot.
/// It has no way to send or receive the caller's messages: the only thing it can do is
/// [`Unauthenticated::authenticate`].
struct Unauthenticated {
    stream: Stream,
    peer: PeerInfo,
    pre_auth_slot: PreAuthSlot,
}

/// A connection that passed the handshake and holds an authenticated slot; it becomes a
/// [`Connection`] in [`Server::accept`].
struct Authenticated {
    stream: Stream,
    peer: PeerInfo,
    client_version: u32,
    leftover: BytesMut,
    slot: OwnedSemaphorePermit,
}

impl Unauthenticated {
    async fn authenticate(self, ctx: &Ctx) -> Result<Authenticated, HandshakeError> {
        let Self {
            stream,
            peer,
            pre_auth_slot,
        } = self;
        let params = ServerParams {
            token: &ctx.token,
            version: ctx.version,
            version_rule: ctx.version_rule,
        };
        let handshake = tokio::time::timeout(ctx.handshake_timeout, async {
            let mut reader = FrameReader::new(&stream, PRE_AUTH_MAX_FRAME);
            let mut writer = FrameWriter::new(&stream, PRE_AUTH_MAX_FRAME);
            let client_version = server_handshake(&mut reader, &mut writer, &params).await?;
            let Ok(slot) = Arc::clone(&ctx.authenticated).try_acquire_owned() else {
                let message = format!(
                    "the daemon holds its limit of {} connections; try again later",
                    ctx.max_authenticated
                );
                send_rejection(&mut writer, RejectCode::Busy, message).await;
                return Err(HandshakeError::Busy {
                    limit: ctx.max_authenticated,
                });
            };
            writer
                .send_message(&ServerHandshake::AuthResult(AuthResult::Ok))
                .await?;
            let (_, leftover) = reader.into_parts();
            Ok((client_version, leftover, slot))
        });
        let outcome = tokio::select! {
            biased;
            () = pre_auth_slot.evicted() => Ok(Err(HandshakeError::Evicted)),
            outcome = handshake => outcome,
        };
        drop(pre_auth_slot);
        let (client_version, leftover, slot) =
            outcome.map_err(|_| HandshakeError::Timeout(ctx.handshake_timeout))??;
        Ok(Authenticated {
            stream,
            peer,
            client_version,
            leftover,
            slot,
        })
    }
}

async fn accept_loop(listener: Listener, ctx: Arc<Ctx>) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(err) => {
                ctx.log_failure("accept failed", &err, None, false);
                tokio::select! {
                    () = ctx.cancel.cancelled() => return,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        // Before a byte is read: who is it?
        let peer = match ctx.policy.check(stream.peer_creds()) {
            Ok(peer) => peer,
            Err(refusal) => {
                ctx.log_failure("closed a peer before its handshake", &refusal, None, false);
                continue;
            }
        };
        // Never queue behind idle strangers: with every pre-auth slot taken, the oldest
        // stranger makes room.
        let pre_auth_slot = match ctx.pre_auth.take() {
            Some(Taken::Free(slot)) => slot,
            Some(Taken::Evicted(slot)) => {
                ctx.log_failure(
                    "closed the oldest connection in its handshake",
                    &"every pre-authentication slot is taken",
                    Some(&peer),
                    false,
                );
                slot
            }
            None => {
                ctx.log_failure(
                    "closed a connection at once",
                    &"no pre-authentication slots are configured",
                    Some(&peer),
                    false,
                );
                continue;
            }
        };
        let connection = Unauthenticated {
            stream,
            peer,
            pre_auth_slot,
        };
        tokio::spawn(handshake_task(Arc::clone(&ctx), connection));
    }
}

async fn handshake_task(ctx: Arc<Ctx>, connection: Unauthenticated) {
    let peer = connection.peer;
    let outcome = tokio::select! {
        biased;
        () = ctx.cancel.cancelled() => return,
        outcome = connection.authenticate(&ctx) => outcome,
    };
    match outcome {
        Ok(authenticated) => {
            tracing::debug!(uid = ?peer.uid, pid = ?peer.pid, "client authenticated");
            tokio::select! {
                () = ctx.cancel.cancelled() => {}
                _ = ctx.incoming.send(authenticated) => {}
            }
        }
        Err(err) => {
            let quiet = matches!(err, HandshakeError::Closed);
            ctx.log_failure(
                "closed a connection during its handshake",
                &err,
                Some(&peer),
                quiet,
            );
        }
    }
}

/// An authenticated connection, daemon side: receives the client's `Req`s, sends `Resp`s
/// and (once subscribed) `Ev`s. Split it to read and write from different tasks.
pub struct Connection<Req, Resp, Ev> {
    requests: FrameReceiver<Req>,
    sender: ConnectionSender<Resp, Ev>,
    peer: PeerInfo,
    client_version: u32,
}

impl<Req, Resp, Ev> fmt::Debug for Connection<Req, Resp, Ev> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("client_version", &self.client_version)
            .finish_non_exhaustive()
    }
}

impl<Req, Resp, Ev> Connection<Req, Resp, Ev> {
    fn new(
        authenticated: Authenticated,
        max_frame: usize,
        outbound: OutboundLimits,
        cancel: CancellationToken,
    ) -> Self {
        let Authenticated {
            stream,
            peer,
            client_version,
            leftover,
            slot,
        } = authenticated;
        let (requests, queue) = wire(stream, leftover, Some(slot), max_frame, outbound, cancel);
        Self {
            requests,
            sender: ConnectionSender {
                queue,
                _marker: PhantomData,
            },
            peer,
            client_version,
        }
    }

    /// What the kernel said about the peer.
    pub fn peer(&self) -> PeerInfo {
        self.peer
    }

    /// The protocol version the client announced.
    pub fn client_version(&self) -> u32 {
        self.client_version
    }

    /// Another handle for sending on this connection.
    pub fn sender(&self) -> ConnectionSender<Resp, Ev> {
        self.sender.clone()
    }

    /// The receiving and sending halves, for a reader task and any number of responders
    /// (requests may be pipelined; responses go out in the order they are sent).
    pub fn into_split(self) -> (FrameReceiver<Req>, ConnectionSender<Resp, Ev>) {
        (self.requests, self.sender)
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.sender.close();
    }
}

impl<Req: DeserializeOwned, Resp, Ev> Connection<Req, Resp, Ev> {
    /// The next request; see [`FrameReceiver::recv`].
    pub async fn recv(&mut self) -> Result<Option<Req>, FrameError> {
        self.requests.recv().await
    }
}

impl<Req, Resp, Ev> Connection<Req, Resp, Ev> {
    /// The next request's payload, undecoded; see [`FrameReceiver::recv_raw`].
    pub async fn recv_raw(&mut self) -> Result<Option<BytesMut>, FrameError> {
        self.requests.recv_raw().await
    }
}

impl<Req, Resp: Serialize, Ev> Connection<Req, Resp, Ev> {
    /// Sends a response; see [`ConnectionSender::send`].
    pub async fn send(&self, response: &Resp) -> Result<(), SendError> {
        self.sender.send(response).await
    }
}

impl<Req, Resp, Ev> Connection<Req, Resp, Ev> {
    /// Subscribes this connection to `broadcaster`; see [`ConnectionSender::subscribe`].
    pub async fn subscribe(&self, broadcaster: &Broadcaster<Ev>) -> Result<(), SendError> {
        self.sender.subscribe(broadcaster).await
    }
}

/// The sending half of an authenticated connection. Cheap to clone; every clone feeds the
/// same bounded queue, written by the connection's writer task.
pub struct ConnectionSender<Resp, Ev> {
    queue: OutboundQueue,
    _marker: PhantomData<fn(Resp, Ev)>,
}

impl<Resp, Ev> Clone for ConnectionSender<Resp, Ev> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            _marker: PhantomData,
        }
    }
}

impl<Resp, Ev> fmt::Debug for ConnectionSender<Resp, Ev> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSender")
            .field("closed", &self.queue.is_closed())
            .finish_non_exhaustive()
    }
}

impl<Resp: Serialize, Ev> ConnectionSender<Resp, Ev> {
    /// Queues a response (as [`ServerFrame::Response`]), waiting while the queue is full.
    /// A response over the frame limit is refused here, and the connection stays open.
    pub async fn send(&self, response: &Resp) -> Result<(), SendError> {
        self.queue
            .send(&ServerFrame::<&Resp, ()>::Response(response))
            .await
    }

    /// Like [`ConnectionSender::send`], but when nothing is waiting to be written the
    /// response goes into the socket from the caller's task, without a hop to the writer
    /// task. For an answer nothing else follows soon (the peer has sent nothing more);
    /// answers to a burst of requests are better batched by [`ConnectionSender::send`].
    pub async fn send_now(&self, response: &Resp) -> Result<(), SendError> {
        self.queue
            .send_now(&ServerFrame::<&Resp, ()>::Response(response))
            .await
    }
}

impl<Resp, Ev> ConnectionSender<Resp, Ev> {
    /// Subscribes this connection to `broadcaster`: every event sent after this returns is
    /// delivered (as [`ServerFrame::Event`]), or counted in a [`ServerFrame::Lagged`] if the
    /// connection falls too far behind. Events are delivered while a sender of this
    /// connection is alive.
    pub async fn subscribe(&self, broadcaster: &Broadcaster<Ev>) -> Result<(), SendError> {
        self.queue
            .push(Command::Subscribe(broadcaster.receiver()))
            .await
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.queue.close();
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// The largest frame this connection sends.
    pub fn max_frame_length(&self) -> usize {
        self.queue.max_frame()
    }

    /// Bytes of the outbound budget held by answers queued and not yet written to the
    /// socket.
    pub fn queued_bytes(&self) -> usize {
        self.queue.queued_bytes()
    }
}
