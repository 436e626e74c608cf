//! The `homeassistant` auth provider itself.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use latch_models::limits::{self, LimitError, MAX_PASSWORD_INPUT_BYTES};
use latch_models::{Credentials, Secret, UserMeta};
use latch_provider::{
    AuthProvider, BoxFuture, Directory, ErrorKey, FlowContext, Form, FormField, LoginStep,
    ProviderError,
};
use latch_store::{AuthData, Change, CommitError, HaUser, Store, StoreError};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::config::{ConfigError, HomeAssistantConfig};
use crate::normalize::{is_normalized, normalize_username};
use crate::password::{
    self, CutPassword, DEFAULT_BCRYPT_COST, DUMMY_HASH, DUMMY_PASSWORD, HashError,
};
use crate::pool::HashPool;

/// The provider type.
pub const PROVIDER_TYPE: &str = "homeassistant";

/// The display name when the config has none.
pub const DEFAULT_NAME: &str = "Home Assistant Local";

/// The only step of the login flow.
pub const STEP_INIT: &str = "init";

/// The username field of step `init`, and the key of the username in the flow result
/// and in the credential data.
pub const FIELD_USERNAME: &str = "username";

/// The password field of step `init`.
pub const FIELD_PASSWORD: &str = "password";

/// The message of every refused login. The form shows the key `invalid_auth` instead.
pub const INVALID_AUTH_MESSAGE: &str = "invalid username or password";

/// Counters, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProviderStats {
    /// Dummy bcrypt checks run because a login named nobody (or an unreadable entry).
    pub dummy_checks: u64,
    /// Stored hashes upgraded to the configured cost after a login.
    pub rehashes: u64,
}

/// The `homeassistant` auth provider: usernames and bcrypt password hashes, kept as
/// the store's `auth_provider.homeassistant` entries.
///
/// Usernames are compared after [`normalize_username`] on both sides; passwords are
/// compared exactly (case and spaces count), cut at 72 UTF-8 bytes. Every bcrypt run
/// goes through the provider's [`HashPool`]. Every change is committed to the store
/// and awaited before the call returns (Home Assistant saves this file immediately).
pub struct HomeAssistantProvider {
    config: HomeAssistantConfig,
    store: Store,
    pool: HashPool,
    /// Serialises check-then-commit sequences of this provider, so two changes cannot
    /// both pass a check that only one of them may pass.
    writes: tokio::sync::Mutex<()>,
    /// The cost unknown users are checked at, and the entries' generation it was
    /// worked out for.
    dummy_cost: Mutex<Option<(u64, u32)>>,
    /// Dummy hashes by cost (Home Assistant's [`DUMMY_HASH`] is used for 12).
    dummies: Mutex<HashMap<u32, Arc<Zeroizing<String>>>>,
    dummy_checks: AtomicU64,
    rehashes: AtomicU64,
}

impl fmt::Debug for HomeAssistantProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HomeAssistantProvider")
            .field("config", &self.config)
            .field("store", &self.store)
            .field("pool", &self.pool.stats())
            .finish_non_exhaustive()
    }
}

fn invalid_auth() -> ProviderError {
    ProviderError::InvalidAuth(INVALID_AUTH_MESSAGE.to_owned())
}

fn internal(e: impl fmt::Display) -> ProviderError {
    ProviderError::Internal(e.to_string())
}

fn storage(e: &StoreError) -> ProviderError {
    ProviderError::Storage(e.to_string())
}

fn committed(e: CommitError<ProviderError>) -> ProviderError {
    match e {
        CommitError::Refused(e) => e,
        CommitError::Store(e) => storage(&e),
    }
}

/// The first entry whose normalised name is `normalized` (an index lookup).
fn first_match<'a>(data: &'a AuthData, normalized: &str) -> Option<&'a HaUser> {
    data.ha_users_by_normalized(normalized).next()
}

/// The cost most stored hashes have: what checking a known user costs, so what an
/// unknown user's dummy check must cost. Ties go to `configured`, then to the higher
/// cost; with no readable entry, `configured`.
fn most_common_cost(data: &AuthData, configured: u32) -> u32 {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for h in data.ha_users() {
        if let Some(cost) = password::stored_cost(&h.password) {
            *counts.entry(cost).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|&(cost, n)| (n, cost == configured, cost))
        .map_or(configured, |(cost, _)| cost)
}

impl HomeAssistantProvider {
    /// A provider over `store` with a [`HashPool`] of one slot per CPU.
    ///
    /// # Errors
    /// [`ConfigError::CostOutOfRange`] for a config built in code with a bad cost.
    pub fn new(config: HomeAssistantConfig, store: Store) -> Result<Self, ConfigError> {
        Self::with_pool(config, store, HashPool::with_cpu_count())
    }

    /// A provider over `store` that hashes in `pool` (which may be shared).
    ///
    /// # Errors
    /// [`ConfigError::CostOutOfRange`] for a config built in code with a bad cost.
    pub fn with_pool(
        config: HomeAssistantConfig,
        store: Store,
        pool: HashPool,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            store,
            pool,
            writes: tokio::sync::Mutex::new(()),
            dummy_cost: Mutex::new(None),
            dummies: Mutex::new(HashMap::new()),
            dummy_checks: AtomicU64::new(0),
            rehashes: AtomicU64::new(0),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &HomeAssistantConfig {
        &self.config
    }

    /// The pool bcrypt runs in.
    #[must_use]
    pub fn pool(&self) -> &HashPool {
        &self.pool
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> ProviderStats {
        ProviderStats {
            dummy_checks: self.dummy_checks.load(Ordering::SeqCst),
            rehashes: self.rehashes.load(Ordering::SeqCst),
        }
    }

    /// The stored usernames, exactly as stored, in file order.
    #[must_use]
    pub fn usernames(&self) -> Vec<String> {
        self.store
            .read(|d| d.ha_users().iter().map(|h| h.username.clone()).collect())
    }

    /// Checks a username and password (Home Assistant's `Data.validate_login`).
    ///
    /// The username is normalised and the *last* entry whose normalised name matches is
    /// used (found through the store's index: no stored name is folded). With no match
    /// a dummy bcrypt check runs so the answer takes as long, then the login is refused;
    /// the dummy hash has the cost most stored hashes have ([`Self::dummy_cost`]).
    /// The password is cut at 72 UTF-8 bytes and checked against the entry's hash.
    ///
    /// After a successful check, a stored hash of a lower cost than the configured one
    /// is replaced by a hash of the same (cut) password at the configured cost (latch,
    /// beyond Home Assistant). That upgrade is best-effort: a failure is logged and the
    /// login still succeeds.
    ///
    /// # Errors
    /// [`ProviderError::InvalidAuth`] for an unknown user or a wrong password (also for
    /// an entry whose stored hash is unreadable, which is logged);
    /// [`ProviderError::Internal`] if the hashing job fails.
    pub async fn validate_login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(), ProviderError> {
        let normalized = normalize_username(username);
        let entry = self
            .store
            .read(|d| d.ha_users_by_normalized(&normalized).next_back().cloned());
        let cut = CutPassword::new(password);
        let Some(entry) = entry else {
            self.dummy_check().await?;
            return Err(invalid_auth());
        };
        let bcrypt_hash = match password::decode_stored(&entry.password) {
            Ok(h) => Arc::new(h),
            Err(e) => return self.unreadable_entry(&entry, &e).await,
        };
        let job_hash = Arc::clone(&bcrypt_hash);
        let job_cut = cut.clone();
        let checked = self
            .pool
            .run(move || password::verify(&job_cut, &job_hash))
            .await
            .map_err(|e| internal(&e))?;
        match checked {
            Ok(true) => {}
            Ok(false) => return Err(invalid_auth()),
            Err(e) => return self.unreadable_entry(&entry, &e).await,
        }
        if password::cost_of(&bcrypt_hash).is_ok_and(|c| c < self.config.bcrypt_cost) {
            self.upgrade_hash(&entry, cut).await;
        }
        Ok(())
    }

    /// Checks a user's current password, for "change my password" (Home Assistant's
    /// `async_verify_step_up`). The same rules as [`Self::validate_login`].
    ///
    /// # Errors
    /// As [`Self::validate_login`].
    pub async fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(), ProviderError> {
        self.validate_login(username, password).await
    }

    /// Adds an entry (Home Assistant's `Data.add_auth` followed by a save). The
    /// username must already be normalised and must not exist after normalisation.
    ///
    /// latch refuses an empty password, which Home Assistant accepts, and applies the
    /// limits of [`latch_models::limits`]: a username of at most 255 bytes without
    /// control characters, a password of at most 1,024 bytes.
    ///
    /// # Errors
    /// [`ProviderError::InvalidUsername`] with key `username_too_long`,
    /// `username_invalid_character`, `username_not_normalized` or
    /// `username_already_exists` (the last two with Home Assistant's message);
    /// [`ProviderError::WeakPassword`] for an empty password; [`ProviderError::Limit`]
    /// for a longer password; [`ProviderError::Storage`] if the commit fails (nothing is
    /// added then).
    pub async fn add_auth(&self, username: &str, password: &str) -> Result<(), ProviderError> {
        self.add_auth_with(username, password, Vec::new()).await
    }

    /// [`Self::add_auth`], committing `with` in the same store batch as the new entry:
    /// all of it or none of it becomes durable. The manager adds the user and its
    /// credential this way, so a crash can never leave an entry without its user (which
    /// would block the username forever).
    ///
    /// # Errors
    /// As [`Self::add_auth`]; a change of `with` the store refuses is
    /// [`ProviderError::Storage`] (nothing is committed then).
    pub async fn add_auth_with(
        &self,
        username: &str,
        password: &str,
        with: Vec<Change>,
    ) -> Result<(), ProviderError> {
        self.store.read(|d| check_new_username(d, username))?;
        let stored = self.hash_new_password(password).await?;
        let _writes = self.writes.lock().await;
        // Checked again on the state the entry lands on (on a shared store, after every
        // other host's batches): two hosts cannot both take one username.
        let username = username.to_owned();
        self.store
            .commit_with(move |d| {
                check_new_username(d, &username)?;
                let mut changes = Vec::with_capacity(1 + with.len());
                changes.push(Change::PutHaUser {
                    username,
                    password: stored,
                });
                changes.extend(with);
                Ok(changes)
            })
            .await
            .map_err(committed)
    }

    /// Removes the first entry whose normalised name matches (Home Assistant's
    /// `Data.async_remove_auth` followed by a save).
    ///
    /// # Errors
    /// [`ProviderError::UserNotFound`]; [`ProviderError::Storage`].
    pub async fn remove_auth(&self, username: &str) -> Result<(), ProviderError> {
        let normalized = normalize_username(username);
        let _writes = self.writes.lock().await;
        let exact = self
            .exact_name_of_first_match(&normalized)
            .ok_or(ProviderError::UserNotFound)?;
        self.store
            .commit(vec![Change::RemoveHaUser { username: exact }])
            .await
            .map_err(|e| storage(&e))
    }

    /// Replaces the password of the first entry whose normalised name matches, hashed
    /// at the configured cost (Home Assistant's `Data.change_password` and a save).
    ///
    /// latch refuses an empty password.
    ///
    /// # Errors
    /// [`ProviderError::UserNotFound`]; [`ProviderError::WeakPassword`] for an empty
    /// password; [`ProviderError::Storage`].
    pub async fn change_password(
        &self,
        username: &str,
        new_password: &str,
    ) -> Result<(), ProviderError> {
        let normalized = normalize_username(username);
        if self.exact_name_of_first_match(&normalized).is_none() {
            return Err(ProviderError::UserNotFound);
        }
        let stored = self.hash_new_password(new_password).await?;
        let _writes = self.writes.lock().await;
        let exact = self
            .exact_name_of_first_match(&normalized)
            .ok_or(ProviderError::UserNotFound)?;
        self.store
            .commit(vec![Change::PutHaUser {
                username: exact,
                password: stored,
            }])
            .await
            .map_err(|e| storage(&e))
    }

    /// Renames the first entry whose normalised name matches `old` to `new`, and in the
    /// same store commit rewrites `data.username` of every credential of this provider
    /// whose normalised username matches `old` (Home Assistant's provider-level
    /// `async_change_username`). `new` is checked first, as for [`Self::add_auth`], so
    /// renaming an entry to its own name is refused as a duplicate.
    ///
    /// # Errors
    /// [`ProviderError::InvalidUsername`] for `new`; then
    /// [`ProviderError::UserNotFound`]; [`ProviderError::Storage`].
    pub async fn change_username(&self, old: &str, new: &str) -> Result<(), ProviderError> {
        let normalized_old = normalize_username(old);
        let new = new.to_owned();
        let _writes = self.writes.lock().await;
        // Planned on the state the rename lands on (see `add_auth`).
        let plan = move |d: &AuthData| {
            check_new_username(d, &new)?;
            let entry = first_match(d, &normalized_old).ok_or(ProviderError::UserNotFound)?;
            let mut changes = vec![Change::RenameHaUser {
                old: entry.username.clone(),
                new: new.clone(),
            }];
            for c in d.credentials_by_username(PROVIDER_TYPE, None, &normalized_old) {
                if is_own_credential(c) {
                    let mut c = c.clone();
                    c.data
                        .insert(FIELD_USERNAME.to_owned(), Value::String(new.clone()));
                    changes.push(Change::PutCredential(c));
                }
            }
            Ok::<_, ProviderError>(changes)
        };
        self.store.commit_with(plan).await.map_err(committed)
    }

    /// The login form of step `init`.
    #[must_use]
    pub fn login_form() -> Form {
        Form::new(
            STEP_INIT,
            vec![
                FormField::string(FIELD_USERNAME),
                FormField::password(FIELD_PASSWORD),
            ],
        )
    }

    fn exact_name_of_first_match(&self, normalized: &str) -> Option<String> {
        self.store
            .read(|d| first_match(d, normalized).map(|h| h.username.clone()))
    }

    /// Hashes a new password at the configured cost, in the pool, in its stored form.
    async fn hash_new_password(&self, password: &str) -> Result<Secret, ProviderError> {
        if password.is_empty() {
            return Err(ProviderError::WeakPassword("the password is empty"));
        }
        limits::check_len("password", password, MAX_PASSWORD_INPUT_BYTES)?;
        let cut = CutPassword::new(password);
        let cost = self.config.bcrypt_cost;
        let hashed = self
            .pool
            .run(move || password::hash(&cut, cost))
            .await
            .map_err(|e| internal(&e))?
            .map_err(|e| internal(&e))?;
        Ok(password::encode_for_storage(&hashed))
    }

    /// The bcrypt cost of an unknown user's dummy check: the cost most stored hashes
    /// have (ties to the configured cost, then the higher), or the configured cost when
    /// there is no entry. A known user is checked at their own hash's cost, so this is
    /// what a real check of this store costs: a Home Assistant directory at cost 12
    /// served with `bcrypt_cost = 10` still checks unknown users at 12. Worked out again
    /// whenever the entries change (a scan of the stored costs, no bcrypt).
    #[must_use]
    pub fn dummy_cost(&self) -> u32 {
        let configured = self.config.bcrypt_cost;
        let mut cached = self
            .dummy_cost
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.store.read(|d| {
            let generation = d.ha_generation();
            match *cached {
                Some((g, cost)) if g == generation => cost,
                _ => {
                    let cost = most_common_cost(d, configured);
                    *cached = Some((generation, cost));
                    cost
                }
            }
        })
    }

    /// The dummy hash of this cost, if it is made already: Home Assistant's
    /// [`DUMMY_HASH`] at 12, otherwise one made by [`Self::dummy_check`].
    fn dummy_hash(&self, cost: u32) -> Option<Arc<Zeroizing<String>>> {
        if cost == DEFAULT_BCRYPT_COST {
            return Some(Arc::new(Zeroizing::new(DUMMY_HASH.to_owned())));
        }
        self.dummies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&cost)
            .cloned()
    }

    /// Home Assistant's `bcrypt.checkpw(b"foo", DUMMY)`: the same work as a real check
    /// at [`Self::dummy_cost`], result ignored. The first time a cost is needed, its
    /// dummy hash is made instead of checked, which is the same bcrypt work.
    async fn dummy_check(&self) -> Result<(), ProviderError> {
        let cost = self.dummy_cost();
        self.dummy_checks.fetch_add(1, Ordering::SeqCst);
        if let Some(dummy) = self.dummy_hash(cost) {
            return self
                .pool
                .run(move || {
                    let _ = password::verify(&CutPassword::from_bytes(DUMMY_PASSWORD), &dummy);
                })
                .await
                .map_err(|e| internal(&e));
        }
        let made = self
            .pool
            .run(move || password::hash(&CutPassword::from_bytes(DUMMY_PASSWORD), cost))
            .await
            .map_err(|e| internal(&e))?
            .map_err(|e| internal(&e))?;
        self.dummies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(cost, Arc::new(made));
        Ok(())
    }

    /// An entry whose stored hash cannot be checked: logged, timed like a miss, refused.
    async fn unreadable_entry(&self, entry: &HaUser, e: &HashError) -> Result<(), ProviderError> {
        tracing::warn!(username = %limits::echo(&entry.username), error = %e, "cannot check a stored password");
        self.dummy_check().await?;
        Err(invalid_auth())
    }

    /// Replaces `entry`'s hash by one at the configured cost, unless the entry changed
    /// meanwhile. Failures are logged, never returned.
    async fn upgrade_hash(&self, entry: &HaUser, cut: CutPassword) {
        match self.try_upgrade_hash(entry, cut).await {
            Ok(true) => {
                self.rehashes.fetch_add(1, Ordering::SeqCst);
                tracing::info!(
                    username = %limits::echo(&entry.username),
                    cost = self.config.bcrypt_cost,
                    "upgraded a stored password hash"
                );
            }
            Ok(false) => {
                tracing::debug!(username = %limits::echo(&entry.username), "entry changed; hash not upgraded");
            }
            Err(e) => {
                tracing::warn!(
                    username = %limits::echo(&entry.username),
                    error = %e,
                    "cannot upgrade a stored password hash; the old one stays"
                );
            }
        }
    }

    async fn try_upgrade_hash(
        &self,
        entry: &HaUser,
        cut: CutPassword,
    ) -> Result<bool, ProviderError> {
        let cost = self.config.bcrypt_cost;
        let hashed = self
            .pool
            .run(move || password::hash(&cut, cost))
            .await
            .map_err(|e| internal(&e))?
            .map_err(|e| internal(&e))?;
        let stored = password::encode_for_storage(&hashed);
        let _writes = self.writes.lock().await;
        // `PutHaUser` replaces the first entry of this exact name: go ahead only if that
        // is still the entry (and the hash) just checked.
        let unchanged = self.store.read(|d| {
            d.ha_user(&entry.username)
                .is_some_and(|h| h.password == entry.password)
        });
        if !unchanged {
            return Ok(false);
        }
        self.store
            .commit(vec![Change::PutHaUser {
                username: entry.username.clone(),
                password: stored,
            }])
            .await
            .map_err(|e| storage(&e))?;
        Ok(true)
    }
}

/// True for a credential of this provider (there is only the default instance).
fn is_own_credential(c: &Credentials) -> bool {
    c.auth_provider_type == PROVIDER_TYPE && c.auth_provider_id.is_none()
}

/// latch's limits on a new username, then Home Assistant's
/// `Data._validate_new_username`.
fn check_new_username(data: &AuthData, username: &str) -> Result<(), ProviderError> {
    if let Err(e) = limits::check_username(username) {
        let key = match e {
            LimitError::TooLong { .. } => "username_too_long",
            _ => "username_invalid_character",
        };
        return Err(ProviderError::InvalidUsername {
            key,
            message: e.to_string(),
        });
    }
    if !is_normalized(username) {
        return Err(ProviderError::InvalidUsername {
            key: "username_not_normalized",
            message: format!(
                "Username \"{username}\" is not normalized. Please make sure the username \
                 is lowercase and does not contain any whitespace."
            ),
        });
    }
    if first_match(data, username).is_some() {
        return Err(ProviderError::InvalidUsername {
            key: "username_already_exists",
            message: format!("Username \"{username}\" already exists"),
        });
    }
    Ok(())
}

impl AuthProvider for HomeAssistantProvider {
    fn provider_type(&self) -> &str {
        PROVIDER_TYPE
    }

    fn id(&self) -> Option<&str> {
        None
    }

    fn name(&self) -> &str {
        self.config.display_name()
    }

    fn login_step<'a>(
        &'a self,
        step_id: &'a str,
        input: Option<&'a Map<String, Value>>,
        _ctx: &'a FlowContext,
        _directory: &'a dyn Directory,
    ) -> BoxFuture<'a, Result<LoginStep, ProviderError>> {
        Box::pin(async move {
            if step_id != STEP_INIT {
                return Err(ProviderError::Internal(format!(
                    "the homeassistant provider has no login step {step_id:?}"
                )));
            }
            let form = Self::login_form();
            let Some(input) = input else {
                return Ok(LoginStep::Form(form));
            };
            let username = input.get(FIELD_USERNAME).and_then(Value::as_str);
            let password = input.get(FIELD_PASSWORD).and_then(Value::as_str);
            let (Some(username), Some(password)) = (username, password) else {
                return Ok(LoginStep::Form(form.with_error(ErrorKey::InvalidAuth)));
            };
            match self.validate_login(username, password).await {
                Ok(()) => {
                    let mut data = Map::new();
                    data.insert(
                        FIELD_USERNAME.to_owned(),
                        Value::String(username.to_owned()),
                    );
                    Ok(LoginStep::Done(data))
                }
                Err(ProviderError::InvalidAuth(_)) => {
                    Ok(LoginStep::Form(form.with_error(ErrorKey::InvalidAuth)))
                }
                Err(e) => Err(e),
            }
        })
    }

    fn get_or_create_credentials(
        &self,
        data: &Map<String, Value>,
        directory: &dyn Directory,
    ) -> Result<Credentials, ProviderError> {
        let username = data
            .get(FIELD_USERNAME)
            .and_then(Value::as_str)
            .ok_or_else(invalid_auth)?;
        let normalized = normalize_username(username);
        let existing = directory.credential_by_username(PROVIDER_TYPE, None, &normalized);
        if let Some(mut c) = existing {
            c.is_new = false;
            return Ok(c);
        }
        let mut data = Map::new();
        data.insert(FIELD_USERNAME.to_owned(), Value::String(normalized));
        Ok(Credentials::new(PROVIDER_TYPE, None, data))
    }

    fn user_meta(&self, credentials: &Credentials) -> Result<UserMeta, ProviderError> {
        let name = credentials
            .data_str(FIELD_USERNAME)
            .ok_or_else(|| ProviderError::Internal("the credential has no username".to_owned()))?;
        Ok(UserMeta {
            name: Some(name.to_owned()),
            is_active: true,
            group: None,
            local_only: None,
        })
    }

    fn will_remove_credentials<'a>(
        &'a self,
        credentials: &'a Credentials,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            if !is_own_credential(credentials) {
                return Ok(());
            }
            let Some(username) = credentials.data_str(FIELD_USERNAME) else {
                return Ok(());
            };
            match self.remove_auth(username).await {
                Ok(()) | Err(ProviderError::UserNotFound) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }
}
