//! The open-file limit: every connection costs latchd a descriptor, so at start the soft
//! `RLIMIT_NOFILE` is raised to the hard limit (many systems start processes at 1,024,
//! which is less than the connections latchd is configured to serve).
//!
//! At the limit the daemon keeps running: `accept` fails with `EMFILE`, the accept loop
//! logs it (rate-limited) and pauses briefly, and the connections already open are
//! served as before.

/// Descriptors kept for everything that is not a connection: the store, the audit log,
/// the lock, the listener, the runtime, the blocking pool.
pub(crate) const RESERVED: u64 = 64;

/// What [`raise`] found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FdLimit {
    /// The soft limit before (`None`: unlimited).
    pub(crate) before: Option<u64>,
    /// The soft limit now in force (`None`: unlimited).
    pub(crate) now: Option<u64>,
    /// The hard limit (`None`: unlimited).
    pub(crate) hard: Option<u64>,
}

impl FdLimit {
    /// Whether `connections` connections (plus [`RESERVED`]) fit under the soft limit.
    pub(crate) fn fits(&self, connections: usize) -> bool {
        let needed = u64::try_from(connections)
            .unwrap_or(u64::MAX)
            .saturating_add(RESERVED);
        self.now.is_none_or(|now| now >= needed)
    }
}

/// Raises the soft open-file limit to the hard limit. A failure leaves the limit as it
/// was (reported in the answer, not an error: the daemon can still serve).
#[cfg(unix)]
pub(crate) fn raise() -> FdLimit {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let lower = match (limit.current, limit.maximum) {
        (Some(current), Some(hard)) => current < hard,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if lower {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(err) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(%err, "cannot raise the open-file limit");
        }
    }
    FdLimit {
        before: limit.current,
        now: getrlimit(Resource::Nofile).current,
        hard: limit.maximum,
    }
}

/// Elsewhere there is no such limit to raise.
#[cfg(not(unix))]
pub(crate) fn raise() -> FdLimit {
    FdLimit {
        before: None,
        now: None,
        hard: None,
    }
}

/// [`raise`], then logs the outcome: at debug level, or a warning when the limit is lower
/// than the `connections` the configuration allows.
pub(crate) fn raise_and_report(connections: usize) -> FdLimit {
    let limit = raise();
    tracing::debug!(
        before = ?limit.before,
        now = ?limit.now,
        hard = ?limit.hard,
        "open-file limit (RLIMIT_NOFILE)"
    );
    if !limit.fits(connections)
        && let Some(now) = limit.now
    {
        tracing::warn!(
            limit = now,
            connections,
            "the open-file limit ({now}) is lower than the configured \
             socket.max_connections + socket.max_unauthenticated ({connections}) plus {RESERVED}: \
             past it new connections are refused; raise the hard limit (`ulimit -Hn`, or \
             LimitNOFILE= in the systemd unit) or lower socket.max_connections"
        );
    }
    limit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_fits_the_connections_plus_the_reserve() {
        let limit = |now| FdLimit {
            before: now,
            now,
            hard: now,
        };
        assert!(limit(Some(1_064)).fits(1_000));
        assert!(!limit(Some(1_063)).fits(1_000));
        assert!(limit(None).fits(usize::MAX));
        assert!(!limit(Some(u64::MAX - 1)).fits(usize::MAX));
    }

    #[cfg(unix)]
    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_limit() {
        let limit = raise();
        assert_eq!(limit.now, limit.hard, "{limit:?}");
        // Raising again changes nothing.
        assert_eq!(raise().now, limit.now);
    }
}
