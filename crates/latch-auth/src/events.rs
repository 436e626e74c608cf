//! Events the manager fires. They carry ids and reasons, never a secret.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use latch_models::{RefreshTokenId, TokenType, UserId};

use crate::throttle::ThrottleKey;

/// Something a subscriber may want to react to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthEvent {
    /// A user was created (by an operator, onboarding, or a first login).
    UserAdded {
        /// The new user.
        user_id: UserId,
    },
    /// A user was updated (fired on every update request, even with no change, as Home
    /// Assistant does; also on activation, deactivation and group changes).
    UserUpdated {
        /// The user.
        user_id: UserId,
    },
    /// A user was removed.
    UserRemoved {
        /// The user that was removed.
        user_id: UserId,
    },
    /// A refresh token was created.
    RefreshTokenCreated {
        /// Its owner.
        user_id: UserId,
        /// The token's id.
        refresh_token_id: RefreshTokenId,
        /// Its type.
        token_type: TokenType,
        /// Its client id, if any.
        client_id: Option<String>,
        /// Its name (long-lived tokens).
        client_name: Option<String>,
    },
    /// A refresh token was revoked (explicitly, by deactivation, removal or expiry).
    RefreshTokenRevoked {
        /// Its owner.
        user_id: UserId,
        /// The token's id.
        refresh_token_id: RefreshTokenId,
    },
    /// A login step failed (wrong password or code, lockout, blocked user).
    LoginFailed {
        /// The username as typed, if the step had one.
        username: Option<String>,
        /// The provider type of the flow.
        provider_type: String,
        /// The caller's address, if known.
        source: Option<IpAddr>,
        /// `invalid_auth`, `invalid_code`, `too_many_retry`, `too_many_attempts`,
        /// `login_expired` or a blocked-login reason.
        reason: String,
    },
    /// A login flow finished and issued tokens.
    LoginSucceeded {
        /// Who logged in.
        user_id: UserId,
        /// The provider type of the flow.
        provider_type: String,
        /// The caller's address, if known.
        source: Option<IpAddr>,
    },
    /// An operator cleared a username's or source's failures and lockout.
    LockoutCleared {
        /// What was cleared.
        key: ThrottleKey,
    },
    /// A username or source was locked out.
    LockoutStarted {
        /// What is locked.
        key: ThrottleKey,
        /// Until when.
        until: DateTime<Utc>,
    },
}

impl AuthEvent {
    /// The event's name, as Home Assistant names its events where it has one.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::UserAdded { .. } => "user_added",
            Self::UserUpdated { .. } => "user_updated",
            Self::UserRemoved { .. } => "user_removed",
            Self::RefreshTokenCreated { .. } => "refresh_token_created",
            Self::RefreshTokenRevoked { .. } => "refresh_token_revoked",
            Self::LoginFailed { .. } => "login_failed",
            Self::LoginSucceeded { .. } => "login_succeeded",
            Self::LockoutStarted { .. } => "lockout_started",
            Self::LockoutCleared { .. } => "lockout_cleared",
        }
    }
}
