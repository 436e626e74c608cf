//! Small values shared by requests, responses and events.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Sensitive;

/// The three kinds of refresh token (the wire mirror of `latch_models::TokenType`).
///
/// Declared here, not borrowed from `latch-models`, so that the wire order of its
/// variants is fixed by this crate alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TokenType {
    /// A login session of a person; expires 90 days after last use.
    Normal,
    /// The only kind a system-generated user may hold; never expires.
    System,
    /// A long-lived access token; never expires.
    LongLivedAccessToken,
}

impl TokenType {
    /// The name Home Assistant stores: `normal`, `system` or `long_lived_access_token`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::System => "system",
            Self::LongLivedAccessToken => "long_lived_access_token",
        }
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<latch_models::TokenType> for TokenType {
    fn from(t: latch_models::TokenType) -> Self {
        match t {
            latch_models::TokenType::Normal => Self::Normal,
            latch_models::TokenType::System => Self::System,
            latch_models::TokenType::LongLivedAccessToken => Self::LongLivedAccessToken,
        }
    }
}

impl From<TokenType> for latch_models::TokenType {
    fn from(t: TokenType) -> Self {
        match t {
            TokenType::Normal => Self::Normal,
            TokenType::System => Self::System,
            TokenType::LongLivedAccessToken => Self::LongLivedAccessToken,
        }
    }
}

/// A string that names no token type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown token type {0:?}: expected normal, system or long_lived_access_token")]
pub struct UnknownTokenType(pub String);

impl FromStr for TokenType {
    type Err = UnknownTokenType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "normal" => Ok(Self::Normal),
            "system" => Ok(Self::System),
            "long_lived_access_token" => Ok(Self::LongLivedAccessToken),
            other => Err(UnknownTokenType(other.to_owned())),
        }
    }
}

/// What a permission check asks for on an entity (Home Assistant's policy keys).
///
/// Declared here so the wire stays independent of the policy engine's own types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PermissionKey {
    /// See the entity's state.
    Read,
    /// Operate the entity.
    Control,
    /// Change the entity's configuration.
    Edit,
}

impl PermissionKey {
    /// The policy key: `read`, `control` or `edit`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Control => "control",
            Self::Edit => "edit",
        }
    }
}

impl fmt::Display for PermissionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no permission key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission key {0:?}: expected read, control or edit")]
pub struct UnknownPermissionKey(pub String);

impl FromStr for PermissionKey {
    type Err = UnknownPermissionKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Self::Read),
            "control" => Ok(Self::Control),
            "edit" => Ok(Self::Edit),
            other => Err(UnknownPermissionKey(other.to_owned())),
        }
    }
}

/// An auth provider, as Home Assistant names a login flow's handler:
/// `(provider_type, provider_id)`, e.g. `("homeassistant", None)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Handler {
    /// The provider type: `homeassistant`, `trusted_networks`, …
    pub provider_type: String,
    /// The provider id from the configuration, if it has one.
    pub provider_id: Option<String>,
}

impl Handler {
    /// The handler for a provider type without an id.
    #[must_use]
    pub fn new(provider_type: impl Into<String>) -> Self {
        Self {
            provider_type: provider_type.into(),
            provider_id: None,
        }
    }

    /// The handler for a provider type with an id.
    #[must_use]
    pub fn with_id(provider_type: impl Into<String>, provider_id: impl Into<String>) -> Self {
        Self {
            provider_type: provider_type.into(),
            provider_id: Some(provider_id.into()),
        }
    }
}

/// Whose rights a permission check is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Subject {
    /// The user with this id.
    User(String),
    /// The user an access token belongs to (validated first; an invalid token is an
    /// `invalid_token` error, not a denial).
    AccessToken(Sensitive),
}

/// What a brute-force lockout is keyed by (latch, beyond Home Assistant).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LockoutKey {
    /// A normalised username, whatever address the attempts came from.
    Username(String),
    /// A source address, whatever usernames it tried.
    Source(IpAddr),
}

impl fmt::Display for LockoutKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Username(name) => write!(f, "username:{name}"),
            Self::Source(ip) => write!(f, "source:{ip}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_type_names_and_model_conversion() {
        for t in [
            TokenType::Normal,
            TokenType::System,
            TokenType::LongLivedAccessToken,
        ] {
            assert_eq!(t.as_str().parse::<TokenType>(), Ok(t));
            let model: latch_models::TokenType = t.into();
            assert_eq!(model.as_str(), t.as_str());
            assert_eq!(TokenType::from(model), t);
        }
        assert!("admin".parse::<TokenType>().is_err());
    }

    #[test]
    fn permission_key_names() {
        for k in [
            PermissionKey::Read,
            PermissionKey::Control,
            PermissionKey::Edit,
        ] {
            assert_eq!(k.as_str().parse::<PermissionKey>(), Ok(k));
            assert_eq!(k.to_string(), k.as_str());
        }
        assert_eq!(
            "write".parse::<PermissionKey>(),
            Err(UnknownPermissionKey("write".into()))
        );
    }

    #[test]
    fn lockout_key_display() {
        assert_eq!(
            LockoutKey::Username("paulus".into()).to_string(),
            "username:paulus"
        );
        assert_eq!(
            LockoutKey::Source("10.0.0.5".parse().unwrap()).to_string(),
            "source:10.0.0.5"
        );
    }

    #[test]
    fn handler_constructors() {
        assert_eq!(Handler::new("homeassistant").provider_id, None);
        let h = Handler::with_id("trusted_networks", "lan");
        assert_eq!(h.provider_type, "trusted_networks");
        assert_eq!(h.provider_id.as_deref(), Some("lan"));
    }
}
