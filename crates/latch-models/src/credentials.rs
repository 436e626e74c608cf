//! Credentials: the link between a provider's account and a latch user.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{CredentialId, GroupId, UserId};

/// A credential of an auth provider (for example `{"username": "paulus"}` for the
/// `homeassistant` provider).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Credentials {
    /// uuid4 hex.
    pub id: CredentialId,
    /// The user this credential belongs to; `None` until it is linked.
    pub user_id: Option<UserId>,
    /// Provider type, e.g. `homeassistant` or `trusted_networks`.
    pub auth_provider_type: String,
    /// Provider id, `None` for the default instance of a type.
    pub auth_provider_id: Option<String>,
    /// Provider-defined data.
    pub data: Map<String, Value>,
    /// True until the credential is linked to a user or loaded from disk. Never persisted.
    #[serde(skip, default)]
    pub is_new: bool,
}

impl Credentials {
    /// A new, unlinked credential (`is_new = true`).
    #[must_use]
    pub fn new(
        auth_provider_type: impl Into<String>,
        auth_provider_id: Option<String>,
        data: Map<String, Value>,
    ) -> Self {
        Self {
            id: CredentialId::random(),
            user_id: None,
            auth_provider_type: auth_provider_type.into(),
            auth_provider_id,
            data,
            is_new: true,
        }
    }

    /// A string field of `data`, if present.
    #[must_use]
    pub fn data_str(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(Value::as_str)
    }
}

/// What a provider tells the manager about the user behind a new credential.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserMeta {
    /// Display name for the new user.
    pub name: Option<String>,
    /// Whether the new user starts active.
    pub is_active: bool,
    /// Group for the new user; `None` means `system-admin`.
    pub group: Option<GroupId>,
    /// `None` means the default (false).
    pub local_only: Option<bool>,
}
