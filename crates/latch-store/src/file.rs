//! The files of a store directory.

use std::fmt;

/// File name of the journal in `.storage`.
pub const JOURNAL_FILE: &str = "latch.journal";
/// File name of the advisory lock in `.storage`.
pub const LOCK_FILE: &str = "latch.lock";
/// The storage version (major) of every snapshot file.
pub const STORAGE_VERSION: u64 = 1;
/// The storage minor version of every snapshot file.
pub const STORAGE_MINOR_VERSION: u64 = 1;

/// One snapshot file. Each is written whole (temp file, fsync, rename, fsync of the
/// directory) and only when its content changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreFile {
    /// `auth`: users, groups, credentials, refresh tokens (Home Assistant's).
    Auth,
    /// `auth_provider.homeassistant`: usernames and password hashes (Home Assistant's).
    HaProvider,
    /// `auth_module.totp`: TOTP secrets (Home Assistant's).
    Totp,
    /// `latch.auth_module.totp`: latch's TOTP extensions (last step, recovery codes).
    LatchTotp,
}

impl StoreFile {
    /// All snapshot files, in the order compaction writes them.
    pub const ALL: [StoreFile; 4] = [Self::Auth, Self::HaProvider, Self::Totp, Self::LatchTotp];

    /// The file name in `.storage`, which is also the envelope's `key`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::HaProvider => "auth_provider.homeassistant",
            Self::Totp => "auth_module.totp",
            Self::LatchTotp => "latch.auth_module.totp",
        }
    }

    /// The temp file compaction writes before renaming it over [`StoreFile::name`].
    #[must_use]
    pub fn temp_name(self) -> String {
        format!("{}.latch-tmp", self.name())
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Self::Auth => 0,
            Self::HaProvider => 1,
            Self::Totp => 2,
            Self::LatchTotp => 3,
        }
    }
}

impl fmt::Display for StoreFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
