//! The provider's configuration and its validation (Home Assistant's `CONFIG_SCHEMA`
//! plus latch's `bcrypt_cost`).

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::password::{DEFAULT_BCRYPT_COST, MAX_BCRYPT_COST, MIN_BCRYPT_COST};
use crate::provider::{DEFAULT_NAME, PROVIDER_TYPE};

/// A configuration the provider refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An `id` key is present (with any value). Home Assistant's exact message.
    #[error("ID is not allowed for the homeassistant auth provider.")]
    IdNotAllowed,
    /// `type` is present and is not `homeassistant`.
    #[error("provider type {0:?} is not homeassistant")]
    WrongType(String),
    /// `bcrypt_cost` outside 4..=31.
    #[error("bcrypt_cost {0} is outside 4..=31")]
    CostOutOfRange(u32),
    /// The shape is wrong: an unknown key, a value of the wrong type.
    #[error("invalid homeassistant provider config: {0}")]
    Malformed(String),
}

/// The `homeassistant` provider's configuration.
///
/// Keys: `type` (optional, must be `homeassistant`), `name` (optional), `bcrypt_cost`
/// (latch, optional, default 12, 4..=31). Any other key is refused, and so is `id`:
/// there is only one instance of this provider.
///
/// ```
/// use latch_provider_homeassistant::{ConfigError, HomeAssistantConfig};
///
/// let config = HomeAssistantConfig::from_value(serde_json::json!({"type": "homeassistant"}))?;
/// assert_eq!(config.display_name(), "Home Assistant Local");
/// assert_eq!(config.bcrypt_cost, 12);
///
/// let refused = HomeAssistantConfig::from_value(serde_json::json!({"id": "x"}));
/// assert_eq!(refused, Err(ConfigError::IdNotAllowed));
/// # Ok::<(), ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeAssistantConfig {
    /// Display name; `None` means "Home Assistant Local".
    pub name: Option<String>,
    /// The bcrypt cost new hashes get (Home Assistant: always 12). Stored hashes of a
    /// lower cost are upgraded at the next successful login.
    pub bcrypt_cost: u32,
}

impl Default for HomeAssistantConfig {
    fn default() -> Self {
        Self {
            name: None,
            bcrypt_cost: DEFAULT_BCRYPT_COST,
        }
    }
}

impl HomeAssistantConfig {
    /// Validates a config given as a JSON value.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first problem found.
    pub fn from_value(value: Value) -> Result<Self, ConfigError> {
        let raw =
            RawConfig::deserialize(value).map_err(|e| ConfigError::Malformed(e.to_string()))?;
        Self::from_raw(raw)
    }

    /// Display name: `name`, or "Home Assistant Local".
    #[must_use]
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(DEFAULT_NAME)
    }

    /// Checks a config built in code (one read from JSON is checked already).
    ///
    /// # Errors
    /// [`ConfigError::CostOutOfRange`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if (MIN_BCRYPT_COST..=MAX_BCRYPT_COST).contains(&self.bcrypt_cost) {
            Ok(())
        } else {
            Err(ConfigError::CostOutOfRange(self.bcrypt_cost))
        }
    }

    fn from_raw(raw: RawConfig) -> Result<Self, ConfigError> {
        if let Some(t) = raw.provider_type
            && t != PROVIDER_TYPE
        {
            return Err(ConfigError::WrongType(t));
        }
        if raw.id.is_some() {
            return Err(ConfigError::IdNotAllowed);
        }
        let config = Self {
            name: raw.name,
            bcrypt_cost: raw.bcrypt_cost.unwrap_or(DEFAULT_BCRYPT_COST),
        };
        config.validate()?;
        Ok(config)
    }
}

impl<'de> Deserialize<'de> for HomeAssistantConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawConfig::deserialize(deserializer)?;
        Self::from_raw(raw).map_err(serde::de::Error::custom)
    }
}

/// The config as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(rename = "type", default)]
    provider_type: Option<String>,
    #[serde(default)]
    name: Option<String>,
    /// `Some` whenever the key is present, even with a null value.
    #[serde(default, deserialize_with = "present")]
    id: Option<Value>,
    #[serde(default)]
    bcrypt_cost: Option<u32>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults() {
        let c = HomeAssistantConfig::from_value(json!({})).unwrap();
        assert_eq!(c, HomeAssistantConfig::default());
        assert_eq!(c.display_name(), "Home Assistant Local");
        let c = HomeAssistantConfig::from_value(json!({"type": "homeassistant", "name": "Mine"}))
            .unwrap();
        assert_eq!(c.display_name(), "Mine");
    }

    #[test]
    fn id_is_refused_with_home_assistants_message_even_when_null() {
        for id in [json!("abc"), json!(null)] {
            let e = HomeAssistantConfig::from_value(json!({"type": "homeassistant", "id": id}))
                .unwrap_err();
            assert_eq!(e, ConfigError::IdNotAllowed);
            assert_eq!(
                e.to_string(),
                "ID is not allowed for the homeassistant auth provider."
            );
        }
        let via_serde: Result<HomeAssistantConfig, _> =
            serde_json::from_value(json!({"id": "abc"}));
        assert!(
            via_serde
                .unwrap_err()
                .to_string()
                .contains("ID is not allowed for the homeassistant auth provider.")
        );
    }

    #[test]
    fn cost_range_unknown_keys_and_type_are_checked() {
        assert_eq!(
            HomeAssistantConfig::from_value(json!({"bcrypt_cost": 3})),
            Err(ConfigError::CostOutOfRange(3))
        );
        assert_eq!(
            HomeAssistantConfig::from_value(json!({"bcrypt_cost": 32})),
            Err(ConfigError::CostOutOfRange(32))
        );
        assert_eq!(
            HomeAssistantConfig::from_value(json!({"bcrypt_cost": 4}))
                .unwrap()
                .bcrypt_cost,
            4
        );
        assert!(matches!(
            HomeAssistantConfig::from_value(json!({"users": []})),
            Err(ConfigError::Malformed(_))
        ));
        assert_eq!(
            HomeAssistantConfig::from_value(json!({"type": "trusted_networks"})),
            Err(ConfigError::WrongType("trusted_networks".into()))
        );
        let built = HomeAssistantConfig {
            name: None,
            bcrypt_cost: 40,
        };
        assert_eq!(built.validate(), Err(ConfigError::CostOutOfRange(40)));
    }
}
