//! Everything the daemon answers with, and the data those answers carry.

use serde::{Deserialize, Serialize};

use crate::{
    GrantOutcome, Handler, HttpFlow, LockoutKey, LoginProviders, Page, Sensitive, Timestamp,
    TokenType,
};

/// The `token_type` of every access token latch issues, as in an OAuth token response.
pub const BEARER: &str = "Bearer";

/// A successful answer. Which variant answers which request is documented on each
/// [`Request`](crate::Request) variant.
///
/// **Append-only**: a new variant is only ever sent in answer to a new request variant,
/// so an older client, which cannot send that request, never receives it.
/// `Debug` redacts every secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to `Ping`.
    Pong,
    /// Answer to `Status`.
    Status(DaemonStatus),
    /// Answer to `ListProviders`.
    Providers(Vec<ProviderInfo>),
    /// Answer to the login-flow requests.
    Flow(FlowState),
    /// Answer to `ValidateToken`.
    Validated(ValidatedToken),
    /// Answer to `RefreshToken`.
    AccessToken(AccessToken),
    /// Answer to `ListTokens`.
    Tokens(Vec<TokenInfo>),
    /// Answer to `CreateLongLivedToken`.
    LongLivedToken(LongLivedToken),
    /// Answer to `RevokeAllTokens`.
    Revoked {
        /// How many refresh tokens were revoked.
        count: u64,
    },
    /// Answer to `ListUsers`.
    Users(Vec<UserInfo>),
    /// Answer to requests that return one user.
    User(UserInfo),
    /// Answer to `ListGroups`.
    Groups(Vec<GroupInfo>),
    /// Answer to `ListMfaModules`.
    MfaModules(Vec<MfaModuleInfo>),
    /// Answer to the MFA setup-flow requests.
    SetupFlow(SetupFlowState),
    /// Answer to `RegenerateRecoveryCodes`: the new codes, shown once.
    RecoveryCodes(Vec<Sensitive>),
    /// Answer to `CheckPermission`.
    Permission {
        /// True if the subject may do it.
        allowed: bool,
    },
    /// Answer to `ListLockouts`.
    Lockouts(Vec<LockoutInfo>),
    /// The request was carried out; nothing to return.
    Done,
    /// Answer to `Subscribe`: events of the chosen kinds follow as separate frames.
    Subscribed,
    /// Answer to `Unsubscribe`: no more events follow.
    Unsubscribed,
    /// Answer to `ListUsersPage`.
    UserPage(Page<UserInfo>),
    /// Answer to `ListTokensPage`.
    TokenPage(Page<TokenInfo>),
    /// Answer to `ListLockoutsPage`.
    LockoutPage(Page<LockoutInfo>),
    /// Answer to `LoginThrottle`.
    Throttle(ThrottleState),
    /// Answer to `HttpProviders`.
    LoginProviders(LoginProviders),
    /// Answer to `HttpLoginStart`, `HttpLoginContinue` and `HttpLoginAuthorize`.
    HttpFlow(HttpFlow),
    /// Answer to `ExchangeCode` and `RefreshGrant`.
    Grant(GrantOutcome),
    /// Answer to `StoreStatus`.
    StoreStatus(StoreStatus),
}

impl Response {
    /// The length of this response's encoding, without the frame around it (the id and
    /// tags add a few bytes more); `usize::MAX` if it cannot be encoded.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        crate::page::encoded_len(self)
    }
}

/// How latchd would treat a login attempt now (answer to `LoginThrottle`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleState {
    /// How long latchd would hold the attempt before checking it, in milliseconds
    /// (0: not at all). It grows with the failures counted for the username and source.
    pub delay_ms: u64,
    /// The lockout that would refuse the attempt: its key and when it ends.
    pub locked_out: Option<(LockoutKey, Timestamp)>,
}

/// What `latch status` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// The daemon's package version, e.g. `0.1.0`.
    pub version: String,
    /// The protocol version it speaks.
    pub protocol_version: u32,
    /// Its process id.
    pub pid: u32,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// Its latch home directory.
    pub home: String,
    /// True once an owner exists.
    pub onboarded: bool,
    /// How many users exist (system users included).
    pub user_count: u64,
    /// How many refresh tokens exist.
    pub refresh_token_count: u64,
}

/// Where latchd keeps its data (answer to `StoreStatus`). **Append-only.**
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreBackendKind {
    /// Home Assistant's `.storage` files and the local journal.
    Files,
    /// One PostgreSQL database shared by several hosts.
    Postgres,
}

impl StoreBackendKind {
    /// `files` or `postgres`, as `[store] backend` names it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Files => "files",
            Self::Postgres => "postgres",
        }
    }
}

/// The store's state, as `latch status` shows it (answer to `StoreStatus`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    /// The backend.
    pub backend: StoreBackendKind,
    /// The last batch applied here: a journal record (files) or a log row (postgres).
    pub last_applied: u64,
    /// The newest log row this host knows of (postgres; `last_applied` for files).
    pub log_head: u64,
    /// True while the database answers (always true for files).
    pub connected: bool,
    /// Milliseconds since the database last answered (postgres only).
    pub since_contact_ms: Option<u64>,
    /// The staleness bound: past it validations answer `unavailable` (postgres only).
    pub max_staleness_secs: Option<u64>,
    /// Why the database cannot be reached, while it cannot.
    pub last_error: Option<String>,
}

impl StoreStatus {
    /// How many log rows this host is behind the newest it knows of.
    #[must_use]
    pub fn lag(&self) -> u64 {
        self.log_head.saturating_sub(self.last_applied)
    }
}

/// An auth provider a person may log in with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderInfo {
    /// Its type and id, to pass to `LoginStart`.
    pub handler: Handler,
    /// Its title, e.g. `Home Assistant Local`.
    pub name: String,
}

/// One field of a form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// The input key.
    pub name: String,
    /// What kind of value it takes.
    pub kind: FieldKind,
    /// True if the step refuses input without it.
    pub required: bool,
}

/// The kind of value a form field takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldKind {
    /// Free text, shown as typed.
    Text,
    /// Free text that must not be echoed (a password or a code).
    Secret,
    /// One of these `(value, label)` options, in display order.
    Select(Vec<(String, String)>),
}

/// A step of a flow waiting for input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowForm {
    /// The flow, to continue with.
    pub flow_id: String,
    /// The step, e.g. `init`, `select_mfa_module`, `mfa`.
    pub step_id: String,
    /// The fields to fill in.
    pub fields: Vec<Field>,
    /// Errors from the previous attempt: `(field or "base", error key)`, e.g.
    /// `("base", "invalid_auth")`.
    pub errors: Vec<(String, String)>,
    /// Values for the step's description, e.g. `mfa_module_name`. During MFA setup
    /// they hold the TOTP secret (`code`) and the `otpauth://` URL (`url`), so every
    /// value is [`Sensitive`].
    pub placeholders: Vec<(String, Sensitive)>,
}

impl FlowForm {
    /// The error for a field (`"base"` for the form as a whole), if any.
    #[must_use]
    pub fn error(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, key)| key.as_str())
    }

    /// A placeholder's value, if the form has it.
    #[must_use]
    pub fn placeholder(&self, name: &str) -> Option<&Sensitive> {
        self.placeholders
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }
}

/// Where a login flow stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlowState {
    /// Waiting for input.
    Form(FlowForm),
    /// Ended without a login; the flow is gone.
    Abort {
        /// The flow.
        flow_id: String,
        /// Why, as Home Assistant keys it: `not_allowed`, `login_expired`,
        /// `too_many_retry`, `unknown_error`, or latch's `too_many_attempts`,
        /// `login_blocked`.
        reason: String,
    },
    /// Logged in; the flow is gone.
    Done {
        /// The flow.
        flow_id: String,
        /// What the login produced.
        tokens: IssuedTokens,
    },
}

/// The tokens a finished login produces (Home Assistant's `authorization_code` grant
/// answer, without the round trip through a code).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedTokens {
    /// Who logged in.
    pub user_id: String,
    /// The new refresh token's id.
    pub refresh_token_id: String,
    /// The new refresh token.
    pub refresh_token: Sensitive,
    /// A first access token minted from it.
    pub access_token: Sensitive,
    /// The access token's lifetime in seconds.
    pub expires_in: u64,
    /// The provider type the person logged in with (`ha_auth_provider`).
    pub provider_type: String,
}

impl IssuedTokens {
    /// Always [`BEARER`].
    #[must_use]
    pub const fn token_type(&self) -> &'static str {
        BEARER
    }
}

/// A valid access token and whom it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatedToken {
    /// The user the token acts for.
    pub user: UserSummary,
    /// The refresh token it was minted from (compare with `TokenInfo::id` to mark the
    /// current session in a list).
    pub refresh_token_id: String,
    /// That refresh token's kind.
    pub token_type: TokenType,
}

/// What a service needs to know about a user on every request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    /// The user's id.
    pub id: String,
    /// The display name.
    pub name: Option<String>,
    /// The owner (allowed everything).
    pub is_owner: bool,
    /// Owner, or active and in the administrators group.
    pub is_admin: bool,
    /// May log in.
    pub is_active: bool,
    /// May log in from local addresses only.
    pub local_only: bool,
    /// A service account.
    pub system_generated: bool,
    /// The groups.
    pub group_ids: Vec<String>,
}

/// A freshly minted access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessToken {
    /// The token (a JWT).
    pub access_token: Sensitive,
    /// Its lifetime in seconds.
    pub expires_in: u64,
}

impl AccessToken {
    /// Always [`BEARER`].
    #[must_use]
    pub const fn token_type(&self) -> &'static str {
        BEARER
    }
}

/// A new long-lived access token. The refresh token behind it is never shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LongLivedToken {
    /// The refresh token's id, to revoke it later.
    pub refresh_token_id: String,
    /// The access token (a JWT), shown once.
    pub access_token: Sensitive,
    /// Its lifetime in seconds.
    pub expires_in: u64,
}

/// One refresh token, as `latch tokens list` shows it (Home Assistant's
/// `auth/refresh_tokens` fields). Never the token itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// The token's id.
    pub id: String,
    /// Its owner.
    pub user_id: String,
    /// The OAuth client it was issued to.
    pub client_id: Option<String>,
    /// A long-lived token's name.
    pub client_name: Option<String>,
    /// A long-lived token's icon.
    pub client_icon: Option<String>,
    /// Its kind.
    pub token_type: TokenType,
    /// When it was issued.
    pub created_at: Timestamp,
    /// When an access token was last minted from it.
    pub last_used_at: Option<Timestamp>,
    /// From where, as stored (Home Assistant stores whatever address it saw).
    pub last_used_ip: Option<String>,
    /// When it expires (normal tokens with expiry on).
    pub expire_at: Option<Timestamp>,
    /// The provider type of the credential it signed in with.
    pub auth_provider_type: Option<String>,
}

/// A user, as `latch users list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user's id.
    pub id: String,
    /// The display name.
    pub name: Option<String>,
    /// The `homeassistant` provider's username, if the user has a password.
    pub username: Option<String>,
    /// The owner.
    pub is_owner: bool,
    /// May log in.
    pub is_active: bool,
    /// Owner, or active and in the administrators group.
    pub is_admin: bool,
    /// May log in from local addresses only.
    pub local_only: bool,
    /// A service account.
    pub system_generated: bool,
    /// The groups.
    pub group_ids: Vec<String>,
    /// How the user can log in. Credential data is never shown.
    pub credentials: Vec<CredentialInfo>,
    /// The ids of the MFA modules the user has enabled, in configuration order.
    pub mfa_modules: Vec<String>,
}

impl UserInfo {
    /// The name to show: the display name, else the username, else the id.
    #[must_use]
    pub fn display_name(&self) -> &str {
        self.name
            .as_deref()
            .filter(|n| !n.is_empty())
            .or(self.username.as_deref())
            .unwrap_or(&self.id)
    }

    /// The summary a token validation carries.
    #[must_use]
    pub fn summary(&self) -> UserSummary {
        UserSummary {
            id: self.id.clone(),
            name: self.name.clone(),
            is_owner: self.is_owner,
            is_admin: self.is_admin,
            is_active: self.is_active,
            local_only: self.local_only,
            system_generated: self.system_generated,
            group_ids: self.group_ids.clone(),
        }
    }
}

/// One way a user logs in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialInfo {
    /// The credential's id, for `RemoveCredential`.
    pub id: String,
    /// The provider type.
    pub provider_type: String,
    /// The provider id.
    pub provider_id: Option<String>,
}

/// A group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// The group's id, e.g. `system-admin`.
    pub id: String,
    /// Its name, e.g. `Administrators`.
    pub name: Option<String>,
    /// One of the built-in groups.
    pub system_generated: bool,
    /// Its permission policy as compact JSON text, e.g. `{"entities":true}`. Text, not
    /// a JSON value, because the wire format is not self-describing.
    pub policy_json: String,
}

/// An MFA module and whether a user has it on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaModuleInfo {
    /// The module's id, e.g. `totp`.
    pub id: String,
    /// Its title, e.g. `Authenticator app`.
    pub name: String,
    /// True if the user has it enabled.
    pub enabled: bool,
}

/// Where an MFA setup flow stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetupFlowState {
    /// Waiting for input (for TOTP: the secret and `otpauth://` URL are placeholders,
    /// and the form asks for a first code).
    Form(FlowForm),
    /// Ended without enrolling; the flow is gone.
    Abort {
        /// The flow.
        flow_id: String,
        /// Why, e.g. `no_available_service`.
        reason: String,
    },
    /// Enrolled; the flow is gone.
    Done {
        /// The flow.
        flow_id: String,
        /// The module now enabled.
        module_id: String,
        /// One-time recovery codes, shown once (empty if the module has none).
        recovery_codes: Vec<Sensitive>,
    },
}

/// A lockout or a failure count that may become one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockoutInfo {
    /// What the failures are counted for.
    pub key: LockoutKey,
    /// Failures counted in the current window.
    pub failures: u32,
    /// When the lockout ends; `None` if not (yet) locked out.
    pub locked_until: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserInfo {
        UserInfo {
            id: "u1".into(),
            name: Some("Paulus".into()),
            username: Some("paulus".into()),
            is_owner: true,
            is_active: true,
            is_admin: true,
            local_only: false,
            system_generated: false,
            group_ids: vec!["system-admin".into()],
            credentials: vec![],
            mfa_modules: vec![],
        }
    }

    #[test]
    fn display_name_falls_back_to_username_then_id() {
        let mut u = user();
        assert_eq!(u.display_name(), "Paulus");
        u.name = Some(String::new());
        assert_eq!(u.display_name(), "paulus");
        u.name = None;
        assert_eq!(u.display_name(), "paulus");
        u.username = None;
        assert_eq!(u.display_name(), "u1");
    }

    #[test]
    fn summary_copies_the_flags() {
        let s = user().summary();
        assert_eq!(s.id, "u1");
        assert!(s.is_owner && s.is_admin && s.is_active);
        assert_eq!(s.group_ids, ["system-admin"]);
    }

    #[test]
    fn form_lookups() {
        let form = FlowForm {
            flow_id: "f".into(),
            step_id: "init".into(),
            fields: vec![],
            errors: vec![("base".into(), "invalid_auth".into())],
            placeholders: vec![("code".into(), Sensitive::from("JBSWY3DPEHPK3PXP"))],
        };
        assert_eq!(form.error("base"), Some("invalid_auth"));
        assert_eq!(form.error("username"), None);
        assert_eq!(
            form.placeholder("code").map(Sensitive::expose),
            Some("JBSWY3DPEHPK3PXP")
        );
        assert!(!format!("{form:?}").contains("JBSWY3DPEHPK3PXP"));
    }

    #[test]
    fn bearer() {
        let t = AccessToken {
            access_token: Sensitive::from("a.b.c"),
            expires_in: 1800,
        };
        assert_eq!(t.token_type(), "Bearer");
    }
}
