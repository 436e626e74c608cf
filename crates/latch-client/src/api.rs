//! One typed method per protocol request, each returning the payload of its answer.

use std::net::IpAddr;

use latch_protocol::{
    AccessToken, DaemonStatus, FlowState, FormInput, GroupInfo, Handler, LockoutInfo, LockoutKey,
    LongLivedToken, MfaModuleInfo, Page, PermissionKey, ProviderInfo, Request, Response, Sensitive,
    SetupFlowState, StoreStatus, Subject, ThrottleState, TokenInfo, TokenType, UserInfo,
    ValidatedToken,
};

use crate::client::unexpected;
use crate::{Client, ClientError};

/// A user to create with [`Client::create_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    /// The display name.
    pub name: String,
    /// The groups (none if `None`: such a user is no admin unless it is the owner).
    pub group_ids: Option<Vec<String>>,
    /// May log in from local addresses only.
    pub local_only: bool,
    /// A service account.
    pub system_generated: bool,
}

impl NewUser {
    /// A user with this name, no groups, not local-only, not a system user.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            group_ids: None,
            local_only: false,
            system_generated: false,
        }
    }
}

/// Changes for [`Client::update_user`]; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    /// The new display name.
    pub name: Option<String>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
    /// The new groups, replacing the old ones.
    pub group_ids: Option<Vec<String>>,
    /// The new local-only flag.
    pub local_only: Option<bool>,
}

/// Sends `$request` and maps the matching response variant to a value; any other
/// variant is [`ClientError::UnexpectedResponse`].
macro_rules! call {
    ($client:expr, $request:expr, $pattern:pat => $value:expr) => {{
        let request: Request = $request;
        let name = request.name();
        match $client.request(request).await? {
            $pattern => Ok($value),
            other => Err(unexpected(name, &other)),
        }
    }};
}

impl Client {
    /// Liveness check.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn ping(&self) -> Result<(), ClientError> {
        call!(self, Request::Ping, Response::Pong => ())
    }

    /// The daemon's version, uptime and counts.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn status(&self) -> Result<DaemonStatus, ClientError> {
        call!(self, Request::Status, Response::Status(status) => status)
    }

    /// The store's backend, the last batch applied and the lag behind a shared log.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn store_status(&self) -> Result<StoreStatus, ClientError> {
        call!(self, Request::StoreStatus, Response::StoreStatus(status) => status)
    }

    /// The auth providers a person at `ip_address` may log in with.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn providers(
        &self,
        ip_address: Option<IpAddr>,
    ) -> Result<Vec<ProviderInfo>, ClientError> {
        call!(self, Request::ListProviders { ip_address }, Response::Providers(p) => p)
    }

    // ---- login flow -------------------------------------------------------------------

    /// Starts a login flow with a provider (usually answered with a form).
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `provider_not_found`, `invalid_request`,
    /// `too_many_attempts`.
    pub async fn login_start(
        &self,
        handler: Handler,
        client_id: &str,
        redirect_uri: Option<&str>,
        ip_address: Option<IpAddr>,
    ) -> Result<FlowState, ClientError> {
        call!(self, Request::LoginStart {
            handler,
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.map(str::to_owned),
            ip_address,
        }, Response::Flow(flow) => flow)
    }

    /// Answers the current step of a login flow.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `flow_not_found`, `invalid_request`, `too_many_attempts`.
    pub async fn login_continue(
        &self,
        flow_id: &str,
        input: FormInput,
        ip_address: Option<IpAddr>,
    ) -> Result<FlowState, ClientError> {
        call!(self, Request::LoginContinue {
            flow_id: flow_id.to_owned(),
            input,
            ip_address,
        }, Response::Flow(flow) => flow)
    }

    /// Abandons a login flow.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `flow_not_found`.
    pub async fn login_abort(&self, flow_id: &str) -> Result<(), ClientError> {
        call!(self, Request::LoginAbort { flow_id: flow_id.to_owned() }, Response::Done => ())
    }

    // ---- tokens -----------------------------------------------------------------------

    /// Checks an access token presented without a known address (a local-only user's
    /// token is then refused: use [`Client::validate_token_from`]).
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `invalid_token` (exit code 1), `forbidden`.
    pub async fn validate_token(&self, access_token: &str) -> Result<ValidatedToken, ClientError> {
        self.validate_token_from(access_token, None).await
    }

    /// Checks an access token presented from `remote_ip`.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `invalid_token`, `forbidden` (a local-only user from a
    /// remote address).
    pub async fn validate_token_from(
        &self,
        access_token: &str,
        remote_ip: Option<IpAddr>,
    ) -> Result<ValidatedToken, ClientError> {
        call!(self, Request::ValidateToken {
            access_token: Sensitive::from(access_token),
            remote_ip,
        }, Response::Validated(v) => v)
    }

    /// Mints a fresh access token from a refresh token.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `invalid_token`, `invalid_request` (client id mismatch),
    /// `forbidden`.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        client_id: Option<&str>,
        remote_ip: Option<IpAddr>,
    ) -> Result<AccessToken, ClientError> {
        call!(self, Request::RefreshToken {
            refresh_token: Sensitive::from(refresh_token),
            client_id: client_id.map(str::to_owned),
            remote_ip,
        }, Response::AccessToken(t) => t)
    }

    /// Revokes a refresh token by its value (succeeds whether it existed or not).
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn revoke(&self, refresh_token: &str) -> Result<(), ClientError> {
        call!(self, Request::RevokeToken {
            refresh_token: Sensitive::from(refresh_token),
        }, Response::Done => ())
    }

    /// Revokes a refresh token by its id.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `token_not_found`.
    pub async fn revoke_by_id(&self, refresh_token_id: &str) -> Result<(), ClientError> {
        call!(self, Request::RevokeTokenById {
            refresh_token_id: refresh_token_id.to_owned(),
        }, Response::Done => ())
    }

    /// Revokes every refresh token of a user (or only those of one type); returns how
    /// many were revoked.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found`.
    pub async fn revoke_all(
        &self,
        user_id: &str,
        token_type: Option<TokenType>,
    ) -> Result<u64, ClientError> {
        call!(self, Request::RevokeAllTokens {
            user_id: user_id.to_owned(),
            token_type,
        }, Response::Revoked { count } => count)
    }

    /// A user's refresh tokens (never the tokens themselves), in id order, read a page
    /// at a time ([`Client::tokens`]) so any number of them can be listed.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found`.
    pub async fn list_tokens(&self, user_id: &str) -> Result<Vec<TokenInfo>, ClientError> {
        self.tokens(user_id).all().await
    }

    /// One page of a user's refresh tokens, by id, after the cursor `after`.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found`.
    pub async fn tokens_page(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<TokenInfo>, ClientError> {
        call!(self, Request::ListTokensPage {
            user_id: user_id.to_owned(),
            after: after.map(str::to_owned),
            limit,
        }, Response::TokenPage(page) => page)
    }

    /// Creates a long-lived access token for a user; the token is in the answer, once.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found`, `already_exists`, `system_user`,
    /// `forbidden`.
    pub async fn create_long_lived_token(
        &self,
        user_id: &str,
        client_name: &str,
        client_icon: Option<&str>,
        lifespan_days: u32,
    ) -> Result<LongLivedToken, ClientError> {
        call!(self, Request::CreateLongLivedToken {
            user_id: user_id.to_owned(),
            client_name: client_name.to_owned(),
            client_icon: client_icon.map(str::to_owned),
            lifespan_days,
        }, Response::LongLivedToken(t) => t)
    }

    /// Turns the sliding expiry of a refresh token on or off.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `token_not_found`.
    pub async fn set_token_expiry(
        &self,
        refresh_token_id: &str,
        enable: bool,
    ) -> Result<(), ClientError> {
        call!(self, Request::SetTokenExpiry {
            refresh_token_id: refresh_token_id.to_owned(),
            enable,
        }, Response::Done => ())
    }

    // ---- users ------------------------------------------------------------------------

    /// Every user, in id order, read a page at a time ([`Client::users`]) so any
    /// number of users can be listed.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn list_users(&self) -> Result<Vec<UserInfo>, ClientError> {
        self.users().all().await
    }

    /// One page of users, by id, after the cursor `after` (see [`Page`]).
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn users_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<UserInfo>, ClientError> {
        call!(self, Request::ListUsersPage {
            after: after.map(str::to_owned),
            limit,
        }, Response::UserPage(page) => page)
    }

    /// One user, by id.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found`.
    pub async fn get_user(&self, user_id: &str) -> Result<UserInfo, ClientError> {
        call!(self, Request::GetUser { user_id: user_id.to_owned() }, Response::User(u) => u)
    }

    /// One user, by the username of their password login, compared as Home Assistant
    /// compares usernames (surrounding whitespace and case do not matter).
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found`.
    pub async fn get_user_by_username(&self, username: &str) -> Result<UserInfo, ClientError> {
        call!(self, Request::GetUserByUsername { username: username.to_owned() },
            Response::User(u) => u)
    }

    /// The users whose display name is exactly `name` (at most `limit`, by id).
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn find_users_by_name(
        &self,
        name: &str,
        limit: u32,
    ) -> Result<Vec<UserInfo>, ClientError> {
        call!(self, Request::FindUsersByName { name: name.to_owned(), limit },
            Response::Users(users) => users)
    }

    /// Creates a user without credentials (the first non-system user becomes the owner).
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `group_not_found`.
    pub async fn create_user(&self, user: NewUser) -> Result<UserInfo, ClientError> {
        call!(self, Request::CreateUser {
            name: user.name,
            group_ids: user.group_ids,
            local_only: user.local_only,
            system_generated: user.system_generated,
        }, Response::User(u) => u)
    }

    /// First-run setup: creates the owner with a username and password.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `already_onboarded`, `invalid_username`,
    /// `weak_password`.
    pub async fn onboard(
        &self,
        name: &str,
        username: &str,
        password: &str,
    ) -> Result<UserInfo, ClientError> {
        call!(self, Request::Onboard {
            name: name.to_owned(),
            username: username.to_owned(),
            password: Sensitive::from(password),
        }, Response::User(u) => u)
    }

    /// Changes a user.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found`, `system_user`, `owner_protected`,
    /// `group_not_found`.
    pub async fn update_user(
        &self,
        user_id: &str,
        update: UserUpdate,
    ) -> Result<UserInfo, ClientError> {
        call!(self, Request::UpdateUser {
            user_id: user_id.to_owned(),
            name: update.name,
            is_active: update.is_active,
            group_ids: update.group_ids,
            local_only: update.local_only,
        }, Response::User(u) => u)
    }

    /// Removes a user, its credentials and its tokens.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found`, `owner_protected`, `system_user`.
    pub async fn remove_user(&self, user_id: &str) -> Result<(), ClientError> {
        call!(self, Request::RemoveUser { user_id: user_id.to_owned() }, Response::Done => ())
    }

    /// Activates a user.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found`.
    pub async fn activate_user(&self, user_id: &str) -> Result<(), ClientError> {
        call!(self, Request::ActivateUser { user_id: user_id.to_owned() }, Response::Done => ())
    }

    /// Deactivates a user and revokes its tokens.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found`, `owner_protected`.
    pub async fn deactivate_user(&self, user_id: &str) -> Result<(), ClientError> {
        call!(self, Request::DeactivateUser { user_id: user_id.to_owned() }, Response::Done => ())
    }

    /// Replaces a user's groups.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found`, `group_not_found`, `system_user`.
    pub async fn set_user_groups(
        &self,
        user_id: &str,
        group_ids: Vec<String>,
    ) -> Result<UserInfo, ClientError> {
        call!(self, Request::SetUserGroups {
            user_id: user_id.to_owned(),
            group_ids,
        }, Response::User(u) => u)
    }

    /// Every group.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn list_groups(&self) -> Result<Vec<GroupInfo>, ClientError> {
        call!(self, Request::ListGroups, Response::Groups(g) => g)
    }

    // ---- credentials ------------------------------------------------------------------

    /// Gives a user a username and password.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found`, `system_user`, `already_exists`,
    /// `invalid_username`, `weak_password`.
    pub async fn add_password(
        &self,
        user_id: &str,
        username: &str,
        password: &str,
    ) -> Result<UserInfo, ClientError> {
        call!(self, Request::AddPassword {
            user_id: user_id.to_owned(),
            username: username.to_owned(),
            password: Sensitive::from(password),
        }, Response::User(u) => u)
    }

    /// Sets a user's password without the old one (an operator action).
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found`, `credential_not_found`,
    /// `weak_password`.
    pub async fn change_password(
        &self,
        user_id: &str,
        new_password: &str,
    ) -> Result<(), ClientError> {
        call!(self, Request::ChangePassword {
            user_id: user_id.to_owned(),
            new_password: Sensitive::from(new_password),
        }, Response::Done => ())
    }

    /// A person changes their own password, proving the current one.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `invalid_token`, `credential_not_found`, `invalid_auth`,
    /// `weak_password`, `too_many_attempts`.
    pub async fn change_own_password(
        &self,
        access_token: &str,
        current_password: &str,
        new_password: &str,
    ) -> Result<(), ClientError> {
        call!(self, Request::ChangeOwnPassword {
            access_token: Sensitive::from(access_token),
            current_password: Sensitive::from(current_password),
            new_password: Sensitive::from(new_password),
        }, Response::Done => ())
    }

    /// A person changes their own password from `remote_ip` (their address, as the
    /// calling service saw it): throttled like a login, and refused for a local-only
    /// user from a non-local address.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `invalid_token`, `forbidden`, `credential_not_found`,
    /// `invalid_auth`, `weak_password`, `invalid_request`, `too_many_attempts`.
    pub async fn change_own_password_from(
        &self,
        access_token: &str,
        current_password: &str,
        new_password: &str,
        remote_ip: Option<IpAddr>,
    ) -> Result<(), ClientError> {
        call!(self, Request::ChangeOwnPasswordFrom {
            access_token: Sensitive::from(access_token),
            current_password: Sensitive::from(current_password),
            new_password: Sensitive::from(new_password),
            remote_ip,
        }, Response::Done => ())
    }

    /// Renames a user's login.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found`, `credential_not_found`,
    /// `invalid_username`, `already_exists`.
    pub async fn change_username(
        &self,
        user_id: &str,
        username: &str,
    ) -> Result<UserInfo, ClientError> {
        call!(self, Request::ChangeUsername {
            user_id: user_id.to_owned(),
            username: username.to_owned(),
        }, Response::User(u) => u)
    }

    /// Removes a credential and revokes the tokens it signed in.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `credential_not_found`, `owner_protected`.
    pub async fn remove_credential(&self, credential_id: &str) -> Result<(), ClientError> {
        call!(self, Request::RemoveCredential {
            credential_id: credential_id.to_owned(),
        }, Response::Done => ())
    }

    // ---- multi-factor authentication --------------------------------------------------

    /// The configured MFA modules and whether the user has each on.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found`.
    pub async fn list_mfa_modules(&self, user_id: &str) -> Result<Vec<MfaModuleInfo>, ClientError> {
        call!(self, Request::ListMfaModules { user_id: user_id.to_owned() },
            Response::MfaModules(m) => m)
    }

    /// Starts enrolling a user in an MFA module (for TOTP: a form with the secret, the
    /// `otpauth://` URL and a terminal QR code as placeholders).
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found`, `mfa_module_not_found`, `system_user`.
    pub async fn mfa_setup_start(
        &self,
        user_id: &str,
        module_id: &str,
    ) -> Result<SetupFlowState, ClientError> {
        call!(self, Request::MfaSetupStart {
            user_id: user_id.to_owned(),
            module_id: module_id.to_owned(),
        }, Response::SetupFlow(s) => s)
    }

    /// Answers the current step of an MFA setup flow.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `flow_not_found`, `invalid_request`.
    pub async fn mfa_setup_continue(
        &self,
        flow_id: &str,
        input: FormInput,
    ) -> Result<SetupFlowState, ClientError> {
        call!(self, Request::MfaSetupContinue {
            flow_id: flow_id.to_owned(),
            input,
        }, Response::SetupFlow(s) => s)
    }

    /// Abandons an MFA setup flow.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `flow_not_found`.
    pub async fn mfa_setup_abort(&self, flow_id: &str) -> Result<(), ClientError> {
        call!(self, Request::MfaSetupAbort { flow_id: flow_id.to_owned() }, Response::Done => ())
    }

    /// Turns an MFA module off for a user.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found`, `mfa_module_not_found`, `system_user`.
    pub async fn mfa_disable(&self, user_id: &str, module_id: &str) -> Result<(), ClientError> {
        call!(self, Request::MfaDisable {
            user_id: user_id.to_owned(),
            module_id: module_id.to_owned(),
        }, Response::Done => ())
    }

    /// Replaces a user's recovery codes for a module; the new codes are in the answer,
    /// once.
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found`, `mfa_module_not_found`, `not_found`.
    pub async fn regenerate_recovery_codes(
        &self,
        user_id: &str,
        module_id: &str,
    ) -> Result<Vec<Sensitive>, ClientError> {
        call!(self, Request::RegenerateRecoveryCodes {
            user_id: user_id.to_owned(),
            module_id: module_id.to_owned(),
        }, Response::RecoveryCodes(codes) => codes)
    }

    // ---- permissions and throttling ---------------------------------------------------

    /// May `subject` do `key` on `entity_id`?
    ///
    /// # Errors
    ///
    /// As [`Client::request`]; `user_not_found`, `invalid_token`.
    pub async fn check_permission(
        &self,
        subject: Subject,
        entity_id: &str,
        key: PermissionKey,
    ) -> Result<bool, ClientError> {
        call!(self, Request::CheckPermission {
            subject,
            entity_id: entity_id.to_owned(),
            key,
        }, Response::Permission { allowed } => allowed)
    }

    /// The current lockouts and failure counts, by key, read a page at a time
    /// ([`Client::lockouts`]).
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn list_lockouts(&self) -> Result<Vec<LockoutInfo>, ClientError> {
        self.lockouts().all().await
    }

    /// One page of lockouts, by key text, after the cursor `after`.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn lockouts_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<LockoutInfo>, ClientError> {
        call!(self, Request::ListLockoutsPage {
            after: after.map(str::to_owned),
            limit,
        }, Response::LockoutPage(page) => page)
    }

    /// How latchd would treat a login attempt for `username` from `ip_address` now:
    /// how long it would hold it, or the lockout that would refuse it. Nothing is
    /// counted.
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn login_throttle(
        &self,
        username: Option<&str>,
        ip_address: Option<IpAddr>,
    ) -> Result<ThrottleState, ClientError> {
        call!(self, Request::LoginThrottle {
            username: username.map(str::to_owned),
            ip_address,
        }, Response::Throttle(state) => state)
    }

    /// Lifts a lockout (a no-op if there is none).
    ///
    /// # Errors
    ///
    /// As [`Client::request`].
    pub async fn clear_lockout(&self, key: LockoutKey) -> Result<(), ClientError> {
        call!(self, Request::ClearLockout { key }, Response::Done => ())
    }
}
