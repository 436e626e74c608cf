//! The client side: find the socket and the token, connect, authenticate.
//!
//! The socket is `$LATCH_SOCKET`, else `<home>/latch.sock`; the token file is
//! `$LATCH_TOKEN_FILE`, else `<home>/session-token`; the home is `--home`, else
//! `$LATCH_HOME`, else `~/.latch`. The token is read after the connection succeeds, so a
//! dead daemon shows up as a connection error, and it is re-read on every connect, so a
//! restarted daemon's new token is picked up.
//!
//! Neither the socket nor the token file is trusted for being where it is: another
//! local user could pre-create a home (in a world-writable directory, say) with a token
//! of their own and a listener behind it, and the impostor's proof would verify. So,
//! before a byte of the handshake is sent:
//!
//! - the token file must be a regular file owned by the caller (or root) that group and
//!   others cannot read or write ([`read_token_file`](crate::token::read_token_file));
//! - the daemon's kernel-attested uid (`SO_PEERCRED` / `getpeereid`, read by the same
//!   code as the daemon's own peer check, [`crate::peer`]) must be the caller's, root's,
//!   or the token file's owner's.
//!
//! A daemon run by the same user is trusted as the user is: that is the threat model's
//! boundary.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::time::Duration;

use interprocess::local_socket::tokio::Stream;
use interprocess::local_socket::{ConnectOptions, GenericFilePath, ToFsName as _};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::conn::OutboundLimits;
use crate::conn::{FrameReceiver, OutboundQueue, SendError, ServerFrame, wire};
use crate::frame::{FrameError, FrameReader, FrameWriter, MAX_FRAME, PRE_AUTH_MAX_FRAME};
use crate::handshake::{
    ClientParams, DEFAULT_HANDSHAKE_TIMEOUT, HandshakeError, RejectCode, VersionRule,
    client_handshake, same_version,
};
use crate::home::{ENV_SOCKET, ENV_TOKEN_FILE, Home, HomeError, current_uid};
use crate::peer::PeerPolicy;
use crate::server::DEFAULT_OUTBOUND_BUDGET;
use crate::token::{TokenError, read_trusted_token_file};

/// Where and how a client connects. Build with [`ClientConfig::resolve`],
/// [`ClientConfig::from_env`], [`ClientConfig::for_home`] or [`ClientConfig::new`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The daemon's socket.
    pub socket_path: PathBuf,
    /// The session-token file.
    pub token_path: PathBuf,
    /// The client's protocol version (supplied by the protocol crate).
    pub protocol_version: u32,
    /// Which daemon versions are accepted (default: equal to the client's).
    pub version_rule: VersionRule,
    /// Deadline for the whole handshake (default 5 s).
    pub handshake_timeout: Duration,
    /// Largest frame payload after authentication (default 1 MiB).
    pub max_frame_length: usize,
    /// Bytes of requests queued and not yet written, at most (default 4 MiB, counted by
    /// [`frame_cost`](crate::frame_cost)); a request that does not fit waits for room.
    pub outbound_budget: usize,
    /// With `Some`, a request that waits this long for room closes the connection, and a
    /// frame the daemon started must be complete within it. Default `None`: wait as long
    /// as it takes (a caller's own request deadline decides).
    pub stall_timeout: Option<Duration>,
}

impl ClientConfig {
    /// A config for the given socket and token file.
    pub fn new(
        socket_path: impl Into<PathBuf>,
        token_path: impl Into<PathBuf>,
        protocol_version: u32,
    ) -> Self {
        Self {
            socket_path: socket_path.into(),
            token_path: token_path.into(),
            protocol_version,
            version_rule: same_version,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_frame_length: MAX_FRAME,
            outbound_budget: DEFAULT_OUTBOUND_BUDGET,
            stall_timeout: None,
        }
    }

    /// A config for the daemon running in `home`.
    pub fn for_home(home: &Home, protocol_version: u32) -> Self {
        Self::new(home.socket_path(), home.token_path(), protocol_version)
    }

    /// Resolves the paths from the process environment: `$LATCH_SOCKET` and
    /// `$LATCH_TOKEN_FILE` if set, else the files in the home (`explicit_home`, else
    /// `$LATCH_HOME`, else `~/.latch`).
    pub fn resolve(explicit_home: Option<&Path>, protocol_version: u32) -> Result<Self, HomeError> {
        Self::resolve_with(explicit_home, |key| std::env::var_os(key), protocol_version)
    }

    /// [`ClientConfig::resolve`] with no `--home`.
    pub fn from_env(protocol_version: u32) -> Result<Self, HomeError> {
        Self::resolve(None, protocol_version)
    }

    /// [`ClientConfig::resolve`] with an injected environment lookup.
    pub fn resolve_with(
        explicit_home: Option<&Path>,
        env: impl Fn(&str) -> Option<OsString>,
        protocol_version: u32,
    ) -> Result<Self, HomeError> {
        let var = |key| {
            env(key)
                .filter(|v: &OsString| !v.is_empty())
                .map(PathBuf::from)
        };
        let socket = var(ENV_SOCKET);
        let token = var(ENV_TOKEN_FILE);
        let (socket_path, token_path) = match (socket, token) {
            (Some(socket), Some(token)) => (socket, token),
            (socket, token) => {
                let home = Home::resolve_with(explicit_home, &env)?;
                (
                    socket.unwrap_or_else(|| home.socket_path()),
                    token.unwrap_or_else(|| home.token_path()),
                )
            }
        };
        Ok(Self::new(socket_path, token_path, protocol_version))
    }
}

/// Why a client could not connect. Every message names the file involved and, where
/// another file could be meant, the variable that picks it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// There is no socket at the path.
    #[error(
        "cannot connect to {}: no such socket (is latchd running? start it with `latchd`, or set LATCH_SOCKET)",
        path.display()
    )]
    NoSocket {
        /// The socket path.
        path: PathBuf,
    },
    /// Nothing listens on the socket.
    #[error(
        "cannot connect to {}: connection refused (is latchd running? start it with `latchd`, or set LATCH_SOCKET)",
        path.display()
    )]
    Refused {
        /// The socket path.
        path: PathBuf,
    },
    /// Connecting failed for another reason.
    #[error("cannot connect to {}: {source} (set LATCH_SOCKET to use another socket)", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The token file is missing, unreadable or malformed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The process listening on the socket runs as a user this client does not trust
    /// (not the caller, root, or the token file's owner), or its credentials cannot be
    /// read. Nothing was sent to it.
    #[error(
        "refusing the daemon at {}: {reason}; nothing was sent to it (another local user may be \
         impersonating latchd: check the socket's directory, or set LATCH_SOCKET)",
        path.display()
    )]
    UntrustedDaemon {
        /// The socket path.
        path: PathBuf,
        /// The daemon's uid, when the kernel reported one.
        uid: Option<u32>,
        /// Why it is refused.
        reason: String,
    },
    /// The daemon could not prove it holds the token: nothing more was sent to it.
    #[error(
        "the daemon at {} could not prove it holds the session token in {}: impostor or stale daemon (check that LATCH_SOCKET and LATCH_TOKEN_FILE belong to the same latchd)",
        socket.display(),
        token.display()
    )]
    ServerImpostor {
        /// The socket path.
        socket: PathBuf,
        /// The token file.
        token: PathBuf,
    },
    /// The daemon refused the handshake.
    #[error("the daemon at {} refused the connection: {message}", path.display())]
    Rejected {
        /// The socket path.
        path: PathBuf,
        /// The daemon's reason code.
        code: RejectCode,
        /// The daemon's reason.
        message: String,
    },
    /// This client does not accept the daemon's protocol version.
    #[error("cannot talk to the daemon at {}: client speaks protocol {client}, daemon speaks {daemon}", path.display())]
    IncompatibleVersion {
        /// The socket path.
        path: PathBuf,
        /// The client's version.
        client: u32,
        /// The daemon's version.
        daemon: u32,
    },
    /// The daemon closed the connection during the handshake.
    #[error(
        "the daemon at {} closed the connection during the handshake (is this user allowed to connect?)",
        path.display()
    )]
    Closed {
        /// The socket path.
        path: PathBuf,
    },
    /// The handshake did not finish in time.
    #[error("the daemon at {} did not finish the handshake within {after:?}", path.display())]
    Timeout {
        /// The socket path.
        path: PathBuf,
        /// The deadline.
        after: Duration,
    },
    /// The handshake failed otherwise (a broken or foreign daemon).
    #[error("handshake with the daemon at {} failed: {source}", path.display())]
    Handshake {
        /// The socket path.
        path: PathBuf,
        /// What went wrong.
        source: HandshakeError,
    },
}

impl ClientError {
    fn from_handshake(err: HandshakeError, config: &ClientConfig) -> Self {
        let path = config.socket_path.clone();
        match err {
            HandshakeError::ServerImpostor => Self::ServerImpostor {
                socket: path,
                token: config.token_path.clone(),
            },
            HandshakeError::Rejected { code, message } => Self::Rejected {
                path,
                code,
                message,
            },
            HandshakeError::IncompatibleVersion { client, daemon } => Self::IncompatibleVersion {
                path,
                client,
                daemon,
            },
            HandshakeError::Timeout(after) => Self::Timeout { path, after },
            HandshakeError::Closed | HandshakeError::Frame(FrameError::Truncated { .. }) => {
                Self::Closed { path }
            }
            HandshakeError::Frame(FrameError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::UnexpectedEof
                ) =>
            {
                Self::Closed { path }
            }
            source => Self::Handshake { path, source },
        }
    }
}

/// Connects to the daemon, reads the session token, and runs the handshake under
/// `config.handshake_timeout`.
pub async fn connect<Req, Resp, Ev>(
    config: &ClientConfig,
) -> Result<ClientConnection<Req, Resp, Ev>, ClientError> {
    let stream = connect_stream(&config.socket_path).await?;
    let caller = current_uid();
    let (token, token_owner) = read_trusted_token_file(&config.token_path, caller)?;
    // Before a byte of the handshake: who listens there?
    check_daemon(&stream, &config.socket_path, caller, token_owner)?;
    let params = ClientParams {
        token: &token,
        version: config.protocol_version,
        version_rule: config.version_rule,
    };
    let outcome = tokio::time::timeout(config.handshake_timeout, async {
        let mut reader = FrameReader::new(&stream, PRE_AUTH_MAX_FRAME);
        let mut writer = FrameWriter::new(&stream, PRE_AUTH_MAX_FRAME);
        let daemon_version = client_handshake(&mut reader, &mut writer, &params).await?;
        let (_, leftover) = reader.into_parts();
        Ok((daemon_version, leftover))
    })
    .await
    .unwrap_or(Err(HandshakeError::Timeout(config.handshake_timeout)));
    drop(token);
    let (daemon_version, leftover) =
        outcome.map_err(|err| ClientError::from_handshake(err, config))?;
    let (receiver, queue) = wire(
        stream,
        leftover,
        None,
        config.max_frame_length,
        OutboundLimits {
            budget: config.outbound_budget,
            stall: config.stall_timeout,
        },
        CancellationToken::new(),
    );
    Ok(ClientConnection {
        sender: ClientSender {
            queue,
            _marker: PhantomData,
        },
        receiver,
        daemon_version,
    })
}

/// Refuses a daemon whose kernel-attested uid is not `caller`, root or `token_owner`.
fn check_daemon(
    stream: &Stream,
    socket: &Path,
    caller: u32,
    token_owner: Option<u32>,
) -> Result<(), ClientError> {
    use interprocess::local_socket::traits::StreamCommon as _;
    let policy = PeerPolicy {
        daemon_uid: caller,
        allow_root: true,
        allowed_uids: token_owner.into_iter().collect(),
    };
    policy
        .check(stream.peer_creds())
        .map(|_| ())
        .map_err(|refusal| {
            let uid = refusal.uid();
            let reason = match uid {
                Some(uid) => {
                    let owner = token_owner
                        .filter(|owner| *owner != caller && *owner != 0)
                        .map(|owner| format!(", the session token's owner (uid {owner})"))
                        .unwrap_or_default();
                    format!("it runs as uid {uid}, not as you (uid {caller}), root{owner}")
                }
                None => refusal.to_string(),
            };
            ClientError::UntrustedDaemon {
                path: socket.to_path_buf(),
                uid,
                reason,
            }
        })
}

async fn connect_stream(path: &Path) -> Result<Stream, ClientError> {
    let classify = |source: io::Error| match source.kind() {
        io::ErrorKind::NotFound => ClientError::NoSocket {
            path: path.to_path_buf(),
        },
        io::ErrorKind::ConnectionRefused => ClientError::Refused {
            path: path.to_path_buf(),
        },
        _ => ClientError::Connect {
            path: path.to_path_buf(),
            source,
        },
    };
    let name = path.to_fs_name::<GenericFilePath>().map_err(classify)?;
    let options = ConnectOptions::new().name(name);
    options.connect_tokio().await.map_err(classify)
}

/// The receiving half of a client connection: responses, events and lag notices.
pub type ClientReceiver<Resp, Ev> = FrameReceiver<ServerFrame<Resp, Ev>>;

/// An authenticated connection, client side: sends `Req`s, receives
/// [`ServerFrame<Resp, Ev>`]s. Requests may be pipelined: send many, then read.
pub struct ClientConnection<Req, Resp, Ev> {
    sender: ClientSender<Req>,
    receiver: ClientReceiver<Resp, Ev>,
    daemon_version: u32,
}

impl<Req, Resp, Ev> fmt::Debug for ClientConnection<Req, Resp, Ev> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConnection")
            .field("daemon_version", &self.daemon_version)
            .finish_non_exhaustive()
    }
}

impl<Req, Resp, Ev> ClientConnection<Req, Resp, Ev> {
    /// The daemon's protocol version.
    pub fn daemon_version(&self) -> u32 {
        self.daemon_version
    }

    /// Another handle for sending requests.
    pub fn sender(&self) -> ClientSender<Req> {
        self.sender.clone()
    }

    /// The sending and receiving halves, for separate tasks.
    pub fn into_split(self) -> (ClientSender<Req>, ClientReceiver<Resp, Ev>) {
        (self.sender, self.receiver)
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.sender.close();
    }
}

impl<Req: Serialize, Resp, Ev> ClientConnection<Req, Resp, Ev> {
    /// Queues a request; see [`ClientSender::send`].
    pub async fn send(&self, request: &Req) -> Result<(), SendError> {
        self.sender.send(request).await
    }
}

impl<Req, Resp: serde::de::DeserializeOwned, Ev: serde::de::DeserializeOwned>
    ClientConnection<Req, Resp, Ev>
{
    /// The next frame from the daemon; `Ok(None)` once the connection is closed.
    pub async fn recv(&mut self) -> Result<Option<ServerFrame<Resp, Ev>>, FrameError> {
        self.receiver.recv().await
    }
}

/// The sending half of a client connection. Cheap to clone; every clone feeds the same
/// bounded queue.
pub struct ClientSender<Req> {
    queue: OutboundQueue,
    _marker: PhantomData<fn(Req)>,
}

impl<Req> Clone for ClientSender<Req> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            _marker: PhantomData,
        }
    }
}

impl<Req> fmt::Debug for ClientSender<Req> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSender")
            .field("closed", &self.queue.is_closed())
            .finish_non_exhaustive()
    }
}

impl<Req: Serialize> ClientSender<Req> {
    /// Queues a request, waiting while the queue is full. A request over the frame limit
    /// is refused here, and the connection stays open.
    pub async fn send(&self, request: &Req) -> Result<(), SendError> {
        self.queue.send(request).await
    }

    /// Like [`ClientSender::send`], but when nothing is waiting to be written the request
    /// goes into the socket from the caller's task, without a hop to the writer task. For
    /// a request sent on its own; a burst is better batched by [`ClientSender::send`].
    pub async fn send_now(&self, request: &Req) -> Result<(), SendError> {
        self.queue.send_now(request).await
    }
}

impl<Req> ClientSender<Req> {
    /// Closes the connection.
    pub fn close(&self) {
        self.queue.close();
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener at `<dir>/s.sock` whose kernel-attested uid is `uid`: bound by a
    /// thread that switched to `uid` (Linux credentials are per thread at the
    /// system-call level). Needs root, or `uid` equal to ours.
    #[cfg(target_os = "linux")]
    fn listener_of(uid: u32, dir: &Path) -> (PathBuf, std::os::unix::net::UnixListener) {
        use rustix::thread::{Gid, Uid, set_thread_groups, set_thread_res_gid, set_thread_res_uid};
        let socket = dir.join("s.sock");
        if uid == current_uid() {
            return (
                socket.clone(),
                std::os::unix::net::UnixListener::bind(socket).unwrap(),
            );
        }
        std::os::unix::fs::chown(dir, Some(uid), Some(uid)).unwrap();
        let path = socket.clone();
        let listener = std::thread::spawn(move || {
            let (gid, uid) = (Gid::from_raw(uid), Uid::from_raw(uid));
            set_thread_groups(&[]).unwrap();
            set_thread_res_gid(gid, gid, gid).unwrap();
            set_thread_res_uid(uid, uid, uid).unwrap();
            std::os::unix::net::UnixListener::bind(path).unwrap()
        })
        .join()
        .unwrap();
        (socket, listener)
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn only_a_daemon_of_the_caller_root_or_the_token_owner_is_trusted() {
        let me = current_uid();
        // A daemon run by someone else: nobody when we are root; else ourselves, seen by
        // a caller of another uid.
        let (stranger, caller) = if me == 0 { (65_534, 0) } else { (me, me + 1) };
        let dir = tempfile::tempdir().unwrap();
        let (socket, _listener) = listener_of(stranger, dir.path());
        let stream = connect_stream(&socket).await.unwrap();

        let err = check_daemon(&stream, &socket, caller, Some(caller)).unwrap_err();
        let ClientError::UntrustedDaemon { uid, reason, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(*uid, Some(stranger));
        assert_eq!(
            reason,
            &format!("it runs as uid {stranger}, not as you (uid {caller}), root")
        );
        assert!(
            err.to_string().contains(&socket.display().to_string()),
            "{err}"
        );
        // Root's token file does not vouch for it either.
        assert!(check_daemon(&stream, &socket, caller, Some(0)).is_err());
        // The owner of the token file is trusted: the daemon wrote it.
        check_daemon(&stream, &socket, caller, Some(stranger)).unwrap();
        // And a caller trusts its own daemon.
        check_daemon(&stream, &socket, stranger, None).unwrap();
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[cfg(unix)]
    #[test]
    fn env_overrides_and_home_fallbacks() {
        let config = ClientConfig::resolve_with(
            None,
            env_of(&[("LATCH_SOCKET", "/fwd/s.sock"), ("LATCH_HOME", "/h")]),
            1,
        )
        .unwrap();
        assert_eq!(config.socket_path, Path::new("/fwd/s.sock"));
        assert_eq!(config.token_path, Path::new("/h/session-token"));

        let config = ClientConfig::resolve_with(
            None,
            env_of(&[("LATCH_TOKEN_FILE", "/t"), ("HOME", "/home/u")]),
            1,
        )
        .unwrap();
        assert_eq!(config.socket_path, Path::new("/home/u/.latch/latch.sock"));
        assert_eq!(config.token_path, Path::new("/t"));

        let config = ClientConfig::resolve_with(
            Some(Path::new("/flag")),
            env_of(&[("LATCH_HOME", "/h")]),
            1,
        )
        .unwrap();
        assert_eq!(config.socket_path, Path::new("/flag/latch.sock"));

        // Both variables set: no home is needed at all.
        let config = ClientConfig::resolve_with(
            None,
            env_of(&[("LATCH_SOCKET", "/s"), ("LATCH_TOKEN_FILE", "/t")]),
            1,
        )
        .unwrap();
        assert_eq!(config.token_path, Path::new("/t"));
    }
}
