//! [`Failure`]: why a command did not succeed, and the exit code it ends with.

use std::fmt;

use latch_client::protocol::ErrorCode;
use latch_client::{ClientError, exit};

/// Why a command failed. Each kind has its exit code (documented in `latch --help`).
#[derive(Debug)]
pub(crate) enum Failure {
    /// The client library failed, or the daemon answered with an error.
    Client(ClientError),
    /// Bad arguments or input (exit 2).
    Usage(String),
    /// A negative answer (exit 1).
    Denied(String),
    /// Something named does not exist (exit 5).
    NotFound(String),
    /// Any other failure (exit 6).
    Other(String),
    /// Already reported on stdout; only the exit code is left.
    Silent(u8),
}

impl Failure {
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Client(e) => e.exit_code(),
            Self::Usage(_) => exit::USAGE,
            Self::Denied(_) => exit::DENIED,
            Self::NotFound(_) => exit::NOT_FOUND,
            Self::Other(_) => exit::OTHER,
            Self::Silent(code) => *code,
        }
    }

    /// The stable code of the failure in `--json` output: the daemon's error code when
    /// it answered with one, else the kind of failure.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::Client(e) => match e.code() {
                Some(code) => code.as_str(),
                None => match e.exit_code() {
                    exit::UNREACHABLE => "not_running",
                    exit::AUTH => "socket_auth_failed",
                    exit::USAGE => "usage",
                    _ => "error",
                },
            },
            Self::Usage(_) => "usage",
            Self::Denied(_) => "denied",
            Self::NotFound(_) => "not_found",
            Self::Other(_) | Self::Silent(_) => "error",
        }
    }

    /// The failure as `--json` reports it, the one error shape of every command:
    /// `{"error": {"code": …, "message": …}}`; `None` when it was already reported.
    pub(crate) fn json(&self) -> Option<serde_json::Value> {
        let message = self.message()?;
        Some(error_json(self.code(), &message))
    }

    /// The message for stderr, if any.
    pub(crate) fn message(&self) -> Option<String> {
        match self {
            Self::Client(e) => Some(client_message(e)),
            Self::Usage(m) | Self::Denied(m) | Self::NotFound(m) | Self::Other(m) => {
                Some(m.clone())
            }
            Self::Silent(_) => None,
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Self::Client(e)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message().unwrap_or_default())
    }
}

/// A client error as the operator should read it: the library's message, with the
/// usual daemon errors explained in the CLI's terms.
fn client_message(e: &ClientError) -> String {
    match e {
        ClientError::NotRunning { socket, .. } => format!(
            "latchd is not running: nothing listens on {}\n  \
             start it with `latchd` (or `cargo run --release --bin latchd` in a source checkout)\n  \
             if it runs with another home, pass --home or set LATCH_HOME; for a forwarded socket set LATCH_SOCKET",
            socket.display()
        ),
        ClientError::TokenMissing { path, .. } => format!(
            "no session token at {}\n  \
             is latchd running with this home? (pass --home or set LATCH_HOME)\n  \
             for a forwarded socket, copy the daemon's session-token file and set LATCH_TOKEN_FILE (or --token-file)",
            path.display()
        ),
        ClientError::ServerImpostor { token_file, .. } => format!(
            "{e}\n  the session-token file {} is probably stale: it must be the one written by the latchd now running \
             (set LATCH_TOKEN_FILE or --token-file)",
            token_file.display()
        ),
        ClientError::Api {
            code: ErrorCode::WeakPassword,
            message,
        } => format!("the daemon refused the password: {message}"),
        ClientError::Api {
            code: ErrorCode::AlreadyOnboarded,
            ..
        } => "latch is already onboarded: an owner exists (add more users with `latch user add`)"
            .to_owned(),
        _ => e.to_string(),
    }
}

/// The `error` member of every `--json` error: `{"code": …, "message": …}`.
pub(crate) fn error_object(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "code": code, "message": message })
}

/// A whole `--json` error document: `{"error": {"code": …, "message": …}}`.
pub(crate) fn error_json(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "error": error_object(code, message) })
}

pub(crate) type Outcome = Result<(), Failure>;
