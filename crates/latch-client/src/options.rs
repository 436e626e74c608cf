//! [`ClientOptions`]: where the daemon is and how patient to be with it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use latch_ipc::client::ClientConfig;
use latch_ipc::home::Home;
use latch_protocol::PROTOCOL_VERSION;

use crate::ClientError;

/// Default deadline for connecting and the whole handshake.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default deadline for one request's answer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default length of the event queue between the connection and a subscriber.
pub const DEFAULT_EVENT_BUFFER: usize = 1024;

/// What the client does when the connection drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconnectPolicy {
    /// Never reconnect: after a drop every call fails with
    /// [`ClientError::Disconnected`] and the event stream ends.
    Never,
    /// Reconnect on the next call (re-reading the token file), and, while a
    /// subscription is active, in the background with exponential backoff from
    /// `initial` to `max`, re-sending the subscription.
    Backoff {
        /// The first pause.
        initial: Duration,
        /// The longest pause.
        max: Duration,
    },
}

impl Default for ReconnectPolicy {
    /// Backoff from 50 ms to 5 s.
    fn default() -> Self {
        Self::Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(5),
        }
    }
}

/// How to find and talk to the daemon. `Default` means: the environment and the
/// default home, as [`Client::connect`](crate::Client::connect).
///
/// Paths are resolved in this order:
/// - the socket: `socket`; else `<home>/latch.sock` if `home` is set; else
///   `$LATCH_SOCKET`; else `<$LATCH_HOME or ~/.latch>/latch.sock`;
/// - the token file: `token_file`; else `<home>/session-token` if `home` is set; else
///   `$LATCH_TOKEN_FILE`; else `<$LATCH_HOME or ~/.latch>/session-token`.
///
/// An explicit `home` thus wins over the environment's `LATCH_SOCKET` and
/// `LATCH_TOKEN_FILE`.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The latch home (`--home`).
    pub home: Option<PathBuf>,
    /// The socket (`--socket`).
    pub socket: Option<PathBuf>,
    /// The session-token file (`--token-file`).
    pub token_file: Option<PathBuf>,
    /// Deadline for connecting and the whole handshake.
    pub connect_timeout: Duration,
    /// Deadline for each answer; `None` waits forever.
    pub request_timeout: Option<Duration>,
    /// What to do when the connection drops.
    pub reconnect: ReconnectPolicy,
    /// How many events may wait for a slow subscriber before the oldest are dropped and
    /// a [`ClientEvent::Lagged`](crate::ClientEvent::Lagged) is delivered instead.
    pub event_buffer: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            home: None,
            socket: None,
            token_file: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            reconnect: ReconnectPolicy::default(),
            event_buffer: DEFAULT_EVENT_BUFFER,
        }
    }
}

impl ClientOptions {
    /// Options for the daemon running in `home`, ignoring the environment.
    pub fn for_home(home: impl Into<PathBuf>) -> Self {
        Self {
            home: Some(home.into()),
            ..Self::default()
        }
    }

    /// The socket and token paths these options resolve to, with the process
    /// environment.
    ///
    /// # Errors
    ///
    /// [`ClientError::NoHome`] when a home is needed and none is known.
    pub fn resolve_paths(&self) -> Result<(PathBuf, PathBuf), ClientError> {
        self.resolve_paths_with(|key| std::env::var_os(key))
    }

    /// [`ClientOptions::resolve_paths`] with an injected environment lookup.
    ///
    /// # Errors
    ///
    /// [`ClientError::NoHome`] when a home is needed and none is known.
    pub fn resolve_paths_with(
        &self,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<(PathBuf, PathBuf), ClientError> {
        if let (Some(socket), Some(token)) = (&self.socket, &self.token_file) {
            return Ok((socket.clone(), token.clone()));
        }
        let (socket, token) = match &self.home {
            Some(home) => {
                let home = Home::new(home);
                (home.socket_path(), home.token_path())
            }
            None => {
                let config = ClientConfig::resolve_with(None, env, PROTOCOL_VERSION)
                    .map_err(|e| ClientError::from_home(&e))?;
                (config.socket_path, config.token_path)
            }
        };
        Ok((
            self.socket.clone().unwrap_or(socket),
            self.token_file.clone().unwrap_or(token),
        ))
    }

    pub(crate) fn ipc_config(&self, socket: &Path, token: &Path) -> ClientConfig {
        let mut config = ClientConfig::new(socket, token, PROTOCOL_VERSION);
        config.version_rule = latch_protocol::compatible;
        config.handshake_timeout = self.connect_timeout;
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn explicit_home_wins_over_the_environment() {
        let options = ClientOptions::for_home("/flag");
        let (socket, token) = options
            .resolve_paths_with(env_of(&[
                ("LATCH_SOCKET", "/env/s"),
                ("LATCH_TOKEN_FILE", "/env/t"),
            ]))
            .unwrap();
        assert_eq!(socket, Path::new("/flag/latch.sock"));
        assert_eq!(token, Path::new("/flag/session-token"));
    }

    #[cfg(unix)]
    #[test]
    fn environment_and_explicit_files() {
        let options = ClientOptions::default();
        let (socket, token) = options
            .resolve_paths_with(env_of(&[("LATCH_SOCKET", "/env/s"), ("LATCH_HOME", "/h")]))
            .unwrap();
        assert_eq!(socket, Path::new("/env/s"));
        assert_eq!(token, Path::new("/h/session-token"));

        let options = ClientOptions {
            token_file: Some(PathBuf::from("/mine")),
            ..ClientOptions::default()
        };
        let (socket, token) = options
            .resolve_paths_with(env_of(&[("HOME", "/home/u")]))
            .unwrap();
        assert_eq!(socket, Path::new("/home/u/.latch/latch.sock"));
        assert_eq!(token, Path::new("/mine"));
    }

    #[test]
    fn no_home_anywhere_is_a_typed_error() {
        let err = ClientOptions::default()
            .resolve_paths_with(env_of(&[]))
            .unwrap_err();
        assert!(matches!(err, ClientError::NoHome));
    }
}
