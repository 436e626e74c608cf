//! [`ClientError`]: everything a call can fail with, typed so callers can tell "the daemon
//! is gone" from "our token is stale" from "the daemon said no".

use std::path::PathBuf;

use latch_ipc::client::ClientError as IpcError;
use latch_ipc::handshake::RejectCode;
use latch_ipc::home::HomeError;
use latch_ipc::token::TokenError;
use latch_protocol::{ApiError, ErrorCode, PROTOCOL_VERSION};

/// How to start the daemon, for messages about a daemon that is not running.
pub const START_HINT: &str = "start it with `latchd` (or `cargo run --release --bin latchd` in a source checkout); \
     set LATCH_HOME (or --home) if it runs with another home, or LATCH_SOCKET for a forwarded socket";

/// What to do about a missing or unreadable token file.
pub const TOKEN_HINT: &str = "is latchd running with this home? set LATCH_TOKEN_FILE (or --token-file) to the session-token file of the latchd you mean, \
     e.g. for a forwarded socket";

/// Exit codes a command-line program maps [`ClientError`]s to (see
/// [`ClientError::exit_code`]). Scripts may rely on them.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A negative answer: permission denied, an invalid token, wrong credentials, a
    /// lockout.
    pub const DENIED: u8 = 1;
    /// A usage or configuration error.
    pub const USAGE: u8 = 2;
    /// The daemon is not running or cannot be reached.
    pub const UNREACHABLE: u8 = 3;
    /// The socket's authentication failed: missing or stale token file, impostor daemon.
    pub const AUTH: u8 = 4;
    /// The thing named does not exist.
    pub const NOT_FOUND: u8 = 5;
    /// Any other error answered by the daemon, or a protocol failure.
    pub const OTHER: u8 = 6;
}

/// Why a call failed.
///
/// Connection problems come first (they say which file or variable to look at), then
/// the daemon's answers ([`ClientError::Api`], with its stable [`ErrorCode`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No daemon listens on the socket (the socket is missing, or connecting is
    /// refused).
    #[error("latchd is not running: cannot connect to {} ({hint})", socket.display())]
    NotRunning {
        /// The socket tried.
        socket: PathBuf,
        /// How to start the daemon and which variables pick another one.
        hint: String,
    },
    /// Connecting to the socket failed for another reason (e.g. permission denied).
    #[error("cannot connect to {}: {source} (set LATCH_SOCKET or --socket to use another socket)", socket.display())]
    Unreachable {
        /// The socket tried.
        socket: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The latch home cannot be found (no `--home`, `LATCH_HOME` or `HOME`).
    #[error("cannot find the latch home: pass --home, or set LATCH_HOME or HOME")]
    NoHome,
    /// The daemon answers on the socket, but there is no session-token file.
    #[error("no session token at {} ({hint})", path.display())]
    TokenMissing {
        /// The token file looked for.
        path: PathBuf,
        /// Which variable names another file.
        hint: String,
    },
    /// The session-token file cannot be read or does not hold a token.
    #[error("cannot use session token {}: {reason} (set LATCH_TOKEN_FILE or --token-file to use another file)", path.display())]
    TokenUnreadable {
        /// The token file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The session-token file could have been planted or read by another user: not a
    /// regular file owned by us (or root) with no access for group and others. It was
    /// not used, and nothing was sent.
    #[error("{detail}")]
    UntrustedTokenFile {
        /// The token file.
        path: PathBuf,
        /// What was found and what is required.
        detail: String,
    },
    /// The process listening on the socket runs as another user (not us, root, or the
    /// token file's owner): an impostor. Nothing was sent to it.
    #[error("{detail}")]
    UntrustedDaemon {
        /// The socket.
        socket: PathBuf,
        /// The daemon's uid, when the kernel reported one.
        uid: Option<u32>,
        /// What was found.
        detail: String,
    },
    /// The daemon refused our proof of the token, or closed the connection during the
    /// handshake: a stale token file, or a user the daemon does not admit.
    #[error("latchd refused this client: {reason}")]
    AuthRefused {
        /// The daemon's reason, or what was seen.
        reason: String,
    },
    /// The daemon could not prove it holds the token in our token file: an impostor, or
    /// a socket and a token file that belong to different daemons. Nothing was sent to
    /// it.
    #[error(
        "the daemon at {} could not prove it holds the session token in {}: a stale token file, another latchd's socket, or an impostor \
         (check that LATCH_SOCKET and LATCH_TOKEN_FILE belong to the same latchd)",
        socket.display(),
        token_file.display()
    )]
    ServerImpostor {
        /// The socket.
        socket: PathBuf,
        /// The token file.
        token_file: PathBuf,
    },
    /// The daemon holds as many connections as it allows.
    #[error("latchd is busy: {message}")]
    Busy {
        /// The daemon's reason.
        message: String,
    },
    /// Client and daemon speak different protocol versions.
    #[error(
        "incompatible protocol versions: this client speaks {client}, the daemon speaks {} (upgrade the older side)",
        daemon.map_or_else(|| "another version".to_owned(), |d| d.to_string())
    )]
    ProtocolVersion {
        /// The client's version.
        client: u32,
        /// The daemon's version, when known.
        daemon: Option<u32>,
    },
    /// The daemon answered with an error.
    #[error("{message} ({code})")]
    Api {
        /// The stable error code.
        code: ErrorCode,
        /// The daemon's message.
        message: String,
    },
    /// The connection closed before the answer came; the request may or may not have
    /// been carried out. The next call reconnects.
    #[error("the connection to latchd was lost before it answered")]
    Disconnected,
    /// No answer (or no finished handshake) within the deadline.
    #[error("latchd did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The daemon answered with a response of the wrong kind.
    #[error("unexpected answer to {request}: got {got}")]
    UnexpectedResponse {
        /// The request's name.
        request: &'static str,
        /// What came back (the response variant, no payload).
        got: &'static str,
    },
    /// The conversation broke: a frame that does not decode, a request too large.
    #[error("protocol error: {detail}")]
    Protocol {
        /// What went wrong.
        detail: String,
    },
}

impl ClientError {
    /// The exit code a command-line program should end with (see [`exit`]): 1 for a
    /// negative answer, 2 for configuration errors, 3 when the daemon is not running or
    /// unreachable, 4 when the socket's authentication failed, 5 for "not found", 6 for
    /// any other error.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::NotRunning { .. }
            | Self::Unreachable { .. }
            | Self::Busy { .. }
            | Self::Disconnected
            | Self::Timeout(_) => exit::UNREACHABLE,
            Self::NoHome | Self::ProtocolVersion { .. } => exit::USAGE,
            Self::TokenMissing { .. }
            | Self::TokenUnreadable { .. }
            | Self::UntrustedTokenFile { .. }
            | Self::UntrustedDaemon { .. }
            | Self::AuthRefused { .. }
            | Self::ServerImpostor { .. } => exit::AUTH,
            Self::Api { code, .. } => api_exit_code(*code),
            Self::UnexpectedResponse { .. } | Self::Protocol { .. } => exit::OTHER,
        }
    }

    /// The daemon's error code, if this is an answer from the daemon.
    #[must_use]
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True if the daemon cannot be reached at all (not running, unreachable, gone
    /// mid-call): as opposed to a daemon that answered, or refused our token.
    #[must_use]
    pub fn is_unreachable(&self) -> bool {
        self.exit_code() == exit::UNREACHABLE
    }

    /// True if the socket's authentication failed (missing or stale token file, an
    /// impostor daemon).
    #[must_use]
    pub fn is_auth_failure(&self) -> bool {
        self.exit_code() == exit::AUTH
    }

    pub(crate) fn not_running(socket: PathBuf) -> Self {
        Self::NotRunning {
            socket,
            hint: START_HINT.to_owned(),
        }
    }

    pub(crate) fn from_ipc(err: IpcError) -> Self {
        match err {
            IpcError::NoSocket { path } | IpcError::Refused { path } => Self::not_running(path),
            IpcError::Connect { path, source } => Self::Unreachable {
                socket: path,
                source,
            },
            IpcError::Token(token) => Self::from_token(token),
            IpcError::UntrustedDaemon { path, uid, reason } => {
                let detail = IpcError::UntrustedDaemon {
                    path: path.clone(),
                    uid,
                    reason,
                }
                .to_string();
                Self::UntrustedDaemon {
                    socket: path,
                    uid,
                    detail,
                }
            }
            IpcError::ServerImpostor { socket, token } => Self::ServerImpostor {
                socket,
                token_file: token,
            },
            IpcError::Rejected { code, message, .. } => match code {
                RejectCode::BadProof => Self::AuthRefused {
                    reason: format!(
                        "{message} (the token file is stale: is it the one of the latchd now running? see LATCH_TOKEN_FILE)"
                    ),
                },
                RejectCode::IncompatibleVersion => Self::ProtocolVersion {
                    client: PROTOCOL_VERSION,
                    daemon: daemon_version_in(&message),
                },
                RejectCode::Busy => Self::Busy { message },
            },
            IpcError::IncompatibleVersion { client, daemon, .. } => Self::ProtocolVersion {
                client,
                daemon: Some(daemon),
            },
            IpcError::Closed { path } => Self::AuthRefused {
                reason: format!(
                    "the daemon at {} closed the connection during the handshake (is this user allowed to connect?)",
                    path.display()
                ),
            },
            IpcError::Timeout { after, .. } => Self::Timeout(after),
            other => Self::Protocol {
                detail: other.to_string(),
            },
        }
    }

    pub(crate) fn from_token(err: TokenError) -> Self {
        match err {
            TokenError::Missing { path } => Self::TokenMissing {
                path,
                hint: TOKEN_HINT.to_owned(),
            },
            TokenError::Read { path, source } => Self::TokenUnreadable {
                path,
                reason: source.to_string(),
            },
            TokenError::Untrusted {
                path,
                owner,
                mode,
                caller,
                not_a_file,
            } => {
                let detail = TokenError::Untrusted {
                    path: path.clone(),
                    owner,
                    mode,
                    caller,
                    not_a_file,
                }
                .to_string();
                Self::UntrustedTokenFile { path, detail }
            }
            TokenError::Malformed { path, source } => Self::TokenUnreadable {
                path,
                reason: format!("not a session token: {source}"),
            },
            other => Self::Protocol {
                detail: other.to_string(),
            },
        }
    }

    pub(crate) fn from_home(err: &HomeError) -> Self {
        match err {
            HomeError::NoHome => Self::NoHome,
            other => Self::Protocol {
                detail: other.to_string(),
            },
        }
    }
}

impl From<ApiError> for ClientError {
    fn from(err: ApiError) -> Self {
        Self::Api {
            code: err.code,
            message: err.message,
        }
    }
}

/// The exit code for an error the daemon answered with.
#[must_use]
pub fn api_exit_code(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::InvalidAuth
        | ErrorCode::InvalidToken
        | ErrorCode::Forbidden
        | ErrorCode::TooManyAttempts => exit::DENIED,
        ErrorCode::NotFound
        | ErrorCode::UserNotFound
        | ErrorCode::FlowNotFound
        | ErrorCode::MfaModuleNotFound
        | ErrorCode::GroupNotFound
        | ErrorCode::CredentialNotFound
        | ErrorCode::TokenNotFound
        | ErrorCode::ProviderNotFound => exit::NOT_FOUND,
        ErrorCode::ShuttingDown => exit::UNREACHABLE,
        _ => exit::OTHER,
    }
}

/// Reads the daemon's version out of the rejection message ("… daemon speaks protocol
/// N"), if it is there.
fn daemon_version_in(message: &str) -> Option<u32> {
    let rest = &message[message.find("daemon speaks")?..];
    let digits: String = rest
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_documented_table() {
        assert_eq!(
            ClientError::not_running(PathBuf::from("/s")).exit_code(),
            exit::UNREACHABLE
        );
        assert_eq!(ClientError::Disconnected.exit_code(), 3);
        assert_eq!(
            ClientError::from_token(TokenError::Missing {
                path: PathBuf::from("/t")
            })
            .exit_code(),
            exit::AUTH
        );
        let api = |code| ClientError::from(ApiError::new(code, "x")).exit_code();
        assert_eq!(api(ErrorCode::InvalidToken), exit::DENIED);
        assert_eq!(api(ErrorCode::UserNotFound), exit::NOT_FOUND);
        assert_eq!(api(ErrorCode::WeakPassword), exit::OTHER);
        assert_eq!(ClientError::NoHome.exit_code(), exit::USAGE);
    }

    #[test]
    fn not_running_names_the_socket_and_how_to_start() {
        let msg = ClientError::not_running(PathBuf::from("/h/latch.sock")).to_string();
        assert!(msg.contains("/h/latch.sock"), "{msg}");
        assert!(msg.contains("latchd"), "{msg}");
        assert!(msg.contains("cargo run --release --bin latchd"), "{msg}");
        assert!(msg.contains("LATCH_HOME"), "{msg}");
    }

    #[test]
    fn token_missing_names_the_file_and_the_variable() {
        let msg = ClientError::from_token(TokenError::Missing {
            path: PathBuf::from("/h/session-token"),
        })
        .to_string();
        assert!(msg.contains("/h/session-token"), "{msg}");
        assert!(msg.contains("LATCH_TOKEN_FILE"), "{msg}");
    }

    #[test]
    fn version_rejections_carry_both_versions() {
        let err = ClientError::from_ipc(IpcError::Rejected {
            path: PathBuf::from("/s"),
            code: RejectCode::IncompatibleVersion,
            message: "client speaks protocol 1, daemon speaks 7".to_owned(),
        });
        assert!(matches!(
            err,
            ClientError::ProtocolVersion {
                client: PROTOCOL_VERSION,
                daemon: Some(7)
            }
        ));
        assert_eq!(daemon_version_in("garbled"), None);
    }

    #[test]
    fn bad_proof_is_an_auth_refusal_pointing_at_the_token_file() {
        let err = ClientError::from_ipc(IpcError::Rejected {
            path: PathBuf::from("/s"),
            code: RejectCode::BadProof,
            message: "wrong proof".to_owned(),
        });
        assert!(matches!(err, ClientError::AuthRefused { .. }));
        assert!(err.to_string().contains("LATCH_TOKEN_FILE"));
        assert_eq!(err.exit_code(), exit::AUTH);
    }
}
