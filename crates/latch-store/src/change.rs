//! Mutations: what [`Store::commit`](crate::Store::commit) takes and the journal records.
//!
//! Every change says what a key's value is (or that it is gone), never "add one more",
//! and applies leniently: a change naming something absent is a no-op. Replay itself is
//! exact: each file's changes are replayed from the point its snapshot was taken (the
//! journal's checkpoints tell), never over a state that already contains them, because
//! the order of users, credentials and tokens would not survive a double application.

use chrono::{DateTime, Utc};
use latch_models::{
    CredentialId, Credentials, Group, GroupId, RefreshToken, RefreshTokenId, Secret, User, UserId,
};
use serde::{Deserialize, Serialize};

use crate::file::StoreFile;

/// One entry of the `homeassistant` auth provider's file: a username and the Base64 of
/// its bcrypt hash, stored exactly as given (normalisation and hashing are the provider's
/// job).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaUser {
    /// The username as stored.
    pub username: String,
    /// Base64 of the bcrypt string.
    pub password: Secret,
}

/// latch's own per-user TOTP state, kept in `latch.auth_module.totp` beside Home
/// Assistant's `auth_module.totp` so that file stays exactly Home Assistant's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TotpState {
    /// The last TOTP time step accepted, so a code cannot be used twice.
    pub last_step: Option<u64>,
    /// Hashes of the unused recovery codes.
    pub recovery_codes: Vec<Secret>,
}

/// One mutation. A batch of them is committed atomically: all or nothing, in memory and
/// in the journal. `Debug` never shows a secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Change {
    /// Inserts a user at the end, or replaces the user with that id in place (keeping
    /// its credentials and tokens). Every group id must exist.
    PutUser(User),
    /// Removes a user with its credentials and refresh tokens; absent is a no-op.
    /// TOTP data is not touched (Home Assistant keeps it too).
    RemoveUser(UserId),
    /// Inserts or replaces a custom group (the system groups cannot be changed).
    PutGroup(Group),
    /// Removes a custom group that no user belongs to; absent is a no-op.
    RemoveGroup(GroupId),
    /// Inserts a credential at the end of its user's list, or replaces it in place.
    /// It must be linked to an existing user and cannot move to another user.
    /// `is_new` is stored as false.
    PutCredential(Credentials),
    /// Removes a credential; refresh tokens of its user that name it get
    /// `credential_id: null` (what a reload would give). Absent is a no-op.
    RemoveCredential(CredentialId),
    /// Inserts a refresh token at the end of its user's list, or replaces it in place.
    /// The user (and the credential, if named) must exist; tokens cannot move between users.
    PutRefreshToken(#[serde(with = "crate::format::token_wire")] RefreshToken),
    /// Removes a refresh token; absent is a no-op.
    RemoveRefreshToken(RefreshTokenId),
    /// Sets the usage fields of a token (what `record_usage` journals).
    TokenUsage {
        /// The token.
        id: RefreshTokenId,
        /// When it was last used.
        #[serde(with = "crate::datetime::serde_iso")]
        last_used_at: DateTime<Utc>,
        /// From where.
        last_used_ip: Option<String>,
        /// The new absolute expiry (Unix seconds), or none.
        expire_at: Option<f64>,
    },
    /// Sets or clears a token's absolute expiry (Unix seconds).
    SetTokenExpiry {
        /// The token.
        id: RefreshTokenId,
        /// The new expiry.
        expire_at: Option<f64>,
    },
    /// Replaces the password of the first entry with exactly this username, in place;
    /// appends an entry if there is none.
    PutHaUser {
        /// Exact username.
        username: String,
        /// Base64 of the bcrypt string.
        password: Secret,
    },
    /// Removes the first entry with exactly this username; absent is a no-op.
    RemoveHaUser {
        /// Exact username.
        username: String,
    },
    /// Renames the entry `old` to `new` in place, keeping its password. On commit `old`
    /// must exist and `new` must not. (Applied leniently where `new` exists already,
    /// `old` hands its password to `new` and goes.)
    RenameHaUser {
        /// Current username.
        old: String,
        /// New username.
        new: String,
    },
    /// Sets a user's TOTP secret (in place if one exists, else appended).
    PutTotpSecret {
        /// The user.
        user_id: UserId,
        /// Base32 secret.
        secret: Secret,
    },
    /// Removes a user's TOTP secret; absent is a no-op.
    RemoveTotpSecret {
        /// The user.
        user_id: UserId,
    },
    /// Sets latch's TOTP state of a user (in place if present, else appended).
    PutTotpState {
        /// The user.
        user_id: UserId,
        /// Last accepted time step.
        last_step: Option<u64>,
        /// Hashes of the unused recovery codes.
        recovery_codes: Vec<Secret>,
    },
    /// Removes latch's TOTP state of a user; absent is a no-op.
    RemoveTotpState {
        /// The user.
        user_id: UserId,
    },
    /// A login lockout started on the host that appends it (a shared log only; see
    /// [`Store::share`](crate::Store::share)). It holds no state in the store's files:
    /// every other host applies it to its throttle ([`Effect::LockoutStarted`](crate::Effect)).
    Lockout {
        /// The locked key as latch-auth writes it (`username:NAME` or `source:ADDR`).
        key: String,
        /// When the lockout ends.
        #[serde(with = "crate::datetime::serde_iso")]
        until: DateTime<Utc>,
    },
    /// A lockout and failure count was cleared by an operator (a shared log only).
    ClearLockout {
        /// The key, as in [`Change::Lockout`].
        key: String,
    },
}

impl Change {
    /// The file this change belongs to.
    #[must_use]
    pub fn file(&self) -> StoreFile {
        match self {
            Self::PutUser(_)
            | Self::RemoveUser(_)
            | Self::PutGroup(_)
            | Self::RemoveGroup(_)
            | Self::PutCredential(_)
            | Self::RemoveCredential(_)
            | Self::PutRefreshToken(_)
            | Self::RemoveRefreshToken(_)
            | Self::TokenUsage { .. }
            | Self::SetTokenExpiry { .. }
            // No file holds lockouts; the files store never journals them.
            | Self::Lockout { .. }
            | Self::ClearLockout { .. } => StoreFile::Auth,
            Self::PutHaUser { .. } | Self::RemoveHaUser { .. } | Self::RenameHaUser { .. } => {
                StoreFile::HaProvider
            }
            Self::PutTotpSecret { .. } | Self::RemoveTotpSecret { .. } => StoreFile::Totp,
            Self::PutTotpState { .. } | Self::RemoveTotpState { .. } => StoreFile::LatchTotp,
        }
    }
}
