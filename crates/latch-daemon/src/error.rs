//! The daemon's error type.

use std::path::PathBuf;

use latch_auth::AuthError;
use latch_ipc::home::HomeError;
use latch_ipc::server::ServerError;
use latch_store::StoreError;

use crate::config::ConfigError;

/// Why the daemon could not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The configuration is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The latch home cannot be found, created, or trusted.
    #[error(transparent)]
    Home(#[from] HomeError),
    /// Home Assistant runs on the same directory.
    #[error(
        "home assistant (pid {pid}) is running on {}: stop it before starting latchd on the same directory, \
         or both will overwrite each other's auth data",
        config_dir.display()
    )]
    HomeAssistantRunning {
        /// Its process id.
        pid: u32,
        /// Its configuration directory.
        config_dir: PathBuf,
    },
    /// The socket cannot be bound (another latchd runs, the lock is held, …).
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The store cannot be opened (a file that does not parse, a locked directory, …).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit log cannot be opened (a symlink at its path, not a regular file, no
    /// permission). latchd refuses to start rather than run without its audit trail;
    /// remove the offending file or set `[audit] enabled = false`.
    #[error("cannot open the audit log {}: {source}", path.display())]
    Audit {
        /// The audit log's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The AuthManager cannot be built from the configuration.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// Closing the store at shutdown failed; the journal is kept and replayed at the
    /// next start, so nothing acknowledged is lost.
    #[error("closing the store failed (the journal is kept and replayed at the next start): {0}")]
    Close(#[source] StoreError),
    /// The serving task failed.
    #[error("the daemon's serving task failed: {0}")]
    Task(String),
}

impl DaemonError {
    /// The process exit status for this error: 2 for a configuration problem, 1 for
    /// anything else.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) | Self::Auth(AuthError::Config(_)) => 2,
            _ => 1,
        }
    }
}
