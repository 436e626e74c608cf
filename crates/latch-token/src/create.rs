//! Creating a refresh token: Home Assistant's checks, in its order (reference §3.2).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use latch_models::{
    ACCESS_TOKEN_EXPIRATION, CredentialId, REFRESH_TOKEN_EXPIRATION, RefreshToken, RefreshTokenId,
    TokenType, User, truncate_to_micros,
};

use crate::material::random_token_hex;
use crate::time::unix_seconds;

/// Why a refresh token cannot be created. Each variant is one of Home Assistant's
/// `ValueError`s; [`TokenError::home_assistant_message`] gives its exact text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The user is inactive.
    #[error("user is not active")]
    UserNotActive,
    /// A system-generated user asked for a token bound to a `client_id`.
    #[error("system generated users cannot have refresh tokens connected to a client")]
    SystemUserWithClient,
    /// A system user asked for a non-system token, or a person for a system token.
    #[error("system generated users can only have system type refresh tokens")]
    SystemTypeMismatch,
    /// A `normal` token was asked for without a `client_id`.
    #[error("client is required to generate a refresh token")]
    ClientRequired,
    /// A long-lived token was asked for without a `client_name`.
    #[error("client_name is required for long-lived access token")]
    ClientNameRequired,
    /// The user already has a long-lived token with this exact `client_name`.
    #[error("{client_name} already exists")]
    DuplicateClientName {
        /// The name that is already taken.
        client_name: String,
    },
}

impl TokenError {
    /// The message Home Assistant's `ValueError` carries, byte for byte.
    #[must_use]
    pub fn home_assistant_message(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Self::UserNotActive => "User is not active",
            Self::SystemUserWithClient => {
                "System generated users cannot have refresh tokens connected to a client."
            }
            Self::SystemTypeMismatch => {
                "System generated users can only have system type refresh tokens"
            }
            Self::ClientRequired => "Client is required to generate a refresh token.",
            Self::ClientNameRequired => "Client_name is required for long-lived access token",
            Self::DuplicateClientName { client_name } => {
                return Cow::Owned(format!("{client_name} already exists"));
            }
        })
    }
}

/// The arguments of `async_create_refresh_token` other than the user.
///
/// `Default` gives Home Assistant's defaults: no client, the token type chosen from the
/// user, access tokens living [`ACCESS_TOKEN_EXPIRATION`] (1800 s), no credential.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRefreshToken {
    /// OAuth client id (an URL); required for `normal` tokens, forbidden for system users.
    pub client_id: Option<String>,
    /// Name of a long-lived token; required for those. `Some("")` is stored as `None`.
    pub client_name: Option<String>,
    /// Icon of a long-lived token. `Some("")` is stored as `None`.
    pub client_icon: Option<String>,
    /// `None`: `system` for system-generated users, `normal` otherwise.
    pub token_type: Option<TokenType>,
    /// Lifetime of the access tokens it mints, in seconds.
    pub access_token_expiration: f64,
    /// The credential that logged in.
    pub credential_id: Option<CredentialId>,
}

impl Default for NewRefreshToken {
    fn default() -> Self {
        Self {
            client_id: None,
            client_name: None,
            client_icon: None,
            token_type: None,
            access_token_expiration: ACCESS_TOKEN_EXPIRATION,
            credential_id: None,
        }
    }
}

impl NewRefreshToken {
    /// A login session (`normal` token) for an OAuth client.
    #[must_use]
    pub fn normal(client_id: impl Into<String>, credential_id: Option<CredentialId>) -> Self {
        Self {
            client_id: Some(client_id.into()),
            token_type: Some(TokenType::Normal),
            credential_id,
            ..Self::default()
        }
    }

    /// A long-lived access token as the `auth/long_lived_access_token` command asks for
    /// it: no client id, access tokens living `lifespan_days` days.
    #[must_use]
    pub fn long_lived(
        client_name: impl Into<String>,
        client_icon: Option<String>,
        lifespan_days: i64,
    ) -> Self {
        Self {
            client_name: Some(client_name.into()),
            client_icon,
            token_type: Some(TokenType::LongLivedAccessToken),
            access_token_expiration: long_lived_expiration(lifespan_days),
            ..Self::default()
        }
    }
}

/// `timedelta(days=lifespan).total_seconds()`: the access-token lifetime, in seconds, of
/// a long-lived token made with a lifespan of `days` (no bound, as in Home Assistant).
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn long_lived_expiration(days: i64) -> f64 {
    days as f64 * 86_400.0
}

/// Creates a refresh token for `user`, applying Home Assistant's checks in its order:
///
/// 1. inactive user → [`TokenError::UserNotActive`];
/// 2. system user with a `client_id` → [`TokenError::SystemUserWithClient`];
/// 3. missing type → `system` for system users, `normal` otherwise;
/// 4. `expire_at = now + 90 days` for `normal` tokens only;
/// 5. `system_generated != (type == system)` → [`TokenError::SystemTypeMismatch`];
/// 6. `normal` without `client_id` → [`TokenError::ClientRequired`];
/// 7. long-lived without `client_name` → [`TokenError::ClientNameRequired`];
/// 8. long-lived whose `client_name` equals (exactly) that of one of the user's long-lived
///    tokens → [`TokenError::DuplicateClientName`].
///
/// `existing_tokens_of_user` are the user's current tokens; tokens of other users in it
/// are ignored. Empty `client_name`/`client_icon` are stored as `None`. The new token
/// gets a uuid4-hex id, fresh 128-hex-character `token` and `jwt_key`, `created_at =
/// now` and `version`. Nothing is stored: the caller adds the token to its store.
///
/// # Errors
///
/// The [`TokenError`] of the first check that fails.
pub fn create_refresh_token<'a>(
    user: &User,
    existing_tokens_of_user: impl IntoIterator<Item = &'a RefreshToken>,
    params: NewRefreshToken,
    now: DateTime<Utc>,
    version: &str,
) -> Result<RefreshToken, TokenError> {
    let NewRefreshToken {
        client_id,
        client_name,
        client_icon,
        token_type,
        access_token_expiration,
        credential_id,
    } = params;

    if !user.is_active {
        return Err(TokenError::UserNotActive);
    }
    if user.system_generated && client_id.is_some() {
        return Err(TokenError::SystemUserWithClient);
    }
    let token_type = token_type.unwrap_or(if user.system_generated {
        TokenType::System
    } else {
        TokenType::Normal
    });
    let now = truncate_to_micros(now);
    let expire_at =
        (token_type == TokenType::Normal).then(|| unix_seconds(now) + REFRESH_TOKEN_EXPIRATION);
    if user.system_generated != (token_type == TokenType::System) {
        return Err(TokenError::SystemTypeMismatch);
    }
    if token_type == TokenType::Normal && client_id.is_none() {
        return Err(TokenError::ClientRequired);
    }
    if token_type == TokenType::LongLivedAccessToken {
        let Some(name) = client_name.as_deref() else {
            return Err(TokenError::ClientNameRequired);
        };
        let taken = existing_tokens_of_user.into_iter().any(|t| {
            t.user_id == user.id
                && t.token_type == TokenType::LongLivedAccessToken
                && t.client_name.as_deref() == Some(name)
        });
        if taken {
            return Err(TokenError::DuplicateClientName {
                client_name: name.to_owned(),
            });
        }
    }

    Ok(RefreshToken {
        id: RefreshTokenId::random(),
        user_id: user.id.clone(),
        client_id,
        client_name: client_name.filter(|s| !s.is_empty()),
        client_icon: client_icon.filter(|s| !s.is_empty()),
        token_type,
        created_at: now,
        access_token_expiration,
        token: random_token_hex(),
        jwt_key: random_token_hex(),
        last_used_at: None,
        last_used_ip: None,
        expire_at,
        credential_id,
        version: Some(version.to_owned()),
    })
}
