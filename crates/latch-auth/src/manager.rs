//! The AuthManager: users, credentials, tokens and events over the store.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use latch_models::limits::{
    self, MAX_ICON_BYTES, MAX_ID_BYTES, MAX_NAME_BYTES, MAX_PASSWORD_INPUT_BYTES, MAX_TOKEN_BYTES,
    MAX_URL_BYTES,
};
use latch_models::{
    Clock, Credentials, GROUP_ID_ADMIN, GroupId, RefreshToken, RefreshTokenId, SystemClock,
    TokenType, User, UserId, is_local_address,
};
use latch_provider::{AuthProvider, MfaModule, ProviderError};
use latch_provider_homeassistant::HomeAssistantProvider;
use latch_store::{Change, Effect, Store};
use latch_token::{JwtKey, NewRefreshToken};
use parking_lot::Mutex;
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use crate::directory::StoreDirectory;
use crate::error::AuthError;
use crate::events::AuthEvent;
use crate::flow::FlowTable;
use crate::throttle::{Throttle, ThrottleConfig, Verdict};

/// Settings of a manager that are not providers or modules.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// The time source (a [`latch_models::FixedClock`] in tests).
    pub clock: Arc<dyn Clock>,
    /// Brute-force throttling.
    pub throttle: ThrottleConfig,
    /// Written into every new refresh token's `version` field.
    pub version: String,
    /// Login and setup flows older than this are dropped (seconds). Home Assistant keeps
    /// flows forever; a bound keeps a flood of abandoned flows from filling memory.
    pub flow_ttl_secs: u64,
    /// At most this many flows in progress; the oldest are dropped first.
    pub max_flows: usize,
    /// Events buffered per subscriber before it lags.
    pub event_capacity: usize,
    /// Lifetime of the access tokens minted from refresh tokens that login flows create
    /// (seconds). Default 1800, Home Assistant's fixed 30 minutes.
    pub access_token_lifetime_secs: u64,
    /// Blocking slots for bcrypt in the `homeassistant` provider built by
    /// [`AuthManager::from_config`]; `None` means one per CPU.
    pub hash_pool_size: Option<usize>,
    /// Access tokens whose verification is remembered (by their exact string) so that
    /// validating them again skips the decode and the HMAC; 0 turns the cache off.
    /// Each entry costs a few hundred bytes.
    pub verified_cache_size: usize,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            throttle: ThrottleConfig::default(),
            version: concat!("latch-", env!("CARGO_PKG_VERSION")).to_owned(),
            flow_ttl_secs: 10 * 60,
            max_flows: 10_000,
            event_capacity: 1024,
            access_token_lifetime_secs: 1800,
            hash_pool_size: None,
            verified_cache_size: VERIFIED_CACHE_DEFAULT,
        }
    }
}

/// An access token and how long it lives.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The JWT.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// What a valid access token proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedToken {
    /// The user it belongs to.
    pub user_id: UserId,
    /// The refresh token that minted it.
    pub refresh_token_id: RefreshTokenId,
    /// The refresh token's type.
    pub token_type: TokenType,
    /// The user's display name.
    pub name: Option<String>,
    /// Whether the user is the owner.
    pub is_owner: bool,
    /// Whether the user is an administrator.
    pub is_admin: bool,
    /// Whether the user may only authenticate from local addresses.
    pub local_only: bool,
}

/// A change to a user; `None` fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserUpdate {
    /// New display name (`Some(None)` clears it).
    pub name: Option<Option<String>>,
    /// Activate or deactivate.
    pub is_active: Option<bool>,
    /// Replace the group memberships.
    pub group_ids: Option<Vec<GroupId>>,
    /// Change local-only.
    pub local_only: Option<bool>,
}

/// Prepared keys kept at most; past this the cache starts over.
const KEY_CACHE_MAX: usize = 200_000;

/// Verified access tokens kept at most by default; past this the cache starts over.
/// Each entry is the token string and an id, a few hundred bytes: about 3 MB when full.
pub const VERIFIED_CACHE_DEFAULT: usize = 8_192;

/// What the verified-token cache keeps for an access token whose signature and claims
/// checked out: the refresh token it names, and its claims (for `exp`).
#[derive(Clone, Debug)]
struct Verified {
    refresh_token_id: RefreshTokenId,
    claims: latch_token::Claims,
}

/// The verified-token cache: entries by token string, and the token strings of each
/// refresh token, so removing a refresh token drops its entries without a scan of the
/// whole cache under the write lock.
#[derive(Debug, Default)]
struct VerifiedCache {
    by_token: HashMap<Arc<str>, Verified, foldhash::quality::RandomState>,
    by_refresh_token: HashMap<RefreshTokenId, Vec<Arc<str>>, foldhash::quality::RandomState>,
}

impl VerifiedCache {
    fn len(&self) -> usize {
        self.by_token.len()
    }

    fn clear(&mut self) {
        self.by_token.clear();
        self.by_refresh_token.clear();
    }

    fn get(&self, token: &str) -> Option<&Verified> {
        self.by_token.get(token)
    }

    fn insert(&mut self, token: &str, verified: Verified) {
        let token: Arc<str> = Arc::from(token);
        let refresh_token_id = verified.refresh_token_id.clone();
        if self.by_token.insert(Arc::clone(&token), verified).is_none() {
            self.by_refresh_token
                .entry(refresh_token_id)
                .or_default()
                .push(token);
        }
    }

    /// Drops the entries of one refresh token; how many there were.
    fn remove_refresh_token(&mut self, id: &RefreshTokenId) -> usize {
        let Some(tokens) = self.by_refresh_token.remove(id) else {
            return 0;
        };
        for token in &tokens {
            self.by_token.remove(token);
        }
        tokens.len()
    }
}

/// A revocation callback: runs when its refresh token is removed.
pub type RevokeCallback = Box<dyn FnOnce() -> Result<(), String> + Send>;

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) dir: StoreDirectory,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) providers: Vec<Arc<dyn AuthProvider>>,
    pub(crate) password_provider: Option<Arc<HomeAssistantProvider>>,
    pub(crate) mfa_modules: Vec<Arc<dyn MfaModule>>,
    pub(crate) flows: FlowTable,
    /// Authorization codes of finished code flows, until exchanged (in memory only).
    pub(crate) codes: crate::code_flow::CodeStore,
    pub(crate) throttle: Mutex<Throttle>,
    pub(crate) events: broadcast::Sender<AuthEvent>,
    /// Serialises check-then-commit sequences (owner decision, unique names, links).
    pub(crate) admin: tokio::sync::Mutex<()>,
    revoke_callbacks: Mutex<HashMap<RefreshTokenId, Vec<(u64, RevokeCallback)>>>,
    next_callback: AtomicU64,
    /// Prepared keys (`jsonwebtoken`'s decoding and encoding keys) by refresh-token id,
    /// so a validation does not build them from the 128-character `jwt_key` again. A
    /// key never changes for its id; entries go when their token is removed, and the whole cache is dropped if it
    /// outgrows [`KEY_CACHE_MAX`] (a miss only costs the preparation again).
    key_cache: parking_lot::RwLock<HashMap<RefreshTokenId, JwtKey>>,
    /// Access tokens that verified, by their exact string, so validating a token again
    /// (a service checks the same token on every request it serves) skips the base64,
    /// JSON and HMAC work. Sound because a token's claims and its refresh token's key
    /// never change: a hit still looks the refresh token and the user up (a revoked
    /// token or a deactivated user is refused at once) and re-checks `exp` by the same
    /// rule as a full verification, so no entry outlives its token. Entries of a removed
    /// refresh token go with it; the whole cache is dropped when it would outgrow
    /// `verified_cache_max` (0: no cache).
    /// (Hashed with foldhash, seeded per process: only tokens that verified are ever
    /// inserted, so there is no flooding to resist, and hashing ~200 bytes with SipHash
    /// would be a tenth of a validation.)
    verified: parking_lot::RwLock<VerifiedCache>,
    verified_cache_max: usize,
    pub(crate) version: String,
    pub(crate) access_token_lifetime_secs: u64,
}

/// The AuthManager. Cheap to clone; every clone is the same manager.
#[derive(Clone)]
pub struct AuthManager {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for AuthManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthManager")
            .field("providers", &self.inner.providers.len())
            .field("mfa_modules", &self.inner.mfa_modules.len())
            .finish_non_exhaustive()
    }
}

impl AuthManager {
    /// A manager over `store` with providers and MFA modules in configuration order.
    /// `password_provider` is the `homeassistant` provider used for onboarding and
    /// password administration; it must also be among `providers` to be used for login.
    ///
    /// # Errors
    /// [`AuthError::Config`] for duplicate provider `(type, id)` pairs or module ids.
    pub fn new(
        store: Store,
        providers: Vec<Arc<dyn AuthProvider>>,
        password_provider: Option<Arc<HomeAssistantProvider>>,
        mfa_modules: Vec<Arc<dyn MfaModule>>,
        options: ManagerOptions,
    ) -> Result<Self, AuthError> {
        for (i, p) in providers.iter().enumerate() {
            if providers[..i]
                .iter()
                .any(|q| q.provider_type() == p.provider_type() && q.id() == p.id())
            {
                return Err(AuthError::Config(format!(
                    "duplicate auth provider {} found; give each instance a unique id",
                    p.provider_type()
                )));
            }
        }
        for (i, m) in mfa_modules.iter().enumerate() {
            if mfa_modules[..i].iter().any(|n| n.id() == m.id()) {
                return Err(AuthError::Config(format!(
                    "duplicate mfa module {} found; give each module a unique id",
                    m.id()
                )));
            }
        }
        let (events, _) = broadcast::channel(options.event_capacity.max(1));
        let inner = Inner {
            dir: StoreDirectory {
                store: store.clone(),
            },
            store,
            clock: options.clock,
            providers,
            password_provider,
            mfa_modules,
            flows: FlowTable::new(
                TimeDelta::seconds(i64::try_from(options.flow_ttl_secs).unwrap_or(600)),
                options.max_flows,
            ),
            codes: crate::code_flow::CodeStore::default(),
            throttle: Mutex::new(Throttle::new(options.throttle)),
            events,
            admin: tokio::sync::Mutex::new(()),
            revoke_callbacks: Mutex::new(HashMap::new()),
            next_callback: AtomicU64::new(1),
            key_cache: parking_lot::RwLock::new(HashMap::new()),
            verified: parking_lot::RwLock::new(VerifiedCache::default()),
            verified_cache_max: options.verified_cache_size,
            version: options.version,
            access_token_lifetime_secs: options.access_token_lifetime_secs,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The store the manager keeps its data in.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The current time from the injected clock.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// The providers, in configuration order.
    #[must_use]
    pub fn providers(&self) -> &[Arc<dyn AuthProvider>] {
        &self.inner.providers
    }

    /// The MFA modules, in configuration order.
    #[must_use]
    pub fn mfa_modules(&self) -> &[Arc<dyn MfaModule>] {
        &self.inner.mfa_modules
    }

    /// The provider with this exact `(type, id)`.
    #[must_use]
    pub fn provider(&self, provider_type: &str, id: Option<&str>) -> Option<Arc<dyn AuthProvider>> {
        self.inner
            .providers
            .iter()
            .find(|p| p.provider_type() == provider_type && p.id() == id)
            .cloned()
    }

    /// The MFA module with this id.
    #[must_use]
    pub fn mfa_module(&self, id: &str) -> Option<Arc<dyn MfaModule>> {
        self.inner
            .mfa_modules
            .iter()
            .find(|m| m.id() == id)
            .cloned()
    }

    /// A receiver of every event fired from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<AuthEvent> {
        self.inner.events.subscribe()
    }

    pub(crate) fn fire(&self, event: AuthEvent) {
        tracing::debug!(event = event.name(), "auth event");
        // No subscribers is fine.
        let _ = self.inner.events.send(event);
    }

    /// Fires the events of a batch another host made (a shared store applied it here),
    /// drops what this host cached of the tokens it revoked and runs their revoke
    /// callbacks, as for a change made here.
    pub fn fire_applied(&self, batch: &latch_store::AppliedBatch) {
        for effect in &batch.effects {
            let event = match effect {
                Effect::UserAdded(id) => AuthEvent::UserAdded {
                    user_id: id.clone(),
                },
                Effect::UserUpdated(id) => AuthEvent::UserUpdated {
                    user_id: id.clone(),
                },
                Effect::UserRemoved(id) => AuthEvent::UserRemoved {
                    user_id: id.clone(),
                },
                Effect::RefreshTokenCreated {
                    user_id,
                    id,
                    token_type,
                    client_id,
                    client_name,
                } => AuthEvent::RefreshTokenCreated {
                    user_id: user_id.clone(),
                    refresh_token_id: id.clone(),
                    token_type: *token_type,
                    client_id: client_id.clone(),
                    client_name: client_name.clone(),
                },
                Effect::RefreshTokenRevoked { user_id, id } => {
                    self.inner.key_cache.write().remove(id);
                    self.inner.verified.write().remove_refresh_token(id);
                    let callbacks = self.inner.revoke_callbacks.lock().remove(id);
                    for (_, cb) in callbacks.into_iter().flatten() {
                        if let Err(e) = cb() {
                            tracing::warn!(refresh_token_id = %id, "error during refresh token removal: {e}");
                        }
                    }
                    AuthEvent::RefreshTokenRevoked {
                        user_id: user_id.clone(),
                        refresh_token_id: id.clone(),
                    }
                }
                Effect::LockoutStarted { key, until } => {
                    let Some(key) = crate::throttle::ThrottleKey::parse(key) else {
                        tracing::warn!(key, "a lockout from another host names no key");
                        continue;
                    };
                    let now = self.now();
                    if !self.inner.throttle.lock().impose(key.clone(), *until, now) {
                        continue;
                    }
                    tracing::warn!(%key, %until, "lockout started on another host");
                    AuthEvent::LockoutStarted { key, until: *until }
                }
                Effect::LockoutCleared { key } => {
                    let Some(key) = crate::throttle::ThrottleKey::parse(key) else {
                        continue;
                    };
                    if !self.inner.throttle.lock().clear(&key) {
                        continue;
                    }
                    tracing::info!(%key, "lockout cleared on another host");
                    AuthEvent::LockoutCleared { key }
                }
                _ => continue,
            };
            self.fire(event);
        }
    }

    // ----- users -----

    /// Every user, in store order.
    #[must_use]
    pub fn users(&self) -> Vec<User> {
        self.inner.store.users()
    }

    /// One user.
    #[must_use]
    pub fn user(&self, id: &str) -> Option<User> {
        self.inner.store.user(id)
    }

    fn require_user(&self, id: &str) -> Result<User, AuthError> {
        self.user(id).ok_or(AuthError::UserNotFound)
    }

    fn check_groups(&self, group_ids: &[GroupId]) -> Result<(), AuthError> {
        for g in group_ids {
            limits::check_len("group id", g.as_str(), MAX_ID_BYTES)?;
            if self.inner.store.group(g.as_str()).is_none() {
                return Err(AuthError::InvalidGroup(limits::echo(g.as_str())));
            }
        }
        Ok(())
    }

    fn has_person(&self) -> bool {
        self.inner
            .store
            .read(|d| d.users().any(|u| !u.system_generated))
    }

    /// Creates an active user. The first person created becomes the owner (Home
    /// Assistant's rule); without `group_ids` the user has no groups. Fires `user_added`.
    ///
    /// # Errors
    /// [`AuthError::InvalidGroup`], or a store failure.
    pub async fn create_user(
        &self,
        name: Option<String>,
        group_ids: Option<Vec<GroupId>>,
        local_only: bool,
    ) -> Result<User, AuthError> {
        check_display_name(name.as_deref())?;
        let _guard = self.inner.admin.lock().await;
        let group_ids = group_ids.unwrap_or_default();
        self.check_groups(&group_ids)?;
        let mut user = User::new(name);
        user.is_active = true;
        user.is_owner = !self.has_person();
        user.local_only = local_only;
        user.group_ids = group_ids;
        self.inner
            .store
            .commit(vec![Change::PutUser(user.clone())])
            .await?;
        self.fire(AuthEvent::UserAdded {
            user_id: user.id.clone(),
        });
        tracing::info!(user_id = %user.id, owner = user.is_owner, "user created");
        Ok(user)
    }

    /// Creates a system-generated, active user (for an integration or service). Fires
    /// `user_added`.
    ///
    /// # Errors
    /// [`AuthError::InvalidGroup`], or a store failure.
    pub async fn create_system_user(
        &self,
        name: Option<String>,
        group_ids: Vec<GroupId>,
        local_only: bool,
    ) -> Result<User, AuthError> {
        check_display_name(name.as_deref())?;
        let _guard = self.inner.admin.lock().await;
        self.check_groups(&group_ids)?;
        let mut user = User::new(name);
        user.is_active = true;
        user.system_generated = true;
        user.local_only = local_only;
        user.group_ids = group_ids;
        self.inner
            .store
            .commit(vec![Change::PutUser(user.clone())])
            .await?;
        self.fire(AuthEvent::UserAdded {
            user_id: user.id.clone(),
        });
        Ok(user)
    }

    /// Onboarding: creates the owner with a password login, as Home Assistant's
    /// onboarding does (username checked, owner in `system-admin`, credential linked).
    ///
    /// The password entry, the user and the credential are committed as one store
    /// batch: a crash leaves all of them or none (never an entry that blocks the
    /// username with no user behind it).
    ///
    /// # Errors
    /// [`AuthError::AlreadyOnboarded`] when a person exists already;
    /// [`AuthError::NoPasswordProvider`]; [`AuthError::Limit`] for a display name
    /// past its cap; the provider's username/password errors.
    pub async fn onboard(
        &self,
        name: Option<String>,
        username: &str,
        password: &str,
    ) -> Result<User, AuthError> {
        check_display_name(name.as_deref())?;
        let provider = self.password_provider()?;
        let _guard = self.inner.admin.lock().await;
        if self.has_person() {
            return Err(AuthError::AlreadyOnboarded);
        }
        let mut user = User::new(name);
        user.is_active = true;
        user.is_owner = true;
        user.group_ids = vec![GroupId::from(GROUP_ID_ADMIN)];
        let credential = password_credential(provider.id(), username, &user.id);
        provider
            .add_auth_with(
                username,
                password,
                vec![
                    Change::PutUser(user.clone()),
                    Change::PutCredential(credential.clone()),
                ],
            )
            .await?;
        self.fire(AuthEvent::UserAdded {
            user_id: user.id.clone(),
        });
        self.fire(AuthEvent::CredentialAdded {
            user_id: user.id.clone(),
            credential_id: credential.id.clone(),
            provider_type: credential.auth_provider_type.clone(),
        });
        tracing::info!(user_id = %user.id, "owner onboarded");
        Ok(user)
    }

    /// Updates a user. Fires `user_updated` every time, even when nothing changed.
    /// Deactivation revokes every refresh token of the user.
    ///
    /// # Errors
    /// [`AuthError::UserNotFound`], [`AuthError::SystemUser`],
    /// [`AuthError::OwnerProtected`] (deactivating the owner), [`AuthError::InvalidGroup`],
    /// [`AuthError::Limit`] for a new name past its cap or with a control character (a
    /// stored name is never checked: only what changes).
    pub async fn update_user(&self, id: &str, update: UserUpdate) -> Result<User, AuthError> {
        if let Some(name) = &update.name {
            check_display_name(name.as_deref())?;
        }
        let _guard = self.inner.admin.lock().await;
        let mut user = self.require_user(id)?;
        if user.system_generated {
            return Err(AuthError::SystemUser(
                "cannot modify system generated users",
            ));
        }
        if update.is_active == Some(false) && user.is_owner {
            return Err(AuthError::OwnerProtected("unable to deactivate the owner"));
        }
        if let Some(groups) = &update.group_ids {
            self.check_groups(groups)?;
        }
        let deactivating = update.is_active == Some(false) && user.is_active;
        if let Some(name) = update.name {
            user.name = name;
        }
        if let Some(active) = update.is_active {
            user.is_active = active;
        }
        if let Some(groups) = update.group_ids {
            user.group_ids = groups;
        }
        if let Some(local_only) = update.local_only {
            user.local_only = local_only;
        }
        self.inner
            .store
            .commit(vec![Change::PutUser(user.clone())])
            .await?;
        if deactivating {
            self.revoke_for_change(&user.id, |_| true).await?;
        }
        self.fire(AuthEvent::UserUpdated {
            user_id: user.id.clone(),
        });
        tracing::info!(user_id = %user.id, "user updated");
        Ok(user)
    }

    /// Activates a user.
    ///
    /// # Errors
    /// As [`AuthManager::update_user`].
    pub async fn activate_user(&self, id: &str) -> Result<User, AuthError> {
        self.update_user(
            id,
            UserUpdate {
                is_active: Some(true),
                ..UserUpdate::default()
            },
        )
        .await
    }

    /// Deactivates a user and revokes all their refresh tokens. The owner cannot be
    /// deactivated.
    ///
    /// # Errors
    /// As [`AuthManager::update_user`].
    pub async fn deactivate_user(&self, id: &str) -> Result<User, AuthError> {
        self.update_user(
            id,
            UserUpdate {
                is_active: Some(false),
                ..UserUpdate::default()
            },
        )
        .await
    }

    /// Replaces a user's groups.
    ///
    /// # Errors
    /// As [`AuthManager::update_user`].
    pub async fn set_groups(&self, id: &str, group_ids: Vec<GroupId>) -> Result<User, AuthError> {
        self.update_user(
            id,
            UserUpdate {
                group_ids: Some(group_ids),
                ..UserUpdate::default()
            },
        )
        .await
    }

    /// Removes a user: each credential's provider drops its record first, every refresh
    /// token is revoked (callbacks run), then the user goes. The owner cannot be removed.
    /// Fires `user_removed`.
    ///
    /// # Errors
    /// [`AuthError::UserNotFound`], [`AuthError::OwnerProtected`], a provider failure
    /// (nothing removed), or a store failure.
    pub async fn remove_user(&self, id: &str) -> Result<(), AuthError> {
        let _guard = self.inner.admin.lock().await;
        let user = self.require_user(id)?;
        if user.is_owner {
            return Err(AuthError::OwnerProtected("unable to remove the owner"));
        }
        for cred in self.inner.store.credentials_of(id) {
            if let Some(p) =
                self.provider(&cred.auth_provider_type, cred.auth_provider_id.as_deref())
            {
                p.will_remove_credentials(&cred).await?;
            }
        }
        self.revoke_for_change(&user.id, |_| true).await?;
        let mut changes = vec![Change::RemoveUser(user.id.clone())];
        for m in &self.inner.mfa_modules {
            if m.is_user_setup(&user.id) {
                m.depose_user(&user.id).await?;
            }
        }
        changes.shrink_to_fit();
        self.inner.store.commit(changes).await?;
        self.fire(AuthEvent::UserRemoved {
            user_id: user.id.clone(),
        });
        tracing::info!(user_id = %user.id, "user removed");
        Ok(())
    }

    // ----- credentials -----

    fn password_provider(&self) -> Result<Arc<HomeAssistantProvider>, AuthError> {
        self.inner
            .password_provider
            .clone()
            .ok_or(AuthError::NoPasswordProvider)
    }

    /// The user's `homeassistant` credential, if any.
    #[must_use]
    pub fn password_credential_of(&self, user_id: &str) -> Option<Credentials> {
        let provider_id = self
            .inner
            .password_provider
            .as_ref()
            .and_then(|p| p.id().map(str::to_owned));
        self.inner
            .store
            .credentials_of(user_id)
            .into_iter()
            .find(|c| c.auth_provider_type == "homeassistant" && c.auth_provider_id == provider_id)
    }

    /// The username of the user's password login, if any.
    #[must_use]
    pub fn username_of(&self, user_id: &str) -> Option<String> {
        self.password_credential_of(user_id)
            .and_then(|c| c.data_str("username").map(str::to_owned))
    }

    /// Gives a user a password login (Home Assistant's
    /// `config/auth_provider/homeassistant/create`). The password entry and the
    /// credential are committed as one store batch. Fires `credential_added`.
    ///
    /// # Errors
    /// [`AuthError::UserNotFound`], [`AuthError::SystemUser`],
    /// [`AuthError::CredentialsExist`], the provider's username/password errors.
    pub async fn add_password_login(
        &self,
        user_id: &str,
        username: &str,
        password: &str,
    ) -> Result<Credentials, AuthError> {
        let provider = self.password_provider()?;
        let _guard = self.inner.admin.lock().await;
        let user = self.require_user(user_id)?;
        if user.system_generated {
            return Err(AuthError::SystemUser(
                "cannot add credentials to a system generated user",
            ));
        }
        if self.password_credential_of(user_id).is_some() {
            return Err(AuthError::CredentialsExist);
        }
        let credential = password_credential(provider.id(), username, &user.id);
        provider
            .add_auth_with(
                username,
                password,
                vec![Change::PutCredential(credential.clone())],
            )
            .await?;
        tracing::info!(user_id = %user.id, "password login added");
        self.fire(AuthEvent::CredentialAdded {
            user_id: user.id.clone(),
            credential_id: credential.id.clone(),
            provider_type: credential.auth_provider_type.clone(),
        });
        Ok(credential)
    }

    /// Sets a user's password (operator action). Fires `password_set`.
    ///
    /// # Errors
    /// [`AuthError::UserNotFound`], [`AuthError::CredentialNotFound`], provider errors.
    pub async fn set_password(&self, user_id: &str, new_password: &str) -> Result<(), AuthError> {
        let provider = self.password_provider()?;
        self.require_user(user_id)?;
        let (credential, username) = self.password_login_of(user_id)?;
        provider.change_password(&username, new_password).await?;
        tracing::info!(user_id, "password changed");
        self.fire(AuthEvent::PasswordSet {
            user_id: UserId::from(user_id),
            credential_id: credential.id,
        });
        Ok(())
    }

    /// Changes a user's own password after checking the current one, from `remote_ip`
    /// (the address of the person, as the calling service saw it; `None` if unknown).
    ///
    /// The check of the current password is a login in all but name: the user must be
    /// allowed to authenticate from `remote_ip` (a local-only user from a non-local or
    /// unknown address is refused before any password is checked); it goes through the
    /// same throttle as a login, by username and by source (growing delays, then
    /// [`AuthError::TooManyAttempts`]); a wrong current password counts as a failed
    /// login and fires `login_failed`. Success fires `password_changed`.
    ///
    /// # Errors
    /// [`AuthError::AccessDenied`] when the user may not authenticate from here;
    /// [`AuthError::TooManyAttempts`]; [`AuthError::Provider`] with
    /// [`ProviderError::InvalidAuth`] for a wrong current password; else as
    /// [`AuthManager::set_password`].
    pub async fn change_own_password(
        &self,
        user_id: &str,
        current_password: &str,
        new_password: &str,
        remote_ip: Option<IpAddr>,
    ) -> Result<(), AuthError> {
        let provider = self.password_provider()?;
        let user = self.require_user(user_id)?;
        if let Some(reason) = Self::user_not_allowed(&user, remote_ip) {
            return Err(AuthError::AccessDenied(reason.to_owned()));
        }
        limits::check_len(
            "current password",
            current_password,
            MAX_PASSWORD_INPUT_BYTES,
        )?;
        limits::check_len("new password", new_password, MAX_PASSWORD_INPUT_BYTES)?;
        let (credential, username) = self.password_login_of(user_id)?;
        let provider_type = provider.provider_type().to_owned();
        if let Err(until) = self
            .throttle_attempt(
                Some(&username),
                Some(limits::echo(&username)),
                remote_ip,
                &provider_type,
            )
            .await
        {
            return Err(AuthError::TooManyAttempts { until });
        }
        match provider.check_password(&username, current_password).await {
            Ok(()) => {}
            Err(ProviderError::InvalidAuth(_)) => {
                self.record_failed_attempt(
                    Some(&username),
                    Some(limits::echo(&username)),
                    remote_ip,
                    &provider_type,
                    "invalid_auth",
                );
                return Err(AuthError::Provider(ProviderError::InvalidAuth(
                    "invalid current password".into(),
                )));
            }
            Err(e) => return Err(e.into()),
        }
        provider.change_password(&username, new_password).await?;
        self.inner.throttle.lock().record_success(Some(&username));
        tracing::info!(user_id, source = ?remote_ip, "own password changed");
        self.fire(AuthEvent::PasswordChanged {
            user_id: user.id,
            credential_id: credential.id,
            source: remote_ip,
        });
        Ok(())
    }

    /// The user's password credential and its username.
    fn password_login_of(&self, user_id: &str) -> Result<(Credentials, String), AuthError> {
        let credential = self
            .password_credential_of(user_id)
            .ok_or(AuthError::CredentialNotFound)?;
        let username = credential
            .data_str("username")
            .ok_or(AuthError::CredentialNotFound)?
            .to_owned();
        Ok((credential, username))
    }

    /// Passes an attempt that checks a secret through the throttle: waits out a delay,
    /// or refuses during a lockout (firing `login_failed` with `too_many_attempts` and
    /// `username`, the name as typed, echoed) with the lockout's end.
    pub(crate) async fn throttle_attempt(
        &self,
        throttle_name: Option<&str>,
        username: Option<String>,
        source: Option<IpAddr>,
        provider_type: &str,
    ) -> Result<(), DateTime<Utc>> {
        let verdict = self
            .inner
            .throttle
            .lock()
            .check(throttle_name, source, self.now());
        match verdict {
            Verdict::Allow => Ok(()),
            Verdict::Delay(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            Verdict::Refuse { until, key } => {
                tracing::warn!(%key, %until, "attempt refused: locked out");
                self.fire(AuthEvent::LoginFailed {
                    username,
                    provider_type: provider_type.to_owned(),
                    source,
                    reason: "too_many_attempts".into(),
                });
                Err(until)
            }
        }
    }

    /// Counts a failed secret against `throttle_name` and `source`, firing
    /// `login_failed` (with `username`, the name as typed, echoed) and any
    /// `lockout_started`.
    pub(crate) fn record_failed_attempt(
        &self,
        throttle_name: Option<&str>,
        username: Option<String>,
        source: Option<IpAddr>,
        provider_type: &str,
        reason: &str,
    ) {
        let locked = self
            .inner
            .throttle
            .lock()
            .record_failure(throttle_name, source, self.now());
        tracing::warn!(provider = provider_type, source = ?source, reason, "login failed");
        self.fire(AuthEvent::LoginFailed {
            username,
            provider_type: provider_type.to_owned(),
            source,
            reason: reason.to_owned(),
        });
        // Every other host of a shared store refuses the key too (failures are counted
        // per host; the lockout itself crosses hosts).
        self.store().share(
            locked
                .iter()
                .map(|(key, until)| Change::Lockout {
                    key: key.to_string(),
                    until: *until,
                })
                .collect(),
        );
        for (key, until) in locked {
            tracing::warn!(%key, %until, "lockout started");
            self.fire(AuthEvent::LockoutStarted { key, until });
        }
    }

    /// Renames a user's password login (the credential follows). Fires
    /// `username_changed`.
    ///
    /// # Errors
    /// [`AuthError::CredentialNotFound`], the provider's username errors.
    pub async fn change_username(
        &self,
        user_id: &str,
        new_username: &str,
    ) -> Result<(), AuthError> {
        let provider = self.password_provider()?;
        let _guard = self.inner.admin.lock().await;
        self.require_user(user_id)?;
        let (credential, username) = self.password_login_of(user_id)?;
        provider.change_username(&username, new_username).await?;
        tracing::info!(user_id, "username changed");
        self.fire(AuthEvent::UsernameChanged {
            user_id: UserId::from(user_id),
            credential_id: credential.id,
            username: limits::echo(new_username),
        });
        Ok(())
    }

    /// Removes a credential: its provider drops its record, every refresh token issued
    /// through it is revoked, then the credential goes. The owner's credentials cannot be
    /// removed.
    ///
    /// # Errors
    /// [`AuthError::CredentialNotFound`], [`AuthError::OwnerProtected`], provider or
    /// store failures.
    pub async fn remove_credential(&self, credential_id: &str) -> Result<(), AuthError> {
        let _guard = self.inner.admin.lock().await;
        let cred = self
            .inner
            .store
            .credential(credential_id)
            .ok_or(AuthError::CredentialNotFound)?;
        let owner = cred
            .user_id
            .as_ref()
            .and_then(|u| self.user(u.as_str()))
            .is_some_and(|u| u.is_owner);
        if owner {
            // Home Assistant 2026: `cannot_delete_owner_credentials`.
            return Err(AuthError::OwnerProtected(
                "unable to remove the owner's credentials",
            ));
        }
        if let Some(p) = self.provider(&cred.auth_provider_type, cred.auth_provider_id.as_deref()) {
            p.will_remove_credentials(&cred).await?;
        }
        if let Some(user_id) = &cred.user_id {
            let cid = cred.id.clone();
            self.revoke_for_change(user_id, move |t| t.credential_id.as_ref() == Some(&cid))
                .await?;
        }
        self.inner
            .store
            .commit(vec![Change::RemoveCredential(cred.id.clone())])
            .await?;
        tracing::info!(credential_id = %cred.id, "credential removed");
        self.fire(AuthEvent::CredentialRemoved {
            user_id: cred.user_id.clone(),
            credential_id: cred.id.clone(),
            provider_type: cred.auth_provider_type.clone(),
        });
        Ok(())
    }

    /// Links a stored-or-new credential to `user`. Already linked to `user`: nothing to
    /// do; linked to someone else: an error.
    pub(crate) async fn link_credential(
        &self,
        user: &User,
        mut credentials: Credentials,
    ) -> Result<Credentials, AuthError> {
        match &credentials.user_id {
            Some(owner) if owner != &user.id => return Err(AuthError::CredentialLinkedElsewhere),
            Some(_)
                if self
                    .inner
                    .store
                    .credential(credentials.id.as_str())
                    .is_some() =>
            {
                return Ok(credentials);
            }
            _ => {}
        }
        credentials.user_id = Some(user.id.clone());
        credentials.is_new = false;
        self.inner
            .store
            .commit(vec![Change::PutCredential(credentials.clone())])
            .await?;
        self.fire(AuthEvent::CredentialAdded {
            user_id: user.id.clone(),
            credential_id: credentials.id.clone(),
            provider_type: credentials.auth_provider_type.clone(),
        });
        Ok(credentials)
    }

    /// The user behind credentials, creating one for a new credential from the
    /// provider's [`latch_models::UserMeta`] (never an owner). Fires `user_added` for a
    /// new user.
    pub(crate) async fn get_or_create_user(
        &self,
        provider: &dyn AuthProvider,
        credentials: Credentials,
    ) -> Result<(User, Credentials), AuthError> {
        let _guard = self.inner.admin.lock().await;
        if !credentials.is_new {
            let user_id = credentials.user_id.clone().ok_or(AuthError::UserNotFound)?;
            let user = self.require_user(user_id.as_str())?;
            let credentials = if self
                .inner
                .store
                .credential(credentials.id.as_str())
                .is_none()
            {
                // Linked by the provider but not stored yet (trusted networks).
                self.link_credential(&user, credentials).await?
            } else {
                credentials
            };
            return Ok((user, credentials));
        }
        let duplicate = self.inner.dir_duplicate(provider, &credentials);
        if duplicate {
            return Err(AuthError::DuplicateCredentials);
        }
        let meta = provider.user_meta(&credentials)?;
        let group = meta.group.unwrap_or_else(|| GroupId::from(GROUP_ID_ADMIN));
        self.check_groups(std::slice::from_ref(&group))?;
        let mut user = User::new(meta.name);
        user.is_active = meta.is_active;
        user.group_ids = vec![group];
        user.local_only = meta.local_only.unwrap_or(false);
        let mut credentials = credentials;
        credentials.user_id = Some(user.id.clone());
        credentials.is_new = false;
        self.inner
            .store
            .commit(vec![
                Change::PutUser(user.clone()),
                Change::PutCredential(credentials.clone()),
            ])
            .await?;
        self.fire(AuthEvent::UserAdded {
            user_id: user.id.clone(),
        });
        self.fire(AuthEvent::CredentialAdded {
            user_id: user.id.clone(),
            credential_id: credentials.id.clone(),
            provider_type: credentials.auth_provider_type.clone(),
        });
        Ok((user, credentials))
    }

    // ----- tokens -----

    /// Creates a refresh token for `user_id` by Home Assistant's rules. Fires
    /// `refresh_token_created`.
    ///
    /// # Errors
    /// [`AuthError::UserNotFound`], [`AuthError::Token`] for a broken creation rule,
    /// [`AuthError::Limit`] for a client id, name or icon past its cap (or a name or
    /// icon with a control character).
    pub async fn create_refresh_token(
        &self,
        user_id: &str,
        params: NewRefreshToken,
    ) -> Result<RefreshToken, AuthError> {
        check_new_token(&params)?;
        let _guard = self.inner.admin.lock().await;
        let user = self.require_user(user_id)?;
        let existing = self.inner.store.refresh_tokens_of(user_id);
        let token = latch_token::create_refresh_token(
            &user,
            &existing,
            params,
            self.now(),
            &self.inner.version,
        )?;
        self.inner
            .store
            .commit(vec![Change::PutRefreshToken(token.clone())])
            .await?;
        self.fire(AuthEvent::RefreshTokenCreated {
            user_id: token.user_id.clone(),
            refresh_token_id: token.id.clone(),
            token_type: token.token_type,
            client_id: token.client_id.clone(),
            client_name: token.client_name.clone(),
        });
        Ok(token)
    }

    /// A user's refresh tokens.
    #[must_use]
    pub fn refresh_tokens_of(&self, user_id: &str) -> Vec<RefreshToken> {
        self.inner.store.refresh_tokens_of(user_id)
    }

    /// One refresh token by id.
    #[must_use]
    pub fn refresh_token(&self, id: &str) -> Option<RefreshToken> {
        self.inner.store.refresh_token(id)
    }

    /// Mints an access token from a refresh token (reference §3.4): the issuing
    /// provider may refuse (trusted networks re-checks `remote_ip`), usage is recorded
    /// (`last_used_at`, `last_used_ip`, sliding expiry) and a fresh JWT is signed.
    ///
    /// # Errors
    /// [`AuthError::TokenNotFound`], [`AuthError::InvalidProvider`], the provider's
    /// refusal as [`AuthError::Provider`].
    pub fn create_access_token(
        &self,
        refresh_token_id: &str,
        remote_ip: Option<IpAddr>,
    ) -> Result<AccessToken, AuthError> {
        let mut token = self
            .inner
            .store
            .refresh_token(refresh_token_id)
            .ok_or(AuthError::TokenNotFound)?;
        if let Some(cid) = &token.credential_id
            && let Some(cred) = self.inner.store.credential(cid.as_str())
        {
            let provider = self
                .provider(&cred.auth_provider_type, cred.auth_provider_id.as_deref())
                .ok_or_else(|| AuthError::InvalidProvider(cred.auth_provider_type.clone()))?;
            provider.validate_refresh_token(&token, remote_ip)?;
        }
        let now = self.now();
        latch_token::record_use(&mut token, now, remote_ip.map(|ip| ip.to_string()));
        self.inner.store.record_usage(
            token.id.as_str(),
            now,
            token.last_used_ip.clone(),
            token.expire_at,
        )?;
        Ok(AccessToken {
            token: latch_token::mint_access_token(&token, now),
            expires_in: token.access_token_lifetime_secs(),
        })
    }

    /// Validates an access token (reference §3.5): signature, `exp`/`iat` with 10 s
    /// leeway, issuer, and an active user. Never touches the disk. `None` for anything
    /// invalid; the reason is deliberately not returned.
    #[must_use]
    pub fn validate_access_token(&self, token: &str) -> Option<ValidatedToken> {
        self.validate_access_token_with(token, |rt, user| ValidatedToken {
            user_id: user.id.clone(),
            refresh_token_id: rt.id.clone(),
            token_type: rt.token_type,
            name: user.name.clone(),
            is_owner: user.is_owner,
            is_admin: user.is_admin(),
            local_only: user.local_only,
        })
    }

    /// [`AuthManager::validate_access_token`], answering with what `answer` makes of the
    /// token's refresh token and (active) user, read in place under the store's read
    /// lock: a caller that needs a few fields copies only those. `answer` must be quick.
    pub fn validate_access_token_with<R>(
        &self,
        token: &str,
        answer: impl FnOnce(&RefreshToken, &User) -> R,
    ) -> Option<R> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let now = self.now();
        {
            let verified = self.inner.verified.read();
            if let Some(hit) = verified.get(token)
                && !hit.claims.is_expired_at(now)
            {
                return self
                    .validated(hit.refresh_token_id.as_str(), |_| true, answer)
                    .flatten();
            }
        }
        let unverified = latch_token::decode(token).ok()?;
        let Some(iss) = unverified.iss() else {
            let _ = unverified.reject_unknown_issuer(now);
            return None;
        };
        let mut claims = None;
        let found = self.validated(
            iss,
            |rt| {
                claims = self.verify_with_cached_key(&unverified, rt, now);
                claims.is_some()
            },
            answer,
        );
        match (&found, claims) {
            (Some(Some(_)), Some(claims)) => self.remember_verified(token, iss, claims),
            (Some(_), _) => {}
            (None, _) => {
                let _ = unverified.reject_unknown_issuer(now);
            }
        }
        found.flatten()
    }

    /// Looks the refresh token `id` up and answers for it and its user with `answer` if
    /// `verify` accepts the token and the user is active: `None` when there is no such
    /// refresh token, `Some(None)` when it refuses.
    fn validated<R>(
        &self,
        id: &str,
        verify: impl FnOnce(&RefreshToken) -> bool,
        answer: impl FnOnce(&RefreshToken, &User) -> R,
    ) -> Option<Option<R>> {
        self.inner.store.with_refresh_token(id, |rt, user| {
            (verify(rt) && user.is_active).then(|| answer(rt, user))
        })
    }

    /// Keeps a token that verified (and whose user was active) in the verified cache;
    /// `refresh_token_id` is the one it names (and was verified against).
    fn remember_verified(&self, token: &str, refresh_token_id: &str, claims: latch_token::Claims) {
        let max = self.inner.verified_cache_max;
        if max == 0 {
            return;
        }
        let mut cache = self.inner.verified.write();
        if cache.len() >= max {
            cache.clear();
        }
        cache.insert(
            token,
            Verified {
                refresh_token_id: refresh_token_id.into(),
                claims,
            },
        );
    }

    /// Verifies `unverified` with `rt`'s prepared key, preparing and caching it on a
    /// miss; the claims if it verifies.
    fn verify_with_cached_key(
        &self,
        unverified: &latch_token::UnverifiedToken<'_>,
        rt: &RefreshToken,
        now: DateTime<Utc>,
    ) -> Option<latch_token::Claims> {
        if let Some(key) = self.inner.key_cache.read().get(&rt.id) {
            return unverified.verify_with(key, rt.id.as_str(), now).ok();
        }
        let key = JwtKey::from_refresh_token(rt);
        let claims = unverified.verify_with(&key, rt.id.as_str(), now).ok();
        let mut cache = self.inner.key_cache.write();
        if cache.len() >= KEY_CACHE_MAX {
            cache.clear();
        }
        cache.insert(rt.id.clone(), key);
        claims
    }

    /// Why `user` may not authenticate from `remote_ip` (Home Assistant's
    /// `async_user_not_allowed_do_auth`), or `None` if they may.
    #[must_use]
    pub fn user_not_allowed(user: &User, remote_ip: Option<IpAddr>) -> Option<&'static str> {
        if !user.is_active {
            return Some("User is not active");
        }
        if !user.local_only {
            return None;
        }
        match remote_ip {
            None => Some("No request available to validate local access"),
            Some(ip) if is_local_address(ip) => None,
            Some(_) => Some("User cannot authenticate remotely"),
        }
    }

    /// The OAuth `refresh_token` grant (reference §3.8): the token must exist, its
    /// `client_id` must equal the given one exactly (absent equals null), the user must
    /// be allowed from `remote_ip`, and the issuing provider must agree.
    ///
    /// # Errors
    /// [`AuthError::InvalidGrant`], [`AuthError::InvalidRequest`],
    /// [`AuthError::AccessDenied`].
    pub fn refresh(
        &self,
        refresh_token: &str,
        client_id: Option<&str>,
        remote_ip: Option<IpAddr>,
    ) -> Result<AccessToken, AuthError> {
        if refresh_token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::InvalidGrant);
        }
        if let Some(client_id) = client_id {
            limits::check_len("client id", client_id, MAX_URL_BYTES)?;
        }
        let token = self
            .inner
            .store
            .refresh_token_by_value(refresh_token)
            .ok_or(AuthError::InvalidGrant)?;
        if token.client_id.as_deref() != client_id {
            // The caller holds the token: naming its client tells them nothing new.
            let expected = token.client_id.as_deref().map_or_else(
                || "no client id (a long-lived or system token)".to_owned(),
                |id| format!("client id {id:?}"),
            );
            return Err(AuthError::InvalidRequest(format!(
                "client id does not match: the refresh token was issued to {expected}"
            )));
        }
        let user = self.require_user(token.user_id.as_str())?;
        if let Some(reason) = Self::user_not_allowed(&user, remote_ip) {
            return Err(AuthError::AccessDenied(reason.into()));
        }
        self.create_access_token(token.id.as_str(), remote_ip)
            .map_err(|e| match e {
                AuthError::Provider(ProviderError::InvalidAuth(m)) => AuthError::AccessDenied(m),
                other => other,
            })
    }

    /// Revokes the refresh token with this value. Always succeeds, whether or not it
    /// exists (as Home Assistant's `/auth/revoke`), unless persisting fails.
    ///
    /// # Errors
    /// A store failure.
    pub async fn revoke_by_value(&self, refresh_token: &str) -> Result<(), AuthError> {
        if refresh_token.len() > MAX_TOKEN_BYTES {
            return Ok(());
        }
        if let Some(token) = self.inner.store.refresh_token_by_value(refresh_token) {
            self.remove_refresh_token(token.id.as_str()).await?;
        }
        Ok(())
    }

    /// Removes a refresh token, then runs its revocation callbacks; every access token
    /// it minted stops validating at once. Fires `refresh_token_revoked`.
    ///
    /// # Errors
    /// [`AuthError::TokenNotFound`], a store failure, or the first failing callback's
    /// message as [`AuthError::Provider`] (the token is removed regardless).
    pub async fn remove_refresh_token(&self, id: &str) -> Result<(), AuthError> {
        let token = self
            .inner
            .store
            .refresh_token(id)
            .ok_or(AuthError::TokenNotFound)?;
        let (_, first_error) = self.remove_refresh_tokens(vec![token]).await?;
        match first_error {
            Some(e) => Err(AuthError::Provider(ProviderError::Internal(e))),
            None => Ok(()),
        }
    }

    /// Removes `tokens` in **one** store commit (one journal write, one fsync), then,
    /// for each, forgets its prepared key and verified entries, fires
    /// `refresh_token_revoked` and runs its revocation callbacks. Tokens already gone
    /// are skipped. Returns how many were removed and the first callback error (logged;
    /// every callback runs).
    async fn remove_refresh_tokens(
        &self,
        tokens: Vec<RefreshToken>,
    ) -> Result<(usize, Option<String>), AuthError> {
        let tokens: Vec<RefreshToken> = self.inner.store.read(|d| {
            tokens
                .into_iter()
                .filter(|t| d.refresh_token(t.id.as_str()).is_some())
                .collect()
        });
        if tokens.is_empty() {
            return Ok((0, None));
        }
        self.inner
            .store
            .commit(
                tokens
                    .iter()
                    .map(|t| Change::RemoveRefreshToken(t.id.clone()))
                    .collect(),
            )
            .await?;
        let mut first_error = None;
        for token in &tokens {
            self.inner.key_cache.write().remove(&token.id);
            self.inner.verified.write().remove_refresh_token(&token.id);
            self.fire(AuthEvent::RefreshTokenRevoked {
                user_id: token.user_id.clone(),
                refresh_token_id: token.id.clone(),
            });
            let callbacks = self.inner.revoke_callbacks.lock().remove(&token.id);
            for (_, cb) in callbacks.into_iter().flatten() {
                if let Err(e) = cb() {
                    tracing::warn!(refresh_token_id = %token.id, "error during refresh token removal: {e}");
                    first_error.get_or_insert(e);
                }
            }
        }
        Ok((tokens.len(), first_error))
    }

    /// Revokes the user's tokens that match `filter` in one commit; every callback runs,
    /// the first error is returned.
    pub(crate) async fn revoke_all_of(
        &self,
        user_id: &UserId,
        filter: impl Fn(&RefreshToken) -> bool,
    ) -> Result<(), AuthError> {
        let tokens: Vec<RefreshToken> = self
            .inner
            .store
            .refresh_tokens_of(user_id.as_str())
            .into_iter()
            .filter(|t| filter(t))
            .collect();
        match self.remove_refresh_tokens(tokens).await? {
            (_, Some(e)) => Err(AuthError::Provider(ProviderError::Internal(e))),
            (_, None) => Ok(()),
        }
    }

    /// Revokes the user's tokens that match `filter` as one step of a larger change
    /// (deactivation, removal of the user or of a credential), in one commit. Every
    /// token is removed whatever its revocation callbacks do; a failing callback (logged)
    /// must not leave the change half done, so only a store failure is returned.
    async fn revoke_for_change(
        &self,
        user_id: &UserId,
        filter: impl Fn(&RefreshToken) -> bool,
    ) -> Result<(), AuthError> {
        let tokens: Vec<RefreshToken> = self
            .inner
            .store
            .refresh_tokens_of(user_id.as_str())
            .into_iter()
            .filter(|t| filter(t))
            .collect();
        self.remove_refresh_tokens(tokens).await.map(|_| ())
    }

    /// Revokes every refresh token of `user_id`, or only those of `token_type`. Returns
    /// how many were removed.
    ///
    /// # Errors
    /// [`AuthError::UserNotFound`]; the first failing callback (every token is removed
    /// regardless, as Home Assistant's `delete_all_refresh_tokens`).
    pub async fn revoke_all_tokens(
        &self,
        user_id: &str,
        token_type: Option<TokenType>,
    ) -> Result<usize, AuthError> {
        let user = self.require_user(user_id)?;
        let before = self.inner.store.refresh_tokens_of(user_id).len();
        let result = self
            .revoke_all_of(&user.id, |t| token_type.is_none_or(|ty| t.token_type == ty))
            .await;
        let after = self.inner.store.refresh_tokens_of(user_id).len();
        result.map(|()| before - after)
    }

    /// Providers a login may start with from `ip_address`, in configuration order.
    #[must_use]
    pub fn login_providers(&self, ip_address: Option<IpAddr>) -> Vec<Arc<dyn AuthProvider>> {
        let ctx = latch_provider::FlowContext {
            ip_address,
            ..Default::default()
        };
        self.inner
            .providers
            .iter()
            .filter(|p| p.can_start_login(&ctx))
            .cloned()
            .collect()
    }

    /// Usernames and sources with failures in the throttle window or a lockout.
    #[must_use]
    pub fn lockouts(&self) -> Vec<crate::throttle::Lockout> {
        let now = self.now();
        self.inner.throttle.lock().list(now)
    }

    /// How the throttle would treat a login attempt for `username` from `source` now:
    /// allowed, held for a while, or refused by a lockout. Nothing is counted.
    #[must_use]
    pub fn login_verdict(
        &self,
        username: Option<&str>,
        source: Option<IpAddr>,
    ) -> crate::throttle::Verdict {
        let now = self.now();
        self.inner.throttle.lock().check(username, source, now)
    }

    /// Clears a username's or source's failures and lockout (firing `lockout_cleared`);
    /// false if it had none.
    pub fn clear_lockout(&self, key: &crate::throttle::ThrottleKey) -> bool {
        let cleared = self.inner.throttle.lock().clear(key);
        if cleared {
            self.store().share(vec![Change::ClearLockout {
                key: key.to_string(),
            }]);
            tracing::info!(%key, "lockout cleared");
            self.fire(AuthEvent::LockoutCleared { key: key.clone() });
        }
        cleared
    }

    /// Registers `callback` to run when refresh token `id` is revoked. Returns a handle
    /// for [`AuthManager::unregister_revoke_callback`].
    pub fn register_revoke_callback(&self, id: &RefreshTokenId, callback: RevokeCallback) -> u64 {
        let handle = self.inner.next_callback.fetch_add(1, Ordering::Relaxed);
        self.inner
            .revoke_callbacks
            .lock()
            .entry(id.clone())
            .or_default()
            .push((handle, callback));
        handle
    }

    /// Unregisters a revocation callback; false if it was not registered (or already ran).
    pub fn unregister_revoke_callback(&self, id: &RefreshTokenId, handle: u64) -> bool {
        let mut map = self.inner.revoke_callbacks.lock();
        let Some(list) = map.get_mut(id) else {
            return false;
        };
        let before = list.len();
        list.retain(|(h, _)| *h != handle);
        let removed = list.len() != before;
        if list.is_empty() {
            map.remove(id);
        }
        removed
    }

    /// Creates a long-lived access token (reference §3.3): a refresh token of type
    /// `long_lived_access_token` with no client id and access tokens living
    /// `lifespan_days`, and returns one minted access token. The refresh token string is
    /// never returned.
    ///
    /// # Errors
    /// [`AuthError::Token`] (missing or duplicate name), provider refusal.
    pub async fn create_long_lived_token(
        &self,
        user_id: &str,
        client_name: &str,
        client_icon: Option<String>,
        lifespan_days: i64,
    ) -> Result<(RefreshToken, AccessToken), AuthError> {
        let params = NewRefreshToken::long_lived(client_name, client_icon, lifespan_days);
        let token = self.create_refresh_token(user_id, params).await?;
        let access = self.create_access_token(token.id.as_str(), None)?;
        Ok((token, access))
    }

    /// Turns the sliding 90-day expiry of a refresh token on or off.
    ///
    /// # Errors
    /// [`AuthError::TokenNotFound`], a store failure.
    pub async fn set_token_expiry(&self, id: &str, enable: bool) -> Result<(), AuthError> {
        let mut token = self
            .inner
            .store
            .refresh_token(id)
            .ok_or(AuthError::TokenNotFound)?;
        latch_token::set_expiry(&mut token, enable, self.now());
        self.inner
            .store
            .commit(vec![Change::SetTokenExpiry {
                id: token.id.clone(),
                expire_at: token.expire_at,
            }])
            .await?;
        Ok(())
    }

    /// When the next expired-token cleanup is due: the earliest `expire_at`, or 90 days
    /// from now.
    #[must_use]
    pub fn next_cleanup_at(&self) -> DateTime<Utc> {
        let now = self.now();
        self.inner
            .store
            .read(|d| latch_token::next_cleanup_at(d.refresh_tokens(), now))
    }

    /// Removes every refresh token whose `expire_at` has passed, in one store commit
    /// (one fsync however many expired), with what [`AuthManager::remove_refresh_token`]
    /// does for each (callbacks run, events fire). Returns how many were removed.
    ///
    /// # Errors
    /// A store failure (nothing is removed then).
    pub async fn cleanup_expired_tokens(&self) -> Result<usize, AuthError> {
        let now = self.now();
        let tokens: Vec<RefreshToken> = self.inner.store.read(|d| {
            latch_token::expired_token_ids(d.refresh_tokens(), now)
                .into_iter()
                .filter_map(|id| d.refresh_token(id.as_str()).cloned())
                .collect()
        });
        let (removed, first_error) = self.remove_refresh_tokens(tokens).await?;
        if let Some(e) = first_error {
            tracing::warn!("revocation callback failed during cleanup: {e}");
        }
        Ok(removed)
    }

    /// Entries in the verified-token cache (tests and benchmarks).
    #[must_use]
    pub fn verified_cache_len(&self) -> usize {
        self.inner.verified.read().len()
    }
}

impl Inner {
    /// 2026: a new credential whose data equals a stored credential of the same provider.
    fn dir_duplicate(&self, provider: &dyn AuthProvider, credentials: &Credentials) -> bool {
        self.store.read(|d| {
            d.credentials().any(|c| {
                c.auth_provider_type == provider.provider_type()
                    && c.auth_provider_id.as_deref() == provider.id()
                    && c.data == credentials.data
            })
        })
    }
}

/// A `homeassistant` credential for `username`, linked to `user_id`.
fn password_credential(provider_id: Option<&str>, username: &str, user_id: &UserId) -> Credentials {
    let mut data = Map::new();
    data.insert("username".into(), Value::String(username.to_owned()));
    let mut c = Credentials::new("homeassistant", provider_id.map(str::to_owned), data);
    c.user_id = Some(user_id.clone());
    c.is_new = false;
    c
}

/// A new display name: at most [`MAX_NAME_BYTES`], no control characters.
fn check_display_name(name: Option<&str>) -> Result<(), AuthError> {
    if let Some(name) = name {
        limits::check_name("name", name, MAX_NAME_BYTES)?;
    }
    Ok(())
}

/// The caller-supplied strings of a new refresh token: client id, name and icon.
fn check_new_token(params: &NewRefreshToken) -> Result<(), AuthError> {
    if let Some(client_id) = &params.client_id {
        limits::check_len("client id", client_id, MAX_URL_BYTES)?;
    }
    if let Some(name) = &params.client_name {
        limits::check_name("client name", name, MAX_NAME_BYTES)?;
    }
    if let Some(icon) = &params.client_icon {
        limits::check_name("client icon", icon, MAX_ICON_BYTES)?;
    }
    Ok(())
}
