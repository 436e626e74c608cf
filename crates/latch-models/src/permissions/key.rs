//! The three permission keys an entity check asks about.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a caller wants to do with an entity: Home Assistant's `POLICY_READ`,
/// `POLICY_CONTROL` and `POLICY_EDIT`.
///
/// The keys are independent: `control` does not imply `read`, and `edit` implies
/// neither. Serialized, parsed and displayed lower-case (`"read"`, `"control"`, `"edit"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PermissionKey {
    /// See the entity's state (`"read"`).
    Read,
    /// Call services on the entity (`"control"`).
    Control,
    /// Change the entity's configuration (`"edit"`).
    Edit,
}

impl PermissionKey {
    /// The three keys in Home Assistant's order: read, control, edit.
    pub const ALL: [Self; 3] = [Self::Read, Self::Control, Self::Edit];

    /// The key as it appears in a policy: `"read"`, `"control"` or `"edit"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Control => "control",
            Self::Edit => "edit",
        }
    }

    /// Position in [`PermissionKey::ALL`]; used to index per-key tables.
    pub(crate) const fn index(self) -> usize {
        match self {
            Self::Read => 0,
            Self::Control => 1,
            Self::Edit => 2,
        }
    }
}

impl fmt::Display for PermissionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permission key string that is none of `read`, `control` and `edit`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission key {0:?}: expected read, control or edit")]
pub struct UnknownPermissionKey(pub String);

impl FromStr for PermissionKey {
    type Err = UnknownPermissionKey;

    /// Parses the exact lower-case key; `"READ"` and `" read"` are refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Self::Read),
            "control" => Ok(Self::Control),
            "edit" => Ok(Self::Edit),
            other => Err(UnknownPermissionKey(other.to_owned())),
        }
    }
}
