//! [`TotpModule`]: the `totp` MFA module over the store.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use latch_models::{Clock, Secret, User, UserId};
use latch_provider::{BoxFuture, CodeVerdict, FormField, MfaModule, MfaSetupFlow, ProviderError};
use latch_store::{Change, Store, TotpState};
use serde_json::{Map, Value};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};
use zeroize::Zeroizing;

use crate::otp::{DUMMY_SECRET, decode_secret, generate_secret, matching_step, step_at};
use crate::recovery::{self, normalize_recovery_code};
use crate::{ConfigError, SecretError, TotpConfig, TotpError, TotpSetupFlow};

/// The module type.
pub const MODULE_TYPE: &str = "totp";

/// Wrong codes allowed in one login flow (Home Assistant's `MAX_RETRY_TIME` for TOTP).
pub const MAX_RETRY: u32 = 5;

/// The input key of the login step and of the setup step.
pub const INPUT_FIELD_CODE: &str = "code";

/// Steps either side of the current one a login code may come from (pyotp's
/// `valid_window=1`: T-1, T and T+1).
pub const LOGIN_WINDOW: u64 = 1;

/// The `totp` MFA module: Home Assistant's authenticator-app second factor, with the
/// secrets in `.storage/auth_module.totp` exactly as Home Assistant keeps them, plus
/// replay refusal and one-time recovery codes (kept in latch's own file).
///
/// Cheap to clone; clones share the per-user locks.
#[derive(Clone)]
pub struct TotpModule {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: TotpConfig,
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    /// One async lock per user with an operation in progress: a read-check-write of a
    /// user's TOTP data never interleaves with another for the same user.
    locks: parking_lot::Mutex<HashMap<UserId, Arc<AsyncMutex<()>>>>,
}

impl fmt::Debug for TotpModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpModule")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Holds a user's lock; dropping it releases the lock and forgets it if nobody else
/// holds or waits for it.
pub(crate) struct UserLock<'a> {
    inner: &'a Inner,
    user_id: UserId,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for UserLock<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut locks = self.inner.locks.lock();
        if locks
            .get(&self.user_id)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            locks.remove(&self.user_id);
        }
    }
}

impl Inner {
    pub(crate) async fn lock_user(&self, user_id: &UserId) -> UserLock<'_> {
        let mutex = Arc::clone(self.locks.lock().entry(user_id.clone()).or_default());
        let guard = mutex.lock_owned().await;
        UserLock {
            inner: self,
            user_id: user_id.clone(),
            guard: Some(guard),
        }
    }

    pub(crate) fn now_unix(&self) -> i64 {
        self.clock.now().timestamp()
    }

    pub(crate) async fn commit(&self, changes: Vec<Change>) -> Result<(), TotpError> {
        self.store
            .commit(changes)
            .await
            .map_err(TotpError::from_store)
    }
}

impl TotpModule {
    /// A module over `store` (which holds the secrets and latch's TOTP state), reading
    /// the time from `clock`.
    ///
    /// # Errors
    /// A [`ConfigError`] for a config that fails [`TotpConfig::validate`].
    pub fn new(
        config: TotpConfig,
        store: Store,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                store,
                clock,
                locks: parking_lot::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &TotpConfig {
        &self.inner.config
    }

    /// True if the user has a TOTP secret (Home Assistant's `is_user_setup`).
    #[must_use]
    pub fn is_user_setup(&self, user_id: &UserId) -> bool {
        self.inner.store.totp_secret(user_id.as_str()).is_some()
    }

    /// Unused recovery codes the user has left (0 if none were issued). Callers may warn
    /// when few remain.
    #[must_use]
    pub fn recovery_codes_left(&self, user_id: &UserId) -> usize {
        self.inner
            .store
            .totp_state(user_id.as_str())
            .map_or(0, |s| s.recovery_codes.len())
    }

    /// Home Assistant's `async_setup_user`: stores `secret` (or a freshly generated one
    /// when `None` or empty, as Home Assistant's `secret or random_base32()`) as the
    /// user's secret, replacing any previous one, durably, and returns it.
    ///
    /// Beyond Home Assistant: an explicit secret must decode as base32 (pyotp's rules:
    /// any case, padding optional) to at least one byte; it is stored as given. The
    /// last accepted time step is reset when the secret changes (kept when the same
    /// secret is set again, so a just-used code cannot be replayed); issued recovery
    /// codes are kept.
    ///
    /// # Errors
    /// [`TotpError::InvalidSecret`]; [`TotpError::UnknownUser`] if the store has no such
    /// user; [`TotpError::Storage`].
    pub async fn setup_user(
        &self,
        user_id: &UserId,
        secret: Option<&str>,
    ) -> Result<Secret, TotpError> {
        let secret = match secret {
            Some(s) if !s.is_empty() => {
                let key = Zeroizing::new(decode_secret(s).map_err(TotpError::InvalidSecret)?);
                if key.is_empty() {
                    return Err(TotpError::InvalidSecret(SecretError::Empty));
                }
                Secret::new(s)
            }
            _ => generate_secret(),
        };
        let inner = &self.inner;
        let _lock = inner.lock_user(user_id).await;
        let old_secret = inner.store.totp_secret(user_id.as_str());
        let mut state = inner.store.totp_state(user_id.as_str()).unwrap_or_default();
        if old_secret.as_ref() != Some(&secret) {
            state.last_step = None;
        }
        inner
            .commit(vec![
                Change::PutTotpSecret {
                    user_id: user_id.clone(),
                    secret: secret.clone(),
                },
                state_change(user_id, state),
            ])
            .await?;
        tracing::info!(user_id = %user_id, "totp set up");
        Ok(secret)
    }

    /// Home Assistant's `async_depose_user`: removes the user's secret and latch's TOTP
    /// state (last step, recovery codes), durably. A user without them is fine.
    ///
    /// # Errors
    /// [`TotpError::Storage`].
    pub async fn depose_user(&self, user_id: &UserId) -> Result<(), TotpError> {
        let inner = &self.inner;
        let _lock = inner.lock_user(user_id).await;
        let has_secret = inner.store.totp_secret(user_id.as_str()).is_some();
        let has_state = inner.store.totp_state(user_id.as_str()).is_some();
        if !has_secret && !has_state {
            return Ok(());
        }
        inner
            .commit(vec![
                Change::RemoveTotpSecret {
                    user_id: user_id.clone(),
                },
                Change::RemoveTotpState {
                    user_id: user_id.clone(),
                },
            ])
            .await?;
        tracing::info!(user_id = %user_id, "totp deposed");
        Ok(())
    }

    /// Checks a code typed at login.
    ///
    /// - A TOTP code passes if it is the code of step T-1, T or T+1 (T = floor(now/30)),
    ///   compared as pyotp does (NFKC, constant time), **and** its step is above the
    ///   last step accepted for this user. The step is recorded durably before `true`
    ///   is returned, so a code works once (RFC 6238 §5.2).
    /// - Otherwise, an unused recovery code (any case, dashes and surrounding space
    ///   optional) passes and is removed durably before `true` is returned.
    /// - A user without a secret gets a check against [`DUMMY_SECRET`] (same cost) and
    ///   `false`; so does a user whose stored secret does not decode (logged).
    ///
    /// Calls for one user are serialised, so two concurrent logins with one code cannot
    /// both pass.
    ///
    /// # Errors
    /// [`TotpError::Storage`] when recording the step or the used recovery code fails
    /// (the login must then fail: the code may not be marked used).
    pub async fn validate_code(&self, user_id: &UserId, code: &str) -> Result<bool, TotpError> {
        Ok(self.check_code(user_id, code).await? == CodeVerdict::Accepted)
    }

    /// As [`TotpModule::validate_code`], telling a right code whose time step was used
    /// already ([`CodeVerdict::AlreadyUsed`]) from a wrong one.
    ///
    /// # Errors
    /// As [`TotpModule::validate_code`].
    pub async fn check_code(&self, user_id: &UserId, code: &str) -> Result<CodeVerdict, TotpError> {
        let inner = &self.inner;
        let _lock = inner.lock_user(user_id).await;
        let now_step = step_at(inner.now_unix());

        let Some(secret) = inner.store.totp_secret(user_id.as_str()) else {
            dummy_check(code, now_step);
            return Ok(CodeVerdict::Invalid);
        };
        let key = match decode_secret(secret.expose()) {
            Ok(k) => Zeroizing::new(k),
            Err(e) => {
                tracing::warn!(user_id = %user_id, error = %e, "stored totp secret cannot be decoded");
                dummy_check(code, now_step);
                return Ok(CodeVerdict::Invalid);
            }
        };
        let state = inner.store.totp_state(user_id.as_str()).unwrap_or_default();

        if let Some(step) = now_step.and_then(|t| matching_step(&key, code, t, LOGIN_WINDOW)) {
            if state.last_step.is_some_and(|last| step <= last) {
                tracing::info!(user_id = %user_id, step, "totp code refused: its time step was used already");
                return Ok(CodeVerdict::AlreadyUsed);
            }
            inner
                .commit(vec![Change::PutTotpState {
                    user_id: user_id.clone(),
                    last_step: Some(step),
                    recovery_codes: state.recovery_codes,
                }])
                .await?;
            return Ok(CodeVerdict::Accepted);
        }

        if let Some(normalized) = normalize_recovery_code(code) {
            let candidate = recovery::hash(user_id, &normalized);
            if let Some(i) = recovery::position(&state.recovery_codes, &candidate) {
                let mut codes = state.recovery_codes;
                codes.remove(i);
                let remaining = codes.len();
                inner
                    .commit(vec![Change::PutTotpState {
                        user_id: user_id.clone(),
                        last_step: state.last_step,
                        recovery_codes: codes,
                    }])
                    .await?;
                tracing::info!(user_id = %user_id, remaining, "totp recovery code used");
                return Ok(CodeVerdict::Accepted);
            }
        }
        Ok(CodeVerdict::Invalid)
    }

    /// Issues a fresh set of [`TotpConfig::recovery_codes`] one-time codes for a user
    /// with TOTP set up, replacing (and so invalidating) the previous set. The codes are
    /// returned in plain text this once; only their hashes are stored. With
    /// `recovery_codes = 0` the old set is removed and none is issued.
    ///
    /// # Errors
    /// [`TotpError::NotSetUp`]; [`TotpError::Storage`].
    pub async fn regenerate_recovery_codes(
        &self,
        user_id: &UserId,
    ) -> Result<Vec<String>, TotpError> {
        let inner = &self.inner;
        let _lock = inner.lock_user(user_id).await;
        if inner.store.totp_secret(user_id.as_str()).is_none() {
            return Err(TotpError::NotSetUp(user_id.clone()));
        }
        let state = inner.store.totp_state(user_id.as_str()).unwrap_or_default();
        let codes = recovery::generate(inner.config.recovery_codes);
        let hashes = hash_all(user_id, &codes);
        inner
            .commit(vec![state_change(
                user_id,
                TotpState {
                    last_step: state.last_step,
                    recovery_codes: hashes,
                },
            )])
            .await?;
        tracing::info!(user_id = %user_id, count = codes.len(), "totp recovery codes regenerated");
        Ok(codes)
    }

    /// A setup flow for `user` (the concrete type behind [`MfaModule::setup_flow`]).
    ///
    /// # Errors
    /// [`TotpError::SystemUser`] for a system-generated user.
    pub fn setup(&self, user: &User) -> Result<TotpSetupFlow, TotpError> {
        if user.system_generated {
            return Err(TotpError::SystemUser(user.id.clone()));
        }
        Ok(TotpSetupFlow::new(Arc::clone(&self.inner), user))
    }
}

/// The hashes of a set of freshly issued codes.
pub(crate) fn hash_all(user_id: &UserId, codes: &[String]) -> Vec<Secret> {
    codes
        .iter()
        .filter_map(|c| normalize_recovery_code(c))
        .map(|c| recovery::hash(user_id, &c))
        .collect()
}

/// The change that stores `state`: removal when it holds nothing.
fn state_change(user_id: &UserId, state: TotpState) -> Change {
    if state == TotpState::default() {
        Change::RemoveTotpState {
            user_id: user_id.clone(),
        }
    } else {
        Change::PutTotpState {
            user_id: user_id.clone(),
            last_step: state.last_step,
            recovery_codes: state.recovery_codes,
        }
    }
}

/// The verification Home Assistant runs for a user without a secret, so that both
/// cost the same.
fn dummy_check(code: &str, now_step: Option<u64>) {
    if let (Ok(key), Some(step)) = (decode_secret(DUMMY_SECRET), now_step) {
        std::hint::black_box(matching_step(&key, code, step, LOGIN_WINDOW));
    }
}

/// The login input's code: `code` if it is a string, else `""` (Home Assistant's
/// `user_input.get("code", "")`; its schema admits only strings).
pub(crate) fn input_code(input: &Map<String, Value>) -> &str {
    input
        .get(INPUT_FIELD_CODE)
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl MfaModule for TotpModule {
    fn module_type(&self) -> &str {
        MODULE_TYPE
    }

    fn id(&self) -> &str {
        &self.inner.config.id
    }

    fn name(&self) -> &str {
        &self.inner.config.name
    }

    fn max_retry(&self) -> u32 {
        MAX_RETRY
    }

    fn input_fields(&self) -> Vec<FormField> {
        vec![FormField::string(INPUT_FIELD_CODE)]
    }

    fn is_user_setup(&self, user_id: &UserId) -> bool {
        Self::is_user_setup(self, user_id)
    }

    fn validate<'a>(
        &'a self,
        user_id: &'a UserId,
        input: &'a Map<String, Value>,
    ) -> BoxFuture<'a, Result<bool, ProviderError>> {
        Box::pin(async move {
            self.validate_code(user_id, input_code(input))
                .await
                .map_err(ProviderError::from)
        })
    }

    fn check<'a>(
        &'a self,
        user_id: &'a UserId,
        input: &'a Map<String, Value>,
    ) -> BoxFuture<'a, Result<CodeVerdict, ProviderError>> {
        Box::pin(async move {
            self.check_code(user_id, input_code(input))
                .await
                .map_err(ProviderError::from)
        })
    }

    fn setup_flow(&self, user: &User) -> Result<Box<dyn MfaSetupFlow>, ProviderError> {
        Ok(Box::new(self.setup(user)?))
    }

    fn depose_user<'a>(&'a self, user_id: &'a UserId) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            Self::depose_user(self, user_id)
                .await
                .map_err(ProviderError::from)
        })
    }

    fn regenerate_recovery_codes<'a>(
        &'a self,
        user_id: &'a UserId,
    ) -> BoxFuture<'a, Result<Option<Vec<String>>, ProviderError>> {
        Box::pin(async move {
            if self.inner.config.recovery_codes == 0 {
                return Ok(None);
            }
            Self::regenerate_recovery_codes(self, user_id)
                .await
                .map(Some)
                .map_err(ProviderError::from)
        })
    }
}

#[cfg(test)]
mod tests {
    use latch_models::FixedClock;
    use latch_store::StoreOptions;

    use super::*;

    #[tokio::test]
    async fn user_locks_are_forgotten_when_released() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::open(home.path(), StoreOptions::default()).unwrap();
        let clock = Arc::new(FixedClock::new(chrono::DateTime::UNIX_EPOCH));
        let totp = TotpModule::new(TotpConfig::default(), store, clock).unwrap();
        let a = UserId::from("a");
        {
            let _held = totp.inner.lock_user(&a).await;
            assert_eq!(totp.inner.locks.lock().len(), 1);
            // Another user is not blocked by it.
            let _other = totp.inner.lock_user(&UserId::from("b")).await;
            assert_eq!(totp.inner.locks.lock().len(), 2);
        }
        assert!(totp.inner.locks.lock().is_empty());
        assert!(!totp.validate_code(&a, "123456").await.unwrap());
        assert!(totp.inner.locks.lock().is_empty());
    }

    #[test]
    fn new_refuses_an_invalid_config() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::open(home.path(), StoreOptions::default()).unwrap();
        let clock = Arc::new(FixedClock::new(chrono::DateTime::UNIX_EPOCH));
        let config = TotpConfig {
            issuer: "a:b".into(),
            ..TotpConfig::default()
        };
        assert_eq!(
            TotpModule::new(config, store, clock).unwrap_err(),
            ConfigError::InvalidIssuer("a:b".into())
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::open(home.path(), StoreOptions::default()).unwrap();
        let clock = Arc::new(FixedClock::new(chrono::DateTime::UNIX_EPOCH));
        let totp = TotpModule::new(TotpConfig::default(), store, clock).unwrap();
        let mut flow = totp.setup(&User::new(Some("P".into()))).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(flow.step_input(None)).unwrap();
        let secret = flow.secret().unwrap().expose().to_owned();
        let shown = format!("{flow:?} {totp:?}");
        assert!(!shown.contains(&secret), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
