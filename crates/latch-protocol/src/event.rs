//! Events pushed to subscribed connections.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{LockoutKey, Timestamp, TokenType};

/// Something that happened in the daemon, pushed to connections that subscribed to its
/// [`EventKind`]. Events carry ids and facts, **never secrets**.
///
/// **Append-only**, and each new variant gets a new [`EventKind`] at the end of that
/// enum too: a client only receives kinds it named in its subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A user was created (by an operator, onboarding, or a first login).
    UserAdded {
        /// The new user.
        user_id: String,
    },
    /// A user was changed.
    UserUpdated {
        /// The user.
        user_id: String,
    },
    /// A user was removed.
    UserRemoved {
        /// The former user.
        user_id: String,
    },
    /// A refresh token was issued (a login, a long-lived token, a system token).
    RefreshTokenCreated {
        /// The owner.
        user_id: String,
        /// The new token's id.
        refresh_token_id: String,
        /// Its kind.
        token_type: TokenType,
        /// The OAuth client it was issued to.
        client_id: Option<String>,
        /// The long-lived token's name.
        client_name: Option<String>,
    },
    /// A refresh token was revoked or expired; access tokens minted from it stop
    /// validating at once.
    RefreshTokenRevoked {
        /// The owner.
        user_id: String,
        /// The token's id.
        refresh_token_id: String,
    },
    /// A login flow finished with tokens.
    LoginSucceeded {
        /// Who logged in.
        user_id: String,
        /// With which provider type.
        provider_type: String,
        /// From which address, if the calling service said.
        source: Option<IpAddr>,
    },
    /// A login attempt failed (wrong password or code, blocked user, locked out).
    LoginFailed {
        /// The username tried, if the provider has usernames.
        username: Option<String>,
        /// With which provider type.
        provider_type: String,
        /// From which address, if the calling service said.
        source: Option<IpAddr>,
        /// Why, as a short key: `invalid_auth`, `invalid_code`, `login_blocked`,
        /// `too_many_attempts`, …
        reason: String,
    },
    /// Too many failures: attempts for `key` are refused until `until`.
    LockoutStarted {
        /// What is locked out.
        key: LockoutKey,
        /// When the lockout ends.
        until: Timestamp,
    },
    /// A lockout was lifted by an operator before it ended.
    LockoutCleared {
        /// What was locked out.
        key: LockoutKey,
    },
}

impl Event {
    /// The event's kind, for subscription filters.
    #[must_use]
    pub const fn kind(&self) -> EventKind {
        match self {
            Self::UserAdded { .. } => EventKind::UserAdded,
            Self::UserUpdated { .. } => EventKind::UserUpdated,
            Self::UserRemoved { .. } => EventKind::UserRemoved,
            Self::RefreshTokenCreated { .. } => EventKind::RefreshTokenCreated,
            Self::RefreshTokenRevoked { .. } => EventKind::RefreshTokenRevoked,
            Self::LoginSucceeded { .. } => EventKind::LoginSucceeded,
            Self::LoginFailed { .. } => EventKind::LoginFailed,
            Self::LockoutStarted { .. } => EventKind::LockoutStarted,
            Self::LockoutCleared { .. } => EventKind::LockoutCleared,
        }
    }
}

/// The kinds of [`Event`], one per variant, for [`Request::Subscribe`](crate::Request).
///
/// **Append-only**, in step with [`Event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    /// [`Event::UserAdded`].
    UserAdded,
    /// [`Event::UserUpdated`].
    UserUpdated,
    /// [`Event::UserRemoved`].
    UserRemoved,
    /// [`Event::RefreshTokenCreated`].
    RefreshTokenCreated,
    /// [`Event::RefreshTokenRevoked`].
    RefreshTokenRevoked,
    /// [`Event::LoginSucceeded`].
    LoginSucceeded,
    /// [`Event::LoginFailed`].
    LoginFailed,
    /// [`Event::LockoutStarted`].
    LockoutStarted,
    /// [`Event::LockoutCleared`].
    LockoutCleared,
}

impl EventKind {
    /// Every kind this version knows, in wire order.
    pub const ALL: [Self; 9] = [
        Self::UserAdded,
        Self::UserUpdated,
        Self::UserRemoved,
        Self::RefreshTokenCreated,
        Self::RefreshTokenRevoked,
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::LockoutStarted,
        Self::LockoutCleared,
    ];

    /// The stable `snake_case` name (`user_added`, …), as Home Assistant names its auth
    /// events where it has them.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UserAdded => "user_added",
            Self::UserUpdated => "user_updated",
            Self::UserRemoved => "user_removed",
            Self::RefreshTokenCreated => "refresh_token_created",
            Self::RefreshTokenRevoked => "refresh_token_revoked",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::LockoutStarted => "lockout_started",
            Self::LockoutCleared => "lockout_cleared",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no event kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown event kind {0:?}")]
pub struct UnknownEventKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownEventKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownEventKind(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn kind_names_are_unique_and_parse_back() {
        let mut names = HashSet::new();
        for (i, kind) in EventKind::ALL.into_iter().enumerate() {
            assert!(names.insert(kind.as_str()));
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
            // ALL is in wire order.
            assert_eq!(
                postcard::to_stdvec(&kind).unwrap(),
                [u8::try_from(i).unwrap()]
            );
        }
        assert_eq!(
            "user_exploded".parse::<EventKind>(),
            Err(UnknownEventKind("user_exploded".into()))
        );
    }
}
