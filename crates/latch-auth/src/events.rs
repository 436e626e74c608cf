//! Events the manager fires. They carry ids, names and reasons, never a secret; text
//! that comes from input (a username as typed) is [echoed](latch_models::limits::echo):
//! control characters escaped, at most 255 bytes.
//!
//! Every event serialises ([`serde::Serialize`]) to a flat JSON object: `"event"` is
//! [`AuthEvent::name`] and each field follows under its own name (ids and addresses as
//! strings, times as RFC 3339 UTC with milliseconds, lockout keys as `username:NAME` or
//! `source:ADDR`), so a consumer such as the audit log records every field of every
//! kind, including kinds added later, without a hand-kept list.

use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use latch_models::{CredentialId, RefreshTokenId, TokenType, UserId};
use serde::{Serialize, Serializer};

use crate::throttle::ThrottleKey;

/// Something a subscriber may want to react to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
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
    /// A login step failed (wrong password or code, lockout, blocked user), or a
    /// person's own password change named a wrong current password.
    LoginFailed {
        /// The username as typed (echoed: escaped, at most 255 bytes), if the step had
        /// one.
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
        #[serde(serialize_with = "as_display")]
        key: ThrottleKey,
    },
    /// A username or source was locked out.
    LockoutStarted {
        /// What is locked.
        #[serde(serialize_with = "as_display")]
        key: ThrottleKey,
        /// Until when.
        #[serde(serialize_with = "as_millis")]
        until: DateTime<Utc>,
    },
    /// A credential was stored for a user (a password login added, onboarding, or a
    /// first login through a provider).
    CredentialAdded {
        /// Its user.
        user_id: UserId,
        /// The credential.
        credential_id: CredentialId,
        /// Its provider type.
        provider_type: String,
    },
    /// A credential was removed (with the tokens it signed in).
    CredentialRemoved {
        /// Its user, if it was linked.
        user_id: Option<UserId>,
        /// The credential.
        credential_id: CredentialId,
        /// Its provider type.
        provider_type: String,
    },
    /// An operator set a user's password (without the old one).
    PasswordSet {
        /// The user.
        user_id: UserId,
        /// The password credential.
        credential_id: CredentialId,
    },
    /// A person changed their own password, proving the current one.
    PasswordChanged {
        /// The user.
        user_id: UserId,
        /// The password credential.
        credential_id: CredentialId,
        /// The person's address, if known.
        source: Option<IpAddr>,
    },
    /// A user's password login was renamed.
    UsernameChanged {
        /// The user.
        user_id: UserId,
        /// The password credential.
        credential_id: CredentialId,
        /// The new username.
        username: String,
    },
    /// A user finished setting up an MFA module.
    MfaEnabled {
        /// The user.
        user_id: UserId,
        /// The module.
        module_id: String,
    },
    /// An MFA module was turned off for a user.
    MfaDisabled {
        /// The user.
        user_id: UserId,
        /// The module.
        module_id: String,
    },
    /// A user's recovery codes were replaced by a new set.
    RecoveryCodesRegenerated {
        /// The user.
        user_id: UserId,
        /// The module.
        module_id: String,
    },
}

fn as_display<S: Serializer>(key: &ThrottleKey, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(key)
}

fn as_millis<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

impl AuthEvent {
    /// The event's name, as Home Assistant names its events where it has one; the
    /// `"event"` field of its serialised form.
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
            Self::CredentialAdded { .. } => "credential_added",
            Self::CredentialRemoved { .. } => "credential_removed",
            Self::PasswordSet { .. } => "password_set",
            Self::PasswordChanged { .. } => "password_changed",
            Self::UsernameChanged { .. } => "username_changed",
            Self::MfaEnabled { .. } => "mfa_enabled",
            Self::MfaDisabled { .. } => "mfa_disabled",
            Self::RecoveryCodesRegenerated { .. } => "recovery_codes_regenerated",
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn one_of_each() -> Vec<AuthEvent> {
        let user_id = UserId::from("u1");
        let credential_id = CredentialId::from("c1");
        let until = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        vec![
            AuthEvent::UserAdded {
                user_id: user_id.clone(),
            },
            AuthEvent::UserUpdated {
                user_id: user_id.clone(),
            },
            AuthEvent::UserRemoved {
                user_id: user_id.clone(),
            },
            AuthEvent::RefreshTokenCreated {
                user_id: user_id.clone(),
                refresh_token_id: "t1".into(),
                token_type: TokenType::LongLivedAccessToken,
                client_id: None,
                client_name: Some("ci".into()),
            },
            AuthEvent::RefreshTokenRevoked {
                user_id: user_id.clone(),
                refresh_token_id: "t1".into(),
            },
            AuthEvent::LoginFailed {
                username: Some("bob".into()),
                provider_type: "homeassistant".into(),
                source: Some("10.0.0.1".parse().unwrap()),
                reason: "invalid_auth".into(),
            },
            AuthEvent::LoginSucceeded {
                user_id: user_id.clone(),
                provider_type: "homeassistant".into(),
                source: None,
            },
            AuthEvent::LockoutStarted {
                key: ThrottleKey::username("Bob"),
                until,
            },
            AuthEvent::LockoutCleared {
                key: ThrottleKey::Source("10.0.0.1".parse().unwrap()),
            },
            AuthEvent::CredentialAdded {
                user_id: user_id.clone(),
                credential_id: credential_id.clone(),
                provider_type: "homeassistant".into(),
            },
            AuthEvent::CredentialRemoved {
                user_id: Some(user_id.clone()),
                credential_id: credential_id.clone(),
                provider_type: "homeassistant".into(),
            },
            AuthEvent::PasswordSet {
                user_id: user_id.clone(),
                credential_id: credential_id.clone(),
            },
            AuthEvent::PasswordChanged {
                user_id: user_id.clone(),
                credential_id: credential_id.clone(),
                source: Some("::1".parse().unwrap()),
            },
            AuthEvent::UsernameChanged {
                user_id: user_id.clone(),
                credential_id,
                username: "annie".into(),
            },
            AuthEvent::MfaEnabled {
                user_id: user_id.clone(),
                module_id: "totp".into(),
            },
            AuthEvent::MfaDisabled {
                user_id: user_id.clone(),
                module_id: "totp".into(),
            },
            AuthEvent::RecoveryCodesRegenerated {
                user_id,
                module_id: "totp".into(),
            },
        ]
    }

    #[test]
    fn every_event_serialises_flat_under_its_name() {
        let events = one_of_each();
        let mut names: Vec<&str> = events.iter().map(AuthEvent::name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), events.len(), "one of each kind");
        for event in &events {
            let value = serde_json::to_value(event).unwrap();
            let object = value.as_object().unwrap();
            assert_eq!(object["event"], event.name(), "{value}");
            assert_eq!(object.keys().next().map(String::as_str), Some("event"));
            assert!(
                object.values().all(|v| !v.is_object() && !v.is_array()),
                "flat: {value}"
            );
        }
    }

    #[test]
    fn fields_have_their_documented_text_form() {
        let events = one_of_each();
        let find = |name: &str| {
            let e = events.iter().find(|e| e.name() == name).unwrap();
            serde_json::to_value(e).unwrap()
        };
        assert_eq!(
            find("lockout_started"),
            json!({"event": "lockout_started", "key": "username:bob",
                   "until": "2026-01-02T03:04:05.000Z"})
        );
        assert_eq!(find("lockout_cleared")["key"], "source:10.0.0.1");
        assert_eq!(
            find("refresh_token_created"),
            json!({"event": "refresh_token_created", "user_id": "u1",
                   "refresh_token_id": "t1", "token_type": "long_lived_access_token",
                   "client_id": null, "client_name": "ci"})
        );
        assert_eq!(
            find("password_changed"),
            json!({"event": "password_changed", "user_id": "u1", "credential_id": "c1",
                   "source": "::1"})
        );
        assert_eq!(find("login_failed")["source"], "10.0.0.1");
        assert_eq!(find("login_succeeded")["source"], json!(null));
    }
}
