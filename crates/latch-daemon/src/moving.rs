//! `latchd import DIR` and `latchd export DIR`: moving a home into the shared database
//! that `[store]` names, and back out as Home Assistant's files.
//!
//! - **Import** opens `DIR` as a store (a latch home, or a Home Assistant configuration
//!   directory: its `.storage/auth*` files, with any journal of latch's replayed) and
//!   writes the whole state as the first checkpoint of an empty database. A database
//!   that already holds latch data is refused, as is a `DIR` without auth data.
//! - **Export** reads the database's current state (the newest checkpoint and every
//!   row after it) and writes it into `DIR/.storage` as Home Assistant's files, which
//!   Home Assistant loads. A `DIR` whose `.storage` already holds users is refused.

use std::path::{Path, PathBuf};

use latch_store::{Store, StoreOptions};

use crate::config::{StoreBackend, StoreConfig};
use crate::daemon::pg_config;
use crate::error::DaemonError;

/// What was moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moved {
    /// Users (system users included).
    pub users: usize,
    /// Refresh tokens.
    pub refresh_tokens: usize,
    /// Password entries of the `homeassistant` provider.
    pub passwords: usize,
    /// TOTP secrets.
    pub totp_secrets: usize,
    /// The log row the state is at (export; 0 for an import).
    pub batch: u64,
}

fn moving(what: impl Into<String>) -> DaemonError {
    DaemonError::Moving(what.into())
}

fn require_postgres(config: &StoreConfig, command: &str) -> Result<(), DaemonError> {
    if config.backend == StoreBackend::Postgres {
        Ok(())
    } else {
        Err(moving(format!(
            "latchd {command} moves a home to or from the shared database: the configuration \
             needs [store] backend = \"postgres\" and its url"
        )))
    }
}

fn counts(store: &Store) -> Moved {
    store.read(|d| Moved {
        users: d.user_count(),
        refresh_tokens: d.refresh_token_count(),
        passwords: d.ha_users().len(),
        totp_secrets: d.totp_users().count(),
        batch: 0,
    })
}

/// Puts the home in `dir` into the empty database `config` names.
///
/// # Errors
/// [`DaemonError::Moving`]: not a postgres configuration, no auth data in `dir`, a
/// database that is not empty or cannot be reached; [`DaemonError::Store`] if `dir`
/// cannot be read (a file that does not parse, latchd running on it).
pub async fn import_home(config: &StoreConfig, dir: &Path) -> Result<Moved, DaemonError> {
    require_postgres(config, "import")?;
    let pg = pg_config(config)?;
    if !dir.join(".storage").is_dir() {
        return Err(moving(format!(
            "{} has no .storage directory: nothing to import",
            dir.display()
        )));
    }
    let source: PathBuf = dir.to_path_buf();
    let (data, moved) = tokio::task::spawn_blocking(move || {
        let store = Store::open(&source, StoreOptions::default())?;
        let moved = counts(&store);
        let data = store.snapshot();
        store.close_blocking()?;
        Ok::<_, DaemonError>((data, moved))
    })
    .await
    .map_err(|e| DaemonError::Task(e.to_string()))??;
    if moved.users == 0 && moved.passwords == 0 {
        return Err(moving(format!(
            "{} holds no users: nothing to import",
            dir.display()
        )));
    }
    latch_store_postgres::import(&pg, &data)
        .await
        .map_err(|e| moving(e.to_string()))?;
    Ok(moved)
}

/// Writes the database `config` names into `dir/.storage` as Home Assistant's files.
///
/// # Errors
/// [`DaemonError::Moving`]: not a postgres configuration, a database without latch
/// data or that cannot be reached, a `dir` that holds users already.
pub async fn export_home(config: &StoreConfig, dir: &Path) -> Result<Moved, DaemonError> {
    require_postgres(config, "export")?;
    let pg = pg_config(config)?;
    std::fs::create_dir_all(dir).map_err(|e| moving(format!("{}: {e}", dir.display())))?;
    let batch = latch_store_postgres::export(&pg, dir)
        .await
        .map_err(|e| moving(e.to_string()))?;
    let target = dir.to_path_buf();
    let mut moved = tokio::task::spawn_blocking(move || {
        let store = Store::open(&target, StoreOptions::default())?;
        let moved = counts(&store);
        store.close_blocking()?;
        Ok::<_, DaemonError>(moved)
    })
    .await
    .map_err(|e| DaemonError::Task(e.to_string()))??;
    moved.batch = batch;
    Ok(moved)
}
