//! The provider and MFA-module traits.

use std::fmt;
use std::net::IpAddr;
use std::pin::Pin;

use latch_models::{Credentials, RefreshToken, User, UserId, UserMeta};
use serde_json::{Map, Value};

use crate::{Directory, FlowContext, FormField, LoginStep, SetupStep};

/// A boxed, sendable future: the object-safe form of an `async fn` in these traits.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An error from a provider or MFA module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider refuses: wrong credentials, or a caller it does not trust. The message
    /// is safe to show to the caller.
    #[error("{0}")]
    InvalidAuth(String),
    /// The user or account the request names does not exist here.
    #[error("user not found")]
    UserNotFound,
    /// A username that breaks the provider's rules (for example not normalised).
    #[error("{message}")]
    InvalidUsername {
        /// Home Assistant's translation key, e.g. `username_not_normalized`.
        key: &'static str,
        /// The human message.
        message: String,
    },
    /// A new password the provider refuses (latch refuses an empty one).
    #[error("weak password: {0}")]
    WeakPassword(&'static str),
    /// A value longer than its cap (see [`latch_models::limits`]), e.g. a new password
    /// of more than 1,024 bytes.
    #[error(transparent)]
    Limit(#[from] latch_models::limits::LimitError),
    /// The provider cannot do this (for example create users from trusted networks).
    #[error("not supported by this provider: {0}")]
    NotSupported(&'static str),
    /// Persisting the change failed; nothing was changed.
    #[error("storage failed: {0}")]
    Storage(String),
    /// Anything else that went wrong inside the provider.
    #[error("{0}")]
    Internal(String),
}

/// An auth provider: one way of proving who somebody is (a password file, a trusted
/// network, …). Several providers of one type are told apart by `id`.
pub trait AuthProvider: Send + Sync + fmt::Debug {
    /// The provider type, e.g. `homeassistant` or `trusted_networks`.
    fn provider_type(&self) -> &str;

    /// The instance id; `None` for the default instance of a type.
    fn id(&self) -> Option<&str>;

    /// Display name.
    fn name(&self) -> &str;

    /// Whether a user who passes this provider goes on to their MFA modules
    /// (Home Assistant: every provider but trusted networks).
    fn supports_mfa(&self) -> bool {
        true
    }

    /// Whether a login may start from this context (trusted networks refuses callers
    /// outside its networks, and is then not offered at all).
    fn can_start_login(&self, _ctx: &FlowContext) -> bool {
        true
    }

    /// Runs step `step_id` of this provider's login flow with the user's input
    /// (`None` when the step is first shown). The input has already passed the
    /// step's form schema.
    fn login_step<'a>(
        &'a self,
        step_id: &'a str,
        input: Option<&'a Map<String, Value>>,
        ctx: &'a FlowContext,
        directory: &'a dyn Directory,
    ) -> BoxFuture<'a, Result<LoginStep, ProviderError>>;

    /// Turns the data of a finished login step into credentials: the stored credential
    /// it names (`is_new == false`), or a new one (`is_new == true`, not yet stored).
    /// A provider may return a credential already linked to a user (`user_id` set) that
    /// the manager has not stored yet; the manager stores it.
    ///
    /// # Errors
    /// [`ProviderError::UserNotFound`] or [`ProviderError::InvalidAuth`] when the data
    /// names nobody this provider may log in.
    fn get_or_create_credentials(
        &self,
        data: &Map<String, Value>,
        directory: &dyn Directory,
    ) -> Result<Credentials, ProviderError>;

    /// Describes the user to create for a new credential.
    ///
    /// # Errors
    /// [`ProviderError::NotSupported`] for providers that never create users.
    fn user_meta(&self, credentials: &Credentials) -> Result<UserMeta, ProviderError>;

    /// Called each time an access token is minted from a refresh token this provider
    /// issued; may refuse (trusted networks re-checks the caller's address).
    ///
    /// # Errors
    /// [`ProviderError::InvalidAuth`] to refuse.
    fn validate_refresh_token(
        &self,
        _token: &RefreshToken,
        _remote_ip: Option<IpAddr>,
    ) -> Result<(), ProviderError> {
        Ok(())
    }

    /// Called before credentials of this provider are removed, so it can drop its own
    /// record of them (the homeassistant provider removes the password entry).
    fn will_remove_credentials<'a>(
        &'a self,
        _credentials: &'a Credentials,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }
}

/// What an MFA module made of a login code ([`MfaModule::check`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeVerdict {
    /// The code is right: the login may finish.
    Accepted,
    /// The code is wrong.
    Invalid,
    /// The code is right for a time step that was used already: refused (replay).
    AlreadyUsed,
}

/// A second-factor module (TOTP, …).
pub trait MfaModule: Send + Sync + fmt::Debug {
    /// The module type, e.g. `totp`.
    fn module_type(&self) -> &str;

    /// The module id (defaults to the type in configuration).
    fn id(&self) -> &str;

    /// Display name.
    fn name(&self) -> &str;

    /// Wrong codes allowed in one login flow before it ends with `too_many_retry`
    /// (Home Assistant: 3 by default, 5 for TOTP).
    fn max_retry(&self) -> u32 {
        3
    }

    /// The fields of the login step (TOTP: `code`).
    fn input_fields(&self) -> Vec<FormField>;

    /// True if `user_id` has set this module up.
    fn is_user_setup(&self, user_id: &UserId) -> bool;

    /// Checks the user's input at login. An unknown user must cost the same as a known
    /// one (dummy check) and return `Ok(false)`.
    fn validate<'a>(
        &'a self,
        user_id: &'a UserId,
        input: &'a Map<String, Value>,
    ) -> BoxFuture<'a, Result<bool, ProviderError>>;

    /// Checks the user's input at login, telling a code that was right but already used
    /// from a wrong one. The default asks [`MfaModule::validate`] and never answers
    /// [`CodeVerdict::AlreadyUsed`]; a module that refuses replays overrides it.
    fn check<'a>(
        &'a self,
        user_id: &'a UserId,
        input: &'a Map<String, Value>,
    ) -> BoxFuture<'a, Result<CodeVerdict, ProviderError>> {
        Box::pin(async move {
            Ok(if self.validate(user_id, input).await? {
                CodeVerdict::Accepted
            } else {
                CodeVerdict::Invalid
            })
        })
    }

    /// Starts a setup flow for `user`.
    ///
    /// # Errors
    /// When the module cannot set this user up.
    fn setup_flow(&self, user: &User) -> Result<Box<dyn MfaSetupFlow>, ProviderError>;

    /// Removes the user's setup. Disabling a module the user never enabled succeeds.
    fn depose_user<'a>(&'a self, user_id: &'a UserId) -> BoxFuture<'a, Result<(), ProviderError>>;

    /// Issues a fresh set of one-time recovery codes, invalidating the old set.
    /// `Ok(None)` if the module has no recovery codes.
    fn regenerate_recovery_codes<'a>(
        &'a self,
        _user_id: &'a UserId,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, ProviderError>> {
        Box::pin(async { Ok(None) })
    }
}

/// The state of one MFA setup flow (for TOTP: the secret being confirmed).
pub trait MfaSetupFlow: Send + fmt::Debug {
    /// Runs the flow's next step with the user's input (`None` when first shown).
    fn step<'a>(
        &'a mut self,
        input: Option<&'a Map<String, Value>>,
    ) -> BoxFuture<'a, Result<SetupStep, ProviderError>>;
}
