//! latch-store: durable persistence of latch's auth data, in Home Assistant's format.
//!
//! One job: keep users, groups, credentials, refresh tokens, the `homeassistant`
//! provider's password entries and the TOTP secrets in memory, and durable on disk:
//!
//! - **Snapshots** in `<config_dir>/.storage/`: `auth`, `auth_provider.homeassistant`
//!   and `auth_module.totp` byte-for-byte as Home Assistant writes them (envelope, field
//!   order, orjson's two-space layout and float text, Python's datetime text), so an existing
//!   Home Assistant directory loads unchanged and Home Assistant can read what latch
//!   writes. latch's own TOTP extensions live in a separate `latch.auth_module.totp`.
//! - **A journal**, `latch.journal`: every acknowledged commit is appended as a
//!   checksummed record and fsynced first; concurrent commits share one fsync (group
//!   commit). A torn tail is dropped on open. Compaction (past a size bound and at
//!   close) writes a checkpoint, rewrites the changed snapshots (temp file, fsync,
//!   rename, fsync of the directory) and empties the journal; a crash at any point of it
//!   reopens to exactly the acknowledged state. Journal frames are
//!   `[u32 LE length][u32 LE crc32][JSON payload]`, one per write: a group of batches
//!   `[{"seq": n, "changes": [...]}, ...]` or a compaction checkpoint
//!   `{"checkpoint": n, "files": {"auth": "<sha-256>", ...}}`.
//! - **Snapshot files that follow the data**: once changes settle
//!   ([`StoreOptions::snapshot_delay`], 1 s, as Home Assistant saves a second after a
//!   change; at most [`StoreOptions::snapshot_max_delay`] into a stream), a background
//!   thread rewrites the changed files behind a checkpoint while group commits go on, so
//!   a copy of `.storage` is never far behind; the journal stays the path to durability.
//! - **Usage metadata** (`last_used_at`, `last_used_ip`, sliding `expire_at`) is
//!   coalesced and journaled at most once per interval (1 s by default): a crash may
//!   lose the usage of that last interval, and nothing else.
//!
//! Loading follows Home Assistant's rules and soft migrations (reference §1), with one
//! deliberate difference: a file that is not valid JSON stops the open with its path and
//! the parse error and is never renamed, replaced or overwritten. Datetimes in other
//! offsets are converted to UTC (and written back as UTC).
//!
//! **Indexes.** Besides ids and token values, the provider's entries and the credentials
//! that carry a `username` are indexed by normalised username (Home Assistant's
//! `strip().casefold()`, which `latch-models` defines), so a login looks one name up
//! instead of folding every stored one.
//!
//! What it must not do: no auth logic (password hashing, username rules, token expiry
//! rules and TOTP codes belong to the provider, token and MFA crates; the store only
//! keys by the normalisation), no async runtime of its own (a plain writer thread; async
//! callers await a oneshot), and no IO on reads: every lookup is served from memory.
//!
//! ```
//! use latch_store::{Change, Store, StoreOptions};
//! use latch_models::{GroupId, User, GROUP_ID_ADMIN};
//!
//! let home = tempfile::tempdir()?;
//! let store = Store::open(home.path(), StoreOptions::default())?;
//! let mut user = User::new(Some("Paulus".into()));
//! user.is_active = true;
//! user.group_ids.push(GroupId::from(GROUP_ID_ADMIN));
//! store.commit_blocking(vec![Change::PutUser(user.clone())])?;
//! assert_eq!(store.user(user.id.as_str()).unwrap().name.as_deref(), Some("Paulus"));
//! store.close_blocking()?;
//! assert!(home.path().join(".storage/auth").exists());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod change;
mod data;
mod datetime;
mod error;
mod file;
mod format;
mod index;
#[cfg(test)]
mod index_tests;
mod journal;
mod load;
mod log;
#[cfg(test)]
mod replay_tests;
mod settle;
mod store;

pub use change::{Change, HaUser, TotpState};
pub use data::AuthData;
pub use datetime::{format_datetime, parse_datetime};
pub use error::{ChangeError, StoreError};
pub use file::{JOURNAL_FILE, LOCK_FILE, STORAGE_MINOR_VERSION, STORAGE_VERSION, StoreFile};
pub use log::{AppliedBatch, Effect, LogRequest, LogSide, Prepared, Proposal, StateCapture};
pub use store::{CommitError, FaultHook, Store, StoreOptions, StoreStats, WriteStep};
