//! The store handle, the writer thread (group commit, usage coalescing, compaction).

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use latch_models::{Credentials, Group, RefreshToken, RefreshTokenId, Secret, User, UserId};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{broadcast, oneshot};
use zeroize::Zeroizing;

use crate::change::{Change, HaUser, TotpState};
use crate::data::{AuthData, finite, storable_time, token_digest};
use crate::error::{ChangeError, StoreError};
use crate::file::{JOURNAL_FILE, LOCK_FILE, StoreFile};
use crate::format;
use crate::journal;
use crate::load::{self, FileDigest, file_digest};
use crate::log::{AppliedBatch, LogRequest, LogSide, Plan, Proposal};
use crate::settle::{self, Captured, JobInput, JobOutcome};

/// A test hook called before each write step; an error it returns makes that step fail
/// as if the operating system had refused it.
pub type FaultHook = Arc<dyn Fn(WriteStep) -> io::Result<()> + Send + Sync>;

/// The write steps a [`FaultHook`] can fail, in the order they happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WriteStep {
    /// Appending a frame (one group commit) to the journal.
    JournalWrite,
    /// `sync_data` of the journal after that append.
    JournalSync,
    /// Creating and writing a snapshot's temp file.
    SnapshotTempWrite(StoreFile),
    /// `sync_all` of that temp file.
    SnapshotTempSync(StoreFile),
    /// Renaming the temp file over the snapshot.
    SnapshotRename(StoreFile),
    /// `sync_all` of the `.storage` directory after the renames.
    DirSync,
    /// Truncating the journal once every snapshot is durable.
    JournalTruncate,
    /// `sync_data` of the truncated journal.
    JournalTruncateSync,
}

/// How a [`Store`] behaves.
#[derive(Clone)]
pub struct StoreOptions {
    /// Compact (rewrite the snapshots, empty the journal) once the journal is this big.
    /// Default 8 MiB.
    pub compact_after_bytes: u64,
    /// Token usage recorded with [`Store::record_usage`] is journaled at most once per
    /// this interval. Default 1 s. A crash loses at most this much usage metadata.
    pub usage_flush_interval: Duration,
    /// Once no change has come for this long, the changed snapshot files are rewritten
    /// in the background (the journal stays the path to durability), so the files in
    /// `.storage` — what a backup copies — are never far behind. Home Assistant saves
    /// about a second after a change too. Default 1 s; `None` rewrites them only at
    /// compaction.
    pub snapshot_delay: Option<Duration>,
    /// Under a stream of changes that never settles, the files are rewritten at the
    /// latest this long after the first change they miss. Default 10 s.
    pub snapshot_max_delay: Duration,
    /// Fault injection for tests; `None` in production.
    pub fault_hook: Option<FaultHook>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            compact_after_bytes: 8 * 1024 * 1024,
            usage_flush_interval: Duration::from_secs(1),
            snapshot_delay: Some(Duration::from_secs(1)),
            snapshot_max_delay: Duration::from_secs(10),
            fault_hook: None,
        }
    }
}

impl fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreOptions")
            .field("compact_after_bytes", &self.compact_after_bytes)
            .field("usage_flush_interval", &self.usage_flush_interval)
            .field("snapshot_delay", &self.snapshot_delay)
            .field("snapshot_max_delay", &self.snapshot_max_delay)
            .field("fault_hook", &self.fault_hook.as_ref().map(|_| "<hook>"))
            .finish()
    }
}

/// Counters, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Commits made durable and acknowledged.
    pub commits: u64,
    /// `sync_data` calls on the journal for appends: one per group commit.
    pub fsyncs: u64,
    /// Usage records journaled.
    pub usage_flushes: u64,
    /// Current size of the journal in bytes.
    pub journal_bytes: u64,
    /// Completed compactions.
    pub compactions: u64,
    /// Snapshot files written, by compactions and by background rewrites.
    pub snapshot_writes: u64,
    /// Completed background rewrites of the snapshot files after changes settled
    /// (see [`StoreOptions::snapshot_delay`]).
    pub settled_snapshots: u64,
}

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) commits: AtomicU64,
    pub(crate) fsyncs: AtomicU64,
    pub(crate) usage_flushes: AtomicU64,
    journal_bytes: AtomicU64,
    compactions: AtomicU64,
    snapshot_writes: AtomicU64,
    settled_snapshots: AtomicU64,
}

pub(crate) struct State {
    pub(crate) data: AuthData,
    /// The next batch number (journal or shared log).
    pub(crate) next_seq: u64,
    /// Per file: bumped by every change, compared with what was last written.
    pub(crate) versions: [u64; 4],
    pub(crate) usage_dirty: HashSet<RefreshTokenId>,
    pub(crate) usage_scheduled: bool,
    closed: bool,
}

pub(crate) struct Shared {
    pub(crate) state: RwLock<State>,
    /// The files writer (a closed channel for a store over a shared log).
    tx: mpsc::Sender<Msg>,
    /// The shared log's driver, for a store opened with [`Store::with_log`].
    log: Option<tokio::sync::mpsc::UnboundedSender<LogRequest>>,
    /// A shared-log append failed after its group was applied here: writes wait for
    /// the driver's reload.
    pub(crate) diverged: AtomicBool,
    /// Batches of other hosts, applied (see [`Store::subscribe_applied`]).
    pub(crate) applied: broadcast::Sender<Arc<AppliedBatch>>,
    poisoned: OnceLock<String>,
    pub(crate) stats: Stats,
    dir: PathBuf,
}

impl Shared {
    fn poisoned_error(&self) -> Option<StoreError> {
        if self.diverged.load(Ordering::SeqCst) {
            return Some(StoreError::Unavailable {
                reason: "a write to the shared log failed; reloading the state from it".into(),
            });
        }
        self.poisoned.get().map(|cause| StoreError::Poisoned {
            cause: cause.clone(),
        })
    }
}

/// Why [`Store::commit_with`] made no change.
#[derive(Debug)]
pub enum CommitError<E> {
    /// The plan refused, on the state the batch would have been applied on.
    Refused(E),
    /// The store did (a rejected batch, a write failure, a closed store, ...).
    Store(StoreError),
}

pub(crate) enum Waiter {
    Async(oneshot::Sender<Result<(), StoreError>>),
    Blocking(mpsc::SyncSender<Result<(), StoreError>>),
}

impl Waiter {
    fn send(self, r: Result<(), StoreError>) {
        // A waiter that went away (a cancelled future) does not care.
        match self {
            Self::Async(tx) => {
                let _ = tx.send(r);
            }
            Self::Blocking(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

pub(crate) struct Record {
    seq: u64,
    changes: Zeroizing<Vec<u8>>,
    waiter: Option<Waiter>,
}

pub(crate) enum Msg {
    Record(Record),
    /// Usage was recorded; flush it within the interval.
    UsageDue,
    Compact(Waiter),
    /// Flush everything, compact, release the files and stop.
    Close(Waiter),
    /// The last handle is gone: flush what is queued and stop (no compaction).
    Shutdown,
    /// A background snapshot job asks for its checkpoint frame to be journaled.
    JobCheckpoint(
        Result<Vec<u8>, String>,
        mpsc::SyncSender<Result<(), StoreError>>,
    ),
    /// A background snapshot job finished.
    JobDone(JobOutcome),
}

/// The durable store of one `.storage` directory: a cheap, cloneable, `Send + Sync`
/// handle. All data is in memory; reads never touch the disk.
///
/// Writes ([`Store::commit`]) are validated, applied to memory and queued to a writer
/// thread under one short write lock, then made durable by a group commit (one journal
/// append and one `sync_data` for every commit queued meanwhile). Compaction rewrites the
/// snapshot files and empties the journal.
///
/// If a journal write fails the store is *poisoned*: memory may hold changes the disk
/// does not, so every later write fails with [`StoreError::Poisoned`] until the store is
/// reopened (reads keep working). A failed compaction leaves the journal intact and
/// does not poison.
///
/// Dropping the last handle without [`Store::close`] flushes what is queued (without
/// compacting) and waits for the writer thread: nothing is corrupted, the next open
/// replays the journal.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(log) = &self.shared.log {
            // The driver holds the shared state, so the channel stays open: say so.
            let _ = log.send(LogRequest::Shutdown);
            return;
        }
        let _ = self.shared.tx.send(Msg::Shutdown);
        if let Some(h) = self.writer.lock().take() {
            let _ = h.join();
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.shared.dir)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) `<config_dir>/.storage`: takes its lock, loads the
    /// snapshot files with Home Assistant's rules and migrations, replays the journal,
    /// and drops a torn journal tail (the only change made to disk while opening).
    ///
    /// # Errors
    /// A file that is unreadable, not JSON, invalid or of an unsupported version; a
    /// corrupt journal; a directory locked by another store. Nothing is changed then.
    pub fn open(config_dir: impl AsRef<Path>, options: StoreOptions) -> Result<Self, StoreError> {
        let dir = config_dir.as_ref().join(".storage");
        let created_dir = create_storage_dir(&dir)?;
        let lock = lock_dir(&dir)?;
        let loaded = load::load_dir(&dir)?;

        let journal_path = dir.join(JOURNAL_FILE);
        let journal_existed = fs::symlink_metadata(&journal_path).is_ok();
        let mut journal = open_private(&journal_path)?;
        let mut bytes = Zeroizing::new(Vec::new());
        journal
            .read_to_end(&mut bytes)
            .map_err(|e| StoreError::io("read", &journal_path, e))?;
        let scan = journal::scan(&bytes, &journal_path)?;

        let mut data = loaded.data;
        let mut versions = [0u64; 4];
        for (v, rewrite) in versions.iter_mut().zip(loaded.rewrite) {
            *v = u64::from(rewrite);
        }
        // A file whose digest matches a checkpoint already holds every batch up to it.
        let mut replay_after = [0u64; 4];
        for f in StoreFile::ALL {
            if let Some(cp) = scan
                .checkpoints
                .iter()
                .rev()
                .find(|cp| cp.files[f.index()] == loaded.digests[f.index()])
            {
                replay_after[f.index()] = cp.seq;
            }
        }
        let mut next_seq = scan
            .checkpoints
            .iter()
            .map(|cp| cp.seq.saturating_add(1))
            .max()
            .unwrap_or(1);
        let replayed = scan.batches.len();
        for batch in scan.batches {
            next_seq = next_seq.max(batch.seq.saturating_add(1));
            for change in batch.changes {
                let file = change.file();
                if batch.seq > replay_after[file.index()] {
                    data.apply(change);
                    versions[file.index()] += 1;
                }
            }
        }
        let file_len = bytes.len() as u64;
        drop(bytes);
        if scan.valid_len < file_len {
            tracing::warn!(
                path = %journal_path.display(),
                dropped = file_len - scan.valid_len,
                "dropping a torn journal tail (never acknowledged)"
            );
            journal
                .set_len(scan.valid_len)
                .and_then(|()| journal.sync_data())
                .map_err(|e| StoreError::io("truncate", &journal_path, e))?;
        }
        journal
            .seek(SeekFrom::Start(scan.valid_len))
            .map_err(|e| StoreError::io("seek", &journal_path, e))?;
        if !journal_existed {
            sync_dir(&dir)?;
        }
        if let Some(parent) = dir.parent().filter(|_| created_dir) {
            sync_dir(parent)?;
        }
        tracing::debug!(dir = %dir.display(), replayed, "store opened");

        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            state: RwLock::new(State {
                data,
                next_seq,
                versions,
                usage_dirty: HashSet::new(),
                usage_scheduled: false,
                closed: false,
            }),
            tx,
            log: None,
            diverged: AtomicBool::new(false),
            applied: broadcast::channel(APPLIED_QUEUE).0,
            poisoned: OnceLock::new(),
            stats: Stats::default(),
            dir: dir.clone(),
        });
        shared
            .stats
            .journal_bytes
            .store(scan.valid_len, Ordering::Relaxed);
        let writer = Writer {
            shared: Arc::clone(&shared),
            rx,
            journal: Some(journal),
            lock: Some(lock),
            journal_path,
            journal_len: scan.valid_len,
            options,
            on_disk: loaded
                .digests
                .map(|d| d.map_or(OnDisk::Missing, OnDisk::Digest)),
            persisted: [0; 4],
            snapshot_seq: 0,
            poisoned: false,
            usage_deadline: None,
            queue: VecDeque::new(),
            unsaved: None,
            retry_at: None,
            job: None,
            journaled_seq: next_seq - 1,
        };
        let handle = thread::Builder::new()
            .name("latch-store-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| StoreError::io("start the writer thread for", &dir, e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    /// A store whose batches are made durable in a shared, ordered log instead of the
    /// local files: `data` is the state after log batch `seq`. The returned
    /// [`LogSide`] is for the backend's driver, which must serve it (see the `log`
    /// module's docs); every handle of the store works as with [`Store::open`].
    #[must_use]
    pub fn with_log(data: AuthData, seq: u64, options: &StoreOptions) -> (Self, LogSide) {
        let _ = options;
        let (tx, _) = mpsc::channel();
        let (log_tx, log_rx) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            state: RwLock::new(State {
                data,
                next_seq: seq + 1,
                versions: [0; 4],
                usage_dirty: HashSet::new(),
                usage_scheduled: false,
                closed: false,
            }),
            tx,
            log: Some(log_tx),
            diverged: AtomicBool::new(false),
            applied: broadcast::channel(APPLIED_QUEUE).0,
            poisoned: OnceLock::new(),
            stats: Stats::default(),
            dir: PathBuf::new(),
        });
        let side = LogSide::new(Arc::clone(&shared), log_rx);
        let store = Self {
            inner: Arc::new(Inner {
                shared,
                writer: Mutex::new(None),
            }),
        };
        (store, side)
    }

    /// The `.storage` directory (empty for a store over a shared log).
    #[must_use]
    pub fn storage_dir(&self) -> &Path {
        &self.inner.shared.dir
    }

    /// `"files"` or `"shared log"`.
    #[must_use]
    pub fn backend(&self) -> &'static str {
        if self.inner.shared.log.is_some() {
            "shared log"
        } else {
            "files"
        }
    }

    /// The last batch applied (journal or shared log).
    #[must_use]
    pub fn last_applied(&self) -> u64 {
        self.inner.shared.state.read().next_seq - 1
    }

    /// What other hosts' batches did, as they are applied here (a store over a shared
    /// log; the files store never sends). A slow receiver lags rather than blocks.
    #[must_use]
    pub fn subscribe_applied(&self) -> broadcast::Receiver<Arc<AppliedBatch>> {
        self.inner.shared.applied.subscribe()
    }

    /// Commits the batch `plan` computes from the state it is applied on, atomically and
    /// durably: `plan` runs under the write lock on the current state — on a shared log,
    /// after this host caught up with every batch another host appended — so a check it
    /// makes (a username still free, a token still there) holds when the batch lands.
    /// An `Err` from `plan` commits nothing and comes back as [`CommitError::Refused`].
    ///
    /// # Errors
    /// [`CommitError::Refused`]; [`CommitError::Store`] as [`Store::commit`].
    pub async fn commit_with<E, F>(&self, plan: F) -> Result<(), CommitError<E>>
    where
        F: FnOnce(&AuthData) -> Result<Vec<Change>, E> + Send + 'static,
        E: Send + 'static,
    {
        let (reason_tx, mut reason_rx) = oneshot::channel();
        let plan: Plan = Box::new(move |d| match plan(d) {
            Ok(changes) => Some(changes),
            Err(e) => {
                let _ = reason_tx.send(e);
                None
            }
        });
        let (tx, rx) = oneshot::channel();
        let r = if self
            .submit_plan(plan, Waiter::Async(tx))
            .map_err(CommitError::Store)?
        {
            rx.await.unwrap_or(Err(StoreError::Closed))
        } else {
            Ok(())
        };
        if let Ok(reason) = reason_rx.try_recv() {
            return Err(CommitError::Refused(reason));
        }
        r.map_err(CommitError::Store)
    }

    /// Commits a batch atomically and durably: validates it against the current state
    /// (nothing is applied if any change is refused), applies it to memory, queues it to
    /// the journal and waits until the group commit that carries it is fsynced.
    ///
    /// The change is visible to readers as soon as it is applied, slightly before it is
    /// durable. Cancelling the returned future does not cancel the commit.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a batch that breaks integrity; a write error (and
    /// from then on [`StoreError::Poisoned`]); [`StoreError::Closed`].
    pub async fn commit(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        if !self.submit(changes, Waiter::Async(tx))? {
            return Ok(());
        }
        rx.await.unwrap_or(Err(StoreError::Closed))
    }

    /// [`Store::commit`] for synchronous callers: blocks the thread until durable.
    /// Do not call it on an async runtime's worker thread (it would stall that worker);
    /// use [`Store::commit`] there.
    ///
    /// # Errors
    /// As [`Store::commit`].
    pub fn commit_blocking(&self, changes: Vec<Change>) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        if !self.submit(changes, Waiter::Blocking(tx))? {
            return Ok(());
        }
        rx.recv().unwrap_or(Err(StoreError::Closed))
    }

    /// Hands `changes` to the other hosts of a shared log, without waiting for them to be
    /// appended: what one host decides that every host must apply too but that no file
    /// keeps ([`Change::Lockout`], [`Change::ClearLockout`]). The files store serves one
    /// host and keeps no such state: there it does nothing. A change that cannot be
    /// appended (the database unreachable) is dropped with a warning.
    pub fn share(&self, changes: Vec<Change>) {
        let shared = &self.inner.shared;
        let Some(log) = &shared.log else {
            return;
        };
        if changes.is_empty() || shared.state.read().closed {
            return;
        }
        let proposal = Proposal {
            plan: Box::new(move |_| Some(changes)),
            waiter: None,
        };
        if log.send(LogRequest::Propose(proposal)).is_err() {
            tracing::warn!("a lockout could not be shared: the store is closed");
        }
    }

    /// Validates, applies and queues a batch; false if it was empty.
    fn submit(&self, changes: Vec<Change>, waiter: Waiter) -> Result<bool, StoreError> {
        if changes.is_empty() {
            return Ok(false);
        }
        self.submit_plan(Box::new(move |_| Some(changes)), waiter)
    }

    /// Runs `plan` on the current state under the write lock, then validates, applies
    /// and queues its batch (files), or hands it to the shared log's driver, which does
    /// that on the state the batch is appended on. False if nothing was queued.
    fn submit_plan(&self, plan: Plan, waiter: Waiter) -> Result<bool, StoreError> {
        let shared = &self.inner.shared;
        if let Some(log) = &shared.log {
            if shared.state.read().closed {
                return Err(StoreError::Closed);
            }
            if let Some(e) = shared.poisoned_error() {
                return Err(e);
            }
            let Waiter::Async(tx) = waiter else {
                return Err(StoreError::Unavailable {
                    reason: "a store over a shared log takes no blocking commit".into(),
                });
            };
            let proposal = Proposal {
                plan,
                waiter: Some(tx),
            };
            return log
                .send(LogRequest::Propose(proposal))
                .map(|()| true)
                .map_err(|_| StoreError::Closed);
        }
        let mut st = shared.state.write();
        if st.closed {
            return Err(StoreError::Closed);
        }
        if let Some(e) = shared.poisoned_error() {
            return Err(e);
        }
        let Some(changes) = plan(&st.data) else {
            return Ok(false);
        };
        if changes.is_empty() {
            return Ok(false);
        }
        let payload =
            Zeroizing::new(
                serde_json::to_vec(&changes).map_err(|source| StoreError::Encode {
                    what: "a batch of changes",
                    source,
                })?,
            );
        st.data
            .check(&changes)
            .map_err(|(index, reason)| StoreError::Rejected { index, reason })?;
        for change in changes {
            let file = st.data.apply(change);
            st.versions[file.index()] += 1;
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        let record = Record {
            seq,
            changes: payload,
            waiter: Some(waiter),
        };
        if shared.tx.send(Msg::Record(record)).is_err() {
            let cause = "the writer thread is gone".to_owned();
            let _ = shared.poisoned.set(cause.clone());
            return Err(StoreError::Poisoned { cause });
        }
        Ok(true)
    }

    /// Records that a refresh token was used: updates memory at once and journals the
    /// latest usage of every token used meanwhile as one record, at most once per
    /// [`StoreOptions::usage_flush_interval`]. Not awaited: a crash may lose the usage of
    /// the last interval, which is acceptable for this metadata (Home Assistant saves it
    /// with a delay too).
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for an unknown token or a non-finite `expire_at`;
    /// [`StoreError::Closed`]; [`StoreError::Poisoned`].
    pub fn record_usage(
        &self,
        id: &str,
        last_used_at: DateTime<Utc>,
        last_used_ip: Option<String>,
        expire_at: Option<f64>,
    ) -> Result<(), StoreError> {
        let rejected = |reason| StoreError::Rejected { index: 0, reason };
        finite("expire_at", expire_at).map_err(rejected)?;
        storable_time("last_used_at", Some(&last_used_at)).map_err(rejected)?;
        let shared = &self.inner.shared;
        let mut st = shared.state.write();
        if st.closed {
            return Err(StoreError::Closed);
        }
        if let Some(e) = shared.poisoned_error() {
            return Err(e);
        }
        if !st.data.set_usage(id, last_used_at, last_used_ip, expire_at) {
            return Err(rejected(ChangeError::UnknownRefreshToken(id.into())));
        }
        st.versions[StoreFile::Auth.index()] += 1;
        st.usage_dirty.insert(id.into());
        if !st.usage_scheduled {
            st.usage_scheduled = true;
            match &shared.log {
                Some(log) => {
                    let _ = log.send(LogRequest::UsageDue);
                }
                None => {
                    let _ = shared.tx.send(Msg::UsageDue);
                }
            }
        }
        Ok(())
    }

    /// Compacts now: writes every changed snapshot file and empties the journal.
    ///
    /// # Errors
    /// A write error (the journal is kept, so nothing is lost); [`StoreError::Closed`].
    pub async fn compact(&self) -> Result<(), StoreError> {
        if self.inner.shared.log.is_some() {
            return Ok(()); // the shared log has no local files
        }
        let (tx, rx) = oneshot::channel();
        self.send_control(Msg::Compact, Waiter::Async(tx))?;
        rx.await.unwrap_or(Err(StoreError::Closed))
    }

    /// [`Store::compact`] for synchronous callers (not on an async worker thread).
    ///
    /// # Errors
    /// As [`Store::compact`].
    pub fn compact_blocking(&self) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send_control(Msg::Compact, Waiter::Blocking(tx))?;
        rx.recv().unwrap_or(Err(StoreError::Closed))
    }

    fn send_control(
        &self,
        msg: impl FnOnce(Waiter) -> Msg,
        waiter: Waiter,
    ) -> Result<(), StoreError> {
        let st = self.inner.shared.state.read();
        if st.closed {
            return Err(StoreError::Closed);
        }
        self.inner
            .shared
            .tx
            .send(msg(waiter))
            .map_err(|_| StoreError::Closed)
    }

    /// Closes the store: journals pending usage, compacts, releases the directory lock
    /// and stops the writer. Later writes fail with [`StoreError::Closed`]; reads keep
    /// answering from memory. Closing twice is a no-op.
    ///
    /// # Errors
    /// The compaction's error (the journal is then kept and replayed on the next open).
    pub async fn close(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        if !self.begin_close(Waiter::Async(tx)) {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }

    /// [`Store::close`] for synchronous callers (not on an async worker thread).
    ///
    /// # Errors
    /// As [`Store::close`].
    pub fn close_blocking(&self) -> Result<(), StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        if !self.begin_close(Waiter::Blocking(tx)) {
            return Ok(());
        }
        rx.recv().unwrap_or(Ok(()))
    }

    fn begin_close(&self, waiter: Waiter) -> bool {
        let mut st = self.inner.shared.state.write();
        if st.closed {
            return false;
        }
        st.closed = true;
        if let Some(log) = &self.inner.shared.log {
            let (tx, rx) = oneshot::channel();
            if log.send(LogRequest::Close(tx)).is_err() {
                return false;
            }
            // Answer the caller's waiter when the driver has finished.
            std::thread::spawn(move || {
                let r = rx.blocking_recv().unwrap_or(Ok(()));
                waiter.send(r);
            });
            return true;
        }
        self.inner.shared.tx.send(Msg::Close(waiter)).is_ok()
    }

    /// Counters since open.
    #[must_use]
    pub fn stats(&self) -> StoreStats {
        let s = &self.inner.shared.stats;
        StoreStats {
            commits: s.commits.load(Ordering::Relaxed),
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            usage_flushes: s.usage_flushes.load(Ordering::Relaxed),
            journal_bytes: s.journal_bytes.load(Ordering::Relaxed),
            compactions: s.compactions.load(Ordering::Relaxed),
            snapshot_writes: s.snapshot_writes.load(Ordering::Relaxed),
            settled_snapshots: s.settled_snapshots.load(Ordering::Relaxed),
        }
    }

    // ----- reads -----

    /// Runs `f` on the data under a shared read lock. Keep `f` short and free of IO.
    pub fn read<R>(&self, f: impl FnOnce(&AuthData) -> R) -> R {
        f(&self.inner.shared.state.read().data)
    }

    /// The hot path: runs `f` on a refresh token and its user without cloning anything.
    pub fn with_refresh_token<R>(
        &self,
        id: &str,
        f: impl FnOnce(&RefreshToken, &User) -> R,
    ) -> Option<R> {
        let st = self.inner.shared.state.read();
        let (t, u) = st.data.refresh_token_with_user(id)?;
        Some(f(t, u))
    }

    /// Like [`Store::with_refresh_token`], by token value (hash lookup, then a
    /// constant-time comparison of the whole string).
    pub fn with_refresh_token_by_value<R>(
        &self,
        token: &str,
        f: impl FnOnce(&RefreshToken, &User) -> R,
    ) -> Option<R> {
        let digest = token_digest(token);
        let st = self.inner.shared.state.read();
        let t = st.data.token_by_digest(&digest, token)?;
        let u = st.data.user(t.user_id.as_str())?;
        Some(f(t, u))
    }

    /// A copy of all the data.
    #[must_use]
    pub fn snapshot(&self) -> AuthData {
        self.read(Clone::clone)
    }

    /// Users in file order.
    #[must_use]
    pub fn users(&self) -> Vec<User> {
        self.read(|d| d.users().cloned().collect())
    }

    /// One user.
    #[must_use]
    pub fn user(&self, id: &str) -> Option<User> {
        self.read(|d| d.user(id).cloned())
    }

    /// Groups in file order.
    #[must_use]
    pub fn groups(&self) -> Vec<Group> {
        self.read(|d| d.groups().cloned().collect())
    }

    /// One group.
    #[must_use]
    pub fn group(&self, id: &str) -> Option<Group> {
        self.read(|d| d.group(id).cloned())
    }

    /// All credentials in file order.
    #[must_use]
    pub fn credentials(&self) -> Vec<Credentials> {
        self.read(|d| d.credentials().cloned().collect())
    }

    /// A user's credentials.
    #[must_use]
    pub fn credentials_of(&self, user_id: &str) -> Vec<Credentials> {
        self.read(|d| d.credentials_of(user_id).cloned().collect())
    }

    /// One credential.
    #[must_use]
    pub fn credential(&self, id: &str) -> Option<Credentials> {
        self.read(|d| d.credential(id).cloned())
    }

    /// One refresh token (a copy; see [`Store::with_refresh_token`] for the hot path).
    #[must_use]
    pub fn refresh_token(&self, id: &str) -> Option<RefreshToken> {
        self.read(|d| d.refresh_token(id).cloned())
    }

    /// The refresh token with this value (constant-time confirmed).
    #[must_use]
    pub fn refresh_token_by_value(&self, token: &str) -> Option<RefreshToken> {
        self.with_refresh_token_by_value(token, |t, _| t.clone())
    }

    /// A user's refresh tokens in order.
    #[must_use]
    pub fn refresh_tokens_of(&self, user_id: &str) -> Vec<RefreshToken> {
        self.read(|d| d.refresh_tokens_of(user_id).cloned().collect())
    }

    /// The `homeassistant` provider entries in file order.
    #[must_use]
    pub fn ha_users(&self) -> Vec<HaUser> {
        self.read(|d| d.ha_users().to_vec())
    }

    /// The first provider entry with exactly this username.
    #[must_use]
    pub fn ha_user(&self, username: &str) -> Option<HaUser> {
        self.read(|d| d.ha_user(username).cloned())
    }

    /// A user's TOTP secret.
    #[must_use]
    pub fn totp_secret(&self, user_id: &str) -> Option<Secret> {
        self.read(|d| d.totp_secret(user_id).cloned())
    }

    /// Ids of the users with a TOTP secret, in file order.
    #[must_use]
    pub fn totp_users(&self) -> Vec<UserId> {
        self.read(|d| d.totp_users().map(|(u, _)| u.clone()).collect())
    }

    /// latch's TOTP state of a user.
    #[must_use]
    pub fn totp_state(&self, user_id: &str) -> Option<TotpState> {
        self.read(|d| d.totp_state(user_id).cloned())
    }
}

/// A slow subscriber of applied batches lags after this many.
const APPLIED_QUEUE: usize = 1024;

/// The latest usage of every token used since the last call, as changes.
pub(crate) fn usage_changes(st: &mut State) -> Vec<Change> {
    let State {
        usage_dirty, data, ..
    } = st;
    usage_dirty
        .drain()
        .filter_map(|id| {
            let t = data.refresh_token(id.as_str())?;
            Some(Change::TokenUsage {
                last_used_at: t.last_used_at?,
                last_used_ip: t.last_used_ip.clone(),
                expire_at: t.expire_at,
                id,
            })
        })
        .collect()
}

/// Opens (creating 0600 if missing) one of latch's own files in `.storage` for reading
/// and writing, never through a symlink (`O_NOFOLLOW`), refuses anything but a regular
/// file and narrows a group/other-accessible one to 0600: a planted link or a readable
/// file would leak the journal (password hashes, tokens) or let another process steer
/// the lock.
pub(crate) fn open_private(path: &Path) -> Result<File, StoreError> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC;
        options.mode(0o600).custom_flags(flags.bits().cast_signed());
    }
    let file = options
        .open(path)
        .map_err(|e| StoreError::io("open", path, refuse_link(e)))?;
    let meta = file
        .metadata()
        .map_err(|e| StoreError::io("inspect", path, e))?;
    if !meta.is_file() {
        return Err(StoreError::invalid(path, "is not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if meta.mode() & 0o077 != 0 {
            // Ours (not followed, a regular file): narrow it rather than leak it.
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(|e| StoreError::io("restrict the permissions of", path, e))?;
            tracing::warn!(path = %path.display(), "store file was readable by group or others; now 0600");
        }
    }
    Ok(file)
}

/// `O_NOFOLLOW` on a symlink fails with `ELOOP`; say what it means.
pub(crate) fn refuse_link(e: io::Error) -> io::Error {
    #[cfg(unix)]
    if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        return io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is a symlink; latch never opens its store files through one",
        );
    }
    e
}

fn create_storage_dir(dir: &Path) -> Result<bool, StoreError> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(StoreError::invalid(
            dir,
            "is a symlink; latch keeps its data only in a real directory",
        )),
        Ok(m) if m.is_dir() => Ok(false),
        Ok(_) => Err(StoreError::invalid(dir, "exists but is not a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| StoreError::io("create", dir, e))?;
            Ok(true)
        }
        Err(e) => Err(StoreError::io("inspect", dir, e)),
    }
}

fn lock_dir(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = open_private(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(StoreError::Locked { path }),
        Err(fs::TryLockError::Error(e)) => Err(StoreError::io("lock", &path, e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io("sync", dir, e))
}

/// A failed write, shareable among the waiters of one group commit.
struct WriteFailure {
    action: &'static str,
    path: PathBuf,
    source: Arc<io::Error>,
}

impl WriteFailure {
    fn new(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self {
            action,
            path: path.to_owned(),
            source: Arc::new(source),
        }
    }

    fn error(&self) -> StoreError {
        StoreError::Io {
            action: self.action,
            path: self.path.clone(),
            source: Arc::clone(&self.source),
        }
    }
}

/// What a snapshot file holds on disk, as far as the writer knows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnDisk {
    Missing,
    Digest(FileDigest),
    /// A compaction failed while writing it: it may hold either version.
    Unknown,
}

impl OnDisk {
    fn digest(self) -> Option<FileDigest> {
        match self {
            Self::Digest(d) => Some(d),
            Self::Missing | Self::Unknown => None,
        }
    }
}

/// The writer thread: the only code that writes to the directory after open.
struct Writer {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Msg>,
    journal: Option<File>,
    lock: Option<File>,
    journal_path: PathBuf,
    journal_len: u64,
    options: StoreOptions,
    /// What each snapshot file holds on disk.
    on_disk: [OnDisk; 4],
    /// Per file, the version last made durable.
    persisted: [u64; 4],
    /// The last batch the snapshot files hold: queued batches up to it need no journal
    /// write (the snapshot made them durable).
    snapshot_seq: u64,
    poisoned: bool,
    usage_deadline: Option<Instant>,
    /// Messages received but not handled yet: a compaction takes the records out of the
    /// channel ahead of their turn (see [`Writer::journal_queued`]).
    queue: VecDeque<Msg>,
    /// Changes journaled since the snapshot files were last captured: when the first
    /// and the last came.
    unsaved: Option<(Instant, Instant)>,
    /// After a failed background rewrite, the next one waits until then.
    retry_at: Option<Instant>,
    /// The background snapshot job in flight, and the batch it captured.
    job: Option<(JoinHandle<()>, u64)>,
    /// The last batch appended to the journal.
    journaled_seq: u64,
}

impl Writer {
    fn run(mut self) {
        if self.journal_len >= self.options.compact_after_bytes {
            self.auto_compact();
        }
        loop {
            if self.queue.is_empty() {
                let deadline = match (self.usage_deadline, self.snapshot_deadline()) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let first = match deadline {
                    Some(deadline) => {
                        let wait = deadline.saturating_duration_since(Instant::now());
                        match self.rx.recv_timeout(wait) {
                            Ok(m) => m,
                            Err(RecvTimeoutError::Timeout) => {
                                self.deadline_passed();
                                continue;
                            }
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                    None => match self.rx.recv() {
                        Ok(m) => m,
                        Err(_) => return,
                    },
                };
                self.queue.push_back(first);
            }
            self.queue.extend(self.rx.try_iter());
            if self.handle_queue() {
                return;
            }
        }
    }

    /// Handles the queued messages in order, one group commit for the records between
    /// two control messages; true once the writer must stop.
    fn handle_queue(&mut self) -> bool {
        let mut records = Vec::new();
        while let Some(msg) = self.queue.pop_front() {
            match msg {
                Msg::Record(r) => records.push(r),
                Msg::UsageDue => {
                    if self.usage_deadline.is_none() {
                        self.usage_deadline =
                            Some(Instant::now() + self.options.usage_flush_interval);
                    }
                }
                Msg::Compact(w) => {
                    self.write_records(&mut records);
                    w.send(self.compact());
                }
                Msg::Close(w) => {
                    self.write_records(&mut records);
                    self.flush_usage_now();
                    let r = self.compact();
                    self.journal = None;
                    self.lock = None;
                    w.send(r);
                    return true;
                }
                Msg::Shutdown => {
                    self.write_records(&mut records);
                    self.flush_usage_now();
                    // The job renames files in this directory: it ends before the lock goes.
                    self.wait_for_job();
                    return true;
                }
                Msg::JobCheckpoint(frame, reply) => {
                    self.write_records(&mut records);
                    self.journal_checkpoint(frame, &reply);
                }
                Msg::JobDone(outcome) => {
                    self.write_records(&mut records);
                    self.job_done(outcome);
                }
            }
        }
        self.write_records(&mut records);
        if self.journal_len >= self.options.compact_after_bytes && self.job.is_none() {
            self.auto_compact();
        }
        false
    }

    /// When the background rewrite of the snapshot files is due, if one is.
    fn snapshot_deadline(&self) -> Option<Instant> {
        let delay = self.options.snapshot_delay?;
        let (first, last) = self.unsaved?;
        if self.job.is_some() || self.poisoned {
            return None;
        }
        let due = (last + delay).min(first + self.options.snapshot_max_delay);
        Some(self.retry_at.map_or(due, |r| due.max(r)))
    }

    fn deadline_passed(&mut self) {
        let now = Instant::now();
        if self.usage_deadline.is_some_and(|d| d <= now) {
            self.usage_deadline = None;
            self.enqueue_usage();
        }
        if self.snapshot_deadline().is_some_and(|d| d <= now) {
            self.start_job();
        }
    }

    /// Captures the changed files and starts a job that rewrites them (see `settle`).
    fn start_job(&mut self) {
        self.unsaved = None;
        self.retry_at = None;
        let (seq, captured) = match self.capture_changed() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot capture the snapshot files");
                return;
            }
        };
        if captured.is_empty() {
            return;
        }
        let input = JobInput {
            seq,
            captured,
            on_disk: self.on_disk.map(OnDisk::digest),
            dir: self.shared.dir.clone(),
            hook: self.options.fault_hook.clone(),
            tx: self.shared.tx.clone(),
        };
        match thread::Builder::new()
            .name("latch-store-snapshot".into())
            .spawn(move || settle::run(input))
        {
            Ok(handle) => self.job = Some((handle, seq)),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the snapshot thread; retrying later");
                self.note_unsaved_after_failure();
            }
        }
    }

    /// A failed rewrite is retried, but not before the longest delay has passed.
    fn note_unsaved_after_failure(&mut self) {
        let now = Instant::now();
        self.unsaved = Some(self.unsaved.map_or((now, now), |(first, _)| (first, now)));
        self.retry_at = Some(now + self.options.snapshot_max_delay);
    }

    fn journal_checkpoint(
        &mut self,
        frame: Result<Vec<u8>, String>,
        reply: &mpsc::SyncSender<Result<(), StoreError>>,
    ) {
        if self.poisoned {
            let _ = reply.send(Err(self.poisoned_error()));
            return;
        }
        let result = self.append_frame(frame).map_err(|failure| {
            self.poison(failure.error().to_string());
            failure.error()
        });
        let _ = reply.send(result);
    }

    /// Records what the job left on disk; empties the journal if it holds nothing the
    /// files do not.
    fn job_done(&mut self, outcome: JobOutcome) {
        if let Some((handle, _)) = self.job.take() {
            let _ = handle.join();
        }
        for (file, version) in outcome.unchanged {
            self.persisted[file.index()] = version;
        }
        let stats = &self.shared.stats;
        for &(file, version, digest) in &outcome.written {
            self.on_disk[file.index()] = OnDisk::Digest(digest);
            self.persisted[file.index()] = version;
            stats.snapshot_writes.fetch_add(1, Ordering::Relaxed);
        }
        if let Some((error, touched)) = outcome.failed {
            tracing::error!(error = %error, "rewriting the snapshot files failed; the journal keeps every change");
            for file in touched {
                self.on_disk[file.index()] = OnDisk::Unknown;
            }
            self.note_unsaved_after_failure();
            return;
        }
        if !outcome.written.is_empty() {
            stats.settled_snapshots.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(dir = %self.shared.dir.display(), seq = outcome.seq, "snapshot files rewritten");
        }
        if self.journaled_seq == outcome.seq && self.journal_len > 0 && !self.poisoned {
            if let Err(failure) = self.truncate_journal() {
                self.poison(failure.error().to_string());
                return;
            }
            self.snapshot_seq = outcome.seq;
        }
        if self.journal_len >= self.options.compact_after_bytes {
            self.auto_compact();
        }
    }

    /// Waits for the job in flight (journaling its checkpoint when it asks); other
    /// messages that arrive meanwhile are queued in order.
    fn wait_for_job(&mut self) {
        while self.job.is_some() {
            // The job's message may already be off the channel, queued behind the
            // message being handled (a close that arrived just before the job ended):
            // waiting on the channel for it would wait forever.
            if let Some(at) = self
                .queue
                .iter()
                .position(|m| matches!(m, Msg::JobCheckpoint(..) | Msg::JobDone(_)))
            {
                match self.queue.remove(at) {
                    Some(Msg::JobCheckpoint(frame, reply)) => {
                        self.journal_checkpoint(frame, &reply);
                    }
                    Some(Msg::JobDone(outcome)) => self.job_done(outcome),
                    _ => {}
                }
                continue;
            }
            match self.rx.recv() {
                Ok(Msg::JobCheckpoint(frame, reply)) => self.journal_checkpoint(frame, &reply),
                Ok(Msg::JobDone(outcome)) => self.job_done(outcome),
                Ok(other) => self.queue.push_back(other),
                Err(_) => {
                    // Cannot happen while the job holds a sender; do not spin.
                    if let Some((handle, _)) = self.job.take() {
                        let _ = handle.join();
                    }
                }
            }
        }
    }

    fn step(&self, s: WriteStep) -> io::Result<()> {
        step(self.options.fault_hook.as_ref(), s)
    }

    fn poison(&mut self, cause: String) {
        tracing::error!(%cause, "journal write failed; the store refuses further writes");
        self.poisoned = true;
        let _ = self.shared.poisoned.set(cause);
    }

    fn poisoned_error(&self) -> StoreError {
        self.shared
            .poisoned_error()
            .unwrap_or_else(|| StoreError::Poisoned {
                cause: "an earlier write failed".to_owned(),
            })
    }

    /// Takes the dirty usage as one batch (under the write lock, so it is ordered after
    /// every batch already queued).
    fn take_usage(&self, st: &mut State) -> Option<Record> {
        st.usage_scheduled = false;
        let changes = usage_changes(st);
        if changes.is_empty() {
            return None;
        }
        match serde_json::to_vec(&changes) {
            Ok(bytes) => {
                let seq = st.next_seq;
                st.next_seq += 1;
                Some(Record {
                    seq,
                    changes: Zeroizing::new(bytes),
                    waiter: None,
                })
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot encode token usage; it stays in memory only");
                None
            }
        }
    }

    /// The usage interval ended: queue the usage behind what is already queued.
    fn enqueue_usage(&self) {
        let mut st = self.shared.state.write();
        if st.closed {
            return; // close flushes it itself
        }
        if let Some(record) = self.take_usage(&mut st) {
            let _ = self.shared.tx.send(Msg::Record(record));
        }
    }

    /// At close or shutdown, when nothing else can be queued any more.
    fn flush_usage_now(&mut self) {
        let record = {
            let mut st = self.shared.state.write();
            self.take_usage(&mut st)
        };
        if let Some(record) = record {
            self.write_records(&mut vec![record]);
        }
    }

    /// One group commit: one frame, one write, one `sync_data`, then every waiter.
    fn write_records(&mut self, records: &mut Vec<Record>) {
        if records.is_empty() {
            return;
        }
        let mut records = std::mem::take(records);
        // Batches a compaction captured are durable in the snapshot files already.
        let in_snapshot = records
            .iter()
            .take_while(|r| r.seq <= self.snapshot_seq)
            .count();
        for r in records.drain(..in_snapshot) {
            self.acknowledge(r);
        }
        if records.is_empty() {
            return;
        }
        if self.poisoned {
            for r in records {
                if let Some(w) = r.waiter {
                    w.send(Err(self.poisoned_error()));
                }
            }
            return;
        }
        let result = self.append(&records);
        match result {
            Ok(()) => {
                if let Some(last) = records.last() {
                    self.journaled_seq = last.seq;
                }
                if self.options.snapshot_delay.is_some() {
                    let now = Instant::now();
                    self.unsaved = Some(self.unsaved.map_or((now, now), |(first, _)| (first, now)));
                }
                for r in records {
                    self.acknowledge(r);
                }
            }
            Err(failure) => {
                self.poison(failure.error().to_string());
                for r in records {
                    if let Some(w) = r.waiter {
                        w.send(Err(failure.error()));
                    }
                }
            }
        }
    }

    fn acknowledge(&self, r: Record) {
        let stats = &self.shared.stats;
        match r.waiter {
            Some(w) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                w.send(Ok(()));
            }
            None => {
                stats.usage_flushes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn append(&mut self, records: &[Record]) -> Result<(), WriteFailure> {
        let frame = journal::encode_frame(records.iter().map(|r| (r.seq, r.changes.as_slice())));
        self.append_frame(frame)
    }

    /// Appends one frame and syncs it.
    fn append_frame(&mut self, frame: Result<Vec<u8>, String>) -> Result<(), WriteFailure> {
        let path = self.journal_path.clone();
        let frame = frame.map_err(|msg| {
            WriteFailure::new("encode a record for", &path, io::Error::other(msg))
        })?;
        let frame = Zeroizing::new(frame);
        self.step(WriteStep::JournalWrite)
            .map_err(|e| WriteFailure::new("append to", &path, e))?;
        let journal = self.journal.as_mut().ok_or_else(|| {
            WriteFailure::new(
                "append to",
                &path,
                io::Error::other("the journal is closed"),
            )
        })?;
        journal
            .write_all(&frame)
            .map_err(|e| WriteFailure::new("append to", &path, e))?;
        self.step(WriteStep::JournalSync)
            .map_err(|e| WriteFailure::new("sync", &path, e))?;
        let journal = self.journal.as_mut().ok_or_else(|| {
            WriteFailure::new("sync", &path, io::Error::other("the journal is closed"))
        })?;
        journal
            .sync_data()
            .map_err(|e| WriteFailure::new("sync", &path, e))?;
        self.journal_len += frame.len() as u64;
        let stats = &self.shared.stats;
        stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        stats
            .journal_bytes
            .store(self.journal_len, Ordering::Relaxed);
        Ok(())
    }

    /// Journals every queued batch (one group commit) ahead of the control messages
    /// queued with them, which keep their order. No batch is ever queued behind a close
    /// or a shutdown, so moving them forward changes nothing but their timing.
    fn journal_queued(&mut self) {
        self.queue.extend(self.rx.try_iter());
        let mut records = Vec::new();
        for msg in std::mem::take(&mut self.queue) {
            match msg {
                Msg::Record(r) => records.push(r),
                other => self.queue.push_back(other),
            }
        }
        self.write_records(&mut records);
    }

    fn auto_compact(&mut self) {
        if let Err(e) = self.compact() {
            tracing::error!(error = %e, "compaction failed; the journal is kept");
        }
    }

    /// Writes every changed snapshot file, makes the renames durable, then empties the
    /// journal.
    ///
    /// Order, so that a crash at any point leaves a loadable directory holding every
    /// acknowledged change, applying none twice and none in part:
    /// 1. journal every queued batch, then capture the state after batch N under a short
    ///    read lock (with nothing queued: every batch in it is journaled) and encode it;
    /// 2. append a checkpoint (N and the new files' digests) to the journal, synced;
    /// 3. per changed file: temp file (0600, exclusive), write, fsync, rename over it;
    /// 4. fsync the directory;
    /// 5. truncate the journal (it holds nothing after N: this thread writes it).
    ///
    /// Until step 5 the journal holds every batch; on open each file replays only the
    /// batches after the checkpoint its digest matches (or all, if none does).
    fn compact(&mut self) -> Result<(), StoreError> {
        // The job writes the same temp files; it also saves a part of this work.
        self.wait_for_job();
        if self.poisoned || self.journal.is_none() {
            return Err(self.poisoned_error());
        }
        // What is captured now is written now.
        self.unsaved = None;
        let (seq, captured) = self.capture_changed()?;
        if captured.is_empty() && self.journal_len == 0 {
            self.snapshot_seq = seq;
            return Ok(());
        }
        let mut to_write = Vec::new();
        for (file, version, snapshot) in captured {
            let bytes = Zeroizing::new(format::encode(&snapshot)?);
            drop(snapshot);
            let digest = file_digest(&bytes);
            if self.on_disk[file.index()] == OnDisk::Digest(digest) {
                self.persisted[file.index()] = version;
            } else {
                to_write.push((file, version, digest, bytes));
            }
        }
        if !to_write.is_empty() {
            let mut files = self.on_disk.map(OnDisk::digest);
            for (file, _, digest, _) in &to_write {
                files[file.index()] = Some(*digest);
            }
            let checkpoint = journal::encode_checkpoint(&journal::Checkpoint { seq, files });
            if let Err(failure) = self.append_frame(checkpoint) {
                self.poison(failure.error().to_string());
                return Err(failure.error());
            }
            let written = write_snapshots(
                &self.shared.dir,
                self.options.fault_hook.as_ref(),
                &to_write,
            );
            if written.is_err() {
                // Some files may have been renamed: rewrite them next time whatever.
                for (file, ..) in &to_write {
                    self.on_disk[file.index()] = OnDisk::Unknown;
                }
                return written;
            }
            for (file, version, digest, _) in &to_write {
                self.on_disk[file.index()] = OnDisk::Digest(*digest);
                self.persisted[file.index()] = *version;
                self.shared
                    .stats
                    .snapshot_writes
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        if self.journal_len > 0
            && let Err(failure) = self.truncate_journal()
        {
            self.poison(failure.error().to_string());
            return Err(failure.error());
        }
        self.snapshot_seq = seq;
        self.shared
            .stats
            .compactions
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(dir = %self.shared.dir.display(), seq, "compacted");
        Ok(())
    }

    /// Journals every queued batch, then captures (under a short read lock) the files
    /// that changed since they were last written, each with its version, and the last
    /// batch they hold.
    fn capture_changed(&mut self) -> Result<(u64, Captured), StoreError> {
        // A batch captured before it is journaled could end up in one renamed file and
        // not in another if the process dies between the renames.
        let shared = Arc::clone(&self.shared);
        let mut attempts = 0;
        let (seq, captured) = loop {
            self.journal_queued();
            if self.poisoned {
                return Err(self.poisoned_error());
            }
            let st = shared.state.read();
            // Batches queued since (submit queues under the write lock): in memory, not
            // journaled yet.
            let mut behind = false;
            while let Ok(msg) = self.rx.try_recv() {
                behind |= matches!(msg, Msg::Record(_));
                self.queue.push_back(msg);
            }
            if behind {
                attempts += 1;
                if attempts < 4 {
                    continue;
                }
                // Under a steady stream of commits: journal the stragglers under the lock.
                self.journal_queued();
                if self.poisoned {
                    return Err(self.poisoned_error());
                }
            }
            let captured: Captured = StoreFile::ALL
                .into_iter()
                .filter(|f| {
                    st.versions[f.index()] != self.persisted[f.index()]
                        || self.on_disk[f.index()] == OnDisk::Unknown
                })
                .map(|f| (f, st.versions[f.index()], st.data.capture(f)))
                .collect();
            break (st.next_seq - 1, captured);
        };
        Ok((seq, captured))
    }

    fn truncate_journal(&mut self) -> Result<(), WriteFailure> {
        let path = self.journal_path.clone();
        self.step(WriteStep::JournalTruncate)
            .map_err(|e| WriteFailure::new("truncate", &path, e))?;
        let journal = self.journal.as_mut().ok_or_else(|| {
            WriteFailure::new("truncate", &path, io::Error::other("the journal is closed"))
        })?;
        journal
            .set_len(0)
            .and_then(|()| journal.seek(SeekFrom::Start(0)).map(drop))
            .map_err(|e| WriteFailure::new("truncate", &path, e))?;
        self.journal_len = 0;
        self.shared.stats.journal_bytes.store(0, Ordering::Relaxed);
        self.step(WriteStep::JournalTruncateSync)
            .map_err(|e| WriteFailure::new("sync", &path, e))?;
        let journal = self.journal.as_mut().ok_or_else(|| {
            WriteFailure::new("sync", &path, io::Error::other("the journal is closed"))
        })?;
        journal
            .sync_data()
            .map_err(|e| WriteFailure::new("sync", &path, e))
    }
}

/// Steps 3 and 4 of [`Writer::compact`] (and of a background rewrite): each file, then
/// an fsync of the directory.
pub(crate) fn write_snapshots(
    dir: &Path,
    hook: Option<&FaultHook>,
    files: &[(StoreFile, u64, FileDigest, Zeroizing<Vec<u8>>)],
) -> Result<(), StoreError> {
    for (file, _, _, bytes) in files {
        write_snapshot(dir, hook, *file, bytes)?;
    }
    step(hook, WriteStep::DirSync).map_err(|e| StoreError::io("sync", dir, e))?;
    sync_dir(dir)
}

fn step(hook: Option<&FaultHook>, step: WriteStep) -> io::Result<()> {
    hook.map_or(Ok(()), |hook| hook(step))
}

/// Temp file (created 0600, exclusively), write, fsync, rename over the target.
fn write_snapshot(
    dir: &Path,
    hook: Option<&FaultHook>,
    file: StoreFile,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let tmp = dir.join(file.temp_name());
    let target = dir.join(file.name());
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io("remove", &tmp, e)),
    }
    let result = (|| {
        step(hook, WriteStep::SnapshotTempWrite(file))
            .map_err(|e| StoreError::io("write", &tmp, e))?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| StoreError::io("create", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| StoreError::io("write", &tmp, e))?;
        step(hook, WriteStep::SnapshotTempSync(file))
            .map_err(|e| StoreError::io("sync", &tmp, e))?;
        f.sync_all().map_err(|e| StoreError::io("sync", &tmp, e))?;
        drop(f);
        step(hook, WriteStep::SnapshotRename(file))
            .map_err(|e| StoreError::io("rename", &tmp, e))?;
        fs::rename(&tmp, &target).map_err(|e| StoreError::io("rename", &tmp, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_is_send_sync_and_clone() {
        fn shareable<T: Send + Sync + Clone + 'static>() {}
        shareable::<Store>();
    }

    #[test]
    fn a_clone_shares_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let b = a.clone();
        a.commit_blocking(vec![Change::PutHaUser {
            username: "x".into(),
            password: Secret::new("p"),
        }])
        .unwrap();
        assert!(b.ha_user("x").is_some());
        drop(a);
        b.commit_blocking(vec![Change::RemoveHaUser {
            username: "x".into(),
        }])
        .unwrap();
        assert!(b.ha_user("x").is_none());
    }
}
