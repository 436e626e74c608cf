//! The provider itself: access checks, the user list, the login step, credentials.

use std::net::IpAddr;

use latch_models::{Credentials, RefreshToken, User, UserMeta};
use latch_provider::{
    AbortReason, AuthProvider, BoxFuture, Directory, FlowContext, Form, FormField, LoginStep,
    ProviderError,
};
use serde_json::{Map, Value};

use crate::config::TrustedNetworksConfig;
use crate::net::{canonical_ip, in_any, in_any_either_form};

/// The provider type string.
pub const PROVIDER_TYPE: &str = "trusted_networks";

/// The display name when the config gives none.
pub const DEFAULT_NAME: &str = "Trusted Networks";

/// The only login step.
pub const STEP_INIT: &str = "init";

/// The login form's field, and the key of the finished step's data.
pub const FIELD_USER: &str = "user";

/// The credential data key holding the user id.
pub const DATA_USER_ID: &str = "user_id";

/// Why a caller may not use this provider. The messages are Home Assistant's, word for
/// word (capitals and the final period included), because they reach HTTP clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessDenied {
    /// No trusted network is configured, so nobody is trusted.
    #[error("trusted_networks is not configured")]
    NotConfigured,
    /// The address is outside every trusted network.
    #[error("Not in trusted_networks")]
    NotInTrustedNetworks,
    /// The address is a trusted proxy's: it speaks for whoever is behind it.
    #[error("Can't allow access from a proxy server")]
    FromProxy,
    /// A token refresh came without a caller address, so it cannot be checked.
    #[error("Unknown remote ip can't be used for trusted network provider.")]
    UnknownRemoteIp,
}

impl From<AccessDenied> for ProviderError {
    fn from(e: AccessDenied) -> Self {
        Self::InvalidAuth(e.to_string())
    }
}

/// The `trusted_networks` auth provider. See the crate docs for its rules.
#[derive(Debug, Clone)]
pub struct TrustedNetworksProvider {
    config: TrustedNetworksConfig,
}

impl TrustedNetworksProvider {
    /// A provider with this config. Networks given in IPv4-mapped IPv6 form are
    /// stored as IPv4 (parsing already does this; configs built in code get it here).
    #[must_use]
    pub fn new(config: TrustedNetworksConfig) -> Self {
        Self {
            config: config.canonicalized(),
        }
    }

    /// The config in use.
    #[must_use]
    pub fn config(&self) -> &TrustedNetworksConfig {
        &self.config
    }

    /// Checks that a login or token refresh from `ip` is allowed. The checks run in
    /// Home Assistant's order: something configured, inside a trusted network, not a
    /// trusted proxy. (Home Assistant's fourth check, "not through Home Assistant
    /// Cloud", has no counterpart: latch has no cloud relay.)
    ///
    /// An IPv4-mapped IPv6 address is checked as the IPv4 address inside it, against
    /// both lists; for the proxy list the address as given is checked as well.
    ///
    /// # Errors
    /// The [`AccessDenied`] reason.
    pub fn validate_access(&self, ip: IpAddr) -> Result<(), AccessDenied> {
        if self.config.trusted_networks.is_empty() {
            return Err(AccessDenied::NotConfigured);
        }
        if !in_any(&self.config.trusted_networks, ip) {
            return Err(AccessDenied::NotInTrustedNetworks);
        }
        if in_any_either_form(&self.config.trusted_proxies, ip) {
            return Err(AccessDenied::FromProxy);
        }
        Ok(())
    }

    /// The users a login from `ip` may choose, in store order: active users that are
    /// not system-generated, filtered by the first `trusted_users` rule whose network
    /// contains `ip` (all of them if no rule does; nobody if that rule's list is empty).
    ///
    /// This does not check access; [`Self::validate_access`] does.
    #[must_use]
    pub fn available_users(&self, ip: IpAddr, directory: &dyn Directory) -> Vec<User> {
        let ip = canonical_ip(ip);
        let mut users: Vec<User> = directory
            .users()
            .into_iter()
            .filter(|u| !u.system_generated && u.is_active)
            .collect();
        if let Some(rule) = self.config.trusted_users.iter().find(|r| r.contains(ip)) {
            users.retain(|u| rule.allows(u));
        }
        users
    }

    fn login_init(
        &self,
        input: Option<&Map<String, Value>>,
        ctx: &FlowContext,
        directory: &dyn Directory,
    ) -> LoginStep {
        let Some(ip) = ctx.ip_address else {
            return LoginStep::Abort(AbortReason::NotAllowed);
        };
        if self.validate_access(ip).is_err() {
            return LoginStep::Abort(AbortReason::NotAllowed);
        }
        let users = self.available_users(ip, directory);

        if let Some(input) = input {
            let chosen = input.get(FIELD_USER).and_then(Value::as_str);
            if let Some(user) = users.iter().find(|u| Some(u.id.as_str()) == chosen) {
                return done(user);
            }
            // Not among the users offered now (the manager's schema check passed
            // against an older list, or was skipped): show the current list again.
            // Never fall through to the bypass below: a choice of one user must not
            // log in as another.
            return LoginStep::Form(user_form(&users));
        }

        if self.config.allow_bypass_login
            && let [only] = users.as_slice()
        {
            return done(only);
        }
        LoginStep::Form(user_form(&users))
    }
}

/// The finished step's data: `{"user": <id>}`.
fn done(user: &User) -> LoginStep {
    let mut data = Map::new();
    data.insert(FIELD_USER.to_owned(), Value::from(user.id.as_str()));
    LoginStep::Done(data)
}

/// The form: one required select `user` of `(id, label)`; the label is the user's name,
/// or the id when the name is null (an empty label could not be told apart).
fn user_form(users: &[User]) -> Form {
    let options = users
        .iter()
        .map(|u| {
            let label = u.name.clone().unwrap_or_else(|| u.id.to_string());
            (u.id.to_string(), label)
        })
        .collect();
    Form::new(STEP_INIT, vec![FormField::select(FIELD_USER, options)])
}

impl AuthProvider for TrustedNetworksProvider {
    fn provider_type(&self) -> &str {
        PROVIDER_TYPE
    }

    fn id(&self) -> Option<&str> {
        self.config.id.as_deref()
    }

    fn name(&self) -> &str {
        self.config.display_name()
    }

    /// Never: choosing a name from a list on a trusted network is the whole login.
    fn supports_mfa(&self) -> bool {
        false
    }

    /// True only for a context with an address that passes
    /// [`TrustedNetworksProvider::validate_access`].
    fn can_start_login(&self, ctx: &FlowContext) -> bool {
        ctx.ip_address
            .is_some_and(|ip| self.validate_access(ip).is_ok())
    }

    /// Step `init`: abort `not_allowed` unless the context's address passes
    /// [`TrustedNetworksProvider::validate_access`] (checked again at every step); then
    /// finish with `{"user": id}` for a posted id among the users offered, or at once
    /// when `allow_bypass_login` is set and exactly one user is offered; otherwise the
    /// select form. A posted id that is not offered gets the form again.
    ///
    /// Any other step id is an [`ProviderError::Internal`] error.
    fn login_step<'a>(
        &'a self,
        step_id: &'a str,
        input: Option<&'a Map<String, Value>>,
        ctx: &'a FlowContext,
        directory: &'a dyn Directory,
    ) -> BoxFuture<'a, Result<LoginStep, ProviderError>> {
        let result = if step_id == STEP_INIT {
            Ok(self.login_init(input, ctx, directory))
        } else {
            Err(ProviderError::Internal(format!(
                "the trusted_networks login flow has no step {step_id:?}"
            )))
        };
        Box::pin(std::future::ready(result))
    }

    /// Finds the credential for `{"user": id}`: the user must exist
    /// ([`ProviderError::UserNotFound`]) and be active and not system-generated
    /// ([`ProviderError::InvalidAuth`]). A stored credential of this provider with
    /// `data.user_id == id` is reused; otherwise a new one, `{"user_id": id}`, is
    /// returned already linked (`user_id` set, `is_new == false`) for the manager to
    /// store. A stored credential with that data but linked to another user is an
    /// [`ProviderError::Internal`] error rather than a login as that other user.
    fn get_or_create_credentials(
        &self,
        data: &Map<String, Value>,
        directory: &dyn Directory,
    ) -> Result<Credentials, ProviderError> {
        let user_id = data
            .get(FIELD_USER)
            .and_then(Value::as_str)
            .ok_or_else(|| ProviderError::InvalidAuth("no user was chosen".to_owned()))?;
        let user = directory.user(user_id).ok_or(ProviderError::UserNotFound)?;
        if user.system_generated || !user.is_active {
            return Err(ProviderError::InvalidAuth(
                "this user cannot log in through trusted networks".to_owned(),
            ));
        }

        let stored = directory
            .credentials_of_provider(PROVIDER_TYPE, self.id())
            .into_iter()
            .find(|c| c.data_str(DATA_USER_ID) == Some(user_id));
        if let Some(mut cred) = stored {
            match &cred.user_id {
                Some(owner) if *owner != user.id => {
                    return Err(ProviderError::Internal(format!(
                        "stored credential {} for user {user_id} is linked to user {owner}",
                        cred.id
                    )));
                }
                Some(_) => {}
                None => cred.user_id = Some(user.id.clone()),
            }
            cred.is_new = false;
            return Ok(cred);
        }

        let mut cred_data = Map::new();
        cred_data.insert(DATA_USER_ID.to_owned(), Value::from(user_id));
        let mut cred = Credentials::new(PROVIDER_TYPE, self.config.id.clone(), cred_data);
        cred.user_id = Some(user.id);
        cred.is_new = false;
        Ok(cred)
    }

    /// Always [`ProviderError::NotSupported`]: this provider never creates users.
    fn user_meta(&self, _credentials: &Credentials) -> Result<UserMeta, ProviderError> {
        Err(ProviderError::NotSupported(
            "trusted_networks never creates users",
        ))
    }

    /// Re-checks the caller on every access-token mint: no address is refused
    /// ([`AccessDenied::UnknownRemoteIp`]), otherwise
    /// [`TrustedNetworksProvider::validate_access`] decides. So a session started on
    /// the LAN stops working from outside it.
    fn validate_refresh_token(
        &self,
        _token: &RefreshToken,
        remote_ip: Option<IpAddr>,
    ) -> Result<(), ProviderError> {
        let ip = remote_ip.ok_or(AccessDenied::UnknownRemoteIp)?;
        self.validate_access(ip)?;
        Ok(())
    }
}
