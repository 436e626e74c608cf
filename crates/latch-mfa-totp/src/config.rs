//! The module's configuration (Home Assistant's `MULTI_FACTOR_AUTH_MODULE_SCHEMA` plus
//! latch's `issuer` and `recovery_codes`).

use serde::Deserialize;

use crate::MODULE_TYPE;

/// The module id when the config gives none (Home Assistant: the type).
pub const DEFAULT_ID: &str = "totp";

/// The name of Home Assistant's default TOTP module (`{"type": "totp", "id": "totp",
/// "name": "Authenticator app"}`), used when the config gives none.
pub const DEFAULT_NAME: &str = "Authenticator app";

/// Home Assistant's `TotpAuthModule.DEFAULT_TITLE`, the title of a module configured
/// without a name in Home Assistant itself.
pub const DEFAULT_TITLE: &str = "Time-based One Time Password";

/// The issuer written into provisioning URIs. Authenticator apps show it beside the
/// account, so users who move from Home Assistant keep recognising their entry.
pub const DEFAULT_ISSUER: &str = "Home Assistant";

/// Recovery codes issued per set unless configured otherwise.
pub const DEFAULT_RECOVERY_CODES: usize = 10;

/// The most recovery codes one set may have.
pub const MAX_RECOVERY_CODES: usize = 100;

/// A configuration the module refuses. Nothing is half-applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `type` is present and is not `totp`.
    #[error("mfa module type {0:?} is not totp")]
    WrongType(String),
    /// `id` is empty.
    #[error("the totp module id must not be empty")]
    EmptyId,
    /// `issuer` is empty or holds a `:` (the label separator of an otpauth URI).
    #[error("issuer {0:?} must be non-empty and must not contain ':'")]
    InvalidIssuer(String),
    /// `recovery_codes` is above [`MAX_RECOVERY_CODES`].
    #[error("recovery_codes is {0}, at most {MAX_RECOVERY_CODES} are allowed")]
    TooManyRecoveryCodes(usize),
}

/// The TOTP module's configuration.
///
/// Deserialises from Home Assistant's module config (`type`, `id`, `name`; `type` is
/// optional here but must be `totp` if present) plus latch's `issuer` and
/// `recovery_codes`; any other key is refused.
///
/// ```
/// use latch_mfa_totp::TotpConfig;
///
/// let c: TotpConfig = serde_json::from_value(serde_json::json!({"type": "totp"})).unwrap();
/// assert_eq!((c.id.as_str(), c.name.as_str()), ("totp", "Authenticator app"));
/// assert_eq!((c.issuer.as_str(), c.recovery_codes), ("Home Assistant", 10));
/// assert!(serde_json::from_value::<TotpConfig>(serde_json::json!({"pin": 1})).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawConfig")]
pub struct TotpConfig {
    /// Module id; default [`DEFAULT_ID`].
    pub id: String,
    /// Display name; default [`DEFAULT_NAME`].
    pub name: String,
    /// The issuer of provisioning URIs; default [`DEFAULT_ISSUER`].
    pub issuer: String,
    /// How many recovery codes a set has; default [`DEFAULT_RECOVERY_CODES`]. `0` turns
    /// recovery codes off: none are issued (codes issued earlier stay valid until the
    /// user re-enrols or deposes the module).
    pub recovery_codes: usize,
}

impl Default for TotpConfig {
    fn default() -> Self {
        Self {
            id: DEFAULT_ID.to_owned(),
            name: DEFAULT_NAME.to_owned(),
            issuer: DEFAULT_ISSUER.to_owned(),
            recovery_codes: DEFAULT_RECOVERY_CODES,
        }
    }
}

impl TotpConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id.is_empty() {
            return Err(ConfigError::EmptyId);
        }
        if self.issuer.is_empty() || self.issuer.contains(':') {
            return Err(ConfigError::InvalidIssuer(self.issuer.clone()));
        }
        if self.recovery_codes > MAX_RECOVERY_CODES {
            return Err(ConfigError::TooManyRecoveryCodes(self.recovery_codes));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(rename = "type", default)]
    module_type: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    recovery_codes: Option<usize>,
}

impl TryFrom<RawConfig> for TotpConfig {
    type Error = ConfigError;

    fn try_from(raw: RawConfig) -> Result<Self, ConfigError> {
        if let Some(t) = raw.module_type
            && t != MODULE_TYPE
        {
            return Err(ConfigError::WrongType(t));
        }
        let config = Self {
            id: raw.id.unwrap_or_else(|| DEFAULT_ID.to_owned()),
            name: raw.name.unwrap_or_else(|| DEFAULT_NAME.to_owned()),
            issuer: raw.issuer.unwrap_or_else(|| DEFAULT_ISSUER.to_owned()),
            recovery_codes: raw.recovery_codes.unwrap_or(DEFAULT_RECOVERY_CODES),
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: serde_json::Value) -> Result<TotpConfig, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(parse(json!({})).unwrap(), TotpConfig::default());
        let c = parse(json!({
            "type": "totp", "id": "phone", "name": "Phone",
            "issuer": "My Home", "recovery_codes": 0
        }))
        .unwrap();
        assert_eq!(c.id, "phone");
        assert_eq!(c.name, "Phone");
        assert_eq!(c.issuer, "My Home");
        assert_eq!(c.recovery_codes, 0);
    }

    #[test]
    fn refusals() {
        assert!(
            parse(json!({"type": "notify"}))
                .unwrap_err()
                .contains("not totp")
        );
        assert!(parse(json!({"id": ""})).is_err());
        assert!(parse(json!({"issuer": "a:b"})).is_err());
        assert!(parse(json!({"issuer": ""})).is_err());
        assert!(parse(json!({"recovery_codes": 101})).is_err());
        assert!(parse(json!({"recovery_codes": -1})).is_err());
        assert!(parse(json!({"data": []})).is_err());
    }
}
