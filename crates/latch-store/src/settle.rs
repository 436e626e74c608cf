//! Snapshot files kept current: once changes settle, a background job rewrites the
//! changed snapshot files while the writer thread goes on journaling.
//!
//! Home Assistant saves its auth files about a second after a change
//! (`async_delay_save`), so a copy of its `.storage` directory is never far behind. latch
//! makes every change durable in the journal first; this job then brings the snapshot
//! files up to date too, so a backup of `.storage` taken while latchd runs holds the
//! current users and tokens (a revoked token stays revoked, a removed user stays gone).
//!
//! The writer captures the changed files under a short read lock, with every batch up
//! to the capture journaled, and hands them to a job thread, which
//! 1. encodes them (the slow part, off the writer and off every lock);
//! 2. asks the writer to append a checkpoint (the batch number and the new files'
//!    digests) to the journal, synced — the same record a compaction writes, so a crash
//!    between two renames replays each file from its own point;
//! 3. writes each file (temp file, fsync, rename) and fsyncs the directory;
//! 4. reports to the writer, which records what is on disk and, if nothing was
//!    journaled since the capture, empties the journal.
//!
//! Group commits go on meanwhile; only step 2 takes a turn of the writer.

use std::path::PathBuf;
use std::sync::mpsc;

use zeroize::Zeroizing;

use crate::data::FileSnapshot;
use crate::error::StoreError;
use crate::file::StoreFile;
use crate::format;
use crate::journal;
use crate::load::{FileDigest, file_digest};
use crate::store::{FaultHook, Msg, write_snapshots};

/// Files captured for writing: each with the version of it that was captured.
pub(crate) type Captured = Vec<(StoreFile, u64, FileSnapshot)>;

/// What the writer hands to a job.
pub(crate) struct JobInput {
    /// The files hold the state after this batch once written.
    pub(crate) seq: u64,
    /// The changed files, each with the version it was captured at.
    pub(crate) captured: Captured,
    /// The digest of each file as it is on disk now (`None`: missing or unknown).
    pub(crate) on_disk: [Option<FileDigest>; 4],
    pub(crate) dir: PathBuf,
    pub(crate) hook: Option<FaultHook>,
    pub(crate) tx: mpsc::Sender<Msg>,
}

/// What a job reports back.
pub(crate) struct JobOutcome {
    pub(crate) seq: u64,
    /// Files whose content was on disk already: `(file, captured version)`.
    pub(crate) unchanged: Vec<(StoreFile, u64)>,
    /// Files written: `(file, captured version, digest)`.
    pub(crate) written: Vec<(StoreFile, u64, FileDigest)>,
    /// Why the job stopped early, with the files it may have left in either version.
    pub(crate) failed: Option<(StoreError, Vec<StoreFile>)>,
}

/// The job thread's body.
pub(crate) fn run(input: JobInput) {
    let JobInput {
        seq,
        captured,
        on_disk,
        dir,
        hook,
        tx,
    } = input;
    let mut outcome = JobOutcome {
        seq,
        unchanged: Vec::new(),
        written: Vec::new(),
        failed: None,
    };
    let mut to_write = Vec::new();
    for (file, version, snapshot) in captured {
        let bytes = match format::encode(&snapshot) {
            Ok(b) => Zeroizing::new(b),
            Err(e) => {
                outcome.failed = Some((e, Vec::new()));
                let _ = tx.send(Msg::JobDone(outcome));
                return;
            }
        };
        drop(snapshot);
        let digest = file_digest(&bytes);
        if on_disk[file.index()] == Some(digest) {
            outcome.unchanged.push((file, version));
        } else {
            to_write.push((file, version, digest, bytes));
        }
    }
    if !to_write.is_empty() {
        let mut files = on_disk;
        for (file, _, digest, _) in &to_write {
            files[file.index()] = Some(*digest);
        }
        let frame = journal::encode_checkpoint(&journal::Checkpoint { seq, files });
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let appended = match tx.send(Msg::JobCheckpoint(frame, reply_tx)) {
            Ok(()) => reply_rx.recv().unwrap_or(Err(StoreError::Closed)),
            Err(_) => Err(StoreError::Closed),
        };
        if let Err(e) = appended {
            // Nothing was renamed: the files are as they were.
            outcome.failed = Some((e, Vec::new()));
            let _ = tx.send(Msg::JobDone(outcome));
            return;
        }
        match write_snapshots(&dir, hook.as_ref(), &to_write) {
            Ok(()) => {
                outcome.written = to_write
                    .into_iter()
                    .map(|(file, version, digest, _)| (file, version, digest))
                    .collect();
            }
            Err(e) => {
                let touched = to_write.iter().map(|(file, ..)| *file).collect();
                outcome.failed = Some((e, touched));
            }
        }
    }
    let _ = tx.send(Msg::JobDone(outcome));
}
