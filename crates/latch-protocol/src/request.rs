//! Everything a client can ask the daemon.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{EventKind, Handler, LockoutKey, PermissionKey, Sensitive, Subject, TokenType};

/// One value of a form: `(field name, value)`. Every value is [`Sensitive`] because a
/// request cannot tell a password from a username; the form that asked for it can.
pub type FormInput = Vec<(String, Sensitive)>;

/// A request to the daemon.
///
/// **Append-only**: the position of a variant is its number on the wire. New variants
/// go at the end; existing variants never change fields (that needs a
/// [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION) bump). See the crate documentation.
///
/// Each variant names the [`Response`](crate::Response) it is answered with on success;
/// any request may instead be answered with an [`ApiError`](crate::ApiError).
/// `Debug` redacts every secret, so requests can be logged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Liveness check. Answer: `Pong`.
    Ping,
    /// The daemon's version, uptime and counts. Answer: `Status`.
    Status,

    // ---- login flow -----------------------------------------------------------------
    /// The auth providers a person at `ip_address` may log in with, in configuration
    /// order (Home Assistant's `GET /auth/providers`). Answer: `Providers`.
    ListProviders {
        /// The address of the person logging in, as the calling service saw it.
        ip_address: Option<IpAddr>,
    },
    /// Starts a login flow with a provider. Answer: `Flow` (usually a form).
    /// Errors: `provider_not_found` (also when the provider cannot start from this
    /// address), `invalid_request` (bad client id or redirect URI),
    /// `too_many_attempts`.
    LoginStart {
        /// The provider to log in with.
        handler: Handler,
        /// The OAuth client the login is for (IndieAuth client id).
        client_id: String,
        /// Where the client wants the result delivered; checked against `client_id`
        /// when the flow finishes.
        redirect_uri: Option<String>,
        /// The address of the person logging in, as the calling service saw it.
        ip_address: Option<IpAddr>,
    },
    /// Answers the current step of a login flow. Answer: `Flow` (the next form, an
    /// abort, or `Done` with the tokens). Errors: `flow_not_found`, `invalid_request`
    /// (input that does not fit the form, or a different address than the one that
    /// started the flow), `too_many_attempts`.
    LoginContinue {
        /// The flow to continue.
        flow_id: String,
        /// The form's values.
        input: FormInput,
        /// The address of the person logging in; must equal the one the flow started
        /// from.
        ip_address: Option<IpAddr>,
    },
    /// Abandons a login flow. Answer: `Done`. Errors: `flow_not_found`.
    LoginAbort {
        /// The flow to abandon.
        flow_id: String,
    },

    // ---- tokens ---------------------------------------------------------------------
    /// Checks an access token, as a service does on every request it serves. Answer:
    /// `Validated`. Errors: `invalid_token`; `forbidden` when the user is local-only
    /// and `remote_ip` is not local (or absent).
    ValidateToken {
        /// The access token (a JWT).
        access_token: Sensitive,
        /// The address the token was presented from; needed for local-only users.
        remote_ip: Option<IpAddr>,
    },
    /// Mints a fresh access token from a refresh token (the `refresh_token` grant).
    /// Answer: `AccessToken`. Errors: `invalid_token` (unknown token),
    /// `invalid_request` (client id mismatch), `forbidden` (inactive, local-only, or the
    /// provider refuses this address).
    RefreshToken {
        /// The refresh token.
        refresh_token: Sensitive,
        /// Must equal the token's client id; absent for system and long-lived tokens.
        client_id: Option<String>,
        /// The address the refresh comes from; recorded as the token's last-used IP.
        remote_ip: Option<IpAddr>,
    },
    /// Revokes a refresh token by its value. Answer: `Done`, **always**, whether the
    /// token existed or not (as Home Assistant's `/auth/revoke`).
    RevokeToken {
        /// The refresh token.
        refresh_token: Sensitive,
    },
    /// Revokes a refresh token by its id. Answer: `Done`. Errors: `token_not_found`.
    RevokeTokenById {
        /// The refresh token's id.
        refresh_token_id: String,
    },
    /// Revokes every refresh token of a user, or only those of one type. Answer:
    /// `Revoked`. Errors: `user_not_found`.
    RevokeAllTokens {
        /// The user.
        user_id: String,
        /// Only tokens of this type; all types if absent.
        token_type: Option<TokenType>,
    },
    /// A user's refresh tokens. Answer: `Tokens`. Errors: `user_not_found`.
    ListTokens {
        /// The user.
        user_id: String,
    },
    /// Creates a long-lived access token for a user. Answer: `LongLivedToken`.
    /// Errors: `user_not_found`, `already_exists` (same client name), `system_user`,
    /// `forbidden` (inactive user).
    CreateLongLivedToken {
        /// The user the token acts for.
        user_id: String,
        /// The token's name; unique per user.
        client_name: String,
        /// An icon name to show next to it.
        client_icon: Option<String>,
        /// How long each access token minted from it lives, in days.
        lifespan_days: u32,
    },
    /// Turns the 90-day sliding expiry of a refresh token on or off. Answer: `Done`.
    /// Errors: `token_not_found`.
    SetTokenExpiry {
        /// The refresh token's id.
        refresh_token_id: String,
        /// `true` to make the token expire, `false` to keep it forever.
        enable: bool,
    },

    // ---- users ----------------------------------------------------------------------
    /// Every user. Answer: `Users`.
    ListUsers,
    /// One user. Answer: `User`. Errors: `user_not_found`.
    GetUser {
        /// The user.
        user_id: String,
    },
    /// Creates a user without credentials. The first non-system user becomes the owner.
    /// Answer: `User`. Errors: `group_not_found`.
    CreateUser {
        /// The display name.
        name: String,
        /// The groups; none if absent (such a user is no admin unless owner).
        group_ids: Option<Vec<String>>,
        /// Allowed to log in from local addresses only.
        local_only: bool,
        /// A system-generated user (a service account, never the owner).
        system_generated: bool,
    },
    /// First-run setup: creates the owner with a username and password, in the
    /// administrators group. Answer: `User`. Errors: `already_onboarded`,
    /// `invalid_username`, `weak_password`.
    Onboard {
        /// The owner's display name.
        name: String,
        /// The owner's username (normalised: lower-case, no surrounding whitespace).
        username: String,
        /// The owner's password.
        password: Sensitive,
    },
    /// Changes a user; absent fields stay as they are. Answer: `User`. Errors:
    /// `user_not_found`, `system_user`, `owner_protected` (deactivating the owner),
    /// `group_not_found`.
    UpdateUser {
        /// The user.
        user_id: String,
        /// The new display name.
        name: Option<String>,
        /// Activate or deactivate.
        is_active: Option<bool>,
        /// The new groups, replacing the old ones.
        group_ids: Option<Vec<String>>,
        /// The new local-only flag.
        local_only: Option<bool>,
    },
    /// Removes a user, its credentials and its tokens. Answer: `Done`. Errors:
    /// `user_not_found`, `owner_protected`, `system_user`.
    RemoveUser {
        /// The user.
        user_id: String,
    },
    /// Activates a user. Answer: `Done`. Errors: `user_not_found`.
    ActivateUser {
        /// The user.
        user_id: String,
    },
    /// Deactivates a user and revokes its tokens. Answer: `Done`. Errors:
    /// `user_not_found`, `owner_protected`.
    DeactivateUser {
        /// The user.
        user_id: String,
    },
    /// Replaces a user's groups. Answer: `User`. Errors: `user_not_found`,
    /// `group_not_found`, `system_user`.
    SetUserGroups {
        /// The user.
        user_id: String,
        /// The new groups.
        group_ids: Vec<String>,
    },

    // ---- groups ---------------------------------------------------------------------
    /// Every group. Answer: `Groups`.
    ListGroups,

    // ---- credentials ----------------------------------------------------------------
    /// Gives a user a username and password (the `homeassistant` provider). Answer:
    /// `User`. Errors: `user_not_found`, `system_user`, `already_exists` (the user has
    /// a password already, or the username is taken), `invalid_username`,
    /// `weak_password`.
    AddPassword {
        /// The user.
        user_id: String,
        /// The username (normalised).
        username: String,
        /// The password.
        password: Sensitive,
    },
    /// Sets a user's password without knowing the old one (an operator action).
    /// Answer: `Done`. Errors: `user_not_found`, `credential_not_found`,
    /// `weak_password`.
    ChangePassword {
        /// The user.
        user_id: String,
        /// The new password.
        new_password: Sensitive,
    },
    /// A person changes their own password, proving the current one, from an unknown
    /// address: [`Request::ChangeOwnPasswordFrom`] with no `remote_ip` (so a local-only
    /// user is refused with `forbidden`). Answer: `Done`. Errors: as
    /// `ChangeOwnPasswordFrom`.
    ChangeOwnPassword {
        /// The person's access token.
        access_token: Sensitive,
        /// The current password.
        current_password: Sensitive,
        /// The new password.
        new_password: Sensitive,
    },
    /// Renames a user's login. Answer: `User`. Errors: `user_not_found`,
    /// `credential_not_found`, `invalid_username`, `already_exists`.
    ChangeUsername {
        /// The user.
        user_id: String,
        /// The new username (normalised).
        username: String,
    },
    /// Removes a credential and revokes the tokens it signed in. Answer: `Done`.
    /// Errors: `credential_not_found`, `owner_protected`.
    RemoveCredential {
        /// The credential.
        credential_id: String,
    },

    // ---- multi-factor authentication ------------------------------------------------
    /// The configured MFA modules and whether the user has each enabled. Answer:
    /// `MfaModules`. Errors: `user_not_found`.
    ListMfaModules {
        /// The user.
        user_id: String,
    },
    /// Starts enrolling a user in an MFA module. Answer: `SetupFlow`. Errors:
    /// `user_not_found`, `mfa_module_not_found`, `system_user`.
    MfaSetupStart {
        /// The user.
        user_id: String,
        /// The module (`totp`, …).
        module_id: String,
    },
    /// Answers the current step of an MFA setup flow. Answer: `SetupFlow`. Errors:
    /// `flow_not_found`, `invalid_request`.
    MfaSetupContinue {
        /// The flow.
        flow_id: String,
        /// The form's values (e.g. the first code).
        input: FormInput,
    },
    /// Abandons an MFA setup flow. Answer: `Done`. Errors: `flow_not_found`.
    MfaSetupAbort {
        /// The flow.
        flow_id: String,
    },
    /// Turns an MFA module off for a user (a no-op if it was not on). Answer: `Done`.
    /// Errors: `user_not_found`, `mfa_module_not_found`, `system_user`.
    MfaDisable {
        /// The user.
        user_id: String,
        /// The module.
        module_id: String,
    },
    /// Replaces a user's recovery codes for a module. Answer: `RecoveryCodes`.
    /// Errors: `user_not_found`, `mfa_module_not_found`, `not_found` (the user has the
    /// module off).
    RegenerateRecoveryCodes {
        /// The user.
        user_id: String,
        /// The module.
        module_id: String,
    },

    // ---- permissions ----------------------------------------------------------------
    /// May `subject` do `key` on `entity_id`? Answer: `Permission`. Errors:
    /// `user_not_found`, `invalid_token`.
    CheckPermission {
        /// Whose rights.
        subject: Subject,
        /// The entity, e.g. `light.kitchen`.
        entity_id: String,
        /// What is asked for.
        key: PermissionKey,
    },

    // ---- throttling (latch, beyond Home Assistant) ------------------------------------
    /// The current brute-force lockouts and failure counts. Answer: `Lockouts`.
    ListLockouts,
    /// Lifts a lockout and forgets its failures (a no-op if there is none). Answer:
    /// `Done`.
    ClearLockout {
        /// What to clear.
        key: LockoutKey,
    },

    // ---- events ---------------------------------------------------------------------
    /// Receive events of these kinds on this connection, replacing any earlier
    /// subscription. There is deliberately no "everything" wildcard: a client names the
    /// kinds it knows ([`EventKind::ALL`]), so a newer daemon never sends it a kind it
    /// cannot decode. Answer: `Subscribed`.
    Subscribe {
        /// The kinds wanted.
        kinds: Vec<EventKind>,
    },
    /// Stop receiving events on this connection. Answer: `Unsubscribed`.
    Unsubscribe,

    // ---- credentials (continued) ------------------------------------------------------
    /// A person changes their own password, proving the current one, from `remote_ip`.
    /// The check is throttled as a login is (by username and by source), a wrong current
    /// password counts as a failed login (`login_failed` fires), and a local-only user
    /// is refused from a non-local or unknown address. Answer: `Done`. Errors:
    /// `invalid_token`, `forbidden` (inactive, or local-only from here),
    /// `credential_not_found`, `invalid_auth` (wrong current password), `weak_password`,
    /// `invalid_request` (a password longer than 1,024 bytes), `too_many_attempts`.
    ChangeOwnPasswordFrom {
        /// The person's access token.
        access_token: Sensitive,
        /// The current password.
        current_password: Sensitive,
        /// The new password.
        new_password: Sensitive,
        /// The person's address, as the calling service saw it.
        remote_ip: Option<IpAddr>,
    },

    // ---- paged listings and direct lookups ------------------------------------------
    /// A page of users, ordered by id: those whose id sorts after `after` (from the
    /// start if absent), at most `limit` (see [`Page`](crate::Page)). Answer:
    /// `UserPage`. `ListUsers` answers `answer_too_large` once every user no longer fits
    /// one frame; this does not.
    ListUsersPage {
        /// The `next` cursor of the previous page.
        after: Option<String>,
        /// How many users, at most ([`MAX_PAGE_SIZE`](crate::MAX_PAGE_SIZE) at most).
        limit: u32,
    },
    /// The user whose `homeassistant` login is this username, compared as Home
    /// Assistant compares usernames (surrounding whitespace stripped, case folded).
    /// Answer: `User`. Errors: `user_not_found`.
    GetUserByUsername {
        /// The username, as typed.
        username: String,
    },
    /// The users whose display name is exactly `name`, ordered by id, at most `limit`.
    /// Answer: `Users` (empty if none).
    FindUsersByName {
        /// The display name.
        name: String,
        /// How many users, at most ([`MAX_PAGE_SIZE`](crate::MAX_PAGE_SIZE) at most).
        limit: u32,
    },
    /// A page of a user's refresh tokens, ordered by id. Answer: `TokenPage`. Errors:
    /// `user_not_found`.
    ListTokensPage {
        /// The user.
        user_id: String,
        /// The `next` cursor of the previous page.
        after: Option<String>,
        /// How many tokens, at most.
        limit: u32,
    },
    /// A page of the lockouts and failure counts, ordered by the key's text
    /// (`source:…` before `username:…`). Answer: `LockoutPage`.
    ListLockoutsPage {
        /// The `next` cursor of the previous page.
        after: Option<String>,
        /// How many entries, at most.
        limit: u32,
    },
    /// How latchd would treat a login attempt for `username` from `ip_address` now: how
    /// long it would hold it, or the lockout that would refuse it. Nothing is counted.
    /// Answer: `Throttle`.
    LoginThrottle {
        /// The username to be typed.
        username: Option<String>,
        /// The address of the person logging in.
        ip_address: Option<IpAddr>,
    },

    // ---- the HTTP door (latch-http: Home Assistant's HTTP auth API) --------------------
    /// What Home Assistant's `GET /auth/providers` shows a person at `ip_address`: the
    /// providers, whether onboarding is done, and whether the address is local. Answer:
    /// `LoginProviders`.
    HttpProviders {
        /// The person's address, as the HTTP door saw it.
        ip_address: Option<IpAddr>,
    },
    /// Starts a login flow that ends in an authorization code for `client_id` instead
    /// of tokens (Home Assistant's `POST /auth/login_flow`). Unlike `LoginStart`, a
    /// provider that cannot serve the address is still started and aborts with
    /// `not_allowed`, as Home Assistant 2024.3 answers. Answer: `HttpFlow`. Errors:
    /// `provider_not_found`, `invalid_request`.
    HttpLoginStart {
        /// The provider to log in with.
        handler: Handler,
        /// The OAuth client (a valid IndieAuth client id; the HTTP door checks it).
        client_id: String,
        /// Where the client wants the code (checked before the code is issued).
        redirect_uri: String,
        /// The person's address, as the HTTP door saw it.
        ip_address: Option<IpAddr>,
        /// A PKCE S256 challenge (43 base64url characters) the code will be bound to.
        code_challenge: Option<String>,
    },
    /// Answers the current step of a flow started with `HttpLoginStart`. Answer:
    /// `HttpFlow`. Errors: `flow_not_found` (also for a flow started with
    /// `LoginStart`), `invalid_request` (input that does not fit the form, another
    /// address than the one that started the flow, a flow waiting for its redirect
    /// check), `too_many_attempts`.
    HttpLoginContinue {
        /// The flow.
        flow_id: String,
        /// The form's values.
        input: FormInput,
        /// The person's address; must equal the one the flow started from.
        ip_address: Option<IpAddr>,
    },
    /// Says whether the redirect URI of a flow that reached `CheckRedirect` may receive
    /// a code for its client; the flow then issues the code or refuses. Answer:
    /// `HttpFlow`. Errors: `flow_not_found`, `invalid_request` (the flow is not at that
    /// step).
    HttpLoginAuthorize {
        /// The flow.
        flow_id: String,
        /// True if the redirect URI is allowed for the flow's client.
        redirect_uri_allowed: bool,
    },
    /// The `authorization_code` grant: exchanges a code (single use, bound to its
    /// client, valid 10 minutes; PKCE when it was issued with a challenge) for a new
    /// refresh token and access token. Answer: `Grant` (a refusal is an answer).
    ExchangeCode {
        /// The client the code was issued to.
        client_id: String,
        /// The authorization code.
        code: Sensitive,
        /// The PKCE verifier, if the client sent one.
        code_verifier: Option<Sensitive>,
        /// The address the exchange comes from.
        remote_ip: Option<IpAddr>,
    },
    /// The `refresh_token` grant with its refusals typed (as the token endpoint answers
    /// them), where `RefreshToken` answers errors. Answer: `Grant`.
    RefreshGrant {
        /// The refresh token.
        refresh_token: Sensitive,
        /// Must equal the token's client id; absent for system and long-lived tokens.
        client_id: Option<String>,
        /// The address the refresh comes from.
        remote_ip: Option<IpAddr>,
    },

    // ---- the store ------------------------------------------------------------------
    /// Which backend keeps the data (the home's files or a shared PostgreSQL), the last
    /// batch applied here and how far behind the shared log this host is. Answer:
    /// `StoreStatus`.
    StoreStatus,
}

impl Request {
    /// How many variants this version knows; wire numbers `0..VARIANT_COUNT`.
    pub const VARIANT_COUNT: u32 = 54;

    /// The variant's stable `snake_case` name, for logs and metrics.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Status => "status",
            Self::ListProviders { .. } => "list_providers",
            Self::LoginStart { .. } => "login_start",
            Self::LoginContinue { .. } => "login_continue",
            Self::LoginAbort { .. } => "login_abort",
            Self::ValidateToken { .. } => "validate_token",
            Self::RefreshToken { .. } => "refresh_token",
            Self::RevokeToken { .. } => "revoke_token",
            Self::RevokeTokenById { .. } => "revoke_token_by_id",
            Self::RevokeAllTokens { .. } => "revoke_all_tokens",
            Self::ListTokens { .. } => "list_tokens",
            Self::CreateLongLivedToken { .. } => "create_long_lived_token",
            Self::SetTokenExpiry { .. } => "set_token_expiry",
            Self::ListUsers => "list_users",
            Self::GetUser { .. } => "get_user",
            Self::CreateUser { .. } => "create_user",
            Self::Onboard { .. } => "onboard",
            Self::UpdateUser { .. } => "update_user",
            Self::RemoveUser { .. } => "remove_user",
            Self::ActivateUser { .. } => "activate_user",
            Self::DeactivateUser { .. } => "deactivate_user",
            Self::SetUserGroups { .. } => "set_user_groups",
            Self::ListGroups => "list_groups",
            Self::AddPassword { .. } => "add_password",
            Self::ChangePassword { .. } => "change_password",
            Self::ChangeOwnPassword { .. } => "change_own_password",
            Self::ChangeUsername { .. } => "change_username",
            Self::RemoveCredential { .. } => "remove_credential",
            Self::ListMfaModules { .. } => "list_mfa_modules",
            Self::MfaSetupStart { .. } => "mfa_setup_start",
            Self::MfaSetupContinue { .. } => "mfa_setup_continue",
            Self::MfaSetupAbort { .. } => "mfa_setup_abort",
            Self::MfaDisable { .. } => "mfa_disable",
            Self::RegenerateRecoveryCodes { .. } => "regenerate_recovery_codes",
            Self::CheckPermission { .. } => "check_permission",
            Self::ListLockouts => "list_lockouts",
            Self::ClearLockout { .. } => "clear_lockout",
            Self::Subscribe { .. } => "subscribe",
            Self::Unsubscribe => "unsubscribe",
            Self::ChangeOwnPasswordFrom { .. } => "change_own_password_from",
            Self::ListUsersPage { .. } => "list_users_page",
            Self::GetUserByUsername { .. } => "get_user_by_username",
            Self::FindUsersByName { .. } => "find_users_by_name",
            Self::ListTokensPage { .. } => "list_tokens_page",
            Self::ListLockoutsPage { .. } => "list_lockouts_page",
            Self::LoginThrottle { .. } => "login_throttle",
            Self::HttpProviders { .. } => "http_providers",
            Self::HttpLoginStart { .. } => "http_login_start",
            Self::HttpLoginContinue { .. } => "http_login_continue",
            Self::HttpLoginAuthorize { .. } => "http_login_authorize",
            Self::ExchangeCode { .. } => "exchange_code",
            Self::RefreshGrant { .. } => "refresh_grant",
            Self::StoreStatus => "store_status",
        }
    }

    /// A subscription to every event kind this version knows.
    #[must_use]
    pub fn subscribe_all() -> Self {
        Self::Subscribe {
            kinds: EventKind::ALL.to_vec(),
        }
    }
}
