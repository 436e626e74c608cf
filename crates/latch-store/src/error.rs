//! The store's errors.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use latch_models::{CredentialId, GroupId, RefreshTokenId, UserId};

/// Everything that can go wrong opening, reading from or writing to a [`Store`](crate::Store).
///
/// Load errors name the file; nothing on disk is changed or overwritten when one is
/// returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An operating-system call on a file or directory failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `write`, `rename`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error (shared: one failed group commit fails every waiter).
        #[source]
        source: Arc<io::Error>,
    },
    /// A snapshot file is not JSON. Unlike Home Assistant, which renames such a file
    /// and starts empty, latch stops: the file is left exactly as it is.
    #[error("{} is not valid json, and was left untouched: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and why parsing failed.
        #[source]
        source: serde_json::Error,
    },
    /// A snapshot file is JSON but its content breaks the format (a missing field, a
    /// user in an unknown group, a credential of an unknown user, ...).
    #[error("invalid data in {}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the offending ids.
        reason: String,
    },
    /// A snapshot file has a major storage version this build cannot read.
    #[error("{} has storage version {found}, but only version {supported} can be read", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
        /// The version latch reads and writes.
        supported: u64,
    },
    /// The journal holds a damaged record that is followed by more data, so it is not a
    /// torn tail from a crash but corruption. Nothing was changed.
    #[error("journal {} is corrupt at byte {offset}: {reason}", path.display())]
    CorruptJournal {
        /// The journal file.
        path: PathBuf,
        /// Byte offset of the damaged record.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// Another store holds the directory's lock file.
    #[error("{} is locked: another latch store has this directory open", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// A change of a batch breaks referential integrity; nothing of the batch was applied.
    #[error("change {index} of the batch was rejected: {reason}")]
    Rejected {
        /// Position of the offending change in the batch.
        index: usize,
        /// Why.
        #[source]
        reason: ChangeError,
    },
    /// An earlier journal write failed, so the store refuses further writes: memory may
    /// hold changes the disk does not. Reopen the store from disk.
    #[error("the store refuses writes after an earlier write failure ({cause}); reopen it")]
    Poisoned {
        /// The first failure.
        cause: String,
    },
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// The shared log cannot be reached (or the state is being reloaded from it):
    /// the write was not made. Reads go on from memory.
    #[error("the shared store is unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
    /// A shared log batch came out of order: it is not applied (the log is read again).
    #[error("change log batch {found} came where batch {expected} was due")]
    OutOfOrder {
        /// The batch due.
        expected: u64,
        /// The batch that came.
        found: u64,
    },
    /// A value could not be encoded as JSON.
    #[error("cannot encode {what} as json: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
}

impl StoreError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Why a change was refused by [`Store::commit`](crate::Store::commit) (or by
/// [`AuthData::check`](crate::AuthData::check)).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ChangeError {
    /// The change names a user that does not exist.
    #[error("unknown user {0}")]
    UnknownUser(UserId),
    /// The change names a group that does not exist.
    #[error("unknown group {0}")]
    UnknownGroup(GroupId),
    /// The change names a credential that does not exist.
    #[error("unknown credential {0}")]
    UnknownCredential(CredentialId),
    /// The change names a refresh token that does not exist.
    #[error("unknown refresh token {0}")]
    UnknownRefreshToken(RefreshTokenId),
    /// A credential must be linked to a user before it is stored.
    #[error("credential {0} is not linked to a user")]
    UnlinkedCredential(CredentialId),
    /// A stored credential cannot move to another user.
    #[error("credential {credential} belongs to another user than {user}")]
    CredentialOfOtherUser {
        /// The credential.
        credential: CredentialId,
        /// The user the change names.
        user: UserId,
    },
    /// A stored refresh token cannot move to another user.
    #[error("refresh token {token} belongs to another user than {user}")]
    TokenOfOtherUser {
        /// The token.
        token: RefreshTokenId,
        /// The user the change names.
        user: UserId,
    },
    /// The three built-in groups cannot be replaced or removed.
    #[error("group {0} is a system group and cannot be changed")]
    SystemGroup(GroupId),
    /// A group cannot be removed while a user is a member.
    #[error("group {group} still has member {user}")]
    GroupInUse {
        /// The group.
        group: GroupId,
        /// One of its members.
        user: UserId,
    },
    /// No `homeassistant` provider entry has this username.
    #[error("no homeassistant provider entry for username {0:?}")]
    UnknownHaUser(String),
    /// A `homeassistant` provider entry with this username exists already.
    #[error("homeassistant provider entry for username {0:?} exists already")]
    HaUserExists(String),
    /// A value cannot be stored in Home Assistant's format (a non-finite number, a date
    /// outside years 1–9999, a custom group flagged system-generated, ...).
    #[error("invalid value: {0}")]
    InvalidValue(String),
}
