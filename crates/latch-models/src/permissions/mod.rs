//! Permission policies (Home Assistant's `auth/permissions`).
//!
//! PLACEHOLDER: the policy engine is being written; only the `Policy` type is here.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// A group's permission policy, kept in the JSON shape Home Assistant stores.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Policy(Map<String, Value>);

impl Policy {
    /// `{"entities": true}`: the policy of `system-admin` and `system-users`.
    #[must_use]
    pub fn all_entities() -> Self {
        Self::from_value(json!({"entities": true}))
    }

    /// `{"entities": {"all": {"read": true}}}`: the policy of `system-read-only`.
    #[must_use]
    pub fn read_only() -> Self {
        Self::from_value(json!({"entities": {"all": {"read": true}}}))
    }

    fn from_value(v: Value) -> Self {
        match v {
            Value::Object(m) => Self(m),
            _ => Self::default(),
        }
    }
}
