//! The manager's error type.

use chrono::{DateTime, Utc};
use latch_provider::ProviderError;
use latch_store::StoreError;
use latch_token::TokenError;

/// Why an AuthManager operation failed. Every variant leaves the data unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No configured provider has this `(type, id)`, or it refuses to start a login
    /// from here. Deliberately one answer for both, so callers learn nothing about which
    /// providers exist.
    #[error("invalid handler specified")]
    InvalidHandler,
    /// The login or setup flow does not exist (finished, aborted, expired or never made).
    #[error("invalid flow specified")]
    FlowNotFound,
    /// Another request for the same flow is still running.
    #[error("flow request already in progress")]
    FlowBusy,
    /// The flow continued from another address than it started from.
    #[error("ip address changed")]
    IpChanged,
    /// The input does not fit the current step's form.
    #[error("user input malformed")]
    InputMalformed,
    /// A request argument is missing or invalid.
    #[error("{0}")]
    InvalidRequest(String),
    /// The user does not exist.
    #[error("user not found")]
    UserNotFound,
    /// The credential does not exist.
    #[error("credential not found")]
    CredentialNotFound,
    /// The refresh token does not exist (or is not the caller's).
    #[error("refresh token not found")]
    TokenNotFound,
    /// The refresh token string is unknown (OAuth `invalid_grant`).
    #[error("invalid grant")]
    InvalidGrant,
    /// The access token does not validate.
    #[error("invalid access token")]
    InvalidAccessToken,
    /// The user may not authenticate from here, or at all (OAuth `access_denied`).
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// The owner cannot be deactivated or removed.
    #[error("{0}")]
    OwnerProtected(&'static str),
    /// System-generated users cannot be changed this way.
    #[error("{0}")]
    SystemUser(&'static str),
    /// A group id that does not exist.
    #[error("invalid group specified: {0}")]
    InvalidGroup(String),
    /// The user already has credentials of this provider.
    #[error("user already has credentials for this provider")]
    CredentialsExist,
    /// A new credential duplicates a stored one of the same provider.
    #[error("credential already exists; sign in again")]
    DuplicateCredentials,
    /// The credential belongs to another user.
    #[error("credential is already linked to a user")]
    CredentialLinkedElsewhere,
    /// Onboarding has already happened: an owner exists.
    #[error("onboarding already done: an owner exists")]
    AlreadyOnboarded,
    /// No `homeassistant` password provider is configured.
    #[error("no homeassistant password provider is configured")]
    NoPasswordProvider,
    /// The MFA module is not configured.
    #[error("mfa module {0} is not found")]
    MfaModuleNotFound(String),
    /// The provider that issued a refresh token is no longer configured.
    #[error("the provider {0} that issued this token is not configured")]
    InvalidProvider(String),
    /// Too many failed logins for this username or source.
    #[error("too many failed attempts; try again after {until}")]
    TooManyAttempts {
        /// When the lockout ends.
        until: DateTime<Utc>,
    },
    /// A value past its length cap, or a name with a control character
    /// ([`latch_models::limits`]). The message names the field and the limit.
    #[error(transparent)]
    Limit(#[from] latch_models::limits::LimitError),
    /// The authorization code is unknown, used, expired or was issued to another client.
    #[error("invalid authorization code")]
    InvalidCode,
    /// The authorization code is bound to a PKCE challenge and no verifier came.
    #[error("a code verifier is required")]
    CodeVerifierRequired,
    /// The PKCE verifier is malformed or does not match the code's challenge.
    #[error("invalid code verifier")]
    InvalidCodeVerifier,
    /// A PKCE verifier came for a code issued without a challenge.
    #[error("a code verifier was given but the code has no challenge")]
    UnexpectedCodeVerifier,
    /// A refresh-token creation rule refused.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A provider or MFA module refused or failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The store refused or failed to persist; nothing was acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Invalid manager configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
}
