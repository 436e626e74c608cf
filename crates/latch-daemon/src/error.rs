//! The daemon's error type.

use std::path::PathBuf;

use latch_auth::AuthError;
use latch_ipc::home::HomeError;
use latch_ipc::server::ServerError;
use latch_ipc::token::TokenError;
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
    /// The shared store (`backend = "postgres"`) cannot be opened.
    #[error("the shared store: {0}")]
    SharedStore(String),
    /// The database password file is missing, unreadable or readable by others.
    #[error("the database password file: {0}")]
    PasswordFile(String),
    /// `latchd import` or `latchd export` cannot move the home (a database that is not
    /// empty, a directory without data, a configuration without a shared database, …).
    #[error("{0}")]
    Moving(String),
}

/// Exit status of a permanent start-up error: one a restart cannot fix (a bad
/// configuration, another latchd on the home, an unsafe home, a corrupt or unreadable
/// store, a planted symlink). systemd units stop restarting on it
/// (`RestartPreventExitStatus=2`).
pub const EXIT_PERMANENT: u8 = 2;
/// Exit status of a transient error: one a restart may fix (an I/O error, the OS out of
/// a resource, a failed shutdown).
pub const EXIT_TRANSIENT: u8 = 1;

impl DaemonError {
    /// The process exit status for this error: [`EXIT_PERMANENT`] (2) when a restart
    /// cannot fix it, [`EXIT_TRANSIENT`] (1) when one may.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        if self.is_permanent() {
            EXIT_PERMANENT
        } else {
            EXIT_TRANSIENT
        }
    }

    /// True when a restart cannot fix this error: only the operator can (fix the
    /// configuration, the home's owner or mode, the store file; stop the other latchd or
    /// Home Assistant; remove a planted file).
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Config(_)
            | Self::HomeAssistantRunning { .. }
            | Self::PasswordFile(_)
            | Self::Moving(_) => true,
            Self::Home(e) => home_is_permanent(e),
            Self::Server(e) => server_is_permanent(e),
            Self::Store(e) | Self::Auth(AuthError::Store(e)) => store_is_permanent(e),
            Self::Audit { source, .. } => io_is_permanent(source),
            Self::Auth(e) => matches!(e, AuthError::Config(_)),
            // A database that cannot be reached now may be reachable at the next start.
            Self::Close(_) | Self::Task(_) | Self::SharedStore(_) => false,
        }
    }
}

/// An OS error that a retry will meet again: a permission, a file of the wrong kind, a
/// symlink refused, a read-only file system.
fn io_is_permanent(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    #[cfg(unix)]
    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        // `O_NOFOLLOW` met a symlink.
        return true;
    }
    matches!(
        e.kind(),
        K::PermissionDenied
            | K::InvalidInput
            | K::InvalidData
            | K::NotADirectory
            | K::IsADirectory
            | K::ReadOnlyFilesystem
            | K::AlreadyExists
    )
}

fn home_is_permanent(e: &HomeError) -> bool {
    match e {
        HomeError::Create { source, .. } | HomeError::Inspect { source, .. } => {
            io_is_permanent(source)
        }
        // No home, a symlink, not a directory, another owner, group/other-writable.
        _ => true,
    }
}

fn server_is_permanent(e: &ServerError) -> bool {
    match e {
        ServerError::Home(e) => home_is_permanent(e),
        ServerError::Token(e) => token_is_permanent(e),
        ServerError::AlreadyRunning { .. }
        | ServerError::AlreadyListening { .. }
        | ServerError::NotASocket { .. } => true,
        ServerError::Lock { source, .. }
        | ServerError::Probe { source, .. }
        | ServerError::RemoveStale { source, .. }
        | ServerError::Bind { source, .. } => io_is_permanent(source),
        _ => false,
    }
}

fn token_is_permanent(e: &TokenError) -> bool {
    match e {
        // Something is planting files in the home, or the path is unusable.
        TokenError::Unsafe { .. }
        | TokenError::TempNamesTaken { .. }
        | TokenError::BadPath { .. } => true,
        TokenError::Create { source, .. } | TokenError::Write { source, .. } => {
            io_is_permanent(source)
        }
        _ => false,
    }
}

fn store_is_permanent(e: &StoreError) -> bool {
    match e {
        StoreError::Parse { .. }
        | StoreError::Invalid { .. }
        | StoreError::UnsupportedVersion { .. }
        | StoreError::CorruptJournal { .. }
        | StoreError::Locked { .. } => true,
        StoreError::Io { source, .. } => io_is_permanent(source),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;

    fn io_error(kind: io::ErrorKind) -> io::Error {
        io::Error::new(kind, "test")
    }

    fn store_io(kind: io::ErrorKind) -> DaemonError {
        DaemonError::Store(StoreError::Io {
            action: "read",
            path: PathBuf::from("/h/.storage/auth"),
            source: Arc::new(io_error(kind)),
        })
    }

    #[test]
    fn permanent_errors_exit_2_and_transient_ones_exit_1() {
        let path = || PathBuf::from("/h/x");
        let permanent = [
            DaemonError::Server(ServerError::AlreadyRunning { path: path() }),
            DaemonError::Server(ServerError::NotASocket { path: path() }),
            DaemonError::Home(HomeError::TooPermissive {
                path: path(),
                mode: 0o777,
            }),
            DaemonError::Home(HomeError::WrongOwner {
                path: path(),
                owner: 1,
                expected: 0,
            }),
            DaemonError::HomeAssistantRunning {
                pid: 1,
                config_dir: path(),
            },
            DaemonError::Store(StoreError::Locked { path: path() }),
            DaemonError::Store(StoreError::Invalid {
                path: path(),
                reason: "x".into(),
            }),
            // A symlink refused, no permission.
            store_io(io::ErrorKind::InvalidInput),
            store_io(io::ErrorKind::PermissionDenied),
            DaemonError::Audit {
                path: path(),
                source: io_error(io::ErrorKind::InvalidInput),
            },
            DaemonError::Server(ServerError::Token(TokenError::Unsafe {
                path: path(),
                reason: "owned by another user",
            })),
            DaemonError::Auth(AuthError::Config("x".into())),
        ];
        for e in &permanent {
            assert_eq!(e.exit_code(), 2, "{e}");
        }
        let transient = [
            store_io(io::ErrorKind::Other),
            store_io(io::ErrorKind::StorageFull),
            DaemonError::Server(ServerError::Bind {
                path: path(),
                source: io_error(io::ErrorKind::OutOfMemory),
            }),
            DaemonError::Audit {
                path: path(),
                source: io_error(io::ErrorKind::Interrupted),
            },
            DaemonError::Close(StoreError::Closed),
            DaemonError::Task("panicked".into()),
        ];
        for e in &transient {
            assert_eq!(e.exit_code(), 1, "{e}");
        }
    }
}
