//! The seam for a shared backend: a store whose batches are made durable in an ordered
//! log that several hosts append to (latch-store-postgres), instead of the local
//! journal.
//!
//! The store keeps the state, the indexes and the batches; the backend's driver owns a
//! [`LogSide`] and
//! - takes the local proposals ([`LogSide::recv`]), and, holding the log's append lock
//!   and caught up with it, has them planned and applied on the current state
//!   ([`LogSide::prepare`]) — each proposal's plan runs under the write lock on the
//!   state it is appended on, so a check in it (a username still free, a token still
//!   there) is re-made after every batch another host appended;
//! - appends the prepared group as batch `last_applied + 1`, then
//!   [`LogSide::committed`] (acknowledged) or [`LogSide::failed`] (the state may hold
//!   what the log does not: the driver reloads it with [`LogSide::reset`]);
//! - applies the other hosts' batches in log order with [`LogSide::apply_foreign`],
//!   which also tells subscribers what they did
//!   ([`Store::subscribe_applied`](crate::Store::subscribe_applied)).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use latch_models::{RefreshTokenId, TokenType, UserId};
use tokio::sync::{mpsc, oneshot};

use crate::change::Change;
use crate::data::AuthData;
use crate::error::StoreError;
use crate::file::StoreFile;
use crate::store::Shared;

/// A plan: computes a batch from the state it will be applied on, or refuses (its
/// reason goes to the caller through the plan's own channel).
pub(crate) type Plan = Box<dyn FnOnce(&AuthData) -> Option<Vec<Change>> + Send>;

/// One local commit waiting to be appended.
pub struct Proposal {
    pub(crate) plan: Plan,
    pub(crate) waiter: Option<oneshot::Sender<Result<(), StoreError>>>,
}

impl fmt::Debug for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proposal")
            .field("acknowledged", &self.waiter.is_some())
            .finish_non_exhaustive()
    }
}

/// What the store asks of the driver.
#[derive(Debug)]
#[non_exhaustive]
pub enum LogRequest {
    /// Append this proposal.
    Propose(Proposal),
    /// Token usage was recorded: take it ([`LogSide::take_usage`]) within the usage
    /// interval.
    UsageDue,
    /// Close: append what is queued and the pending usage, then answer and stop.
    Close(oneshot::Sender<Result<(), StoreError>>),
    /// The last handle of the store is gone: append what is queued and stop.
    Shutdown,
}

/// What one change did, as the events of a change made on another host need it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Effect {
    /// A user was created.
    UserAdded(UserId),
    /// A user was replaced.
    UserUpdated(UserId),
    /// A user was removed (its tokens are reported as revoked first).
    UserRemoved(UserId),
    /// A refresh token was created.
    RefreshTokenCreated {
        /// Its owner.
        user_id: UserId,
        /// The token.
        id: RefreshTokenId,
        /// Its type.
        token_type: TokenType,
        /// Its client id.
        client_id: Option<String>,
        /// Its name (long-lived tokens).
        client_name: Option<String>,
    },
    /// A refresh token was removed.
    RefreshTokenRevoked {
        /// Its owner.
        user_id: UserId,
        /// The token.
        id: RefreshTokenId,
    },
    /// Another host locked a username or source out ([`Change::Lockout`]).
    LockoutStarted {
        /// The key, `username:NAME` or `source:ADDR`.
        key: String,
        /// When it ends.
        until: chrono::DateTime<chrono::Utc>,
    },
    /// Another host cleared a lockout ([`Change::ClearLockout`]).
    LockoutCleared {
        /// The key.
        key: String,
    },
}

/// Another host's batch, applied here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedBatch {
    /// Its place in the log.
    pub seq: u64,
    /// What its changes did, in order.
    pub effects: Vec<Effect>,
}

/// The effects of `change` on `data`, computed before it is applied.
fn effects_of(data: &AuthData, change: &Change, out: &mut Vec<Effect>) {
    match change {
        Change::PutUser(u) => out.push(if data.user(u.id.as_str()).is_some() {
            Effect::UserUpdated(u.id.clone())
        } else {
            Effect::UserAdded(u.id.clone())
        }),
        Change::RemoveUser(id) if data.user(id.as_str()).is_some() => {
            for t in data.refresh_tokens_of(id.as_str()) {
                out.push(Effect::RefreshTokenRevoked {
                    user_id: id.clone(),
                    id: t.id.clone(),
                });
            }
            out.push(Effect::UserRemoved(id.clone()));
        }
        Change::PutRefreshToken(t) if data.refresh_token(t.id.as_str()).is_none() => {
            out.push(Effect::RefreshTokenCreated {
                user_id: t.user_id.clone(),
                id: t.id.clone(),
                token_type: t.token_type,
                client_id: t.client_id.clone(),
                client_name: t.client_name.clone(),
            });
        }
        Change::RemoveRefreshToken(id) => {
            if let Some(t) = data.refresh_token(id.as_str()) {
                out.push(Effect::RefreshTokenRevoked {
                    user_id: t.user_id.clone(),
                    id: id.clone(),
                });
            }
        }
        Change::Lockout { key, until } => out.push(Effect::LockoutStarted {
            key: key.clone(),
            until: *until,
        }),
        Change::ClearLockout { key } => out.push(Effect::LockoutCleared { key: key.clone() }),
        _ => {}
    }
}

/// A group of proposals planned and applied on the state after `seq - 1`, to be
/// appended as batch `seq`.
#[must_use = "a prepared group must be committed or failed"]
pub struct Prepared {
    /// The place it must take in the log.
    pub seq: u64,
    /// The batches, encoded as the log row's payload (a JSON array of batches).
    pub payload: Vec<u8>,
    waiters: Vec<oneshot::Sender<Result<(), StoreError>>>,
    batches: usize,
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("seq", &self.seq)
            .field("batches", &self.batches)
            .field("payload_bytes", &self.payload.len())
            .finish_non_exhaustive()
    }
}

impl Prepared {
    /// True if no proposal of the group produced a change: nothing to append.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.batches == 0
    }
}

/// The backend's side of a store opened with [`Store::with_log`](crate::Store::with_log).
pub struct LogSide {
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<LogRequest>,
}

impl fmt::Debug for LogSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogSide")
            .field("last_applied", &self.last_applied())
            .finish_non_exhaustive()
    }
}

impl LogSide {
    pub(crate) fn new(shared: Arc<Shared>, rx: mpsc::UnboundedReceiver<LogRequest>) -> Self {
        Self { shared, rx }
    }

    /// The last log batch applied to the state.
    #[must_use]
    pub fn last_applied(&self) -> u64 {
        self.shared.state.read().next_seq - 1
    }

    /// The next request from the store; `None` once every handle is gone.
    pub async fn recv(&mut self) -> Option<LogRequest> {
        self.rx.recv().await
    }

    /// A request already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<LogRequest> {
        self.rx.try_recv().ok()
    }

    /// Plans and applies `proposals` in order on the current state, under the write
    /// lock: each plan sees the state with the ones before it applied; a refused plan
    /// or a batch that breaks integrity is answered at once and left out. Readers see
    /// the group from here on; the driver must append it next, then call
    /// [`LogSide::committed`] or [`LogSide::failed`].
    pub fn prepare(&self, proposals: Vec<Proposal>) -> Prepared {
        let mut st = self.shared.state.write();
        let seq = st.next_seq;
        let mut payload = b"[".to_vec();
        let mut waiters = Vec::new();
        let mut batches = 0;
        for p in proposals {
            let Some(changes) = (p.plan)(&st.data) else {
                if let Some(w) = p.waiter {
                    let _ = w.send(Ok(()));
                }
                continue;
            };
            if changes.is_empty() {
                if let Some(w) = p.waiter {
                    let _ = w.send(Ok(()));
                }
                continue;
            }
            if let Err((index, reason)) = st.data.check(&changes) {
                if let Some(w) = p.waiter {
                    let _ = w.send(Err(StoreError::Rejected { index, reason }));
                }
                continue;
            }
            let encoded = match serde_json::to_vec(&changes) {
                Ok(e) => e,
                Err(source) => {
                    if let Some(w) = p.waiter {
                        let _ = w.send(Err(StoreError::Encode {
                            what: "a batch of changes",
                            source,
                        }));
                    }
                    continue;
                }
            };
            if batches > 0 {
                payload.push(b',');
            }
            payload.extend_from_slice(&encoded);
            batches += 1;
            for change in changes {
                let file = st.data.apply(change);
                st.versions[file.index()] += 1;
            }
            if let Some(w) = p.waiter {
                waiters.push(w);
            }
        }
        payload.push(b']');
        Prepared {
            seq,
            payload,
            waiters,
            batches,
        }
    }

    /// The prepared group is in the log as batch `prepared.seq`: acknowledges it.
    pub fn committed(&self, prepared: Prepared) {
        if prepared.is_empty() {
            for w in prepared.waiters {
                let _ = w.send(Ok(()));
            }
            return;
        }
        {
            let mut st = self.shared.state.write();
            st.next_seq = prepared.seq + 1;
        }
        let stats = &self.shared.stats;
        stats
            .commits
            .fetch_add(prepared.waiters.len() as u64, Ordering::Relaxed);
        stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        for w in prepared.waiters {
            let _ = w.send(Ok(()));
        }
    }

    /// Appending the group failed: its waiters get `error`, and the store refuses
    /// writes until [`LogSide::reset`] replaces the state (which may hold the group
    /// although the log may not).
    pub fn failed(&self, prepared: Prepared, error: &StoreError) {
        if !prepared.is_empty() {
            self.shared.diverged.store(true, Ordering::SeqCst);
        }
        for w in prepared.waiters {
            let _ = w.send(Err(clone_error(error)));
        }
    }

    /// Whether the state may hold a group the log does not (see [`LogSide::failed`]).
    #[must_use]
    pub fn diverged(&self) -> bool {
        self.shared.diverged.load(Ordering::SeqCst)
    }

    /// Answers a proposal without appending it (the log cannot be reached).
    pub fn refuse(&self, proposal: Proposal, error: &StoreError) {
        if let Some(w) = proposal.waiter {
            let _ = w.send(Err(clone_error(error)));
        }
    }

    /// Applies batch `seq` that another host appended (`payload` as
    /// [`Prepared::payload`]): in order, exactly once, leniently (it was checked on the
    /// state it was appended on, which this state now equals).
    ///
    /// # Errors
    /// [`StoreError::OutOfOrder`] unless `seq` is the next batch;
    /// [`StoreError::Invalid`] for a payload that does not decode (nothing applied).
    pub fn apply_foreign(&self, seq: u64, payload: &[u8]) -> Result<AppliedBatch, StoreError> {
        let batches: Vec<Vec<Change>> = serde_json::from_slice(payload).map_err(|e| {
            StoreError::invalid(
                format!("change log batch {seq}"),
                format!("does not decode: {e}"),
            )
        })?;
        let applied = {
            let mut st = self.shared.state.write();
            if seq != st.next_seq {
                return Err(StoreError::OutOfOrder {
                    expected: st.next_seq,
                    found: seq,
                });
            }
            let mut effects = Vec::new();
            for change in batches.into_iter().flatten() {
                effects_of(&st.data, &change, &mut effects);
                let file = st.data.apply(change);
                st.versions[file.index()] += 1;
            }
            st.next_seq = seq + 1;
            AppliedBatch { seq, effects }
        };
        let _ = self.shared.applied.send(Arc::new(applied.clone()));
        Ok(applied)
    }

    /// Replaces the whole state by `data` at batch `seq` (after a failed append, the
    /// state reloaded from the log). Writes are accepted again.
    pub fn reset(&self, data: AuthData, seq: u64) {
        let mut st = self.shared.state.write();
        st.data = data;
        st.next_seq = seq + 1;
        for v in &mut st.versions {
            *v += 1;
        }
        st.usage_dirty.clear();
        self.shared.diverged.store(false, Ordering::SeqCst);
    }

    /// The usage recorded since the last call, as one proposal (not awaited).
    #[must_use]
    pub fn take_usage(&self) -> Option<Proposal> {
        let mut st = self.shared.state.write();
        st.usage_scheduled = false;
        let changes = crate::store::usage_changes(&mut st);
        if changes.is_empty() {
            return None;
        }
        self.shared
            .stats
            .usage_flushes
            .fetch_add(1, Ordering::Relaxed);
        Some(Proposal {
            plan: Box::new(move |d| {
                // A token removed meanwhile (here or on another host) keeps no usage.
                Some(
                    changes
                        .into_iter()
                        .filter(|c| match c {
                            Change::TokenUsage { id, .. } => d.refresh_token(id.as_str()).is_some(),
                            _ => true,
                        })
                        .collect(),
                )
            }),
            waiter: None,
        })
    }

    /// The state at the last applied batch, captured under a short read lock; encode
    /// it off the lock (and off an async worker) with [`StateCapture::encode`], for a
    /// checkpoint or an export.
    #[must_use]
    pub fn capture(&self) -> StateCapture {
        let st = self.shared.state.read();
        StateCapture {
            seq: st.next_seq - 1,
            files: StoreFile::ALL
                .into_iter()
                .map(|f| st.data.capture(f))
                .collect(),
        }
    }
}

/// The whole state at one batch, not yet encoded (see [`LogSide::capture`]).
pub struct StateCapture {
    seq: u64,
    files: Vec<crate::data::FileSnapshot>,
}

impl fmt::Debug for StateCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateCapture")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl StateCapture {
    /// The batch the state is at.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Home Assistant's four files, in [`StoreFile::ALL`] order.
    ///
    /// # Errors
    /// [`StoreError::Encode`].
    pub fn encode(self) -> Result<[Vec<u8>; 4], StoreError> {
        let mut out: [Vec<u8>; 4] = Default::default();
        for (slot, snapshot) in out.iter_mut().zip(&self.files) {
            *slot = crate::format::encode(snapshot)?;
        }
        Ok(out)
    }
}

fn clone_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable { reason } => StoreError::Unavailable {
            reason: reason.clone(),
        },
        other => StoreError::Unavailable {
            reason: other.to_string(),
        },
    }
}
