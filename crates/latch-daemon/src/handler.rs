//! Requests to AuthManager calls, and results and errors to responses.
//!
//! Each [`Request`] maps onto one AuthManager call (or a read of its store) and its
//! result onto the [`Response`] the protocol names; every [`AuthError`] maps onto an
//! [`ApiError`] through [`api_error`], the single table of error codes. Nothing here
//! decides who may do what: the manager does.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use latch_auth::{AuthError, AuthManager, ThrottleKey, UserUpdate};
use latch_models::GroupId;
use latch_protocol::{
    AccessToken, ApiError, DaemonStatus, ErrorCode, FormInput, LockoutKey, LongLivedToken,
    MfaModuleInfo, PROTOCOL_VERSION, ProviderInfo, Request, Response, Subject, ValidatedToken,
};
use latch_provider::{FlowContext, ProviderError};
use latch_store::StoreError;
use latch_token::TokenError;
use serde_json::{Map, Value};

use crate::backend::Backend;
use crate::registries::Registries;
use crate::{convert, http_door, lists};

/// The answer to one request.
pub type Answer = Result<Response, ApiError>;

/// The error answer for a manager error: the one table from [`AuthError`] to
/// [`ErrorCode`]. The message is the error's own text, which never holds a secret.
#[must_use]
pub fn api_error(err: &AuthError) -> ApiError {
    ApiError::new(error_code(err), err.to_string())
}

/// The [`ErrorCode`] of a manager error.
#[must_use]
// Every variant is listed, even where codes repeat, so the table reads as one.
#[allow(clippy::match_same_arms)]
pub fn error_code(err: &AuthError) -> ErrorCode {
    use ErrorCode as C;
    match err {
        AuthError::InvalidHandler | AuthError::NoPasswordProvider => C::ProviderNotFound,
        AuthError::FlowNotFound => C::FlowNotFound,
        AuthError::FlowBusy
        | AuthError::IpChanged
        | AuthError::InputMalformed
        | AuthError::InvalidRequest(_)
        | AuthError::InvalidCode
        | AuthError::CodeVerifierRequired
        | AuthError::InvalidCodeVerifier
        | AuthError::UnexpectedCodeVerifier => C::InvalidRequest,
        AuthError::UserNotFound => C::UserNotFound,
        AuthError::CredentialNotFound => C::CredentialNotFound,
        AuthError::TokenNotFound => C::TokenNotFound,
        AuthError::InvalidGrant | AuthError::InvalidAccessToken => C::InvalidToken,
        AuthError::AccessDenied(_) | AuthError::InvalidProvider(_) => C::Forbidden,
        AuthError::OwnerProtected(_) => C::OwnerProtected,
        AuthError::SystemUser(_) => C::SystemUser,
        AuthError::InvalidGroup(_) => C::GroupNotFound,
        AuthError::CredentialsExist
        | AuthError::DuplicateCredentials
        | AuthError::CredentialLinkedElsewhere => C::AlreadyExists,
        AuthError::AlreadyOnboarded => C::AlreadyOnboarded,
        AuthError::MfaModuleNotFound(_) => C::MfaModuleNotFound,
        AuthError::TooManyAttempts { .. } => C::TooManyAttempts,
        AuthError::Limit(_) => C::InvalidRequest,
        AuthError::Token(e) => token_error_code(e),
        AuthError::Provider(e) => provider_error_code(e),
        AuthError::Store(StoreError::Unavailable { .. }) => C::Unavailable,
        AuthError::Store(_) => C::StorageFailed,
        AuthError::Config(_) => C::Internal,
        // A variant added to latch-auth after this table: a bug until it is mapped.
        _ => C::Internal,
    }
}

fn token_error_code(err: &TokenError) -> ErrorCode {
    match err {
        TokenError::UserNotActive => ErrorCode::Forbidden,
        TokenError::SystemUserWithClient | TokenError::SystemTypeMismatch => ErrorCode::SystemUser,
        TokenError::ClientRequired | TokenError::ClientNameRequired => ErrorCode::InvalidRequest,
        TokenError::DuplicateClientName { .. } => ErrorCode::AlreadyExists,
    }
}

fn provider_error_code(err: &ProviderError) -> ErrorCode {
    match err {
        ProviderError::InvalidAuth(_) => ErrorCode::InvalidAuth,
        // The provider has no entry for the user's login.
        ProviderError::UserNotFound => ErrorCode::CredentialNotFound,
        ProviderError::InvalidUsername { key, .. } if *key == "username_already_exists" => {
            ErrorCode::AlreadyExists
        }
        ProviderError::InvalidUsername { .. } => ErrorCode::InvalidUsername,
        ProviderError::WeakPassword(_) => ErrorCode::WeakPassword,
        ProviderError::NotSupported(_) | ProviderError::Limit(_) => ErrorCode::InvalidRequest,
        ProviderError::Storage(_) => ErrorCode::StorageFailed,
        ProviderError::Internal(_) => ErrorCode::Internal,
    }
}

fn err(e: &AuthError) -> ApiError {
    api_error(e)
}

/// Form values as the manager takes them.
pub(crate) fn form_input(input: FormInput) -> Map<String, Value> {
    input
        .into_iter()
        .map(|(k, v)| (k, Value::String(v.into_inner())))
        .collect()
}

fn group_ids(ids: Vec<String>) -> Vec<GroupId> {
    ids.into_iter().map(GroupId::from).collect()
}

/// Serves requests with an AuthManager. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub(crate) struct Handler {
    manager: AuthManager,
    started: Instant,
    home: PathBuf,
    /// Home Assistant's entity and device registries, for `device_ids`/`area_ids` rules.
    registries: Arc<Registries>,
    user_index: lists::UserIndex,
    /// The store's backend: its status, and the staleness bound of a shared database.
    backend: Backend,
}

impl Handler {
    pub(crate) fn new(manager: AuthManager, home: PathBuf) -> Self {
        Self {
            registries: Arc::new(Registries::new(&home)),
            manager,
            started: Instant::now(),
            home,
            user_index: lists::UserIndex::default(),
            backend: Backend::Files,
        }
    }

    /// The store's backend (the files unless said otherwise).
    pub(crate) fn with_backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Permission checks consult these registries.
    pub(crate) fn with_registries(mut self, registries: Arc<Registries>) -> Self {
        self.registries = registries;
        self
    }

    /// True for requests answered quickly from memory without waiting for anything (no
    /// store commit, no bcrypt, no listing of every user): the connection answers them in
    /// its reading task. Every other request runs in its own task, so it never delays
    /// the next one.
    pub(crate) fn runs_inline(request: &Request) -> bool {
        matches!(
            request,
            Request::Ping
                | Request::Status
                | Request::ListProviders { .. }
                | Request::LoginAbort { .. }
                | Request::ValidateToken { .. }
                | Request::RefreshToken { .. }
                | Request::ListTokens { .. }
                | Request::GetUser { .. }
                | Request::ListGroups
                | Request::ListMfaModules { .. }
                | Request::MfaSetupAbort { .. }
                | Request::CheckPermission { .. }
                | Request::ListLockouts
                | Request::ClearLockout { .. }
                | Request::GetUserByUsername { .. }
                | Request::ListTokensPage { .. }
                | Request::LoginThrottle { .. }
                | Request::HttpProviders { .. }
                | Request::RefreshGrant { .. }
                | Request::StoreStatus
        )
    }

    fn user_info(&self, user_id: &str) -> Answer {
        let user = self
            .manager
            .user(user_id)
            .ok_or_else(|| err(&AuthError::UserNotFound))?;
        Ok(Response::User(convert::user_info(&self.manager, &user)))
    }

    /// The daemon's status.
    pub(crate) fn status(&self) -> DaemonStatus {
        let (onboarded, user_count, refresh_token_count) = self.manager.store().read(|d| {
            (
                d.users().any(|u| u.is_owner),
                d.user_count(),
                d.refresh_token_count(),
            )
        });
        DaemonStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol_version: PROTOCOL_VERSION,
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            home: self.home.display().to_string(),
            onboarded,
            user_count: user_count as u64,
            refresh_token_count: refresh_token_count as u64,
        }
    }

    fn validate(&self, access_token: &str, remote_ip: Option<IpAddr>) -> Answer {
        // The answer is built from the stored user in place: no copy of the whole user.
        let answer =
            self.manager
                .validate_access_token_with(access_token, |rt, user| {
                    match AuthManager::user_not_allowed(user, remote_ip) {
                        Some(reason) => Err(err(&AuthError::AccessDenied(reason.to_owned()))),
                        None => Ok(Response::Validated(ValidatedToken {
                            user: convert::user_summary(user),
                            refresh_token_id: rt.id.as_str().to_owned(),
                            token_type: rt.token_type.into(),
                        })),
                    }
                });
        answer.unwrap_or_else(|| Err(err(&AuthError::InvalidAccessToken)))
    }

    /// A person's own password change: the access token names the user (and must
    /// validate), the manager checks the current password as a login, throttled and
    /// local-only by `remote_ip`.
    async fn change_own_password(
        &self,
        access_token: &str,
        current_password: &str,
        new_password: &str,
        remote_ip: Option<IpAddr>,
    ) -> Answer {
        let user_id = self
            .manager
            .validate_access_token_with(access_token, |_, user| user.id.clone())
            .ok_or_else(|| err(&AuthError::InvalidAccessToken))?;
        self.manager
            .change_own_password(user_id.as_str(), current_password, new_password, remote_ip)
            .await
            .map_err(|e| err(&e))?;
        Ok(Response::Done)
    }

    /// Answers one request (Subscribe and Unsubscribe belong to the connection).
    #[allow(clippy::too_many_lines)] // one arm per request, flat on purpose
    pub(crate) async fn handle(&self, request: Request) -> Answer {
        let m = &self.manager;
        match request {
            Request::Ping => Ok(Response::Pong),
            Request::Status => Ok(Response::Status(self.status())),
            Request::ListProviders { ip_address } => Ok(Response::Providers(
                m.login_providers(ip_address)
                    .iter()
                    .map(|p| ProviderInfo {
                        handler: latch_protocol::Handler {
                            provider_type: p.provider_type().to_owned(),
                            provider_id: p.id().map(str::to_owned),
                        },
                        name: p.name().to_owned(),
                    })
                    .collect(),
            )),
            Request::LoginStart {
                handler,
                client_id,
                redirect_uri,
                ip_address,
            } => {
                let ctx = FlowContext {
                    ip_address,
                    client_id: Some(client_id),
                    redirect_uri,
                };
                let outcome = m
                    .start_login_flow(&handler.provider_type, handler.provider_id.as_deref(), ctx)
                    .await
                    .map_err(|e| err(&e))?;
                Ok(Response::Flow(convert::flow_state(outcome)))
            }
            Request::LoginContinue {
                flow_id,
                input,
                ip_address,
            } => {
                let outcome = m
                    .continue_login_flow(&flow_id, form_input(input), ip_address)
                    .await
                    .map_err(|e| err(&e))?;
                Ok(Response::Flow(convert::flow_state(outcome)))
            }
            Request::LoginAbort { flow_id } => {
                m.abort_login_flow(&flow_id).map_err(|e| err(&e))?;
                Ok(Response::Done)
            }
            Request::ValidateToken {
                access_token,
                remote_ip,
            } => {
                self.backend.fresh()?;
                self.validate(access_token.expose(), remote_ip)
            }
            Request::RefreshToken {
                refresh_token,
                client_id,
                remote_ip,
            } => {
                self.backend.fresh()?;
                let token = m
                    .refresh(refresh_token.expose(), client_id.as_deref(), remote_ip)
                    .map_err(|e| err(&e))?;
                Ok(Response::AccessToken(AccessToken {
                    expires_in: u64::try_from(token.expires_in).unwrap_or(0),
                    access_token: token.token.into(),
                }))
            }
            Request::RevokeToken { refresh_token } => {
                m.revoke_by_value(refresh_token.expose())
                    .await
                    .map_err(|e| err(&e))?;
                Ok(Response::Done)
            }
            Request::RevokeTokenById { refresh_token_id } => {
                m.remove_refresh_token(&refresh_token_id)
                    .await
                    .map_err(|e| err(&e))?;
                tracing::info!(refresh_token_id, "refresh token revoked");
                Ok(Response::Done)
            }
            Request::RevokeAllTokens {
                user_id,
                token_type,
            } => {
                let count = m
                    .revoke_all_tokens(&user_id, token_type.map(Into::into))
                    .await
                    .map_err(|e| err(&e))?;
                tracing::info!(user_id, count, "refresh tokens revoked");
                Ok(Response::Revoked {
                    count: count as u64,
                })
            }
            Request::ListTokens { user_id } => {
                if m.user(&user_id).is_none() {
                    return Err(err(&AuthError::UserNotFound));
                }
                let tokens: Vec<_> = m
                    .refresh_tokens_of(&user_id)
                    .iter()
                    .map(|t| convert::token_info(m, t))
                    .collect();
                let count = tokens.len();
                lists::fit(Response::Tokens(tokens), count, "tokens", "ListTokensPage")
            }
            Request::CreateLongLivedToken {
                user_id,
                client_name,
                client_icon,
                lifespan_days,
            } => {
                let (token, access) = m
                    .create_long_lived_token(
                        &user_id,
                        &client_name,
                        client_icon,
                        i64::from(lifespan_days),
                    )
                    .await
                    .map_err(|e| err(&e))?;
                tracing::info!(user_id, refresh_token_id = %token.id, "long-lived token created");
                Ok(Response::LongLivedToken(LongLivedToken {
                    refresh_token_id: token.id.as_str().to_owned(),
                    expires_in: u64::try_from(access.expires_in).unwrap_or(0),
                    access_token: access.token.into(),
                }))
            }
            Request::SetTokenExpiry {
                refresh_token_id,
                enable,
            } => {
                m.set_token_expiry(&refresh_token_id, enable)
                    .await
                    .map_err(|e| err(&e))?;
                tracing::info!(refresh_token_id, enable, "refresh token expiry changed");
                Ok(Response::Done)
            }
            Request::ListUsers => {
                let users: Vec<_> = m.users().iter().map(|u| convert::user_info(m, u)).collect();
                let count = users.len();
                lists::fit(Response::Users(users), count, "users", "ListUsersPage")
            }
            Request::GetUser { user_id } => self.user_info(&user_id),
            Request::CreateUser {
                name,
                group_ids,
                local_only,
                system_generated,
            } => {
                let user = if system_generated {
                    m.create_system_user(
                        Some(name),
                        group_ids.map(self::group_ids).unwrap_or_default(),
                        local_only,
                    )
                    .await
                } else {
                    m.create_user(Some(name), group_ids.map(self::group_ids), local_only)
                        .await
                }
                .map_err(|e| err(&e))?;
                Ok(Response::User(convert::user_info(m, &user)))
            }
            Request::Onboard {
                name,
                username,
                password,
            } => {
                let user = m
                    .onboard(Some(name), &username, password.expose())
                    .await
                    .map_err(|e| err(&e))?;
                Ok(Response::User(convert::user_info(m, &user)))
            }
            Request::UpdateUser {
                user_id,
                name,
                is_active,
                group_ids,
                local_only,
            } => {
                let update = UserUpdate {
                    name: name.map(Some),
                    is_active,
                    group_ids: group_ids.map(self::group_ids),
                    local_only,
                };
                let user = m.update_user(&user_id, update).await.map_err(|e| err(&e))?;
                Ok(Response::User(convert::user_info(m, &user)))
            }
            Request::RemoveUser { user_id } => {
                m.remove_user(&user_id).await.map_err(|e| err(&e))?;
                Ok(Response::Done)
            }
            Request::ActivateUser { user_id } => {
                m.activate_user(&user_id).await.map_err(|e| err(&e))?;
                Ok(Response::Done)
            }
            Request::DeactivateUser { user_id } => {
                m.deactivate_user(&user_id).await.map_err(|e| err(&e))?;
                Ok(Response::Done)
            }
            Request::SetUserGroups { user_id, group_ids } => {
                let user = m
                    .set_groups(&user_id, self::group_ids(group_ids))
                    .await
                    .map_err(|e| err(&e))?;
                Ok(Response::User(convert::user_info(m, &user)))
            }
            Request::ListGroups => Ok(Response::Groups(
                m.store().groups().iter().map(convert::group_info).collect(),
            )),
            Request::AddPassword {
                user_id,
                username,
                password,
            } => {
                m.add_password_login(&user_id, &username, password.expose())
                    .await
                    .map_err(|e| err(&e))?;
                self.user_info(&user_id)
            }
            Request::ChangePassword {
                user_id,
                new_password,
            } => {
                m.set_password(&user_id, new_password.expose())
                    .await
                    .map_err(|e| err(&e))?;
                Ok(Response::Done)
            }
            Request::ChangeOwnPassword {
                access_token,
                current_password,
                new_password,
            } => {
                self.change_own_password(
                    access_token.expose(),
                    current_password.expose(),
                    new_password.expose(),
                    None,
                )
                .await
            }
            Request::ChangeOwnPasswordFrom {
                access_token,
                current_password,
                new_password,
                remote_ip,
            } => {
                self.change_own_password(
                    access_token.expose(),
                    current_password.expose(),
                    new_password.expose(),
                    remote_ip,
                )
                .await
            }
            Request::ChangeUsername { user_id, username } => {
                m.change_username(&user_id, &username)
                    .await
                    .map_err(|e| err(&e))?;
                self.user_info(&user_id)
            }
            Request::RemoveCredential { credential_id } => {
                m.remove_credential(&credential_id)
                    .await
                    .map_err(|e| err(&e))?;
                tracing::info!(credential_id, "credential removed");
                Ok(Response::Done)
            }
            Request::ListMfaModules { user_id } => {
                let user = m
                    .user(&user_id)
                    .ok_or_else(|| err(&AuthError::UserNotFound))?;
                Ok(Response::MfaModules(
                    m.mfa_modules()
                        .iter()
                        .map(|module| MfaModuleInfo {
                            id: module.id().to_owned(),
                            name: module.name().to_owned(),
                            enabled: module.is_user_setup(&user.id),
                        })
                        .collect(),
                ))
            }
            Request::MfaSetupStart { user_id, module_id } => {
                let outcome = m
                    .start_mfa_setup(&user_id, &module_id)
                    .await
                    .map_err(|e| err(&e))?;
                Ok(Response::SetupFlow(convert::setup_state(outcome)))
            }
            Request::MfaSetupContinue { flow_id, input } => {
                let outcome = m
                    .continue_mfa_setup(&flow_id, None, form_input(input))
                    .await
                    .map_err(|e| err(&e))?;
                Ok(Response::SetupFlow(convert::setup_state(outcome)))
            }
            Request::MfaSetupAbort { flow_id } => {
                m.abort_mfa_setup(&flow_id).map_err(|e| err(&e))?;
                Ok(Response::Done)
            }
            Request::MfaDisable { user_id, module_id } => {
                m.disable_mfa(&user_id, &module_id)
                    .await
                    .map_err(|e| err(&e))?;
                Ok(Response::Done)
            }
            Request::RegenerateRecoveryCodes { user_id, module_id } => {
                let codes = m
                    .regenerate_recovery_codes(&user_id, &module_id)
                    .await
                    .map_err(|e| match e {
                        // The manager's "not set up for this user" / "has no codes".
                        AuthError::InvalidRequest(_) => {
                            ApiError::new(ErrorCode::NotFound, e.to_string())
                        }
                        other => err(&other),
                    })?;
                tracing::info!(user_id, module_id, "recovery codes regenerated");
                Ok(Response::RecoveryCodes(
                    codes.into_iter().map(Into::into).collect(),
                ))
            }
            Request::CheckPermission {
                subject,
                entity_id,
                key,
            } => {
                self.backend.fresh()?;
                let key = convert::permission_key(key);
                let lookup: latch_auth::SharedLookup = self.registries.snapshot();
                let allowed = match subject {
                    Subject::User(user_id) => m.check_permission(&user_id, &entity_id, key, lookup),
                    Subject::AccessToken(token) => {
                        m.check_permission_by_token(token.expose(), &entity_id, key, lookup)
                    }
                }
                .map_err(|e| err(&e))?;
                Ok(Response::Permission { allowed })
            }
            Request::ListLockouts => {
                let lockouts: Vec<_> = m.lockouts().iter().map(convert::lockout_info).collect();
                let count = lockouts.len();
                lists::fit(
                    Response::Lockouts(lockouts),
                    count,
                    "lockouts",
                    "ListLockoutsPage",
                )
            }
            Request::ClearLockout { key } => {
                let throttle_key = match &key {
                    LockoutKey::Username(name) => ThrottleKey::username(name),
                    LockoutKey::Source(ip) => ThrottleKey::Source(*ip),
                };
                if m.clear_lockout(&throttle_key) {
                    Ok(Response::Done)
                } else {
                    Err(ApiError::new(
                        ErrorCode::NotFound,
                        format!("no lockout or failed login is recorded for {key}"),
                    ))
                }
            }
            Request::ListUsersPage { after, limit } => {
                lists::users_page(m, &self.user_index, after.as_deref(), limit)
            }
            Request::GetUserByUsername { username } => lists::user_by_username(m, &username),
            Request::FindUsersByName { name, limit } => lists::users_by_name(m, &name, limit),
            Request::ListTokensPage {
                user_id,
                after,
                limit,
            } => lists::tokens_page(m, &user_id, after.as_deref(), limit),
            Request::ListLockoutsPage { after, limit } => {
                lists::lockouts_page(m, after.as_deref(), limit)
            }
            Request::LoginThrottle {
                username,
                ip_address,
            } => lists::login_throttle(m, username.as_deref(), ip_address),
            Request::HttpProviders { ip_address } => http_door::providers(m, ip_address),
            Request::HttpLoginStart {
                handler,
                client_id,
                redirect_uri,
                ip_address,
                code_challenge,
            } => {
                http_door::start(
                    m,
                    handler,
                    client_id,
                    redirect_uri,
                    ip_address,
                    code_challenge,
                )
                .await
            }
            Request::HttpLoginContinue {
                flow_id,
                input,
                ip_address,
            } => http_door::continue_flow(m, &flow_id, input, ip_address).await,
            Request::HttpLoginAuthorize {
                flow_id,
                redirect_uri_allowed,
            } => http_door::authorize(m, &flow_id, redirect_uri_allowed).await,
            Request::ExchangeCode {
                client_id,
                code,
                code_verifier,
                remote_ip,
            } => http_door::exchange(m, &client_id, &code, code_verifier.as_ref(), remote_ip).await,
            Request::RefreshGrant {
                refresh_token,
                client_id,
                remote_ip,
            } => {
                self.backend.fresh()?;
                http_door::refresh(m, &refresh_token, client_id.as_deref(), remote_ip)
            }
            Request::StoreStatus => Ok(Response::StoreStatus(self.backend.status(m.store()))),
            Request::Subscribe { .. } | Request::Unsubscribe => Err(ApiError::new(
                ErrorCode::Internal,
                "subscriptions are handled by the connection",
            )),
        }
    }
}
