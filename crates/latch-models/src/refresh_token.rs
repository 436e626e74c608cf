//! Refresh tokens: the long-lived secret behind every access token.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{CredentialId, RefreshTokenId, Secret, UserId};

/// Default access-token lifetime: 30 minutes, in seconds.
pub const ACCESS_TOKEN_EXPIRATION: f64 = 1800.0;
/// Sliding refresh-token expiry of `normal` tokens: 90 days, in seconds.
pub const REFRESH_TOKEN_EXPIRATION: f64 = 7_776_000.0;

/// The three kinds of refresh token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    /// A login session of a person; expires 90 days after last use.
    Normal,
    /// The only kind a system-generated user may hold; never expires.
    System,
    /// A long-lived access token (a named refresh token of a person); never expires.
    LongLivedAccessToken,
}

impl TokenType {
    /// The string Home Assistant stores.
    #[must_use]
    pub fn as_str(self) -> &'static str {
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

/// A token type string that is none of the three known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

/// A refresh token with every field Home Assistant stores.
#[derive(Clone, Debug, PartialEq)]
pub struct RefreshToken {
    /// uuid4 hex; the `iss` of its access tokens.
    pub id: RefreshTokenId,
    /// The owning user.
    pub user_id: UserId,
    /// OAuth client id; `None` for system and (usually) long-lived tokens.
    pub client_id: Option<String>,
    /// Name of a long-lived token (unique per user among long-lived tokens).
    pub client_name: Option<String>,
    /// Icon of a long-lived token.
    pub client_icon: Option<String>,
    /// Which kind of token this is.
    pub token_type: TokenType,
    /// Creation time (microsecond resolution).
    pub created_at: DateTime<Utc>,
    /// Lifetime of minted access tokens, in seconds (`timedelta.total_seconds()`).
    pub access_token_expiration: f64,
    /// The refresh token string: 128 hex characters (64 random bytes).
    pub token: Secret,
    /// The HS256 key of its access tokens: 128 hex characters, used as UTF-8 bytes.
    pub jwt_key: Secret,
    /// When an access token was last minted from it.
    pub last_used_at: Option<DateTime<Utc>>,
    /// The IP address of that last use.
    pub last_used_ip: Option<String>,
    /// Absolute expiry as a Unix timestamp in seconds; only `normal` tokens have one.
    pub expire_at: Option<f64>,
    /// The credential that logged in to create it.
    pub credential_id: Option<CredentialId>,
    /// The software version that created it (Home Assistant writes its own version).
    pub version: Option<String>,
}

impl RefreshToken {
    /// Whole seconds an access token minted from this refresh token lives
    /// (`int(access_token_expiration)`, as Home Assistant computes `exp`).
    #[must_use]
    #[allow(clippy::cast_possible_truncation)]
    pub fn access_token_lifetime_secs(&self) -> i64 {
        if self.access_token_expiration.is_finite() {
            self.access_token_expiration.trunc() as i64
        } else {
            0
        }
    }

    /// True if `expire_at` is set and at or before `now`.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        let now_f = now.timestamp_micros() as f64 / 1e6;
        self.expire_at.is_some_and(|at| at <= now_f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_type_strings_round_trip() {
        for t in [
            TokenType::Normal,
            TokenType::System,
            TokenType::LongLivedAccessToken,
        ] {
            assert_eq!(t.as_str().parse::<TokenType>().unwrap(), t);
            assert_eq!(
                serde_json::to_string(&t).unwrap(),
                format!("\"{}\"", t.as_str())
            );
        }
        assert!("bogus".parse::<TokenType>().is_err());
    }
}
