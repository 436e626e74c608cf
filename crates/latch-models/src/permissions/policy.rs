//! The policy document, its constants and Home Assistant's schema check.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The only category the engine reads: `"entities"` (HA's `CAT_ENTITIES`).
pub const CAT_ENTITIES: &str = "entities";
/// Subcategory matching every entity: `"all"` (HA's `SUBCAT_ALL`).
pub const SUBCAT_ALL: &str = "all";
/// Subcategory keyed by entity id: `"entity_ids"`.
pub const SUBCAT_ENTITY_IDS: &str = "entity_ids";
/// Subcategory keyed by the entity's device id: `"device_ids"`.
pub const SUBCAT_DEVICE_IDS: &str = "device_ids";
/// Subcategory keyed by the area of the entity's device: `"area_ids"`.
pub const SUBCAT_AREA_IDS: &str = "area_ids";
/// Subcategory keyed by the entity's domain: `"domains"`.
pub const SUBCAT_DOMAINS: &str = "domains";

/// The keys an `entities` dict may hold, in the engine's priority order.
pub(crate) const ENTITY_SUBCATEGORIES: [&str; 5] = [
    SUBCAT_ENTITY_IDS,
    SUBCAT_DEVICE_IDS,
    SUBCAT_AREA_IDS,
    SUBCAT_DOMAINS,
    SUBCAT_ALL,
];

/// A group's permission policy, kept verbatim in the JSON shape Home Assistant stores.
///
/// ```text
/// policy   := { "entities"?: CATEGORY }
/// CATEGORY := true | { "all"?: VALUE, "entity_ids"?: SUBCAT, "device_ids"?: SUBCAT,
///                      "area_ids"?: SUBCAT, "domains"?: SUBCAT }
/// SUBCAT   := true | { <key>: VALUE }
/// VALUE    := true | { "read"?: true, "control"?: true, "edit"?: true }
/// ```
///
/// # Lenient deserialization, explicit validation
///
/// [`Deserialize`] accepts **any JSON object** and keeps it exactly, key order
/// included, so a store written by Home Assistant loads and saves back byte for byte.
/// That is what Home Assistant itself does: its store loads group policies without
/// checking them. The schema check Home Assistant applies to a custom group's policy is
/// [`Policy::validate`] (or the validating constructors [`Policy::from_json`] and
/// `TryFrom<Value>`); call it wherever a policy comes from a user rather than from the
/// store. Compiling an invalid policy never panics; see [`CompiledPolicy`] for how
/// invalid values are read.
///
/// Equality compares content, not key order (as `serde_json::Map` does).
///
/// [`CompiledPolicy`]: super::CompiledPolicy
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Policy(Map<String, Value>);

impl Policy {
    /// `{}`: denies everything. The merge of no groups.
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// `{"entities": true}`: the policy of `system-admin` and `system-users`.
    #[must_use]
    pub fn all_entities() -> Self {
        Self::from_map(entities(json!(true)))
    }

    /// `{"entities": {"all": {"read": true}}}`: the policy of `system-read-only`.
    #[must_use]
    pub fn read_only() -> Self {
        Self::from_map(entities(json!({"all": {"read": true}})))
    }

    /// Wraps a JSON object without checking it (what loading a store does).
    #[must_use]
    pub fn from_map(map: Map<String, Value>) -> Self {
        Self(map)
    }

    /// Builds a policy from JSON and checks it against Home Assistant's schema.
    ///
    /// # Errors
    ///
    /// [`PolicyError`] naming the first offending path when `value` is not an object or
    /// does not follow the grammar in [`Policy`].
    pub fn from_json(value: Value) -> Result<Self, PolicyError> {
        match value {
            Value::Object(map) => {
                let policy = Self(map);
                policy.validate()?;
                Ok(policy)
            }
            other => Err(PolicyError::WrongType {
                path: String::new(),
                expected: "an object",
                found: kind(&other),
            }),
        }
    }

    /// Home Assistant's `POLICY_SCHEMA`: checks the policy against the grammar in
    /// [`Policy`].
    ///
    /// Like the voluptuous schema it ports, it refuses `false`, `null`, keys the grammar
    /// does not name (top-level categories other than `entities` included) and anything
    /// that is not the literal `true` where `true` is expected.
    ///
    /// # Errors
    ///
    /// The first [`PolicyError`] found, walking the document in key order.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for (key, value) in &self.0 {
            if key == CAT_ENTITIES {
                validate_category(value, key)?;
            } else {
                return Err(PolicyError::UnknownKey {
                    path: key.clone(),
                    expected: "entities",
                });
            }
        }
        Ok(())
    }

    /// The value of `category`, if present (it may be `null`).
    #[must_use]
    pub fn category(&self, category: &str) -> Option<&Value> {
        self.0.get(category)
    }

    /// The `entities` category, if present (it may be `null`).
    #[must_use]
    pub fn entities(&self) -> Option<&Value> {
        self.category(CAT_ENTITIES)
    }

    /// True for `{}`.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The underlying JSON object, in stored key order.
    #[must_use]
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The underlying JSON object.
    #[must_use]
    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }

    /// The policy as a JSON value (an object).
    #[must_use]
    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }
}

impl TryFrom<Value> for Policy {
    type Error = PolicyError;

    /// Same as [`Policy::from_json`].
    fn try_from(value: Value) -> Result<Self, Self::Error> {
        Self::from_json(value)
    }
}

impl From<Policy> for Value {
    fn from(policy: Policy) -> Self {
        Value::Object(policy.0)
    }
}

fn entities(category: Value) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert(CAT_ENTITIES.to_owned(), category);
    map
}

/// Why a policy does not follow Home Assistant's schema. `path` is the dotted path from
/// the top of the policy (`entities.entity_ids.light.kitchen.read`); the policy itself
/// is shown as `policy`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// `false` where only `true` (or a dict) is allowed.
    #[error("{}: false is not allowed, only true", show(path))]
    FalseNotAllowed {
        /// Where the `false` is.
        path: String,
    },
    /// A value of the wrong JSON type (`null` included).
    #[error("{}: expected {expected}, found {found}", show(path))]
    WrongType {
        /// Where the value is.
        path: String,
        /// What the grammar allows there.
        expected: &'static str,
        /// What was found (`null`, `a string`, `an array`, ...).
        found: &'static str,
    },
    /// A key the grammar does not name.
    #[error("{}: unknown key, expected one of {expected}", show(path))]
    UnknownKey {
        /// Path of the key itself.
        path: String,
        /// The keys allowed in that dict.
        expected: &'static str,
    },
}

impl PolicyError {
    /// The dotted path of the offending value (empty for the policy itself).
    #[must_use]
    pub fn path(&self) -> &str {
        match self {
            Self::FalseNotAllowed { path }
            | Self::WrongType { path, .. }
            | Self::UnknownKey { path, .. } => path,
        }
    }
}

fn show(path: &str) -> &str {
    if path.is_empty() { "policy" } else { path }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A short name of the JSON type of `value`, for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(true) => "true",
        Value::Bool(false) => "false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `true`, or the dict `check` accepts; anything else is an error at `path`.
fn true_or_dict(
    value: &Value,
    path: &str,
    check: impl FnOnce(&Map<String, Value>) -> Result<(), PolicyError>,
) -> Result<(), PolicyError> {
    match value {
        Value::Bool(true) => Ok(()),
        Value::Bool(false) => Err(PolicyError::FalseNotAllowed {
            path: path.to_owned(),
        }),
        Value::Object(map) => check(map),
        other => Err(PolicyError::WrongType {
            path: path.to_owned(),
            expected: "true or an object",
            found: kind(other),
        }),
    }
}

/// `CATEGORY := true | { "all"?: VALUE, <subcategory>?: SUBCAT }`.
fn validate_category(value: &Value, path: &str) -> Result<(), PolicyError> {
    true_or_dict(value, path, |map| {
        for (key, sub) in map {
            let sub_path = join(path, key);
            match key.as_str() {
                SUBCAT_ALL => validate_value(sub, &sub_path)?,
                SUBCAT_ENTITY_IDS | SUBCAT_DEVICE_IDS | SUBCAT_AREA_IDS | SUBCAT_DOMAINS => {
                    validate_subcategory(sub, &sub_path)?;
                }
                _ => {
                    return Err(PolicyError::UnknownKey {
                        path: sub_path,
                        expected: "all, entity_ids, device_ids, area_ids, domains",
                    });
                }
            }
        }
        Ok(())
    })
}

/// `SUBCAT := true | { <key>: VALUE }`.
fn validate_subcategory(value: &Value, path: &str) -> Result<(), PolicyError> {
    true_or_dict(value, path, |map| {
        map.iter()
            .try_for_each(|(key, v)| validate_value(v, &join(path, key)))
    })
}

/// `VALUE := true | { "read"?: true, "control"?: true, "edit"?: true }`.
fn validate_value(value: &Value, path: &str) -> Result<(), PolicyError> {
    true_or_dict(value, path, |map| {
        for (key, v) in map {
            let key_path = join(path, key);
            if !matches!(key.as_str(), "read" | "control" | "edit") {
                return Err(PolicyError::UnknownKey {
                    path: key_path,
                    expected: "read, control, edit",
                });
            }
            match v {
                Value::Bool(true) => {}
                Value::Bool(false) => return Err(PolicyError::FalseNotAllowed { path: key_path }),
                other => {
                    return Err(PolicyError::WrongType {
                        path: key_path,
                        expected: "true",
                        found: kind(other),
                    });
                }
            }
        }
        Ok(())
    })
}
