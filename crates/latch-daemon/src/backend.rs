//! Which store backend serves this daemon, what `latch status` shows of it, and the
//! staleness bound of a shared database: past `[store] max_staleness_secs` without an
//! answer from the database, the requests that trust the in-memory state to refuse
//! (validation, refresh, permission checks) answer `unavailable` instead.

use std::time::Duration;

use latch_protocol::{ApiError, ErrorCode, StoreBackendKind, StoreStatus};
use latch_store::Store;
use latch_store_postgres::StatusHandle;

/// The backend of the daemon's store.
#[derive(Clone, Debug)]
pub(crate) enum Backend {
    /// The home's files: always current.
    Files,
    /// A shared PostgreSQL database.
    Postgres {
        /// The driver's status.
        status: StatusHandle,
        /// `[store] max_staleness_secs`.
        max_staleness: Duration,
    },
}

impl Backend {
    /// `Ok` if the in-memory state may be trusted to refuse what must be refused: the
    /// files backend always, a shared database if it answered within the bound.
    ///
    /// # Errors
    /// [`ErrorCode::Unavailable`] with how long the database has been silent.
    #[inline]
    pub(crate) fn fresh(&self) -> Result<(), ApiError> {
        match self {
            Self::Files => Ok(()),
            Self::Postgres {
                status,
                max_staleness,
            } => {
                let silent = status.silent_for();
                if silent <= *max_staleness {
                    Ok(())
                } else {
                    Err(ApiError::new(
                        ErrorCode::Unavailable,
                        format!(
                            "the shared database has not answered for {} s (more than \
                             max_staleness_secs = {}): this host may miss a revocation \
                             made on another, so it does not validate until it catches up",
                            silent.as_secs(),
                            max_staleness.as_secs()
                        ),
                    ))
                }
            }
        }
    }

    /// What `latch status` shows of the store.
    pub(crate) fn status(&self, store: &Store) -> StoreStatus {
        match self {
            Self::Files => {
                let last = store.last_applied();
                StoreStatus {
                    backend: StoreBackendKind::Files,
                    last_applied: last,
                    log_head: last,
                    connected: true,
                    since_contact_ms: None,
                    max_staleness_secs: None,
                    last_error: None,
                }
            }
            Self::Postgres {
                status,
                max_staleness,
            } => {
                let st = status.get();
                let last = store.last_applied();
                StoreStatus {
                    backend: StoreBackendKind::Postgres,
                    last_applied: last,
                    log_head: st.log_head.max(last),
                    connected: st.connected,
                    since_contact_ms: Some(
                        u64::try_from(status.silent_for().as_millis()).unwrap_or(u64::MAX),
                    ),
                    max_staleness_secs: Some(max_staleness.as_secs()),
                    last_error: st.last_error,
                }
            }
        }
    }
}
